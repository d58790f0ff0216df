//! The partial aggregate of one field over some samples of one series: what a rollup
//! row holds per field, and how two rows of one bucket (cut by two tiering runs)
//! merge into the row of the whole bucket.

use crate::sketch::DDSketch;

/// The increase of a counter from `prev` to `next`: a drop means it restarted from 0.
pub fn counter_delta(prev: f64, next: f64) -> f64 {
    if next < prev { next } else { next - prev }
}

/// The partial aggregate of one field over some time-ordered samples of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    /// Samples.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Smallest value (NaNs ignored; NaN if all are NaN).
    pub min: f64,
    /// Largest value (NaNs ignored).
    pub max: f64,
    /// Earliest sample's value and time (ms).
    pub first: (i64, f64),
    /// Latest sample's value and time (ms).
    pub last: (i64, f64),
    /// Reset-aware sum of consecutive deltas (see [`counter_delta`]).
    pub increase: f64,
    /// The finite values' sketch.
    pub sketch: DDSketch,
}

impl Partial {
    /// The partial of the single sample `(t, v)`.
    pub fn new(t: i64, v: f64) -> Partial {
        let mut sketch = DDSketch::default();
        sketch.add(v);
        Partial {
            count: 1,
            sum: v,
            min: v,
            max: v,
            first: (t, v),
            last: (t, v),
            increase: 0.0,
            sketch,
        }
    }

    /// Adds a sample later than every one so far.
    pub fn push(&mut self, t: i64, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.increase += counter_delta(self.last.1, v);
        self.last = (t, v);
        self.sketch.add(v);
    }

    /// Merges the partial of samples all later than this one's.
    pub fn merge(&mut self, later: &Partial) {
        self.count += later.count;
        self.sum += later.sum;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.increase += counter_delta(self.last.1, later.first.1) + later.increase;
        self.last = later.last;
        // Both sketches are built with the default accuracy, so merging cannot fail.
        let _ = self.sketch.merge(&later.sketch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn partial_of(samples: &[(i64, f64)]) -> Option<Partial> {
        let (&(t, v), rest) = samples.split_first()?;
        let mut p = Partial::new(t, v);
        rest.iter().for_each(|&(t, v)| p.push(t, v));
        Some(p)
    }

    fn close(a: f64, b: f64, scale: f64) -> bool {
        (a - b).abs() <= 1e-9 * scale.max(1.0)
    }

    proptest! {
        /// A bucket cut into pieces by tiering runs merges back into the whole.
        #[test]
        fn merged_pieces_equal_the_whole(
            values in prop::collection::vec(prop_oneof![0.0..1e6f64, -1e3..1e3f64], 1..200),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let samples: Vec<(i64, f64)> =
                values.iter().enumerate().map(|(i, &v)| (i as i64 * 1000, v)).collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(samples.len())).collect();
            at.push(0);
            at.push(samples.len());
            at.sort_unstable();
            at.dedup();
            let whole = partial_of(&samples).unwrap();
            let mut merged: Option<Partial> = None;
            for w in at.windows(2) {
                let Some(piece) = partial_of(&samples[w[0]..w[1]]) else { continue };
                match &mut merged {
                    Some(m) => m.merge(&piece),
                    None => merged = Some(piece),
                }
            }
            let merged = merged.unwrap();
            let scale: f64 = values.iter().map(|v| v.abs()).sum();
            prop_assert_eq!(merged.count, whole.count);
            prop_assert_eq!(merged.min, whole.min);
            prop_assert_eq!(merged.max, whole.max);
            prop_assert_eq!(merged.first, whole.first);
            prop_assert_eq!(merged.last, whole.last);
            prop_assert!(close(merged.sum, whole.sum, scale));
            prop_assert!(close(merged.increase, whole.increase, scale));
            prop_assert_eq!(merged.sketch.to_bytes(), whole.sketch.to_bytes());
        }
    }

    #[test]
    fn increase_folds_counter_resets() {
        let p = partial_of(&[(0, 5.0), (1, 8.0), (2, 2.0), (3, 4.0), (4, 4.0)]).unwrap();
        // 5→8: 3, reset to 2: 2, 2→4: 2, 4→4: 0.
        assert_eq!(p.increase, 7.0);
        assert_eq!((p.first, p.last, p.count), ((0, 5.0), (4, 4.0), 5));
    }
}
