//! One storage snapshot per execution of a scan, shared by the scan's partitions, so
//! that every partition reads the same instant of the store.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DfResult};
use parking_lot::Mutex;

use crate::storage::TableSnapshot;

/// The snapshot of the current execution and how many partitions took it.
#[derive(Debug)]
pub(crate) struct SharedSnapshot {
    partitions: usize,
    state: Mutex<(Option<Arc<TableSnapshot>>, usize)>,
}

impl SharedSnapshot {
    pub(crate) fn new(partitions: usize) -> SharedSnapshot {
        SharedSnapshot {
            partitions: partitions.max(1),
            state: Mutex::new((None, 0)),
        }
    }

    /// The first partition to run takes the snapshot with `take`, the others share
    /// it, and the last one clears it so that a re-execution sees new data.
    pub(crate) fn get(
        &self,
        take: impl FnOnce() -> crate::Result<Arc<TableSnapshot>>,
    ) -> DfResult<Arc<TableSnapshot>> {
        let mut state = self.state.lock();
        let snapshot = match &state.0 {
            Some(s) => s.clone(),
            None => {
                let s = take().map_err(|e| DataFusionError::External(Box::new(e)))?;
                *state = (Some(s.clone()), 0);
                s
            }
        };
        state.1 += 1;
        if state.1 >= self.partitions {
            state.0 = None;
        }
        Ok(snapshot)
    }
}
