//! The store's background threads: the WAL's interval fsync and periodic checkpoints.
//!
//! Plain threads rather than tokio tasks: the library has no runtime of its own, and
//! both jobs block on the disk.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::storage::Storage;
use crate::storage::persist::{Durability, FsyncPolicy};

/// Running background threads; [`Tasks::stop`] ends them.
#[derive(Debug)]
pub(crate) struct Tasks {
    stop: Arc<(Mutex<bool>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl Tasks {
    pub(crate) fn start(storage: Arc<Storage>, durable: Arc<Durability>) -> Tasks {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let mut threads = Vec::new();
        let config = durable.config().clone();
        if durable.fsync_policy() == FsyncPolicy::Interval {
            let d = durable.clone();
            threads.push(every(
                "metricstore-fsync",
                config.fsync_interval,
                stop.clone(),
                move || {
                    if let Err(e) = d.sync() {
                        tracing::error!(error = %e, "WAL fsync failed");
                    }
                },
            ));
        }
        if let Some(interval) = config.checkpoint_interval {
            threads.push(every(
                "metricstore-checkpoint",
                interval,
                stop.clone(),
                move || {
                    if let Err(e) = durable.checkpoint(&storage) {
                        tracing::error!(error = %e, "checkpoint failed");
                    }
                },
            ));
        }
        Tasks { stop, threads }
    }

    /// Tells the threads to stop and waits for them.
    pub(crate) fn stop(self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Runs `job` every `period` until told to stop.
fn every(
    name: &str,
    period: Duration,
    stop: Arc<(Mutex<bool>, Condvar)>,
    mut job: impl FnMut() + Send + 'static,
) -> JoinHandle<()> {
    let period = period.max(Duration::from_millis(1));
    let spawn = std::thread::Builder::new().name(name.to_string());
    let body = move || {
        let (flag, signal) = &*stop;
        let mut next = Instant::now() + period;
        loop {
            {
                let mut stopped = flag.lock();
                while !*stopped && Instant::now() < next {
                    signal.wait_until(&mut stopped, next);
                }
                if *stopped {
                    return;
                }
            }
            job();
            next = Instant::now() + period;
        }
    };
    // Thread creation fails only when the OS is out of resources; run the job
    // nowhere rather than abort the store.
    spawn.spawn(body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot start background thread");
        std::thread::spawn(|| {})
    })
}
