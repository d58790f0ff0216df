//! The index against a naive scan over every series, plus Prometheus edge cases.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use roaring::RoaringBitmap;

use super::*;

fn ids(bitmap: &RoaringBitmap) -> Vec<u32> {
    bitmap.iter().collect()
}

/// Series 0: foo=a, 1: foo=b bar=x, 2: bar=y (no foo), 3: no tags at all.
fn small() -> LabelIndex {
    let mut index = LabelIndex::new();
    index.insert(0, &[("foo", "a")]).unwrap();
    index.insert(1, &[("foo", "b"), ("bar", "x")]).unwrap();
    index.insert(2, &[("bar", "y")]).unwrap();
    index.insert(3, &[]).unwrap();
    index
}

fn select(index: &LabelIndex, matchers: &[Matcher]) -> Vec<u32> {
    ids(&index.select(matchers))
}

#[test]
fn prometheus_missing_label_is_empty_string() {
    let index = small();
    assert_eq!(select(&index, &[Matcher::eq("foo", "")]), [2, 3]);
    assert_eq!(select(&index, &[Matcher::ne("foo", "")]), [0, 1]);
    assert_eq!(select(&index, &[Matcher::ne("foo", "a")]), [1, 2, 3]);
    assert_eq!(
        select(&index, &[Matcher::re("foo", ".*").unwrap()]),
        [0, 1, 2, 3]
    );
    assert_eq!(select(&index, &[Matcher::re("foo", ".+").unwrap()]), [0, 1]);
    assert_eq!(
        select(&index, &[Matcher::re("foo", "a|").unwrap()]),
        [0, 2, 3]
    );
    assert_eq!(
        select(&index, &[Matcher::not_re("foo", "a|").unwrap()]),
        [1]
    );
    assert_eq!(
        select(&index, &[Matcher::not_re("foo", ".*").unwrap()]),
        Vec::<u32>::new()
    );
    assert_eq!(select(&index, &[Matcher::eq("nope", "")]), [0, 1, 2, 3]);
    assert_eq!(
        select(&index, &[Matcher::re("nope", "x.*").unwrap()]),
        Vec::<u32>::new()
    );
    assert_eq!(
        select(&index, &[Matcher::is_in("foo", ["b", ""])]),
        [1, 2, 3]
    );
    assert_eq!(select(&index, &[Matcher::not_in("foo", ["b", ""])]), [0]);
}

#[test]
fn prometheus_regex_is_anchored() {
    let index = small();
    assert_eq!(select(&index, &[Matcher::re("bar", "x").unwrap()]), [1]);
    let mut index = small();
    index.insert(4, &[("bar", "xx")]).unwrap();
    assert_eq!(select(&index, &[Matcher::re("bar", "x").unwrap()]), [1]);
    assert_eq!(select(&index, &[Matcher::re("bar", "x+").unwrap()]), [1, 4]);
}

#[test]
fn selection_is_intersection_and_empty_list_is_all() {
    let index = small();
    assert_eq!(select(&index, &[]), [0, 1, 2, 3]);
    let both = [Matcher::ne("foo", ""), Matcher::eq("bar", "x")];
    assert_eq!(select(&index, &both), [1]);
}

#[test]
fn sql_primitives_treat_missing_as_null() {
    let index = small();
    assert_eq!(ids(&index.eq("foo", "a")), [0]);
    assert_eq!(ids(&index.eq("foo", "")), Vec::<u32>::new());
    assert_eq!(ids(&index.with_key("foo")), [0, 1]);
    assert_eq!(ids(&index.without_key("foo")), [2, 3]);
    assert_eq!(ids(&index.values_matching("foo", |_| true)), [0, 1]);
    assert_eq!(ids(&index.without_key("nope")), [0, 1, 2, 3]);
}

#[test]
fn invalid_regex_names_matcher_and_cause() {
    let err = Matcher::re("job", "api(").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(r#"invalid regex "api(" in matcher on label "job""#),
        "{msg}"
    );
    assert!(msg.contains("unclosed group"), "{msg}");
    assert!(matches!(err, IndexError::InvalidRegex { .. }));
}

#[test]
fn insert_rejects_duplicates_without_changing_index() {
    let mut index = small();
    let before = index.memory_bytes();
    assert!(matches!(
        index.insert(1, &[("foo", "z")]),
        Err(IndexError::DuplicateSeries { id: 1 })
    ));
    let err = index.insert(9, &[("k", "1"), ("k", "2")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"series id 9 has tag key "k" more than once"#
    );
    assert_eq!(index.memory_bytes(), before);
    assert_eq!(ids(index.all()), [0, 1, 2, 3]);
}

#[test]
fn remove_drops_empty_values_and_keys() {
    let mut index = small();
    assert!(index.remove(1, &[("foo", "b"), ("bar", "x")]));
    assert!(!index.remove(1, &[("foo", "b"), ("bar", "x")]));
    assert_eq!(index.values("foo").collect::<Vec<_>>(), ["a"]);
    assert_eq!(index.values("bar").collect::<Vec<_>>(), ["y"]);
    // Wrong hints still remove the series everywhere.
    assert!(index.remove(2, &[("bar", "nope")]));
    assert!(index.remove(0, &[]));
    assert_eq!(index.keys().count(), 0);
    assert_eq!(index.memory_bytes(), index.memory_bytes_recomputed());
}

#[test]
fn introspection() {
    let mut index = small();
    index.insert(4, &[("foo", "c")]).unwrap();
    assert_eq!(index.keys().collect::<Vec<_>>(), ["bar", "foo"]);
    assert_eq!(index.values("foo").collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(index.distinct_values("foo"), 3);
    assert_eq!(index.distinct_values("nope"), 0);
    assert_eq!(
        index.cardinality(),
        [("foo".to_string(), 3), ("bar".to_string(), 2)]
    );
    assert_eq!(index.len(), 5);
}

// ---- property tests: index vs. naive scan ----

const KEYS: [&str; 3] = ["a", "b", "c"];
const VALUES: [&str; 9] = ["", "a", "b", "c", "ab", "abc", "us-east", "us-west", "x\ny"];
const PATTERNS: [&str; 20] = [
    "a.*",
    "b|c",
    ".*",
    ".+",
    "",
    "a|",
    "|b",
    "us-.*",
    "a+",
    "ab?c?",
    "[ab]",
    "(a|b)c",
    "x.y",
    "a*",
    "us-(east|west)",
    "ab|abc",
    "(?i)A.*",
    "[^a]*",
    "us-east|x",
    "a\\+",
];

type Tags = BTreeMap<String, String>;

fn tags_strategy() -> impl Strategy<Value = Tags> {
    proptest::collection::vec(proptest::option::weighted(0.7, 0..VALUES.len()), KEYS.len())
        .prop_map(|picks| {
            KEYS.iter()
                .zip(picks)
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), VALUES[v].to_string())))
                .collect()
        })
}

fn matcher_strategy() -> impl Strategy<Value = Matcher> {
    let name = prop_oneof![Just("a"), Just("b"), Just("c"), Just("missing")];
    let value = 0..VALUES.len();
    let pattern = 0..PATTERNS.len();
    let list = proptest::collection::vec(0..VALUES.len(), 0..4);
    (name, 0..6u8, value, pattern, list).prop_map(|(name, op, v, p, list)| {
        let list: Vec<&str> = list.into_iter().map(|i| VALUES[i]).collect();
        match op {
            0 => Matcher::eq(name, VALUES[v]),
            1 => Matcher::ne(name, VALUES[v]),
            2 => Matcher::re(name, PATTERNS[p]).unwrap(),
            3 => Matcher::not_re(name, PATTERNS[p]).unwrap(),
            4 => Matcher::is_in(name, list),
            _ => Matcher::not_in(name, list),
        }
    })
}

fn as_pairs(tags: &Tags) -> Vec<(&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn naive(live: &BTreeMap<u32, Tags>, keep: impl Fn(&Tags) -> bool) -> Vec<u32> {
    live.iter()
        .filter(|(_, t)| keep(t))
        .map(|(id, _)| *id)
        .collect()
}

fn check_against_naive(index: &LabelIndex, live: &BTreeMap<u32, Tags>, matchers: &[Matcher]) {
    let expected = naive(live, |t| {
        matchers
            .iter()
            .all(|m| m.matches(t.get(m.name()).map(String::as_str)))
    });
    let shown: Vec<String> = matchers.iter().map(ToString::to_string).collect();
    assert_eq!(ids(&index.select(matchers)), expected, "matchers {shown:?}");
    for m in matchers {
        let expected = naive(live, |t| m.matches(t.get(m.name()).map(String::as_str)));
        assert_eq!(
            ids(&index.select(std::slice::from_ref(m))),
            expected,
            "matcher {m}"
        );
    }

    assert_eq!(ids(index.all()), naive(live, |_| true));
    let pred = |v: &str| v.contains('b') || v.is_empty();
    for key in KEYS.iter().chain(&["missing"]) {
        let value_of = |t: &Tags| t.get(*key).cloned();
        for v in VALUES {
            assert_eq!(
                ids(&index.eq(key, v)),
                naive(live, |t| value_of(t).as_deref() == Some(v))
            );
        }
        assert_eq!(
            ids(&index.with_key(key)),
            naive(live, |t| value_of(t).is_some())
        );
        assert_eq!(
            ids(&index.without_key(key)),
            naive(live, |t| value_of(t).is_none())
        );
        assert_eq!(
            ids(&index.values_matching(key, pred)),
            naive(live, |t| value_of(t).is_some_and(|v| pred(&v)))
        );
        assert_eq!(
            ids(&index.values_matching_prefix(key, "a", pred)),
            naive(live, |t| value_of(t)
                .is_some_and(|v| v.starts_with('a') && pred(&v)))
        );
        let distinct: BTreeSet<String> = live.values().filter_map(value_of).collect();
        assert_eq!(
            index.values(key).collect::<Vec<_>>(),
            distinct.iter().collect::<Vec<_>>()
        );
        assert_eq!(index.distinct_values(key), distinct.len());
    }
    let keys: BTreeSet<&String> = live.values().flat_map(|t| t.keys()).collect();
    assert_eq!(
        index.keys().collect::<Vec<_>>(),
        keys.into_iter().collect::<Vec<_>>()
    );
    assert_eq!(index.memory_bytes(), index.memory_bytes_recomputed());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn index_agrees_with_naive_scan(
        series in proptest::collection::vec(tags_strategy(), 0..40),
        removals in proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8), 0..20),
        later in proptest::collection::vec(tags_strategy(), 0..10),
        matchers in proptest::collection::vec(matcher_strategy(), 0..4),
    ) {
        let mut index = LabelIndex::new();
        let mut live = BTreeMap::new();
        for (id, tags) in (0u32..).zip(&series) {
            index.insert(id, &as_pairs(tags)).unwrap();
            live.insert(id, tags.clone());
        }
        check_against_naive(&index, &live, &matchers);

        for (pick, hint) in removals {
            if series.is_empty() {
                break;
            }
            let id = u32::try_from(pick.index(series.len())).unwrap();
            let tags = &series[id as usize];
            // Hints: exact, none, or wrong values; all must leave a consistent index.
            let wrong: Tags = tags.keys().map(|k| (k.clone(), "zzz".to_string())).collect();
            let pairs = match hint {
                0 => as_pairs(tags),
                1 => Vec::new(),
                _ => as_pairs(&wrong),
            };
            prop_assert_eq!(index.remove(id, &pairs), live.remove(&id).is_some());
        }
        check_against_naive(&index, &live, &matchers);

        for (id, tags) in (1000u32..).zip(&later) {
            index.insert(id, &as_pairs(tags)).unwrap();
            live.insert(id, tags.clone());
        }
        check_against_naive(&index, &live, &matchers);

        for (id, tags) in live.clone() {
            prop_assert!(index.remove(id, &as_pairs(&tags)));
            live.remove(&id);
        }
        prop_assert_eq!(index.keys().count(), 0);
        prop_assert_eq!(index.memory_bytes(), LabelIndex::new().memory_bytes());
    }
}
