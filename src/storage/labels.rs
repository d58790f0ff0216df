//! Label metadata straight from the index and dictionaries, never from samples: the
//! label names, label values and series listings that Prometheus' HTTP API and
//! Grafana's label browser ask for.

use std::sync::Arc;

use roaring::RoaringBitmap;

use super::Storage;
use super::index::Matcher;
use super::snapshot::TimeRange;
use super::table::TableInner;
use crate::model::Result;

impl TableInner {
    /// Ids of series matching `matchers` whose rows span overlaps `range`.
    fn matching(&self, matchers: &[Matcher], range: TimeRange) -> RoaringBitmap {
        let ids = self.index.select(matchers);
        if range == TimeRange::ALL {
            return ids;
        }
        ids.iter()
            .filter(|&id| {
                self.series
                    .get(id as usize)
                    .and_then(|s| s.time_span())
                    .is_some_and(|(first, last)| range.overlaps(first, last))
            })
            .collect()
    }
}

impl Storage {
    /// Tag keys of `table` used by series matching `matchers` in `range` (all keys
    /// when there are no matchers and no range), sorted.
    pub fn label_names(
        &self,
        table: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>> {
        let table = self.table(table)?;
        let inner = table.inner.read();
        let mut keys: Vec<String> = if matchers.is_empty() && range == TimeRange::ALL {
            inner.tag_keys.iter().map(|k| k.to_string()).collect()
        } else {
            let mut used = vec![false; inner.tag_keys.len()];
            for id in inner.matching(matchers, range) {
                for (k, _) in inner.tags_of(&inner.series[id as usize]) {
                    used[k as usize] = true;
                }
            }
            inner
                .tag_keys
                .iter()
                .zip(used)
                .filter(|(_, u)| *u)
                .map(|(k, _)| k.to_string())
                .collect()
        };
        keys.sort();
        Ok(keys)
    }

    /// Distinct values of tag `key` in `table` among series matching `matchers` in
    /// `range`, sorted.
    pub fn label_values(
        &self,
        table: &str,
        key: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>> {
        let mut set = ahash::HashSet::default();
        self.label_values_into(table, key, matchers, range, &mut set)?;
        let mut values: Vec<String> = set.into_iter().map(|v| v.to_string()).collect();
        values.sort();
        Ok(values)
    }

    /// Adds the values of tag `key` over the series of `table` that match `matchers`
    /// and have rows in `range` to `out`, sharing the dictionary's strings: the
    /// Prometheus API merges these over every table, a million strings at scale.
    pub fn label_values_into(
        &self,
        table: &str,
        key: &str,
        matchers: &[Matcher],
        range: TimeRange,
        out: &mut ahash::HashSet<Arc<str>>,
    ) -> Result<()> {
        let table = self.table(table)?;
        let inner = table.inner.read();
        let Some(k) = inner.tag_keys.iter().position(|t| **t == *key) else {
            return Ok(());
        };
        let dict = &inner.tag_values[k].values;
        let mut add = |v: &Arc<str>| {
            if !out.contains(&**v) {
                out.insert(v.clone());
            }
        };
        if matchers.is_empty() && range == TimeRange::ALL {
            dict.iter().for_each(add);
        } else {
            let mut codes: Vec<u32> = inner
                .matching(matchers, range)
                .iter()
                .filter_map(|id| {
                    inner
                        .tags_of(&inner.series[id as usize])
                        .find(|t| t.0 as usize == k)
                        .map(|t| t.1)
                })
                .collect();
            codes.sort_unstable();
            codes.dedup();
            codes.into_iter().for_each(|c| add(&dict[c as usize]));
        }
        Ok(())
    }

    /// How many series of `table` match `matchers` with rows in `range`.
    pub fn count_series(&self, table: &str, matchers: &[Matcher], range: TimeRange) -> Result<u64> {
        let table = self.table(table)?;
        let inner = table.inner.read();
        Ok(inner.matching(matchers, range).len())
    }

    /// The tag sets of series of `table` matching `matchers` with rows in `range`.
    pub fn series_tags(
        &self,
        table: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Vec<(String, String)>>> {
        let table = self.table(table)?;
        let inner = table.inner.read();
        Ok(inner
            .matching(matchers, range)
            .iter()
            .map(|id| {
                inner
                    .tags_of(&inner.series[id as usize])
                    .map(|(k, c)| {
                        (
                            inner.tag_keys[k as usize].to_string(),
                            inner.tag_values[k as usize].values[c as usize].to_string(),
                        )
                    })
                    .collect()
            })
            .collect())
    }
}
