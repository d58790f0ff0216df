//! One tokio task per group. A group runs at the instants `t` with
//! `t % interval == offset`, where the offset comes from a hash of the group's name, so
//! that groups with the same interval spread over it instead of all running at once.
//! Each group waits only for itself: a slow group skips its missed slots (counted in
//! `/metrics`) and never delays another group.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::group::Group;
use super::manager::Alerting;
use super::now_ms;

/// A group's task, with the group it runs (to tell a replaced group).
type GroupTask = (Arc<Group>, tokio::task::JoinHandle<()>);

/// The running group tasks; dropping it stops them.
pub struct Scheduler {
    alerting: Weak<Alerting>,
    tasks: Mutex<BTreeMap<String, GroupTask>>,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        for (_, (_, task)) in std::mem::take(&mut *self.tasks.lock()) {
            task.abort();
        }
    }
}

/// Where in its interval a group runs (ms after each multiple of the interval).
pub fn offset(name: &str, interval_ms: i64) -> i64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    (h.finish() % interval_ms.max(1) as u64) as i64
}

/// The first slot at or after `now`.
pub fn next_slot(now: i64, interval_ms: i64, offset: i64) -> i64 {
    let base = now - now.rem_euclid(interval_ms) + offset;
    if base >= now {
        base
    } else {
        base + interval_ms
    }
}

impl Scheduler {
    /// No tasks yet; see [`Scheduler::sync`]. Tasks hold `alerting` weakly so that
    /// they end with it.
    pub fn new(alerting: Weak<Alerting>) -> Scheduler {
        Scheduler {
            alerting,
            tasks: Mutex::new(BTreeMap::new()),
        }
    }

    /// Makes the tasks match `groups`: stops tasks of removed or replaced groups and
    /// starts tasks for new ones.
    pub fn sync(&self, groups: &BTreeMap<String, Arc<Group>>) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|name, (group, task)| {
            let keep = groups.get(name).is_some_and(|g| Arc::ptr_eq(g, group));
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, group) in groups {
            if !tasks.contains_key(name) {
                let task = tokio::spawn(run(self.alerting.clone(), group.clone()));
                tasks.insert(name.clone(), (group.clone(), task));
            }
        }
    }
}

async fn run(alerting: Weak<Alerting>, group: Arc<Group>) {
    let interval = group.interval_ms;
    let offset = offset(group.name(), interval);
    let mut slot = next_slot(now_ms(), interval, offset);
    loop {
        let wait = slot - now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let Some(alerting) = alerting.upgrade() else {
            return;
        };
        if let Err(e) = alerting.evaluate_group(&group, slot).await {
            tracing::error!(group = %group.name(), error = %e, "cannot save alert state");
        }
        let next = next_slot(now_ms(), interval, offset).max(slot + interval);
        let missed = (next - slot) / interval - 1;
        if missed > 0 {
            alerting.metrics().missed(missed as u64);
        }
        // Not held while sleeping, so that the store can go away.
        drop(alerting);
        slot = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spread_and_aligned() {
        assert_eq!(next_slot(1_000, 60_000, 5_000), 5_000);
        assert_eq!(next_slot(6_000, 60_000, 5_000), 65_000);
        assert_eq!(next_slot(65_000, 60_000, 5_000), 65_000);
        let a = offset("group-a", 60_000);
        assert!((0..60_000).contains(&a));
        assert_eq!(a, offset("group-a", 60_000));
        let distinct: std::collections::BTreeSet<_> =
            (0..20).map(|i| offset(&format!("g{i}"), 60_000)).collect();
        assert!(distinct.len() > 15, "{distinct:?}");
    }
}
