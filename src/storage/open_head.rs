//! Open heads: the rows of a series not sealed yet, encoded as they arrive.
//!
//! A head appends rows in time order to a bit stream it shares with readers. A
//! snapshot takes a handle to the stream and the number of rows encoded so far
//! ([`HeadView`]), under the table's read lock, and decodes them later without it
//! while the writer goes on appending: a snapshot copies the newest row, never a
//! head. While open, a row costs what Gorilla's streams cost (about a bit for a
//! regular timestamp, a bit for an unchanged value), not 8 bytes a value.
//!
//! Why readers may decode while the writer appends: the stream is an array of
//! `AtomicU64` words. The writer only ever adds bits after those of the rows already
//! encoded (it stores a partial word again with the same leading bits and more after
//! them), and it never writes into words that a snapshot may still read: it grows
//! into a new array, and after a seal it reuses the old one only when nobody else
//! holds it (`Arc::get_mut`). Row counts reach readers through the table's lock,
//! which orders the writer's stores before the reader's loads; a later store to the
//! partial word keeps the published bits, so a reader sees the same bits whichever
//! version of that word it loads.
//!
//! The newest row stays apart, unencoded (`pending`): a row with the newest
//! timestamp merges into it field by field (last write wins, as everywhere), and
//! `latest` reads it. It is encoded when a newer row arrives. Rows older than the
//! newest do not come here: the series keeps them in its out-of-order head.
//!
//! ## Stream layout
//! Bits are MSB first within each word. Per row:
//! - **time**: the first row's 64 bits; then the delta of deltas, two's complement:
//!   `0` (zero), `10` + 14 bits, `110` + 17 bits, `1110` + 20 bits, `1111` + 64 bits;
//! - **presence**: `0` when the row has a value for each of the declared columns;
//!   `10` + one bit per declared column; `11` + 16 bits declaring a new column count +
//!   one bit per column (the first row always declares its columns);
//! - **values**, per present column, XORed with the column's previous value (zero
//!   before its first): `0` when equal; `10` + the bits of the column's current
//!   window; `11` + 6 bits of leading zeros + 6 bits of length - 1 + that many bits,
//!   which become the window (Gorilla's XOR, written by the same
//!   [`XorWindow`] as sealed chunks' XOR codec).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::codec::{WINDOW_HEADER_BITS, XorWindow};
use super::head::{Head, HeadColumn};
use super::series::Row;
use super::snapshot::TimeRange;
use super::stats::malloc_bytes;

/// At most the bits of one encoded row with `columns` columns: a 68-bit time, an
/// 18-bit presence header and a bit per column, 78 bits per value.
fn row_bits_bound(columns: usize) -> usize {
    86 + 79 * columns
}

/// One column of a head: the previous encoded value and window, and the value of
/// the pending row.
#[derive(Debug, Clone, Copy, Default)]
struct Column {
    prev: u64,
    window: XorWindow,
    value: u64,
    has: bool,
}

/// The writer's side of a head with rows (or with room kept for rows).
#[derive(Debug)]
struct Writer {
    words: Arc<[AtomicU64]>,
    /// The word being filled (`words[at]` holds the same bits) and its bits used,
    /// from the most significant.
    acc: u64,
    at: u32,
    used: u32,
    /// Rows encoded in `words`.
    rows: u32,
    /// Columns the stream has declared.
    declared: u16,
    /// Whether a pending row exists; it is the newest row.
    pending: bool,
    /// Field values present (not null), encoded and pending.
    present: u64,
    prev_time: i64,
    prev_delta: i64,
    /// Time of the pending row.
    newest: i64,
    columns: Box<[Column]>,
}

impl Writer {
    fn new(columns: usize) -> Writer {
        Writer {
            words: Arc::new([]),
            acc: 0,
            at: 0,
            used: 0,
            rows: 0,
            declared: 0,
            pending: false,
            present: 0,
            prev_time: 0,
            prev_delta: 0,
            newest: 0,
            columns: vec![Column::default(); columns].into(),
        }
    }

    fn len(&self) -> usize {
        self.rows as usize + usize::from(self.pending)
    }

    fn bits(&self) -> usize {
        self.at as usize * 64 + self.used as usize
    }

    fn ensure_columns(&mut self, n: usize) {
        if n > self.columns.len() {
            let mut columns = self.columns.to_vec();
            columns.resize(n, Column::default());
            self.columns = columns.into();
        }
    }

    /// Sets the pending row's fields; a field it already has takes the new value.
    fn set_pending(&mut self, fields: &[u16], values: &[f64]) {
        if let Some(&max) = fields.iter().max() {
            self.ensure_columns(usize::from(max) + 1);
        }
        for (&f, &v) in fields.iter().zip(values) {
            let c = &mut self.columns[usize::from(f)];
            self.present += u64::from(!c.has);
            c.value = v.to_bits();
            c.has = true;
        }
        self.pending = true;
    }

    /// Makes room for `bits` more bits, in a new array: readers may hold this one.
    fn reserve(&mut self, bits: usize) {
        let need = (self.bits() + bits).div_ceil(64);
        if need <= self.words.len() {
            return;
        }
        let len = need.max(self.words.len() * 2);
        let filled = self.at as usize + 1;
        let old = &self.words;
        self.words = (0..len)
            .map(|i| AtomicU64::new(if i < filled { load(old, i) } else { 0 }))
            .collect();
    }

    /// Appends the low `n` (1..=64) bits of `v`, which has no higher bits set.
    #[inline(always)]
    fn put(&mut self, v: u64, n: u32) {
        debug_assert!((1..=64).contains(&n) && (n == 64 || v >> n == 0));
        let free = 64 - self.used;
        if n < free {
            self.acc |= v << (free - n);
            self.used += n;
        } else {
            let spill = n - free; // < 64: `used` < 64 leaves `free` >= 1
            self.acc |= v >> spill;
            self.words[self.at as usize].store(self.acc, Relaxed);
            self.at += 1;
            self.acc = if spill == 0 { 0 } else { v << (64 - spill) };
            self.used = spill;
        }
    }

    fn put_dod(&mut self, dod: i64) {
        let fits = |bits: u32| (-(1i64 << (bits - 1))..1i64 << (bits - 1)).contains(&dod);
        let low = |bits: u32| dod as u64 & ((1u64 << bits) - 1);
        if dod == 0 {
            self.put(0, 1);
        } else if fits(14) {
            self.put((0b10 << 14) | low(14), 16);
        } else if fits(17) {
            self.put((0b110 << 17) | low(17), 20);
        } else if fits(20) {
            self.put((0b1110 << 20) | low(20), 24);
        } else {
            self.put(0b1111, 4);
            self.put(dod as u64, 64);
        }
    }

    fn put_value(&mut self, i: usize) {
        let Column {
            prev,
            mut window,
            value,
            ..
        } = self.columns[i];
        window.put(value ^ prev, |v, n| self.put(v, n));
        (self.columns[i].prev, self.columns[i].window) = (value, window);
    }

    /// Encodes the pending row into the stream.
    fn encode_pending(&mut self) {
        let n = self.columns.len();
        self.reserve(row_bits_bound(n));
        let t = self.newest;
        if self.rows == 0 {
            self.put(t as u64, 64);
            self.prev_delta = 0;
        } else {
            let delta = t.wrapping_sub(self.prev_time);
            self.put_dod(delta.wrapping_sub(self.prev_delta));
            self.prev_delta = delta;
        }
        self.prev_time = t;
        if self.rows == 0 || n != usize::from(self.declared) {
            self.put((0b11 << 16) | n as u64, 18);
            self.put_presence();
            self.declared = n as u16;
        } else if self.columns.iter().all(|c| c.has) {
            self.put(0, 1);
        } else {
            self.put(0b10, 2);
            self.put_presence();
        }
        for i in 0..n {
            if self.columns[i].has {
                self.put_value(i);
                self.columns[i].has = false;
            }
        }
        if self.used > 0 {
            self.words[self.at as usize].store(self.acc, Relaxed);
        }
        self.rows += 1;
        self.pending = false;
    }

    fn put_presence(&mut self) {
        for i in 0..self.columns.len() {
            self.put(u64::from(self.columns[i].has), 1);
        }
    }

    fn view(&self) -> HeadView {
        HeadView {
            words: (self.rows > 0).then(|| self.words.clone()),
            rows: self.rows,
            columns: self.columns.len(),
            pending: self.pending.then(|| (self.newest, self.pending_row())),
        }
    }

    fn pending_row(&self) -> Row {
        self.columns
            .iter()
            .map(|c| c.has.then(|| f64::from_bits(c.value)))
            .collect()
    }

    /// Forgets the rows, keeping the columns and, unless a reader holds it, the room.
    fn reset(&mut self) {
        if Arc::get_mut(&mut self.words).is_none() {
            self.words = (0..self.words.len()).map(|_| AtomicU64::new(0)).collect();
        }
        self.columns.fill(Column::default());
        (self.acc, self.at, self.used, self.rows, self.declared) = (0, 0, 0, 0, 0);
        (self.pending, self.present) = (false, 0);
        (self.prev_time, self.prev_delta, self.newest) = (0, 0, 0);
    }
}

fn load(words: &[AtomicU64], i: usize) -> u64 {
    words.get(i).map_or(0, |w| w.load(Relaxed))
}

/// The open rows of one series: sorted by time, timestamps unique, encoded as they
/// arrive. Empty heads hold nothing; 8 bytes inline.
#[derive(Debug, Default)]
pub(crate) struct OpenHead(Option<Box<Writer>>);

impl OpenHead {
    /// A head holding `head`'s rows (restoring a checkpoint, cutting at the tier).
    pub(crate) fn from_head(head: &Head) -> OpenHead {
        let mut open = OpenHead::default();
        let mut fields = Vec::new();
        let mut values = Vec::new();
        for (i, &t) in head.times.iter().enumerate() {
            fields.clear();
            values.clear();
            for f in 0..head.columns.len() {
                if let Some(v) = head.value(f, i) {
                    fields.push(f as u16);
                    values.push(v);
                }
            }
            open.append(t, &fields, &values);
        }
        if let Some(w) = &mut open.0 {
            w.ensure_columns(head.columns.len());
        }
        open
    }

    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |w| w.len())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Field columns held (fields beyond them are null in every row).
    pub(crate) fn columns(&self) -> usize {
        self.0.as_ref().map_or(0, |w| w.columns.len())
    }

    pub(crate) fn first_time(&self) -> Option<i64> {
        let w = self.0.as_ref()?;
        match (w.rows, w.pending) {
            // The stream opens with the first row's 64 time bits.
            (1.., _) => Some(load(&w.words, 0) as i64),
            (0, true) => Some(w.newest),
            (0, false) => None,
        }
    }

    pub(crate) fn last_time(&self) -> Option<i64> {
        let w = self.0.as_ref()?;
        match (w.rows, w.pending) {
            (_, true) => Some(w.newest),
            (1.., false) => Some(w.prev_time),
            (0, false) => None,
        }
    }

    /// Whether any row may fall in `range`, from the first and last time.
    pub(crate) fn overlaps(&self, range: TimeRange) -> bool {
        match (self.first_time(), self.last_time()) {
            (Some(first), Some(last)) => range.overlaps(first, last),
            _ => false,
        }
    }

    /// At most the rows in `range`: all of them when the range overlaps the head.
    pub(crate) fn rows_bound(&self, range: TimeRange) -> usize {
        if self.overlaps(range) { self.len() } else { 0 }
    }

    /// Appends a row later than every row held: `values[i]` is the value of table
    /// field `fields[i]`.
    pub(crate) fn append(&mut self, time: i64, fields: &[u16], values: &[f64]) {
        debug_assert!(self.last_time().is_none_or(|last| last < time));
        let w = self.0.get_or_insert_with(|| Box::new(Writer::new(0)));
        if w.pending {
            w.encode_pending();
        }
        w.newest = time;
        w.set_pending(fields, values);
    }

    /// Merges fields into the newest row (a write with its timestamp): fields it has
    /// take the new values, the others keep theirs.
    pub(crate) fn merge_last(&mut self, fields: &[u16], values: &[f64]) {
        match &mut self.0 {
            Some(w) if w.pending => w.set_pending(fields, values),
            _ => debug_assert!(false, "merge into a head without a newest row"),
        }
    }

    /// The newest row's value of field `f`, if any.
    pub(crate) fn last_value(&self, f: usize) -> Option<f64> {
        let w = self.0.as_ref().filter(|w| w.pending)?;
        let c = w.columns.get(f)?;
        c.has.then(|| f64::from_bits(c.value))
    }

    /// The newest row, one value per column.
    pub(crate) fn last_row(&self) -> Option<Row> {
        let w = self.0.as_ref().filter(|w| w.pending)?;
        Some(w.pending_row())
    }

    /// Field values present (not null) over all rows.
    pub(crate) fn present(&self) -> u64 {
        self.0.as_ref().map_or(0, |w| w.present)
    }

    /// Heap bytes held, with the allocator's rounding, for memory accounting.
    pub(crate) fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |w| {
            malloc_bytes(std::mem::size_of::<Writer>())
                + malloc_bytes(std::mem::size_of_val::<[Column]>(&w.columns))
                + malloc_bytes(2 * std::mem::size_of::<usize>() + 8 * w.words.len())
        })
    }

    /// At most the bytes that `rows` more rows of `columns` columns add: the stream
    /// grows by doubling, and a head starts with its writer's state.
    pub(crate) fn growth_bound(&self, rows: usize, columns: usize) -> usize {
        let columns = columns.max(self.columns());
        let bits = self.0.as_ref().map_or(0, |w| w.bits());
        let words = (bits + rows * row_bits_bound(columns)).div_ceil(64);
        let state = std::mem::size_of::<Writer>() + std::mem::size_of::<Column>() * columns + 64;
        2 * 8 * words + state
    }

    /// What a snapshot keeps of this head: a handle to its stream, the newest row.
    pub(crate) fn view(&self) -> HeadView {
        self.0.as_ref().map_or_else(HeadView::default, |w| w.view())
    }

    /// A copy of every row.
    pub(crate) fn to_head(&self) -> Head {
        self.view().decode(TimeRange::ALL)
    }

    /// Takes the rows out, leaving an empty head that holds no memory.
    pub(crate) fn take(&mut self) -> Head {
        let head = self.to_head();
        self.0 = None;
        head
    }

    /// Takes the rows out but keeps the stream for the rows to come. A series that
    /// seals because it is being written fills the same room again: freeing it would
    /// make every head regrow by doubling, copying its words each time, and the
    /// allocator hand back fresh pages the kernel must zero.
    pub(crate) fn take_keeping_room(&mut self) -> Head {
        let head = self.to_head();
        if let Some(w) = &mut self.0 {
            w.reset();
        }
        head
    }

    /// Frees the room of an empty head (an idle series keeps none).
    pub(crate) fn release_room(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }
}

/// A head as a snapshot saw it: the stream's first `rows` rows and the newest row.
#[derive(Debug, Default, Clone)]
pub(crate) struct HeadView {
    words: Option<Arc<[AtomicU64]>>,
    rows: u32,
    columns: usize,
    pending: Option<(i64, Row)>,
}

impl HeadView {
    /// Rows in the view.
    pub(crate) fn len(&self) -> usize {
        self.rows as usize + usize::from(self.pending.is_some())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first and the last time, without decoding.
    fn span(&self) -> Option<(i64, i64)> {
        let (last, _) = self.pending.as_ref()?;
        let first = match &self.words {
            Some(words) if self.rows > 0 => load(words, 0) as i64,
            _ => *last,
        };
        Some((first, *last))
    }

    /// The rows with `range.start <= time < range.end`, decoded.
    pub(crate) fn decode(&self, range: TimeRange) -> Head {
        let mut head = match &self.words {
            Some(words) => decode_rows(words, self.rows as usize, self.columns),
            None => Head::default(),
        };
        if let Some((time, row)) = &self.pending {
            let (fields, values): (Vec<u16>, Vec<f64>) = row
                .iter()
                .enumerate()
                .filter_map(|(f, v)| v.map(|v| (f as u16, v)))
                .unzip();
            head.upsert(*time, &fields, &values);
        }
        head.ensure_columns(self.columns);
        match self.span() {
            Some((lo, hi)) if !range.covers(lo, hi) => head.slice(range.start, range.end),
            _ => head,
        }
    }
}

/// Reads a stream's bits; past its end every bit reads zero. Each word is loaded
/// once, into `acc`, whose `avail` high bits are the next ones.
struct Bits<'a> {
    words: &'a [AtomicU64],
    next: usize,
    acc: u64,
    avail: u32,
}

impl<'a> Bits<'a> {
    fn new(words: &'a [AtomicU64]) -> Self {
        Bits {
            words,
            next: 0,
            acc: 0,
            avail: 0,
        }
    }

    /// The next `n` (1..=64) bits.
    #[inline]
    fn read(&mut self, n: u32) -> u64 {
        debug_assert!((1..=64).contains(&n));
        if n <= self.avail {
            let v = self.acc >> (64 - n);
            self.acc = self.acc.checked_shl(n).unwrap_or(0);
            self.avail -= n;
            return v;
        }
        let have = self.avail;
        let high = if have == 0 {
            0
        } else {
            self.acc >> (64 - have)
        };
        let word = load(self.words, self.next);
        self.next += 1;
        let need = n - have;
        self.acc = word.checked_shl(need).unwrap_or(0);
        self.avail = 64 - need;
        high.checked_shl(need).unwrap_or(0) | word >> (64 - need)
    }

    fn dod(&mut self) -> i64 {
        if self.read(1) == 0 {
            return 0;
        }
        let bits = if self.read(1) == 0 {
            14
        } else if self.read(1) == 0 {
            17
        } else if self.read(1) == 0 {
            20
        } else {
            return self.read(64) as i64;
        };
        // Sign-extends the two's complement field.
        ((self.read(bits) << (64 - bits)) as i64) >> (64 - bits)
    }
}

/// Per column while decoding: the previous value and the window's shift and length.
#[derive(Clone, Copy, Default)]
struct ReadColumn {
    prev: u64,
    shift: u32,
    len: u32,
}

/// Decodes the first `rows` rows of a stream, into at least `columns` columns.
fn decode_rows(words: &[AtomicU64], rows: usize, columns: usize) -> Head {
    let mut r = Bits::new(words);
    let mut times = Vec::with_capacity(rows);
    let mut values: Vec<Vec<f64>> = (0..columns).map(|_| Vec::with_capacity(rows)).collect();
    let mut valid: Vec<Vec<bool>> = (0..columns).map(|_| Vec::with_capacity(rows)).collect();
    let mut state: Vec<ReadColumn> = Vec::new();
    let mut present: Vec<bool> = Vec::new();
    let (mut time, mut delta) = (0i64, 0i64);
    for row in 0..rows {
        if row == 0 {
            time = r.read(64) as i64;
        } else {
            delta = delta.wrapping_add(r.dod());
            time = time.wrapping_add(delta);
        }
        times.push(time);
        if r.read(1) == 0 {
            present.fill(true);
        } else {
            if r.read(1) == 1 {
                let n = r.read(16) as usize;
                present.resize(n, false);
                state.resize(n, ReadColumn::default());
            }
            for p in &mut present {
                *p = r.read(1) == 1;
            }
        }
        if present.len() > values.len() {
            values.resize(present.len(), vec![0.0; row]);
            valid.resize(present.len(), vec![false; row]);
        }
        for (c, (values, valid)) in values.iter_mut().zip(&mut valid).enumerate() {
            let value = match (present.get(c), state.get_mut(c)) {
                (Some(true), Some(s)) => Some(read_value(&mut r, s)),
                _ => None,
            };
            values.push(value.unwrap_or(0.0));
            valid.push(value.is_some());
        }
    }
    let columns = values
        .into_iter()
        .zip(valid)
        .map(|(values, valid)| HeadColumn {
            values,
            valid: valid.contains(&false).then_some(valid),
        })
        .collect();
    Head { times, columns }
}

fn read_value(r: &mut Bits<'_>, s: &mut ReadColumn) -> f64 {
    if r.read(1) == 1 {
        if r.read(1) == 1 {
            let header = r.read(WINDOW_HEADER_BITS) as u32;
            s.len = (header & 63) + 1;
            s.shift = 64u32.saturating_sub((header >> 6) + s.len);
        }
        if s.len > 0 {
            s.prev ^= r.read(s.len) << s.shift;
        }
    }
    f64::from_bits(s.prev)
}

#[cfg(test)]
mod tests;
