//! Per-query options and the warnings a query collects while it runs.
//!
//! They travel as an extension of the query's own copy of the session config, so one
//! request's options never leak into another's (unlike `SET`, which changes the
//! store's shared session). Execution nodes read them from their `TaskContext`.

use std::sync::Arc;

use datafusion::execution::TaskContext;
use parking_lot::Mutex;

/// How one query runs.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// When the cold tier fails, answer from the hot tier alone and add a warning,
    /// instead of failing the query.
    pub partial_results: bool,
    /// Refuse statements that change the store's shared session (`SET`, `RESET`,
    /// `PREPARE`, `DEALLOCATE`, transactions). The server sets it for its clients: one
    /// client's `SET` would change every other client's queries.
    pub refuse_session_changes: bool,
    /// Where `COPY ... TO` may write local files (see [`super::export::confine`]);
    /// `None`: wherever this process can, as an embedding program decides.
    pub export_dir: Option<std::path::PathBuf>,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl QueryOptions {
    /// Options that accept a hot-only answer when the cold tier is unreachable.
    pub fn partial() -> QueryOptions {
        QueryOptions {
            partial_results: true,
            ..QueryOptions::default()
        }
    }

    /// The options of a query from a server client: no session changes (see
    /// [`QueryOptions::refuse_session_changes`]), local exports only under
    /// `export_dir`.
    pub fn client(export_dir: std::path::PathBuf) -> QueryOptions {
        QueryOptions {
            refuse_session_changes: true,
            export_dir: Some(export_dir),
            ..QueryOptions::default()
        }
    }

    /// The warnings collected so far (read them after the query's stream ended).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }

    pub(crate) fn warn(&self, warning: String) {
        let mut warnings = self.warnings.lock();
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }

    /// The options of the query `context` runs.
    pub(crate) fn of(context: &TaskContext) -> Option<Arc<QueryOptions>> {
        context.session_config().get_extension::<QueryOptions>()
    }
}
