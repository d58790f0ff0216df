//! The tag arena: which tag values each series of a table carries.
//!
//! A series' tags are `(tag key number, value code)` pairs sorted by key name (codes
//! index the table's per-key dictionaries). Series of one table nearly always share
//! their keys (`instance, job, cpu, mode` for every node CPU series), so the arena
//! stores each distinct list of keys once, as a *key set*, and per series only its
//! value codes, back to back in one vector. A series keeps a [`TagSpan`]: where its
//! codes start and which key set they follow. Four tags cost 16 bytes a series and
//! no allocation of their own.

use ahash::HashMap;

/// Where a series' tags sit in its table's [`TagArena`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TagSpan {
    start: u32,
    keys: u32,
}

/// A series' `(tag key number, value code)` pairs, sorted by key name.
pub(crate) type TagPairs<'a> = std::iter::Zip<
    std::iter::Copied<std::slice::Iter<'a, u32>>,
    std::iter::Copied<std::slice::Iter<'a, u32>>,
>;

/// Every series' tags of one table. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct TagArena {
    /// Value codes of every series, back to back; never more than `u32::MAX`.
    codes: Vec<u32>,
    /// Distinct lists of key numbers, by key set number.
    key_sets: Vec<Box<[u32]>>,
    key_set_numbers: HashMap<Box<[u32]>, u32>,
}

impl TagArena {
    /// Codes stored so far (the arena holds at most `u32::MAX`).
    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }

    /// Stores a series' pairs, which must be sorted by key name with unique keys.
    /// The caller keeps the arena under `u32::MAX` codes and key sets.
    pub(crate) fn push(&mut self, pairs: impl IntoIterator<Item = (u32, u32)>) -> TagSpan {
        let start = self.codes.len();
        let mut keys = Vec::new();
        for (k, c) in pairs {
            keys.push(k);
            self.codes.push(c);
        }
        let keys = match self.key_set_numbers.get(keys.as_slice()) {
            Some(&n) => n,
            None => {
                let n = self.key_sets.len() as u32;
                let keys = keys.into_boxed_slice();
                self.key_sets.push(keys.clone());
                self.key_set_numbers.insert(keys, n);
                n
            }
        };
        TagSpan {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            keys,
        }
    }

    /// The pairs stored at `span` (none for a span this arena did not hand out).
    pub(crate) fn get(&self, span: TagSpan) -> TagPairs<'_> {
        let keys = self
            .key_sets
            .get(span.keys as usize)
            .map_or(&[][..], |k| &k[..]);
        let start = span.start as usize;
        let codes = self
            .codes
            .get(start..start + keys.len())
            .unwrap_or_default();
        // A short `codes` (never for a span from `push`) also shortens the zip.
        keys.iter().copied().zip(codes.iter().copied())
    }

    /// Heap bytes: the codes by capacity, and the key sets with their map.
    pub(crate) fn bytes(&self) -> usize {
        let key_sets: usize = self
            .key_sets
            .iter()
            .map(|k| 2 * super::stats::malloc_bytes(std::mem::size_of_val::<[u32]>(k)))
            .sum();
        self.codes.capacity() * std::mem::size_of::<u32>()
            + self.key_sets.capacity() * std::mem::size_of::<Box<[u32]>>()
            + self.key_set_numbers.capacity() * (std::mem::size_of::<(Box<[u32]>, u32)>() + 1)
            + key_sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_with_the_same_keys_share_one_key_set() {
        let mut arena = TagArena::default();
        let a = arena.push([(0, 5), (1, 7)]);
        let b = arena.push([(0, 6), (1, 7)]);
        let c = arena.push([(1, 1)]);
        let empty = arena.push([]);
        assert_eq!(arena.get(a).collect::<Vec<_>>(), vec![(0, 5), (1, 7)]);
        assert_eq!(arena.get(b).collect::<Vec<_>>(), vec![(0, 6), (1, 7)]);
        assert_eq!(arena.get(c).collect::<Vec<_>>(), vec![(1, 1)]);
        assert_eq!(arena.get(empty).count(), 0);
        assert_eq!(arena.key_sets.len(), 3);
        assert_eq!(arena.len(), 5);
        let unknown = TagSpan {
            start: 99,
            keys: 99,
        };
        assert_eq!(arena.get(unknown).count(), 0);
    }
}
