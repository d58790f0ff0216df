//! CPU-heavy tiering work (sorting and encoding Parquet) runs on its own thread at a
//! lower scheduling priority, so that a tiering run yields the cores to queries and
//! ingestion: on a 2-core machine a run at normal priority took one core from every
//! query it overlapped (hot TSBS queries 1.46x slower while tiering ran continuously).

use super::TierError;

/// How much lower than normal (nice 0) the tiering thread runs: nice 10 weighs about
/// a tenth of a normal thread under Linux's scheduler, yet still runs on idle cores.
const NICENESS: i32 = 10;

/// Runs `work` on a fresh thread at lower priority and awaits its result.
pub(super) async fn low_priority<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TierError> {
    let (send, receive) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("metricstore-tier".into())
        .spawn(move || {
            lower_priority();
            let _ = send.send(work());
        })
        .map_err(|e| TierError::Config(format!("cannot start a tiering thread: {e}")))?;
    receive
        .await
        .map_err(|_| TierError::Config("the tiering thread panicked".into()))
}

/// Lowers the calling thread's priority; best effort (a failure leaves it normal).
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: `gettid` has no preconditions. `setpriority` with PRIO_PROCESS and a
    // thread id changes only that thread's nice value on Linux (nice is per thread
    // there); it takes no pointers, so no memory is involved, and an error (for
    // example a sandbox refusing it) is reported through the return value, which we
    // ignore on purpose: the work runs either way.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICENESS);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_at_lower_priority_and_returns() {
        let (value, nice) = low_priority(|| {
            // SAFETY: as above; getpriority reads the calling thread's nice value.
            let nice = unsafe {
                *libc::__errno_location() = 0;
                libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
            };
            (6 * 7, nice)
        })
        .await
        .unwrap();
        assert_eq!(value, 42);
        // Raising niceness never needs privileges.
        assert_eq!(nice, NICENESS);
        // The caller's own thread keeps its priority.
        // SAFETY: as above.
        let own = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        assert_eq!(own, 0);
    }
}
