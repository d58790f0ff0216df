//! Open heads: the rows of a series that are not sealed yet, as plain columns.
//!
//! Rows are kept sorted by time with unique timestamps. Appending in time order is a
//! push; a late row inside the head's range is inserted in place, and a row with an
//! existing timestamp overwrites the fields it carries (last write wins).
//!
//! Two shapes hold the same rows: [`OpenHead`], what every series keeps in memory
//! (one allocation, sized by doubling from one row, because a million series each
//! pay for it), and [`Head`], plain vectors per column that snapshots, sealing,
//! merging and checkpoints work on.

use super::stats::malloc_bytes;

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

/// The open rows of one series as it keeps them: sorted by time, timestamps unique.
///
/// `buf` holds `cap` slots of times (`i64` bits), then `cap` slots of values (`f64`
/// bits) for each of `columns` fields, so that one allocation serves a series with
/// any number of fields. It starts empty and doubles from one row; a one-sample
/// series holds 16 bytes. Null values store `0.0`, with `valid` saying which slots
/// hold a value (same layout as the value slots, without the times); `valid` is
/// absent while every row has every field. 32 bytes inline.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpenHead {
    buf: Box<[u64]>,
    len: u32,
    /// Field columns; the table has at most `u16::MAX` fields.
    columns: u16,
    /// Boxed twice so that the common case costs one pointer, not two words.
    valid: Option<Box<Box<[bool]>>>,
}

impl OpenHead {
    /// A head holding `head`'s rows with no spare room (restoring a checkpoint).
    pub(crate) fn from_head(head: &Head) -> OpenHead {
        let mut open = OpenHead::default();
        let rows = head.len();
        let columns = head.columns.len();
        if rows == 0 {
            open.columns = columns as u16;
            return open;
        }
        let mut buf = Vec::with_capacity((columns + 1) * rows);
        buf.extend(head.times.iter().map(|&t| t as u64));
        for c in &head.columns {
            buf.extend(c.values.iter().map(|v| v.to_bits()));
        }
        if head.columns.iter().any(|c| c.valid.is_some()) {
            let valid: Vec<bool> = (0..columns)
                .flat_map(|c| (0..rows).map(move |i| head.columns[c].is_valid(i)))
                .collect();
            open.valid = Some(Box::new(valid.into_boxed_slice()));
        }
        open.buf = buf.into_boxed_slice();
        open.len = rows as u32;
        open.columns = columns as u16;
        open
    }

    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows the buffer has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len() / (self.columns as usize + 1)
    }

    /// Field columns held (fields beyond them are null in every row).
    pub(crate) fn columns(&self) -> usize {
        self.columns as usize
    }

    fn time(&self, i: usize) -> i64 {
        self.buf[i] as i64
    }

    pub(crate) fn first_time(&self) -> Option<i64> {
        (self.len > 0).then(|| self.time(0))
    }

    pub(crate) fn last_time(&self) -> Option<i64> {
        (self.len > 0).then(|| self.time(self.len() - 1))
    }

    /// How many rows have `start <= time < end`.
    pub(crate) fn rows_in(&self, start: i64, end: i64) -> usize {
        self.partition(end).saturating_sub(self.partition(start))
    }

    /// The first row whose time is at least `time`.
    fn partition(&self, time: i64) -> usize {
        self.buf[..self.len()].partition_point(|&t| (t as i64) < time)
    }

    /// The value of field `f` at row `i`, if any.
    pub(crate) fn value(&self, f: usize, i: usize) -> Option<f64> {
        if f >= self.columns() || i >= self.len() {
            return None;
        }
        let cap = self.capacity();
        let valid = self.valid.as_ref().is_none_or(|v| v[f * cap + i]);
        valid.then(|| f64::from_bits(self.buf[(f + 1) * cap + i]))
    }

    /// The newest row, one value per column.
    pub(crate) fn last_row(&self) -> Option<Box<[Option<f64>]>> {
        let i = self.len().checked_sub(1)?;
        Some((0..self.columns()).map(|f| self.value(f, i)).collect())
    }

    /// Field values present (not null) over all rows.
    pub(crate) fn present(&self) -> u64 {
        let (rows, cap) = (self.len(), self.capacity());
        match &self.valid {
            None => (rows * self.columns()) as u64,
            Some(valid) => (0..self.columns())
                .map(|c| {
                    valid[c * cap..c * cap + rows]
                        .iter()
                        .filter(|&&b| b)
                        .count() as u64
                })
                .sum(),
        }
    }

    /// Heap bytes held, by capacity and allocator rounding, for memory accounting.
    pub(crate) fn bytes(&self) -> usize {
        malloc_bytes(self.buf.len() * 8)
            + self.valid.as_ref().map_or(0, |v| {
                malloc_bytes(std::mem::size_of::<Box<[bool]>>()) + malloc_bytes(v.len())
            })
    }

    /// Moves the rows into a buffer of `cap` rows and `columns` columns (at least the
    /// current ones); new columns are null in the existing rows.
    fn relayout(&mut self, cap: usize, columns: usize) {
        let (old_cap, old_columns, rows) = (self.capacity(), self.columns(), self.len());
        let mut buf = vec![0u64; (columns + 1) * cap];
        for s in 0..=old_columns {
            buf[s * cap..s * cap + rows]
                .copy_from_slice(&self.buf[s * old_cap..s * old_cap + rows]);
        }
        let needs_valid = self.valid.is_some() || (columns > old_columns && rows > 0);
        if needs_valid {
            let mut valid = vec![false; columns * cap];
            for c in 0..old_columns {
                let to = &mut valid[c * cap..c * cap + rows];
                match &self.valid {
                    Some(old) => to.copy_from_slice(&old[c * old_cap..c * old_cap + rows]),
                    None => to.fill(true),
                }
            }
            self.valid = Some(Box::new(valid.into_boxed_slice()));
        }
        self.buf = buf.into_boxed_slice();
        self.columns = columns as u16;
    }

    fn ensure_columns(&mut self, n: usize) {
        if n > self.columns() {
            self.relayout(self.capacity(), n);
        }
    }

    /// Writes one row: `values[i]` is the value of table field `fields[i]`. A row with
    /// an existing timestamp keeps its other fields and takes the new values.
    pub(crate) fn upsert(&mut self, time: i64, fields: &[u16], values: &[f64]) {
        if let Some(&max) = fields.iter().max() {
            self.ensure_columns(max as usize + 1);
        }
        let rows = self.len();
        let pos = match self.last_time() {
            Some(last) if last < time => rows,
            None => 0,
            _ => match self.buf[..rows].binary_search_by(|&t| (t as i64).cmp(&time)) {
                Ok(found) => {
                    let cap = self.capacity();
                    for (&f, &v) in fields.iter().zip(values) {
                        let f = f as usize;
                        self.buf[(f + 1) * cap + found] = v.to_bits();
                        if let Some(valid) = &mut self.valid {
                            valid[f * cap + found] = true;
                        }
                    }
                    return;
                }
                Err(pos) => pos,
            },
        };
        if rows == self.capacity() {
            // Doubling from one row: most series in a large store hold few rows.
            self.relayout((rows * 2).max(1), self.columns());
        }
        let (cap, columns) = (self.capacity(), self.columns());
        let dense = is_dense(fields, columns);
        self.buf.copy_within(pos..rows, pos + 1);
        self.buf[pos] = time as u64;
        for c in 0..columns {
            let value = field_value(fields, values, c, dense);
            let base = (c + 1) * cap;
            self.buf
                .copy_within(base + pos..base + rows, base + pos + 1);
            self.buf[base + pos] = value.unwrap_or(0.0).to_bits();
            if value.is_none() && self.valid.is_none() {
                self.valid = Some(Box::new(vec![true; columns * cap].into_boxed_slice()));
            }
            if let Some(valid) = &mut self.valid {
                let base = c * cap;
                valid.copy_within(base + pos..base + rows, base + pos + 1);
                valid[base + pos] = value.is_some();
            }
        }
        self.len += 1;
    }

    /// A copy of rows `lo..hi` as a [`Head`].
    fn rows(&self, lo: usize, hi: usize) -> Head {
        let cap = self.capacity();
        Head {
            times: self.buf[lo..hi].iter().map(|&t| t as i64).collect(),
            columns: (0..self.columns())
                .map(|c| {
                    let base = (c + 1) * cap;
                    let valid = self
                        .valid
                        .as_ref()
                        .map(|v| &v[c * cap + lo..c * cap + hi])
                        .filter(|v| v.contains(&false));
                    HeadColumn {
                        values: self.buf[base + lo..base + hi]
                            .iter()
                            .map(|&b| f64::from_bits(b))
                            .collect(),
                        valid: valid.map(<[bool]>::to_vec),
                    }
                })
                .collect(),
        }
    }

    /// A copy of the rows with `start <= time < end`.
    pub(crate) fn slice(&self, start: i64, end: i64) -> Head {
        let lo = self.partition(start);
        let hi = self.partition(end).max(lo);
        self.rows(lo, hi)
    }

    /// A copy of every row.
    pub(crate) fn to_head(&self) -> Head {
        self.rows(0, self.len())
    }

    /// Takes the rows out, leaving an empty head that holds no memory.
    pub(crate) fn take(&mut self) -> Head {
        let head = self.to_head();
        *self = OpenHead::default();
        head
    }

    /// Takes the rows out but keeps the buffer for the rows to come. A series that
    /// seals because it is being written fills the same room again: freeing it would
    /// make every head regrow by doubling, copying its rows each time, and the
    /// allocator hand back fresh pages the kernel must zero (a tenth of ingest's CPU).
    pub(crate) fn take_keeping_room(&mut self) -> Head {
        let head = self.to_head();
        self.len = 0;
        // No rows, so no nulls: a validity map would only cost its upkeep.
        self.valid = None;
        head
    }

    /// Frees the buffer of an empty head (an idle series keeps no room).
    pub(crate) fn release_room(&mut self) {
        if self.is_empty() && !self.buf.is_empty() {
            *self = OpenHead {
                columns: self.columns,
                ..OpenHead::default()
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the same rows into both shapes and checks that they agree.
    #[test]
    fn open_head_matches_head() {
        let writes: &[(i64, &[u16], &[f64])] = &[
            (10, &[0], &[1.0]),
            (30, &[0, 1], &[3.0, 30.0]),
            (20, &[1], &[20.0]),
            (30, &[0], &[3.5]),
            (40, &[1, 0], &[40.0, 4.0]),
            (5, &[2], &[f64::from_bits(0x7ff0_0000_0000_0002)]),
            (50, &[0, 1, 2], &[-0.0, 5.0, 6.0]),
            (45, &[0, 1, 2], &[1.5, 2.5, 3.5]),
        ];
        let mut head = Head::default();
        let mut open = OpenHead::default();
        for &(t, f, v) in writes {
            head.upsert(t, f, v);
            open.upsert(t, f, v);
            assert_eq!(open.len(), head.len());
            assert_eq!(open.present(), head.present());
            let copy = open.to_head();
            assert_eq!(copy.times, head.times);
            for f in 0..3 {
                for i in 0..head.len() {
                    assert_eq!(
                        open.value(f, i).map(f64::to_bits),
                        head.value(f, i).map(f64::to_bits),
                        "field {f} row {i}"
                    );
                    assert_eq!(
                        copy.value(f, i).map(f64::to_bits),
                        head.value(f, i).map(f64::to_bits)
                    );
                }
            }
        }
        assert_eq!(open.slice(20, 45).times, vec![20, 30, 40]);
        assert_eq!(
            (
                open.rows_in(41, 46),
                open.rows_in(41, 45),
                open.rows_in(20, 45)
            ),
            (1, 0, 3)
        );
        let back = OpenHead::from_head(&head);
        assert_eq!(back.capacity(), head.len());
        assert_eq!(back.to_head().times, head.times);
        assert_eq!(back.present(), head.present());
        assert_eq!(back.last_row(), open.last_row());
        let taken = open.take();
        assert_eq!(taken.times, head.times);
        assert!(open.is_empty() && open.bytes() == 0);
    }

    #[test]
    fn a_head_sealed_while_written_keeps_its_room() {
        let mut open = OpenHead::default();
        for t in 0..4 {
            open.upsert(t, &[0, 1], &[t as f64, 1.0]);
        }
        open.upsert(4, &[0], &[4.0]); // a null in field 1
        let (capacity, bytes) = (open.capacity(), open.bytes());
        let taken = open.take_keeping_room();
        assert_eq!((taken.times.len(), taken.value(1, 4)), (5, None));
        assert!(open.is_empty());
        assert_eq!(open.capacity(), capacity);
        assert!(open.bytes() < bytes, "the validity map goes with the rows");
        open.upsert(10, &[1], &[2.5]);
        open.upsert(11, &[0, 1], &[3.5, 4.5]);
        assert_eq!(open.capacity(), capacity, "rows refill the kept buffer");
        let back = open.to_head();
        assert_eq!(back.times, vec![10, 11]);
        assert_eq!((back.value(0, 0), back.value(1, 0)), (None, Some(2.5)));
        assert_eq!((back.value(0, 1), back.value(1, 1)), (Some(3.5), Some(4.5)));
        open.release_room();
        assert_eq!(open.len(), 2, "a head with rows keeps them");
        open.take_keeping_room();
        open.release_room();
        assert_eq!((open.bytes(), open.columns()), (0, 2));
    }

    #[test]
    fn one_sample_takes_one_small_block() {
        let mut open = OpenHead::default();
        open.upsert(1, &[0], &[2.0]);
        // 16 bytes of samples, in the allocator's smallest (32-byte) block.
        assert_eq!(open.bytes(), 32);
        open.upsert(2, &[0], &[2.0]);
        open.upsert(3, &[0], &[2.0]);
        assert_eq!((open.capacity(), open.bytes()), (4, 80));
    }

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
