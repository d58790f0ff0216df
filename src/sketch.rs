//! DDSketch: a mergeable quantile sketch with a relative-error guarantee.
//!
//! A value `x > 0` goes to bucket `i = ceil(ln(x) / ln(γ))` with `γ = (1 + α) / (1 - α)`,
//! so the bucket holds `(γ^(i-1), γ^i]`; the bucket's representative `2γ^i / (γ + 1)` is
//! within relative error `α` of every value in it. Negative values go to a second store
//! by `|x|`, zeros to a counter. Quantiles are **nearest-rank**: `quantile(q)` estimates
//! the `max(1, ceil(q·n))`-th smallest value (the same definition as SQL `percentile`),
//! and the estimate `e` of the true value `v` satisfies `|e - v| <= α·|v|`. Exact minimum
//! and maximum are kept, so `q = 0` and `q = 1` are exact and estimates are clamped into
//! `[min, max]` (which can only bring them closer).
//!
//! The sketch lives at the top level rather than under `query::functions` because the
//! rollup levels of issue 7 (computed by tiering, outside the query layer) store it.
//!
//! Non-finite values (NaN, ±∞) are ignored: they have no bucket and no meaningful
//! relative error.
//!
//! Each store is dense (a `Vec<u64>` from its lowest to highest index), capped at
//! [`MAX_BINS`] buckets: when a store would span more, its lowest buckets are folded
//! into one (DataDog's "collapsing lowest" store). With α = 1% that happens only when
//! the values of one sign span more than a factor of ~10^71, so the guarantee holds
//! for any realistic metric; past it, only the quantiles that fall in the folded
//! (smallest-magnitude) buckets lose it.
//!
//! # Serialized form (version 1, little-endian)
//! ```text
//! u8   version = 1
//! f64  relative accuracy α
//! f64  min, f64 max            (NaN when the sketch is empty)
//! var  zero count
//! store positive, store negative, each:
//!   var  number of non-empty buckets
//!   per bucket: zigzag-var index delta (from the previous bucket, the first from 0),
//!               var count
//! ```
//! `var` is an unsigned LEB128 varint. The format is stable: rollup files keep it.

use std::fmt;

/// Default relative accuracy (1%).
pub const DEFAULT_RELATIVE_ACCURACY: f64 = 0.01;
/// Most buckets one store keeps before folding its lowest ones.
pub const MAX_BINS: usize = 8192;
/// Largest bucket index magnitude a decoded sketch may hold.
const MAX_INDEX: i64 = 1 << 24;
/// Version byte of the serialized form.
pub const FORMAT_VERSION: u8 = 1;

/// Why a sketch could not be built, decoded or merged.
#[derive(Debug, Clone, PartialEq)]
pub struct SketchError(String);

impl fmt::Display for SketchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SketchError {}

fn err<T>(msg: impl Into<String>) -> Result<T, SketchError> {
    Err(SketchError(msg.into()))
}

/// Buckets of one sign: `counts[k]` is bucket `offset + k`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Store {
    offset: i32,
    counts: Vec<u64>,
    total: u64,
}

impl Store {
    fn add(&mut self, index: i32, count: u64) {
        if count == 0 {
            return;
        }
        // Saturating: a decoded sketch may claim absurd counts; it must not panic.
        self.total = self.total.saturating_add(count);
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(count);
            return;
        }
        let last = self.offset as i64 + self.counts.len() as i64 - 1;
        let index = index as i64;
        if index > last {
            let len = (index - self.offset as i64 + 1) as usize;
            if len > MAX_BINS {
                // Keep the top MAX_BINS buckets and fold everything below into the lowest.
                let new_offset = index - MAX_BINS as i64 + 1;
                let mut kept = vec![0u64; MAX_BINS];
                for (k, &c) in self.counts.iter().enumerate() {
                    let i = self.offset as i64 + k as i64;
                    let k = (i - new_offset).max(0) as usize;
                    kept[k] = kept[k].saturating_add(c);
                }
                self.counts = kept;
                self.offset = new_offset as i32;
            } else {
                self.counts.resize(len, 0);
            }
        } else if index < self.offset as i64 {
            // Fold into the lowest bucket when growing downwards would exceed the cap.
            let grow = (self.offset as i64 - index) as usize;
            if self.counts.len() + grow > MAX_BINS {
                let room = MAX_BINS.saturating_sub(self.counts.len());
                let new_offset = self.offset - room as i32;
                let mut counts = vec![0; room];
                counts.append(&mut self.counts);
                self.counts = counts;
                self.offset = new_offset;
                self.counts[0] = self.counts[0].saturating_add(count);
                return;
            }
            let mut counts = vec![0; grow];
            counts.append(&mut self.counts);
            self.counts = counts;
            self.offset = index as i32;
        }
        let k = (index - self.offset as i64) as usize;
        self.counts[k] = self.counts[k].saturating_add(count);
    }

    fn merge(&mut self, other: &Store) {
        for (k, &c) in other.counts.iter().enumerate() {
            self.add(other.offset + k as i32, c);
        }
    }

    /// Non-empty buckets, lowest index first.
    fn buckets(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(k, c)| (self.offset + k as i32, *c))
    }
}

/// A DDSketch; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct DDSketch {
    alpha: f64,
    gamma_ln: f64,
    /// `1 / ln(γ)`: a multiply per insert instead of a divide.
    index_scale: f64,
    positive: Store,
    negative: Store,
    zeros: u64,
    min: f64,
    max: f64,
}

impl Default for DDSketch {
    fn default() -> Self {
        DDSketch::new(DEFAULT_RELATIVE_ACCURACY).unwrap_or_else(|_| unreachable!())
    }
}

impl DDSketch {
    /// An empty sketch with relative accuracy `alpha`, which must lie in
    /// `[0.0001, 0.5]` (finer accuracies make the dense stores impractically wide).
    pub fn new(alpha: f64) -> Result<DDSketch, SketchError> {
        if !(0.0001..=0.5).contains(&alpha) {
            return err(format!(
                "relative accuracy must lie in [0.0001, 0.5], got {alpha}"
            ));
        }
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        Ok(DDSketch {
            alpha,
            gamma_ln: gamma.ln(),
            index_scale: 1.0 / gamma.ln(),
            positive: Store::default(),
            negative: Store::default(),
            zeros: 0,
            min: f64::NAN,
            max: f64::NAN,
        })
    }

    /// The relative accuracy α.
    pub fn relative_accuracy(&self) -> f64 {
        self.alpha
    }

    /// Number of values added (non-finite ones are not counted).
    pub fn count(&self) -> u64 {
        self.positive
            .total
            .saturating_add(self.negative.total)
            .saturating_add(self.zeros)
    }

    /// Bytes held in memory.
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + 8 * (self.positive.counts.capacity() + self.negative.counts.capacity())
    }

    /// True when no value was added.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    fn index(&self, magnitude: f64) -> i32 {
        // |ln(x)| <= 745 for finite non-zero x and ln(γ) >= ~2e-4, so this fits in i32.
        (magnitude.ln() * self.index_scale).ceil() as i32
    }

    fn representative(&self, index: i32) -> f64 {
        let gamma = self.gamma_ln.exp();
        2.0 * (self.gamma_ln * index as f64).exp() / (gamma + 1.0)
    }

    /// Adds one value; NaN and ±∞ are ignored.
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        if value > 0.0 {
            let i = self.index(value);
            self.positive.add(i, 1);
        } else if value < 0.0 {
            let i = self.index(-value);
            self.negative.add(i, 1);
        } else {
            self.zeros += 1;
        }
        // NaN min/max mean "empty"; `f64::min` ignores the NaN operand.
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds every value of `other`. Both must have the same relative accuracy.
    pub fn merge(&mut self, other: &DDSketch) -> Result<(), SketchError> {
        if self.alpha != other.alpha {
            return err(format!(
                "cannot merge sketches of relative accuracy {} and {}",
                self.alpha, other.alpha
            ));
        }
        self.positive.merge(&other.positive);
        self.negative.merge(&other.negative);
        self.zeros = self.zeros.saturating_add(other.zeros);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        Ok(())
    }

    /// The nearest-rank `q`-quantile estimate (`q` in `[0, 1]`); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        if rank == 1 {
            return Some(self.min);
        }
        if rank == n {
            return Some(self.max);
        }
        let mut seen = 0u64;
        // Ascending order: most negative first (highest |x| index), zeros, positives.
        for (i, c) in self.negative.buckets().rev() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return Some((-self.representative(i)).clamp(self.min, self.max));
            }
        }
        seen = seen.saturating_add(self.zeros);
        if seen >= rank {
            return Some(0.0);
        }
        for (i, c) in self.positive.buckets() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return Some(self.representative(i).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// The serialized form (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 4 * (self.positive.counts.len() + 4));
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.alpha.to_le_bytes());
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        put_var(&mut out, self.zeros);
        for store in [&self.positive, &self.negative] {
            put_var(&mut out, store.buckets().count() as u64);
            let mut prev = 0i64;
            for (i, c) in store.buckets() {
                let delta = i as i64 - prev;
                put_var(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
                put_var(&mut out, c);
                prev = i as i64;
            }
        }
        out
    }

    /// Decodes [`DDSketch::to_bytes`] output; rejects other versions and truncated or
    /// inconsistent input.
    pub fn from_bytes(bytes: &[u8]) -> Result<DDSketch, SketchError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return err(format!(
                "unsupported sketch format version {version} (expected {FORMAT_VERSION})"
            ));
        }
        let mut sketch = DDSketch::new(r.f64()?)?;
        let (min, max) = (r.f64()?, r.f64()?);
        sketch.zeros = r.var()?;
        for negative in [false, true] {
            let n = r.var()?;
            let mut index = 0i64;
            for _ in 0..n {
                let z = r.var()?;
                index = index.saturating_add(((z >> 1) as i64) ^ -((z & 1) as i64));
                let count = r.var()?;
                // Finite values have |index| <= 745 / ln(γ) < 2^23 at the finest accuracy.
                if index.abs() > MAX_INDEX {
                    return err(format!("bucket index {index} out of range"));
                }
                let i = index as i32;
                let store = if negative {
                    &mut sketch.negative
                } else {
                    &mut sketch.positive
                };
                store.add(i, count);
            }
        }
        if r.pos != bytes.len() {
            return err("trailing bytes after the sketch");
        }
        if sketch.is_empty() != (min.is_nan() && max.is_nan()) || min > max {
            return err("sketch min/max do not match its counts");
        }
        sketch.min = min;
        sketch.max = max;
        Ok(sketch)
    }
}

fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], SketchError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => err("truncated sketch"),
        }
    }

    fn u8(&mut self) -> Result<u8, SketchError> {
        Ok(self.take(1)?[0])
    }

    fn f64(&mut self) -> Result<f64, SketchError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(b))
    }

    fn var(&mut self) -> Result<u64, SketchError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        err("varint too long")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Nearest-rank quantile of `values`: the `max(1, ceil(q·n))`-th smallest.
    fn nearest_rank(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    fn values() -> impl Strategy<Value = Vec<f64>> {
        let magnitude = prop_oneof![
            -1e6..1e6f64,
            // Within the span one store holds without folding (see MAX_BINS) at the
            // finest accuracy tested: 10^16 needs 3,700 buckets at 0.5%.
            (-8.0..8.0f64).prop_map(|e| 10f64.powf(e)),
            (-8.0..8.0f64).prop_map(|e| -(10f64.powf(e))),
            Just(0.0),
        ];
        prop::collection::vec(magnitude, 1..400)
    }

    proptest! {
        #[test]
        fn quantiles_within_relative_error(
            parts in prop::collection::vec(values(), 1..4),
            alpha in prop_oneof![Just(0.01), 0.005..0.2f64],
            qs in prop::collection::vec(0.0..=1.0f64, 1..10),
        ) {
            // Build one sketch per part and merge them through the serialized form, as
            // partial aggregation and rollups do.
            let mut merged = DDSketch::new(alpha).unwrap();
            for part in &parts {
                let mut s = DDSketch::new(alpha).unwrap();
                part.iter().for_each(|&x| s.add(x));
                let decoded = DDSketch::from_bytes(&s.to_bytes()).unwrap();
                prop_assert_eq!(&decoded, &s);
                merged.merge(&decoded).unwrap();
            }
            let all: Vec<f64> = parts.concat();
            prop_assert_eq!(merged.count(), all.len() as u64);
            for q in qs.into_iter().chain([0.0, 0.5, 1.0]) {
                let exact = nearest_rank(&all, q);
                let est = merged.quantile(q).unwrap();
                // A little slack for ln() rounding at bucket edges.
                let bound = alpha * exact.abs() * (1.0 + 1e-9) + 1e-300;
                prop_assert!((est - exact).abs() <= bound,
                    "q={} exact={} est={} alpha={}", q, exact, est, alpha);
            }
        }
    }

    #[test]
    fn empty_and_non_finite() {
        let mut s = DDSketch::default();
        assert_eq!(s.quantile(0.5), None);
        s.add(f64::NAN);
        s.add(f64::INFINITY);
        assert!(s.is_empty());
        let back = DDSketch::from_bytes(&s.to_bytes()).unwrap();
        assert!(back.is_empty());
        s.add(3.0);
        assert_eq!(s.quantile(0.0), Some(3.0));
        assert_eq!(s.quantile(1.0), Some(3.0));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(DDSketch::new(0.0).is_err());
        assert!(DDSketch::new(0.9).is_err());
        let mut s = DDSketch::default();
        s.add(1.0);
        s.add(100.0);
        let bytes = s.to_bytes();
        for cut in 0..bytes.len() {
            assert!(DDSketch::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(DDSketch::from_bytes(&v2).is_err());
        let mut long = bytes;
        long.push(0);
        assert!(DDSketch::from_bytes(&long).is_err());
        // Absurd counts and indices are refused or saturate, never panic.
        let mut huge = vec![FORMAT_VERSION];
        huge.extend_from_slice(&0.01f64.to_le_bytes());
        huge.extend_from_slice(&1.0f64.to_le_bytes());
        huge.extend_from_slice(&2.0f64.to_le_bytes());
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        huge.extend_from_slice(&[
            2, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
        huge.extend_from_slice(&[
            2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0,
        ]);
        if let Ok(s) = DDSketch::from_bytes(&huge) {
            let _ = s.quantile(0.5);
        }
        let mut far = vec![FORMAT_VERSION];
        far.extend_from_slice(&0.01f64.to_le_bytes());
        far.extend_from_slice(&1.0f64.to_le_bytes());
        far.extend_from_slice(&1.0f64.to_le_bytes());
        far.extend_from_slice(&[0, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1, 0]);
        assert!(DDSketch::from_bytes(&far).is_err());
        let other = DDSketch::new(0.02).unwrap();
        assert!(s.clone().merge(&other).is_err());
    }

    #[test]
    fn wide_range_collapses_lowest_buckets() {
        let mut s = DDSketch::default();
        for e in -300..300 {
            s.add(10f64.powi(e));
        }
        assert!(s.positive.counts.len() <= MAX_BINS);
        assert_eq!(s.count(), 600);
        // The top of the range keeps its accuracy.
        let p99 = s.quantile(0.99).unwrap();
        let exact = 10f64.powi(293);
        assert!((p99 - exact).abs() <= 0.01 * exact * (1.0 + 1e-9));
    }
}
