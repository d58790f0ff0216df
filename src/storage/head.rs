//! Rows as plain columns: what sealing, merging, out-of-order rows and checkpoints
//! work on (a series' open rows live encoded, in [`super::open_head`]).
//!
//! Rows are kept sorted by time with unique timestamps. Appending in time order is a
//! push; a late row is inserted in place, and a row with an existing timestamp
//! overwrites the fields it carries (last write wins).

/// Whether a row carries every one of `columns` fields in table order: most writes
/// do, and then [`field_value`] skips the per-column search.
fn is_dense(fields: &[u16], columns: usize) -> bool {
    fields.len() == columns && fields.iter().enumerate().all(|(i, &f)| f as usize == i)
}

/// The value a row carries for column `c`: `values[i]` where `fields[i] == c`, or
/// `values[c]` directly when the row is `dense` (every field, in table order).
fn field_value(fields: &[u16], values: &[f64], c: usize, dense: bool) -> Option<f64> {
    if dense {
        Some(values[c])
    } else {
        fields
            .iter()
            .position(|&f| f as usize == c)
            .map(|i| values[i])
    }
}

/// One field's values in a head. `valid` is absent while every row has a value.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadColumn {
    pub(crate) values: Vec<f64>,
    pub(crate) valid: Option<Vec<bool>>,
}

impl HeadColumn {
    /// A column for a field the head's existing rows lack. An empty head gets no
    /// validity vector: one would cost a byte per row for every later row.
    fn null_filled(rows: usize) -> HeadColumn {
        HeadColumn {
            values: vec![0.0; rows],
            valid: (rows > 0).then(|| vec![false; rows]),
        }
    }

    /// Whether row `i` holds a value.
    pub(crate) fn is_valid(&self, i: usize) -> bool {
        self.valid.as_ref().is_none_or(|v| v[i])
    }

    fn push(&mut self, value: Option<f64>) {
        self.insert(self.values.len(), value);
    }

    fn insert(&mut self, at: usize, value: Option<f64>) {
        let rows = self.values.len();
        self.values.insert(at, value.unwrap_or(0.0));
        match (&mut self.valid, value.is_some()) {
            (Some(valid), v) => valid.insert(at, v),
            (None, true) => {}
            (None, false) => {
                let mut valid = vec![true; rows + 1];
                valid[at] = false;
                self.valid = Some(valid);
            }
        }
    }

    fn set(&mut self, at: usize, value: f64) {
        self.values[at] = value;
        if let Some(valid) = &mut self.valid {
            valid[at] = true;
        }
    }

    fn bytes(&self) -> usize {
        self.values.capacity() * 8 + self.valid.as_ref().map_or(0, Vec::capacity)
    }
}

/// The open rows of one series, sorted by time, timestamps unique.
#[derive(Debug, Clone, Default)]
pub(crate) struct Head {
    pub(crate) times: Vec<i64>,
    /// Indexed by the table's field number; fields beyond the end are all null.
    pub(crate) columns: Vec<HeadColumn>,
}

impl Head {
    pub(crate) fn len(&self) -> usize {
        self.times.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    pub(crate) fn first_time(&self) -> Option<i64> {
        self.times.first().copied()
    }

    pub(crate) fn last_time(&self) -> Option<i64> {
        self.times.last().copied()
    }

    /// Field values present (not null) over all rows.
    #[cfg(test)]
    pub(crate) fn present(&self) -> u64 {
        self.columns
            .iter()
            .map(|c| match &c.valid {
                None => c.values.len() as u64,
                Some(v) => v.iter().filter(|&&b| b).count() as u64,
            })
            .sum()
    }

    /// Heap bytes held, by capacity, for memory accounting.
    pub(crate) fn bytes(&self) -> usize {
        self.times.capacity() * 8
            + self.columns.capacity() * std::mem::size_of::<HeadColumn>()
            + self.columns.iter().map(HeadColumn::bytes).sum::<usize>()
    }

    /// Writes one row: `values[i]` is the value of table field `fields[i]`. A row with
    /// an existing timestamp keeps its other fields and takes the new values.
    pub(crate) fn upsert(&mut self, time: i64, fields: &[u16], values: &[f64]) {
        if let Some(&max) = fields.iter().max() {
            self.ensure_columns(max as usize + 1);
        }
        let pos = match self.times.last() {
            Some(&last) if last < time => self.times.len(),
            None => 0,
            _ => match self.times.binary_search(&time) {
                Ok(found) => {
                    for (&f, &v) in fields.iter().zip(values) {
                        self.columns[f as usize].set(found, v);
                    }
                    return;
                }
                Err(pos) => pos,
            },
        };
        self.times.insert(pos, time);
        let dense = is_dense(fields, self.columns.len());
        for (c, column) in self.columns.iter_mut().enumerate() {
            let value = field_value(fields, values, c, dense);
            if pos == column.values.len() {
                column.push(value);
            } else {
                column.insert(pos, value);
            }
        }
    }

    pub(crate) fn ensure_columns(&mut self, n: usize) {
        let rows = self.times.len();
        // Fields arrive once per table, not per row: no growth slack.
        self.columns
            .reserve_exact(n.saturating_sub(self.columns.len()));
        while self.columns.len() < n {
            self.columns.push(HeadColumn::null_filled(rows));
        }
    }

    /// The value of field `f` at row `i`, if any.
    pub(crate) fn value(&self, f: usize, i: usize) -> Option<f64> {
        let column = self.columns.get(f)?;
        column.is_valid(i).then(|| column.values[i])
    }

    /// The rows with `start <= time < end`, as an index range (times are sorted).
    fn row_range(&self, start: i64, end: i64) -> std::ops::Range<usize> {
        let lo = self.times.partition_point(|&t| t < start);
        lo..self.times.partition_point(|&t| t < end).max(lo)
    }

    /// How many rows have `start <= time < end`.
    pub(crate) fn rows_in(&self, start: i64, end: i64) -> usize {
        self.row_range(start, end).len()
    }

    /// A copy of the rows with `start <= time < end`.
    pub(crate) fn slice(&self, start: i64, end: i64) -> Head {
        let std::ops::Range { start: lo, end: hi } = self.row_range(start, end);
        Head {
            times: self.times[lo..hi].to_vec(),
            columns: self
                .columns
                .iter()
                .map(|c| HeadColumn {
                    values: c.values[lo..hi].to_vec(),
                    valid: c.valid.as_ref().map(|v| v[lo..hi].to_vec()),
                })
                .collect(),
        }
    }

    /// Appends rows that are all later than this head's rows.
    pub(crate) fn append(&mut self, mut other: Head) {
        let rows = self.times.len();
        let other_rows = other.times.len();
        self.ensure_columns(other.columns.len());
        other.ensure_columns(self.columns.len());
        self.times.append(&mut other.times);
        for (mine, theirs) in self.columns.iter_mut().zip(other.columns) {
            match (&mut mine.valid, theirs.valid) {
                (None, None) => {}
                (Some(valid), None) => valid.resize(rows + other_rows, true),
                (Some(valid), Some(t)) => valid.extend(t),
                (None, Some(t)) => {
                    let mut valid = vec![true; rows];
                    valid.extend(t);
                    mine.valid = Some(valid);
                }
            }
            mine.values.extend(theirs.values);
        }
    }

    /// Splits into heads of at most `rows` rows each.
    pub(crate) fn split(self, rows: usize) -> Vec<Head> {
        let rows = rows.max(1);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < self.times.len() {
            let end = (start + rows).min(self.times.len());
            parts.push(Head {
                times: self.times[start..end].to_vec(),
                columns: self
                    .columns
                    .iter()
                    .map(|c| HeadColumn {
                        values: c.values[start..end].to_vec(),
                        valid: c.valid.as_ref().map(|v| v[start..end].to_vec()),
                    })
                    .collect(),
            });
            start = end;
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_rows_sorted_and_last_write_wins_per_field() {
        let mut h = Head::default();
        h.upsert(10, &[0], &[1.0]);
        h.upsert(30, &[0, 1], &[3.0, 30.0]);
        h.upsert(20, &[1], &[20.0]);
        h.upsert(30, &[0], &[3.5]);
        assert_eq!(h.times, vec![10, 20, 30]);
        assert_eq!(h.value(0, 0), Some(1.0));
        assert_eq!(h.value(1, 0), None);
        assert_eq!(h.value(0, 1), None);
        assert_eq!(h.value(1, 1), Some(20.0));
        assert_eq!(h.value(0, 2), Some(3.5));
        assert_eq!(h.value(1, 2), Some(30.0));
        let s = h.slice(15, 31);
        assert_eq!(s.times, vec![20, 30]);
        assert_eq!(s.value(1, 0), Some(20.0));
    }
}
