//! Tag sets: the identity of a series within its table.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{Error, Result};

/// A series' tags, sorted by key, keys unique, no empty values.
///
/// An empty value means "no such tag", as in Prometheus, so it is dropped on
/// construction: `{job="api", env=""}` and `{job="api"}` are the same series.
///
/// Immutable and shared: a clone is a reference count, so that ingest can reuse the
/// tag set of a series it has seen before for every later sample of it. The shared
/// part also remembers where storage last found the series (a hint storage
/// validates itself), so that a tag set written again and again (a scrape
/// target's, a remote_write sender's) skips hashing and comparing its strings.
/// Equality, ordering and hashing look at the pairs only, so a tag set is a sound map
/// key (clippy's `mutable_key_type` sees the atomic; this crate's `clippy.toml` says so).
#[derive(Debug, Clone, Default)]
pub struct TagSet(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    pairs: Box<[(String, String)]>,
    hint: AtomicU64,
}

impl PartialEq for TagSet {
    fn eq(&self, other: &TagSet) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.pairs() == other.pairs()
    }
}

impl Eq for TagSet {}

impl PartialOrd for TagSet {
    fn partial_cmp(&self, other: &TagSet) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TagSet {
    fn cmp(&self, other: &TagSet) -> std::cmp::Ordering {
        self.pairs().cmp(other.pairs())
    }
}

impl std::hash::Hash for TagSet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pairs().hash(state);
    }
}

impl TagSet {
    /// The empty tag set.
    pub fn empty() -> TagSet {
        TagSet::default()
    }

    /// Builds a tag set from pairs in any order. Duplicate keys are an error naming the key.
    pub fn new<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<TagSet>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut tags: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        tags.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = tags.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::InvalidWrite(format!(
                "duplicate tag key {:?}",
                w[0].0
            )));
        }
        Ok(TagSet(Arc::new(Shared {
            pairs: tags.into(),
            hint: AtomicU64::new(0),
        })))
    }

    /// The pairs, sorted by key.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0.pairs
    }

    /// Where storage last found this tag set's series, in storage's own encoding
    /// (0: not known). Storage trusts it only under the conditions it documents
    /// ([`crate::storage`]'s table); anything else may only pass it back.
    pub(crate) fn series_hint(&self) -> u64 {
        // Acquire pairs with the Release below: the hint is read before the table's
        // lock is taken, and storage checks the id against the table anyway.
        self.0.hint.load(Ordering::Acquire)
    }

    /// Records where storage found (or created) this tag set's series.
    pub(crate) fn set_series_hint(&self, hint: u64) {
        self.0.hint.store(hint, Ordering::Release);
    }

    /// The value of `key`, if the series has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        let pairs = self.pairs();
        pairs
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| pairs[i].1.as_str())
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.pairs.len()
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.pairs.is_empty()
    }
}

impl fmt::Display for TagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.pairs().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_drops_empty_values_and_refuses_duplicates() {
        let t = TagSet::new([("job", "api"), ("env", ""), ("code", "200")]).unwrap();
        assert_eq!(t.to_string(), r#"{code="200",job="api"}"#);
        assert_eq!(t.get("job"), Some("api"));
        assert_eq!(t.get("env"), None);
        let err = TagSet::new([("a", "1"), ("a", "2")]).unwrap_err();
        assert_eq!(err.to_string(), "invalid write: duplicate tag key \"a\"");
    }
}
