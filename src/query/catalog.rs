//! The `metricstore.public` schema: every hot table, as it is created.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::SchemaProvider;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DfResult;

use super::provider::HotTable;
use crate::storage::Storage;

/// Lists the store's tables live, so a table is queryable as soon as it is written.
#[derive(Debug)]
pub struct HotSchema {
    storage: Arc<Storage>,
}

impl HotSchema {
    /// The schema over `storage`.
    pub fn new(storage: Arc<Storage>) -> HotSchema {
        HotSchema { storage }
    }
}

#[async_trait]
impl SchemaProvider for HotSchema {
    fn table_names(&self) -> Vec<String> {
        self.storage.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(
            HotTable::new(self.storage.clone(), name)
                .map(|t| Arc::new(t) as Arc<dyn TableProvider>),
        )
    }

    fn table_exist(&self, name: &str) -> bool {
        self.storage.table_names().iter().any(|t| t == name)
    }
}
