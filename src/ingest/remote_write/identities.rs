//! A per-thread cache of remote write 1.0 series identities: the raw bytes of a
//! series' labels → its table and tags, already validated.
//!
//! A Prometheus server sends every series' labels again in every request, byte for
//! byte the same. Decoding them (two strings per label), sorting, validating and
//! building the tag set cost as much as storing the sample; a hit replaces all of it
//! with a hash of the label bytes, one comparison and a reference count.
//!
//! Exact: an entry answers only label bytes equal to the ones it was built from, and
//! equal bytes decode to the same labels. Bounded: when the entries' bytes pass
//! [`BUDGET`], the cache starts over, so a fleet with more series than fit only loses
//! the speed-up, never memory.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use crate::model::TagSet;

/// Bytes of entries one thread keeps, about: label bytes, names, tags and overhead.
pub(super) const BUDGET: usize = 16 << 20;

/// Per entry beyond its strings: map slot, boxes, the tag set's pairs.
const ENTRY_OVERHEAD: usize = 96;
const PAIR_OVERHEAD: usize = 48;

struct Entry {
    /// The label fields' payloads, each after its length as 4 bytes little-endian.
    key: Box<[u8]>,
    table: Arc<str>,
    tags: TagSet,
}

/// Label bytes → (table, tags). See the module docs.
pub(super) struct Identities {
    entries: HashMap<u64, Entry>,
    bytes: usize,
    state: ahash::RandomState,
}

impl Default for Identities {
    fn default() -> Identities {
        Identities {
            entries: HashMap::new(),
            bytes: 0,
            state: ahash::RandomState::new(),
        }
    }
}

impl Identities {
    fn hash(&self, labels: &[&[u8]]) -> u64 {
        let mut h = self.state.build_hasher();
        for l in labels {
            h.write_usize(l.len());
            h.write(l);
        }
        h.finish()
    }

    /// The table and tags of a series whose label fields are `labels`, if cached.
    pub(super) fn get(&self, labels: &[&[u8]]) -> Option<(Arc<str>, TagSet)> {
        let entry = self.entries.get(&self.hash(labels))?;
        same_key(&entry.key, labels).then(|| (entry.table.clone(), entry.tags.clone()))
    }

    /// Remembers that label fields `labels` decode to `table` and `tags`.
    pub(super) fn insert(&mut self, labels: &[&[u8]], table: &Arc<str>, tags: &TagSet) {
        let mut key = Vec::with_capacity(labels.iter().map(|l| l.len() + 4).sum());
        for l in labels {
            // A label field is part of a request under the body limit: far below 4 GiB.
            key.extend_from_slice(&(l.len() as u32).to_le_bytes());
            key.extend_from_slice(l);
        }
        let strings: usize = tags
            .pairs()
            .iter()
            .map(|(k, v)| k.len() + v.len() + PAIR_OVERHEAD)
            .sum();
        let cost = key.len() + table.len() + strings + ENTRY_OVERHEAD;
        if self.bytes + cost > BUDGET {
            self.entries.clear();
            self.bytes = 0;
            if cost > BUDGET {
                return;
            }
        }
        let entry = Entry {
            key: key.into_boxed_slice(),
            table: table.clone(),
            tags: tags.clone(),
        };
        if self.entries.insert(self.hash(labels), entry).is_none() {
            self.bytes += cost;
        }
    }

    /// Bytes the entries take, about.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Whether `key` (length-prefixed payloads) holds exactly `labels`.
fn same_key(key: &[u8], labels: &[&[u8]]) -> bool {
    let mut rest = key;
    for l in labels {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        if u32::from_le_bytes(*len) as usize != l.len() || !tail.starts_with(l) {
            return false;
        }
        rest = &tail[l.len()..];
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(v: &str) -> TagSet {
        TagSet::new([("job", v)]).unwrap()
    }

    #[test]
    fn answers_only_the_same_label_bytes() {
        let mut c = Identities::default();
        c.insert(&[b"ab", b"c"], &"up".into(), &tags("a"));
        assert_eq!(c.get(&[b"ab", b"c"]), Some(("up".into(), tags("a"))));
        // Same bytes, split differently; a prefix; an extension; other bytes.
        assert_eq!(c.get(&[b"a", b"bc"]), None);
        assert_eq!(c.get(&[b"ab"]), None);
        assert_eq!(c.get(&[b"ab", b"c", b""]), None);
        assert_eq!(c.get(&[b"ab", b"d"]), None);
        assert!(same_key(&[], &[]));
        assert!(!same_key(&[1, 0, 0], &[b"x"]));
    }

    #[test]
    fn starts_over_past_its_budget() {
        let mut c = Identities::default();
        let big = "v".repeat(1 << 20);
        for i in 0..40u32 {
            let label = i.to_le_bytes();
            c.insert(&[&label], &"t".into(), &tags(&big));
            assert!(c.bytes() <= BUDGET, "{}", c.bytes());
            assert!(c.get(&[&label]).is_some(), "the newest entry stays");
        }
        assert!(c.get(&[&0u32.to_le_bytes()]).is_none(), "the oldest went");
        // An entry larger than the budget is not kept at all.
        c.insert(&[b"huge"], &"t".into(), &tags(&"v".repeat(BUDGET)));
        assert!(c.get(&[b"huge"]).is_none());
    }
}
