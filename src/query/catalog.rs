//! The `metricstore.public` schema: every table, as it is created, over the hot tier
//! and (for tables with tiered rows) the cold tier.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::SchemaProvider;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DfResult;

use super::exec::SnapshotCheck;
use super::provider::HotTable;
use super::tiered::TieredTable;
use crate::storage::Storage;
use crate::tier::ColdTier;

/// Lists the store's tables live, so a table is queryable as soon as it is written.
#[derive(Debug)]
pub struct HotSchema {
    storage: Arc<Storage>,
    cold: Option<Arc<ColdTier>>,
}

impl HotSchema {
    /// The schema over `storage` and, if there is one, the cold tier.
    pub fn new(storage: Arc<Storage>, cold: Option<Arc<ColdTier>>) -> HotSchema {
        HotSchema { storage, cold }
    }
}

#[async_trait]
impl SchemaProvider for HotSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.storage.table_names();
        if let Some(cold) = &self.cold {
            names.extend(cold.manifest().tables.keys().cloned());
            names.sort();
            names.dedup();
        }
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(cold) = &self.cold else {
            return Ok(HotTable::new(self.storage.clone(), name)
                .map(|t| Arc::new(t) as Arc<dyn TableProvider>));
        };
        let manifest = cold.manifest();
        if manifest.tables.contains_key(name) {
            return Ok(TieredTable::new(self.storage.clone(), cold.clone(), name)
                .map(|t| Arc::new(t) as Arc<dyn TableProvider>));
        }
        // Nothing tiered yet: a plain hot table reading every row from memory. Should
        // the table's first tiering commit land before the scan's snapshot, the plan
        // is still right as long as the tiered rows are still in memory (it reads no
        // files); tiering waits for planned queries to take their snapshots (they hold
        // the manifest) before dropping rows, so failing here practically never
        // happens.
        let table = name.to_string();
        let check = SnapshotCheck(Arc::new(move |snapshot| {
            let _planned_with = &manifest;
            match snapshot.tiered_until() {
                None => Ok(()),
                Some(t) => Err(crate::Error::InvalidWrite(format!(
                    "the cold tier took rows of {table:?} before {t} ms while this query \
                     was planned; run it again"
                ))),
            }
        }));
        Ok(HotTable::new(self.storage.clone(), name)
            .map(|t| Arc::new(t.with_check(check)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names().iter().any(|t| t == name)
    }
}
