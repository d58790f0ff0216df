//! The per-table label index: tag key → tag value → series ids.
//!
//! This module owns the mapping from every tag `(key, value)` of a table's live series
//! to a [`RoaringBitmap`] of their dense `u32` ids, plus the set of all live ids. It
//! knows nothing of samples, chunks or SQL; the table assigns ids and tells the index
//! when a series appears ([`LabelIndex::insert`]) or is retired ([`LabelIndex::remove`]).
//!
//! ```text
//!   keys: HashMap ── "region" ──> KeyPostings { series: ids having "region",
//!                                                values: BTreeMap "eu-west" -> ids
//!                                                                 "us-east" -> ids }
//!   all:  ids of every live series
//! ```
//!
//! Two flavours of matching share it, because the two query languages disagree on
//! what an absent tag means:
//!
//! * **Prometheus** ([`Matcher`], [`LabelIndex::select`]): a missing label equals the
//!   empty string, regexes are anchored, and a list of matchers is an intersection.
//!   `foo=""` selects series *without* `foo`, `foo!="x"` includes them.
//! * **SQL building blocks** ([`LabelIndex::eq`], [`LabelIndex::with_key`],
//!   [`LabelIndex::without_key`], [`LabelIndex::values_matching`], [`LabelIndex::all`]):
//!   a missing tag is NULL and never satisfies a comparison, so these return only
//!   series that carry the key; the pushdown composes NOT / AND / OR itself.
//!
//! Regexes and predicates run over the distinct values of a key, never over series,
//! so their cost grows with the key's cardinality, not with the table.

mod matcher;
mod postings;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::mem::size_of;

use ahash::AHashMap;
use roaring::RoaringBitmap;

use matcher::Plan;
pub use matcher::{MatchOp, Matcher};
use postings::{Postings, union_all};

/// Errors of the label index; every variant is the caller's input, none is a bug here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// A `=~` / `!~` matcher whose pattern does not compile.
    #[error("invalid regex {pattern:?} in matcher on label {name:?}: {source}")]
    InvalidRegex {
        /// The label the matcher applies to.
        name: String,
        /// The pattern as the user wrote it, before anchoring.
        pattern: String,
        /// Why the regex crate rejected it.
        source: regex::Error,
    },
    /// [`LabelIndex::insert`] for an id that is already live.
    #[error("series id {id} is already in the label index")]
    DuplicateSeries {
        /// The offending series id.
        id: u32,
    },
    /// [`LabelIndex::insert`] with the same tag key twice.
    #[error("series id {id} has tag key {key:?} more than once")]
    DuplicateKey {
        /// The offending series id.
        id: u32,
        /// The repeated key.
        key: String,
    },
}

/// Everything the index knows about one tag key.
#[derive(Debug, Clone, Default)]
struct KeyPostings {
    /// Sorted so [`LabelIndex::values`] needs no sort and regexes with a literal prefix
    /// scan a range instead of every value.
    values: BTreeMap<Box<str>, Postings>,
    /// Union of `values`, kept so `with_key` and `without_key` are a clone, not a
    /// union over possibly millions of values.
    series: RoaringBitmap,
}

/// Estimated bytes of one key-map entry: the slot plus hashbrown's control byte and
/// spare capacity, and the key text.
fn key_entry_bytes(key: &str) -> usize {
    size_of::<(Box<str>, KeyPostings)>() * 8 / 7 + 1 + heap_str_bytes(key)
}

/// Estimated bytes of one value entry, without its bitmap. B-tree nodes hold 11
/// entries and, filled in no particular order, run a bit over half full; calibrated
/// against RSS with 1M unique hostnames.
fn value_entry_bytes(value: &str) -> usize {
    (size_of::<Box<str>>() + size_of::<Postings>()) * 7 / 4 + heap_str_bytes(value)
}

/// What the allocator really spends on a short string (see
/// [`malloc_bytes`](super::stats::malloc_bytes)), which dominates for typical tag values.
fn heap_str_bytes(s: &str) -> usize {
    super::stats::malloc_bytes(s.len())
}

impl KeyPostings {
    /// Adds `id` under `value`; returns the estimated bytes before and after.
    fn insert(&mut self, id: u32, value: &str) -> (usize, usize) {
        self.series.insert(id);
        if let Some(postings) = self.values.get_mut(value) {
            let before = postings.heap_bytes();
            postings.insert(id);
            (before, postings.heap_bytes())
        } else {
            self.values.insert(value.into(), Postings::One(id));
            (0, value_entry_bytes(value))
        }
    }

    /// Removes `id` from its value, found through `hint` or else by scanning the
    /// values; returns the estimated bytes before and after.
    fn remove(&mut self, id: u32, hint: Option<&str>) -> (usize, usize) {
        if !self.series.remove(id) {
            return (0, 0);
        }
        // The hinted value is the common case; a wrong hint falls back to a scan.
        let hinted = hint.and_then(|v| Some(v).zip(self.values.get_mut(v)));
        let (value, postings) = match hinted {
            Some((v, postings)) if postings.contains(id) => (Cow::Borrowed(v), postings),
            _ => {
                let Some(value) = self
                    .values
                    .iter()
                    .find(|(_, p)| p.contains(id))
                    .map(|(v, _)| v.to_string())
                else {
                    return (0, 0);
                };
                let Some(postings) = self.values.get_mut(value.as_str()) else {
                    return (0, 0);
                };
                (Cow::Owned(value), postings)
            }
        };
        let before = postings.heap_bytes();
        if postings.remove(id) {
            self.values.remove(&*value);
            (before + value_entry_bytes(&value), 0)
        } else {
            (before, postings.heap_bytes())
        }
    }
}

/// The label index of one table. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct LabelIndex {
    keys: AHashMap<Box<str>, KeyPostings>,
    all: RoaringBitmap,
    /// Strings, entries and value postings, maintained on every change so that
    /// [`LabelIndex::memory_bytes`] costs O(keys), not O(values), for memory accounting.
    tracked_bytes: usize,
}

impl LabelIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds live series `id` with its tags (`(key, value)` pairs).
    ///
    /// An empty value is stored as given; the Prometheus flavour cannot tell it from an
    /// absent label, the SQL flavour can.
    ///
    /// # Errors
    /// [`IndexError::DuplicateSeries`] if `id` is live, [`IndexError::DuplicateKey`] if a
    /// key repeats; the index is unchanged in both cases.
    pub fn insert(&mut self, id: u32, tags: &[(&str, &str)]) -> Result<(), IndexError> {
        if self.all.contains(id) {
            return Err(IndexError::DuplicateSeries { id });
        }
        if let Some(key) = repeated_key(tags) {
            return Err(IndexError::DuplicateKey {
                id,
                key: key.to_owned(),
            });
        }
        self.all.insert(id);
        for &(key, value) in tags {
            // `get_mut` first: allocating the boxed key on every insert would dominate.
            let (before, after) = match self.keys.get_mut(key) {
                Some(kp) => kp.insert(id, value),
                None => {
                    let mut kp = KeyPostings::default();
                    let (before, after) = kp.insert(id, value);
                    self.keys.insert(key.into(), kp);
                    (before, after + key_entry_bytes(key))
                }
            };
            self.tracked_bytes = self.tracked_bytes + after - before;
        }
        Ok(())
    }

    /// Removes retired series `id`, dropping values and keys left without series.
    /// Returns whether `id` was live.
    ///
    /// `tags` should be the tags `id` was inserted with; they are used to find its
    /// postings directly. A wrong or partial list is still handled correctly, at the
    /// price of scanning the values of the keys it got wrong.
    pub fn remove(&mut self, id: u32, tags: &[(&str, &str)]) -> bool {
        if !self.all.remove(id) {
            return false;
        }
        let mut emptied = Vec::new();
        for (key, kp) in self.keys.iter_mut() {
            let hint = tags.iter().find(|(k, _)| *k == &**key).map(|&(_, v)| v);
            let (before, after) = kp.remove(id, hint);
            self.tracked_bytes = self.tracked_bytes + after - before;
            if kp.values.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.keys.remove(&key);
            self.tracked_bytes -= key_entry_bytes(&key);
        }
        true
    }

    /// Ids of all live series.
    pub fn all(&self) -> &RoaringBitmap {
        &self.all
    }

    /// Number of live series.
    pub fn len(&self) -> u64 {
        self.all.len()
    }

    /// Whether no series is live.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Series whose tag `key` equals `value` exactly (SQL `key = value`).
    pub fn eq(&self, key: &str, value: &str) -> RoaringBitmap {
        self.keys
            .get(key)
            .and_then(|kp| kp.values.get(value))
            .map(Postings::to_bitmap)
            .unwrap_or_default()
    }

    /// Series that carry tag `key` (SQL `key IS NOT NULL`).
    pub fn with_key(&self, key: &str) -> RoaringBitmap {
        self.keys
            .get(key)
            .map(|kp| kp.series.clone())
            .unwrap_or_default()
    }

    /// Series that lack tag `key` (SQL `key IS NULL`).
    pub fn without_key(&self, key: &str) -> RoaringBitmap {
        match self.keys.get(key) {
            Some(kp) => &self.all - &kp.series,
            None => self.all.clone(),
        }
    }

    /// Series carrying `key` with a value for which `pred` holds; `pred` is called once
    /// per distinct value, in sorted order. Series lacking `key` are never included.
    pub fn values_matching(&self, key: &str, mut pred: impl FnMut(&str) -> bool) -> RoaringBitmap {
        match self.keys.get(key) {
            Some(kp) => union_all(kp.values.iter().filter(|(v, _)| pred(v)).map(|(_, p)| p)),
            None => RoaringBitmap::new(),
        }
    }

    /// Like [`values_matching`](Self::values_matching), but only values starting with
    /// `prefix` are visited (e.g. for SQL `LIKE 'us-%'`).
    pub fn values_matching_prefix(
        &self,
        key: &str,
        prefix: &str,
        mut pred: impl FnMut(&str) -> bool,
    ) -> RoaringBitmap {
        match self.keys.get(key) {
            Some(kp) => union_all(
                prefixed(&kp.values, prefix)
                    .filter(|(v, _)| pred(v))
                    .map(|(_, p)| p),
            ),
            None => RoaringBitmap::new(),
        }
    }

    /// Prometheus selection: series satisfying every matcher. No matchers selects all.
    pub fn select(&self, matchers: &[Matcher]) -> RoaringBitmap {
        // Matchers that cannot select label-less series are usually the most selective
        // and need no complement, so they go first and can end the work early.
        let (narrow, broad): (Vec<&Matcher>, Vec<&Matcher>) = matchers
            .iter()
            .partition(|m| !m.is_negated() && !m.plan_accepts_empty());
        let mut acc: Option<RoaringBitmap> = None;
        for m in narrow {
            let hits = self.plan_hits(m);
            let next = match acc {
                Some(a) => a & hits,
                None => hits,
            };
            if next.is_empty() {
                return next;
            }
            acc = Some(next);
        }
        let mut acc = acc.unwrap_or_else(|| self.all.clone());
        for m in broad {
            if acc.is_empty() {
                break;
            }
            let hits = self.plan_hits(m);
            if m.is_negated() {
                acc -= hits;
            } else {
                acc &= hits;
            }
        }
        acc
    }

    /// Series whose value for the matcher's label (`""` when absent) is accepted by
    /// its plan, ignoring negation.
    fn plan_hits(&self, m: &Matcher) -> RoaringBitmap {
        let Some(kp) = self.keys.get(m.name()) else {
            // Every series reads the label as "".
            return if m.plan_accepts_empty() {
                self.all.clone()
            } else {
                RoaringBitmap::new()
            };
        };
        let mut hits = match m.plan() {
            Plan::Any => return self.all.clone(),
            Plan::Literals(values) => {
                union_all(values.iter().filter_map(|v| kp.values.get(v.as_str())))
            }
            Plan::NonEmpty => match kp.values.get("") {
                Some(empty) => &kp.series - &empty.to_bitmap(),
                None => kp.series.clone(),
            },
            Plan::Scan { regex, prefix } => union_all(
                prefixed(&kp.values, prefix)
                    .filter(|(v, _)| regex.is_match(v))
                    .map(|(_, p)| p),
            ),
        };
        if m.plan_accepts_empty() {
            hits |= &self.all - &kp.series;
        }
        hits
    }

    /// Tag keys of live series, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let mut keys: Vec<&str> = self.keys.keys().map(|k| &**k).collect();
        keys.sort_unstable();
        keys.into_iter()
    }

    /// Distinct values of `key`, sorted; empty if no live series has `key`.
    pub fn values(&self, key: &str) -> impl Iterator<Item = &str> {
        self.keys
            .get(key)
            .into_iter()
            .flat_map(|kp| kp.values.keys().map(|v| &**v))
    }

    /// Number of distinct values of `key`.
    pub fn distinct_values(&self, key: &str) -> usize {
        self.keys.get(key).map_or(0, |kp| kp.values.len())
    }

    /// Distinct values per key, most first (ties by key name).
    pub fn cardinality(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = self
            .keys
            .iter()
            .map(|(k, kp)| (k.to_string(), kp.values.len()))
            .collect();
        out.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// Estimated heap and inline bytes of the index: strings, map entries and bitmaps
    /// (by their serialized size). O(keys).
    pub fn memory_bytes(&self) -> usize {
        let key_bitmaps: usize = self
            .keys
            .values()
            .map(|kp| kp.series.serialized_size())
            .sum();
        size_of::<Self>() + self.tracked_bytes + key_bitmaps + self.all.serialized_size()
    }

    /// [`memory_bytes`](Self::memory_bytes) recomputed from scratch, to check the
    /// incremental bookkeeping.
    #[cfg(test)]
    fn memory_bytes_recomputed(&self) -> usize {
        let tracked: usize = self
            .keys
            .iter()
            .map(|(k, kp)| {
                let values: usize = kp
                    .values
                    .iter()
                    .map(|(v, p)| value_entry_bytes(v) + p.heap_bytes())
                    .sum();
                key_entry_bytes(k) + values
            })
            .sum();
        let key_bitmaps: usize = self
            .keys
            .values()
            .map(|kp| kp.series.serialized_size())
            .sum();
        size_of::<Self>() + tracked + key_bitmaps + self.all.serialized_size()
    }
}

/// Entries of `values` whose key starts with `prefix`, via a range scan.
fn prefixed<'a>(
    values: &'a BTreeMap<Box<str>, Postings>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a Box<str>, &'a Postings)> {
    values
        .range::<str, _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .take_while(move |(v, _)| v.starts_with(prefix))
}

/// The first key that appears twice in `tags`, if any.
fn repeated_key<'a>(tags: &[(&'a str, &str)]) -> Option<&'a str> {
    // Series have a handful of tags, where pairwise comparison beats hashing.
    if tags.len() <= 16 {
        return tags
            .iter()
            .enumerate()
            .find(|(i, (k, _))| tags[..*i].iter().any(|(other, _)| other == k))
            .map(|(_, (k, _))| *k);
    }
    let mut keys: Vec<&str> = tags.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    keys.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}
