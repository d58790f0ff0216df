//! Posting lists: which series carry one tag value.

use roaring::{MultiOps, RoaringBitmap};

/// The series ids that carry one `(key, value)` pair.
///
/// High-cardinality keys (hostnames, container ids) have one series per value; a
/// `RoaringBitmap` for each of those would cost two heap allocations per series, so a
/// single id is stored inline and promoted to a bitmap on the second id.
#[derive(Debug, Clone)]
pub(super) enum Postings {
    One(u32),
    Many(RoaringBitmap),
}

impl Postings {
    pub(super) fn insert(&mut self, id: u32) {
        match self {
            Postings::One(existing) if *existing == id => {}
            Postings::One(existing) => {
                let bitmap: RoaringBitmap = [*existing, id].into_iter().collect();
                *self = Postings::Many(bitmap);
            }
            Postings::Many(bitmap) => {
                bitmap.insert(id);
            }
        }
    }

    /// Removes `id`; returns `true` when the list is now empty and should be dropped.
    pub(super) fn remove(&mut self, id: u32) -> bool {
        match self {
            Postings::One(existing) => *existing == id,
            Postings::Many(bitmap) => {
                bitmap.remove(id);
                if bitmap.len() == 1
                    && let Some(last) = bitmap.min()
                {
                    // Demote so that churned high-cardinality values return to the cheap form.
                    *self = Postings::One(last);
                }
                bitmap_is_empty(self)
            }
        }
    }

    pub(super) fn contains(&self, id: u32) -> bool {
        match self {
            Postings::One(existing) => *existing == id,
            Postings::Many(bitmap) => bitmap.contains(id),
        }
    }

    pub(super) fn to_bitmap(&self) -> RoaringBitmap {
        match self {
            Postings::One(id) => std::iter::once(*id).collect(),
            Postings::Many(bitmap) => bitmap.clone(),
        }
    }

    /// Heap bytes beyond the enum itself; the serialized size is a close proxy for the
    /// containers roaring allocates.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Postings::One(_) => 0,
            Postings::Many(bitmap) => bitmap.serialized_size(),
        }
    }
}

fn bitmap_is_empty(postings: &Postings) -> bool {
    matches!(postings, Postings::Many(bitmap) if bitmap.is_empty())
}

/// Unions many posting lists at once: inline ids are gathered and sorted so roaring can
/// append them, and bitmaps go through roaring's multi-way union, which avoids
/// re-growing the accumulator once per value.
pub(super) fn union_all<'a>(postings: impl IntoIterator<Item = &'a Postings>) -> RoaringBitmap {
    let mut singles = Vec::new();
    let mut bitmaps = Vec::new();
    for p in postings {
        match p {
            Postings::One(id) => singles.push(*id),
            Postings::Many(bitmap) => bitmaps.push(bitmap),
        }
    }
    let mut out = bitmaps.into_iter().union();
    singles.sort_unstable();
    out.extend(singles);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotes_and_demotes() {
        let mut p = Postings::One(3);
        p.insert(3);
        assert!(matches!(p, Postings::One(3)));
        p.insert(7);
        assert!(matches!(p, Postings::Many(_)));
        assert!(p.contains(3) && p.contains(7));
        assert!(!p.remove(3));
        assert!(matches!(p, Postings::One(7)));
        assert!(!p.remove(3), "removing an absent id keeps the list");
        assert!(p.remove(7));
    }

    #[test]
    fn union_mixes_forms() {
        let many: RoaringBitmap = [1, 5, 9].into_iter().collect();
        let lists = [Postings::One(4), Postings::Many(many), Postings::One(2)];
        let got: Vec<u32> = union_all(&lists).iter().collect();
        assert_eq!(got, vec![1, 2, 4, 5, 9]);
    }
}
