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

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use crate::model::TagSet;

/// Bytes of entries one thread keeps, about: label bytes, names, tags and overhead.
pub(super) const BUDGET: usize = 16 << 20;

/// Per entry beyond its strings: map slot, boxes, the tag set's pairs.
const ENTRY_OVERHEAD: usize = 96;
const PAIR_OVERHEAD: usize = 48;

struct Entry {
    /// What the entry is filed under ([`Identities::hash`] of its labels).
    hash: u64,
    /// The label fields' payloads, each after its length as 4 bytes little-endian.
    key: Box<[u8]>,
    table: Arc<str>,
    tags: TagSet,
    /// What the entry counts against [`BUDGET`].
    cost: usize,
}

/// Label bytes → (table, tags). See the module docs.
pub(super) struct Identities {
    /// Filed by the labels' hash itself: hashing that again (as a `HashMap<u64, _>`
    /// would) showed in ingest profiles.
    entries: hashbrown::HashTable<Entry>,
    bytes: usize,
    state: ahash::RandomState,
}

impl Default for Identities {
    fn default() -> Identities {
        Identities {
            entries: hashbrown::HashTable::new(),
            bytes: 0,
            state: ahash::RandomState::new(),
        }
    }
}

impl Identities {
    /// The key the cache files label fields `labels` under (hash once, then
    /// [`get`](Self::get) and, on a miss, [`insert`](Self::insert)).
    pub(super) fn hash(&self, labels: &[&[u8]]) -> u64 {
        let mut h = self.state.build_hasher();
        for l in labels {
            h.write_usize(l.len());
            h.write(l);
        }
        h.finish()
    }

    /// The table and tags of a series whose label fields are `labels` (filed under
    /// `hash`), if cached.
    pub(super) fn get(&self, hash: u64, labels: &[&[u8]]) -> Option<(Arc<str>, TagSet)> {
        let entry = self.entries.find(hash, |e| e.hash == hash)?;
        same_key(&entry.key, labels).then(|| (entry.table.clone(), entry.tags.clone()))
    }

    /// Remembers that label fields `labels` (filed under `hash`) decode to `table` and
    /// `tags`. An entry that alone exceeds the budget is not kept.
    pub(super) fn insert(&mut self, hash: u64, labels: &[&[u8]], table: &Arc<str>, tags: &TagSet) {
        let key_len: usize = labels.iter().map(|l| l.len() + 4).sum();
        let strings: usize = tags
            .pairs()
            .iter()
            .map(|(k, v)| k.len() + v.len() + PAIR_OVERHEAD)
            .sum();
        let cost = key_len + table.len() + strings + ENTRY_OVERHEAD;
        if cost > BUDGET {
            return;
        }
        if self.bytes + cost > BUDGET {
            self.entries.clear();
            self.bytes = 0;
        }
        let mut key = Vec::with_capacity(key_len);
        for l in labels {
            // A label field is part of a request under the body limit: far below 4 GiB.
            key.extend_from_slice(&(l.len() as u32).to_le_bytes());
            key.extend_from_slice(l);
        }
        let entry = Entry {
            hash,
            key: key.into_boxed_slice(),
            table: table.clone(),
            tags: tags.clone(),
            cost,
        };
        self.bytes += cost;
        // A hash collision replaces the older entry.
        match self.entries.entry(hash, |e| e.hash == hash, |e| e.hash) {
            hashbrown::hash_table::Entry::Occupied(mut slot) => {
                self.bytes -= slot.get().cost;
                *slot.get_mut() = entry;
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(entry);
            }
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

    fn get(c: &Identities, labels: &[&[u8]]) -> Option<(Arc<str>, TagSet)> {
        c.get(c.hash(labels), labels)
    }

    fn put(c: &mut Identities, labels: &[&[u8]], table: &str, tags: &TagSet) {
        c.insert(c.hash(labels), labels, &table.into(), tags);
    }

    #[test]
    fn a_colliding_entry_replaces_the_older_and_its_bytes() {
        let mut c = Identities::default();
        c.insert(7, &[b"one"], &"t".into(), &tags("a"));
        let one = c.bytes();
        c.insert(7, &[b"three"], &"t".into(), &tags("a"));
        assert_eq!(c.bytes(), one + 2, "only the newer entry is counted");
        assert_eq!(c.get(7, &[b"one"]), None);
        assert!(c.get(7, &[b"three"]).is_some());
    }

    #[test]
    fn answers_only_the_same_label_bytes() {
        let mut c = Identities::default();
        put(&mut c, &[b"ab", b"c"], "up", &tags("a"));
        assert_eq!(get(&c, &[b"ab", b"c"]), Some(("up".into(), tags("a"))));
        // Same bytes, split differently; a prefix; an extension; other bytes.
        assert_eq!(get(&c, &[b"a", b"bc"]), None);
        assert_eq!(get(&c, &[b"ab"]), None);
        assert_eq!(get(&c, &[b"ab", b"c", b""]), None);
        assert_eq!(get(&c, &[b"ab", b"d"]), None);
        assert!(same_key(&[], &[]));
        assert!(!same_key(&[1, 0, 0], &[b"x"]));
    }

    #[test]
    fn starts_over_past_its_budget() {
        let mut c = Identities::default();
        let big = "v".repeat(1 << 20);
        for i in 0..40u32 {
            let label = i.to_le_bytes();
            put(&mut c, &[&label], "t", &tags(&big));
            assert!(c.bytes() <= BUDGET, "{}", c.bytes());
            assert!(get(&c, &[&label]).is_some(), "the newest entry stays");
        }
        assert!(get(&c, &[&0u32.to_le_bytes()]).is_none(), "the oldest went");
        // An entry larger than the budget is not kept at all.
        put(&mut c, &[b"huge"], "t", &tags(&"v".repeat(BUDGET)));
        assert!(get(&c, &[b"huge"]).is_none());
    }
}
