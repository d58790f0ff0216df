use proptest::prelude::*;

use super::*;

fn l(host: &str) -> Labels {
    Labels::from([("host".to_string(), host.to_string())])
}

#[test]
fn pending_then_firing_after_for_then_resolved() {
    let mut s = RuleState::default();
    let t = s.step(vec![(l("a"), 95.0)], 0, 60_000, 0);
    assert_eq!(t[0].to, Some(AlertState::Pending));
    assert!(s.step(vec![(l("a"), 96.0)], 30_000, 60_000, 0).is_empty());
    let t = s.step(vec![(l("a"), 97.0)], 60_000, 60_000, 0);
    assert_eq!(
        (t[0].from, t[0].to),
        (Some(AlertState::Pending), Some(AlertState::Firing))
    );
    let i = s.get(&l("a")).unwrap();
    assert_eq!((i.active_at, i.fired_at, i.value), (0, Some(60_000), 97.0));
    let t = s.step(vec![], 90_000, 60_000, 0);
    assert_eq!(t[0].to, Some(AlertState::Resolved));
    assert_eq!(s.get(&l("a")).unwrap().resolved_at, Some(90_000));
    // Kept for notifications, then dropped.
    s.step(vec![], 90_000 + RESOLVED_RETENTION_MS, 60_000, 0);
    assert!(s.get(&l("a")).is_none());
}

#[test]
fn pending_that_disappears_goes_inactive() {
    let mut s = RuleState::default();
    s.step(vec![(l("a"), 1.0)], 0, 60_000, 0);
    let t = s.step(vec![], 10_000, 60_000, 0);
    assert_eq!((t[0].from, t[0].to), (Some(AlertState::Pending), None));
    assert!(s.get(&l("a")).is_none());
}

#[test]
fn keep_firing_for_holds_then_resolves() {
    let mut s = RuleState::default();
    s.step(vec![(l("a"), 1.0)], 0, 0, 120_000);
    assert_eq!(s.get(&l("a")).unwrap().state, AlertState::Firing);
    assert!(s.step(vec![], 60_000, 0, 120_000).is_empty());
    assert!(s.step(vec![], 120_000, 0, 120_000).is_empty());
    // Back before the window ends: still the same alert, window cleared.
    assert!(s.step(vec![(l("a"), 2.0)], 150_000, 0, 120_000).is_empty());
    assert!(s.step(vec![], 200_000, 0, 120_000).is_empty());
    let t = s.step(vec![], 320_000, 0, 120_000);
    assert_eq!(t[0].to, Some(AlertState::Resolved));
    // Returned again: a new alert.
    let t = s.step(vec![(l("a"), 3.0)], 330_000, 0, 120_000);
    assert_eq!((t[0].from, t[0].to), (None, Some(AlertState::Firing)));
    assert_eq!(s.get(&l("a")).unwrap().active_at, 330_000);
}

#[test]
fn persisted_form_round_trips() {
    let mut s = RuleState::default();
    s.step(vec![(l("a"), 1.0), (l("b"), 2.0)], 0, 0, 0);
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<RuleState>(&json).unwrap(), s);
}

proptest! {
    /// Whatever the sequence of results: an instance returned at the last step is
    /// pending or firing; firing only once returned for `for`; pending never outlives
    /// its absence; firing only while within `keep_firing_for` of its last return.
    #[test]
    fn invariants(
        steps in prop::collection::vec(prop::collection::vec(any::<bool>(), 3), 1..40),
        for_steps in 0i64..4,
        keep_steps in 0i64..4,
    ) {
        const STEP: i64 = 10_000;
        let (for_ms, keep_ms) = (for_steps * STEP, keep_steps * STEP);
        let mut s = RuleState::default();
        let mut last_seen: BTreeMap<usize, i64> = BTreeMap::new();
        let mut streak_start: BTreeMap<usize, i64> = BTreeMap::new();
        for (n, present) in steps.iter().enumerate() {
            let at = n as i64 * STEP;
            let results = present.iter().enumerate().filter(|(_, p)| **p)
                .map(|(h, _)| (l(&h.to_string()), h as f64)).collect();
            s.step(results, at, for_ms, keep_ms);
            for (h, p) in present.iter().enumerate() {
                let state = s.get(&l(&h.to_string())).map(|i| i.state);
                if *p {
                    last_seen.insert(h, at);
                    streak_start.entry(h).or_insert(at);
                    prop_assert!(matches!(state, Some(AlertState::Pending | AlertState::Firing)));
                } else if state != Some(AlertState::Firing) {
                    streak_start.remove(&h);
                }
                match state {
                    Some(AlertState::Firing) => {
                        let i = s.get(&l(&h.to_string())).unwrap();
                        prop_assert!(i.fired_at.unwrap() - i.active_at >= for_ms);
                        prop_assert!(at - last_seen[&h] <= keep_ms);
                    }
                    Some(AlertState::Pending) => prop_assert!(*p),
                    _ => {}
                }
            }
        }
    }
}
