//! Write batches: rows grouped by series, the unit of atomic writes.

use std::sync::Arc;

use super::error::{Error, Result};
use super::kind::FieldKind;
use super::tags::TagSet;

/// Rows for many series, stored all together or not at all.
///
/// Rows are grouped by series ([`SeriesWrite`]) so that storage resolves each series
/// once per group. A series may appear in several items (for example with different
/// field sets); items apply in order.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    items: Vec<SeriesWrite>,
}

/// Field names and declared kinds of a [`SeriesWrite`]. Shared: items built one after
/// another with the same names (a decoder's every series) hold one list, which saves
/// allocations per item and lets storage see two items' fields are the same by
/// address.
type Fields = Arc<[(String, Option<FieldKind>)]>;

thread_local! {
    /// The field lists this thread built last, without and with declared kinds,
    /// handed out again for the same names and kinds.
    static LAST_FIELDS: std::cell::RefCell<[Option<Fields>; 2]> =
        const { std::cell::RefCell::new([None, None]) };
}

/// The field list with `len` fields whose field `i` is `field(i)`: the thread's last
/// list of its sort (`kinded` or not) if it is equal, else a new one that replaces it.
fn shared_fields<'a>(
    kinded: bool,
    len: usize,
    field: impl Fn(usize) -> (&'a str, Option<FieldKind>),
) -> Fields {
    let equal = |list: &Fields| {
        list.len() == len
            && list.iter().enumerate().all(|(i, (n, kind))| {
                let (name, want) = field(i);
                *kind == want && n == name
            })
    };
    LAST_FIELDS.with(|last| {
        let slot = &mut last.borrow_mut()[usize::from(kinded)];
        match slot {
            Some(list) if equal(list) => list.clone(),
            _ => {
                let list: Fields = (0..len)
                    .map(|i| {
                        let (name, kind) = field(i);
                        (name.to_string(), kind)
                    })
                    .collect();
                *slot = Some(list.clone());
                list
            }
        }
    })
}

/// Rows of one series that all carry the same fields.
#[derive(Debug, Clone)]
pub struct SeriesWrite {
    table: Arc<str>,
    tags: TagSet,
    fields: Fields,
    timestamps: Vec<i64>,
    /// Row-major: row `i` is `values[i * fields.len()..(i + 1) * fields.len()]`.
    values: Vec<f64>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// An empty batch with room for `series` groups: a decoder that knows how many
    /// series a request holds saves the growth copies.
    pub fn with_capacity(series: usize) -> WriteBatch {
        WriteBatch {
            items: Vec::with_capacity(series),
        }
    }

    /// Starts a group of rows for one series with the given field names; push rows
    /// into the returned [`SeriesWrite`].
    pub fn series(
        &mut self,
        table: impl Into<Arc<str>>,
        tags: TagSet,
        fields: &[&str],
    ) -> &mut SeriesWrite {
        self.items.push(SeriesWrite::new(table, tags, fields));
        let last = self.items.len() - 1;
        &mut self.items[last]
    }

    /// Appends a ready-made group.
    pub fn push(&mut self, item: SeriesWrite) {
        self.items.push(item);
    }

    /// Convenience for one sample of a single-field series.
    pub fn add_sample(
        &mut self,
        table: impl Into<Arc<str>>,
        tags: TagSet,
        field: &str,
        timestamp: i64,
        value: f64,
    ) {
        let item = self.series(table, tags, &[field]);
        item.timestamps.push(timestamp);
        item.values.push(value);
    }

    /// The groups, in the order they apply.
    pub fn items(&self) -> &[SeriesWrite] {
        &self.items
    }

    /// Number of rows over all groups.
    pub fn row_count(&self) -> usize {
        self.items.iter().map(|i| i.timestamps.len()).sum()
    }

    /// Number of field values over all groups.
    pub fn sample_count(&self) -> usize {
        self.items.iter().map(|i| i.values.len()).sum()
    }

    /// Whether the batch holds no rows.
    pub fn is_empty(&self) -> bool {
        self.items.iter().all(|i| i.timestamps.is_empty())
    }
}

impl SeriesWrite {
    /// An empty group for one series and field set.
    pub fn new(table: impl Into<Arc<str>>, tags: TagSet, fields: &[&str]) -> SeriesWrite {
        SeriesWrite {
            table: table.into(),
            tags,
            fields: shared_fields(false, fields.len(), |i| (fields[i], None)),
            timestamps: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Declares the kind of `field` (otherwise it is inferred from the table name).
    pub fn with_kind(&mut self, field: &str, kind: FieldKind) -> &mut SeriesWrite {
        if let Some(at) = self.fields.iter().position(|(n, _)| n == field)
            && self.fields[at].1 != Some(kind)
        {
            // The list may be shared with other items: take (or make) another.
            let old = &self.fields;
            self.fields = shared_fields(true, old.len(), |i| {
                (
                    old[i].0.as_str(),
                    if i == at { Some(kind) } else { old[i].1 },
                )
            });
        }
        self
    }

    /// Appends one row: a timestamp in milliseconds and one value per field, in the
    /// order the fields were given.
    pub fn push(&mut self, timestamp: i64, values: &[f64]) -> Result<&mut SeriesWrite> {
        if values.len() != self.fields.len() {
            return Err(Error::InvalidWrite(format!(
                "table {:?}: row at {timestamp} has {} values for {} fields",
                self.table,
                values.len(),
                self.fields.len()
            )));
        }
        self.timestamps.push(timestamp);
        self.values.extend_from_slice(values);
        Ok(self)
    }

    /// Reserves room for `rows` more rows.
    pub fn reserve(&mut self, rows: usize) {
        self.timestamps.reserve(rows);
        self.values.reserve(rows * self.fields.len());
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The series' tags.
    pub fn tags(&self) -> &TagSet {
        &self.tags
    }

    /// Field names and declared kinds.
    pub fn fields(&self) -> &[(String, Option<FieldKind>)] {
        &self.fields
    }

    /// Whether `other` carries the same field names (kinds aside), checked by address
    /// first: items built in a row share their list.
    pub fn same_field_names(&self, other: &SeriesWrite) -> bool {
        Arc::ptr_eq(&self.fields, &other.fields)
            || (self.fields.len() == other.fields.len()
                && self
                    .fields
                    .iter()
                    .zip(other.fields.iter())
                    .all(|(a, b)| a.0 == b.0))
    }

    /// Row timestamps in milliseconds.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether the group holds no rows.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The values of row `i`, one per field.
    pub fn row(&self, i: usize) -> &[f64] {
        let n = self.fields.len();
        &self.values[i * n..(i + 1) * n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_must_match_the_field_count() {
        let mut b = WriteBatch::new();
        let s = b.series("cpu", TagSet::empty(), &["user", "system"]);
        s.push(1, &[1.0, 2.0]).unwrap();
        let err = s.push(2, &[1.0]).unwrap_err();
        assert!(
            err.to_string().contains("has 1 values for 2 fields"),
            "{err}"
        );
        assert_eq!(b.row_count(), 1);
        assert_eq!(b.sample_count(), 2);
        assert_eq!(b.items()[0].row(0), &[1.0, 2.0]);
    }

    #[test]
    fn items_share_field_lists_until_a_kind_is_declared() {
        let mut b = WriteBatch::new();
        b.add_sample("a", TagSet::empty(), "value", 1, 1.0);
        b.add_sample("b", TagSet::empty(), "value", 1, 1.0);
        b.series("c", TagSet::empty(), &["value"])
            .with_kind("value", FieldKind::Counter);
        b.add_sample("d", TagSet::empty(), "other", 1, 1.0);
        let items = b.items();
        assert!(Arc::ptr_eq(&items[0].fields, &items[1].fields));
        assert_eq!(
            items[2].fields(),
            &[("value".to_string(), Some(FieldKind::Counter))]
        );
        assert_eq!(items[1].fields(), &[("value".to_string(), None)]);
        assert!(items[0].same_field_names(&items[2]));
        let kinded = || {
            let mut item = SeriesWrite::new("e", TagSet::empty(), &["value"]);
            item.with_kind("value", FieldKind::Counter);
            item
        };
        assert!(Arc::ptr_eq(&kinded().fields, &kinded().fields));
        assert!(!items[0].same_field_names(&items[3]));
    }
}
