//! Tag sets: the identity of a series within its table.

use std::fmt;
use std::sync::Arc;

use super::error::{Error, Result};

/// A series' tags, sorted by key, keys unique, no empty values.
///
/// An empty value means "no such tag", as in Prometheus, so it is dropped on
/// construction: `{job="api", env=""}` and `{job="api"}` are the same series.
///
/// Immutable and shared: a clone is a reference count, so that ingest can reuse the
/// tag set of a series it has seen before for every later sample of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagSet(Arc<[(String, String)]>);

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
        Ok(TagSet(tags.into()))
    }

    /// The pairs, sorted by key.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of `key`, if the series has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for TagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
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
