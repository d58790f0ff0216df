//! Seeded synthetic workloads shared by benches and tests.
//!
//! This module owns data generation only: it builds [`WriteBatch`](crate::model::WriteBatch)es
//! and SQL text, and never touches storage or the query engine. Everything is a pure
//! function of a seed, so a bench run, a test and a bug report all see the same rows.
//!
//! - [`Rng`]: the crate's own small PRNG (xoshiro256** seeded through SplitMix64).
//! - [`tsbs`]: the TSBS "cpu-only" use case (`/work/shared/workloads/tsbs-cpu-only.md`):
//!   hosts, rows, write batches and the 15 TSBS queries.

pub mod tsbs;

/// A small deterministic pseudo-random generator: xoshiro256** seeded through SplitMix64.
///
/// Hand-written rather than taken from `rand` on purpose: generated data sets and
/// query windows must stay identical across releases, and `rand`'s `StdRng` and
/// distribution algorithms are explicitly allowed to change between versions. The
/// integer stream (`next_u64`, `below`, `uniform`) is fixed forever by the tests in
/// this module; [`Rng::normal`] uses `ln`, `sqrt` and `cos` from the platform's math
/// library, which Rust does not promise to be bit-identical across platforms, so its
/// last bits may differ between operating systems (never between runs).
///
/// Not cryptographically secure.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    /// Box-Muller yields normals in pairs; the second is kept for the next call.
    spare_normal: Option<f64>,
}

/// One step of SplitMix64, the seeding generator recommended by xoshiro's authors:
/// it turns any seed (including 0) into well-mixed, non-zero state words.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng {
            s,
            spare_normal: None,
        }
    }

    /// A generator for one numbered sub-stream of `seed` (for example one per host), so
    /// that streams do not depend on how many others are drawn or in which order.
    pub fn stream(seed: u64, stream: u64) -> Rng {
        let mut sm = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        Rng::new(splitmix64(&mut sm))
    }

    /// The next 64 random bits (xoshiro256**).
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform `f64` in `[0, 1)`, with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `[0, n)`, without modulo bias; `0` when `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift: the high word of x * n is uniform in [0, n) once the
        // few low-word values that would over-represent some results are rejected.
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A uniform index into a slice of length `len` (`0` when `len == 0`).
    pub fn index(&mut self, len: usize) -> usize {
        // usize -> u64 is lossless on every supported target, and the result is < len.
        self.below(len as u64) as usize
    }

    /// A draw from the standard normal distribution N(0, 1) (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // 1 - uniform() is in (0, 1], so ln never sees 0.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_output() {
        // First outputs of the reference C implementation for seed 0.
        let mut s = 0;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(&mut s), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn xoshiro_matches_the_reference_step() {
        // xoshiro256** on state [1, 2, 3, 4] (reference: result = rotl(s1 * 5, 7) * 9).
        let mut rng = Rng {
            s: [1, 2, 3, 4],
            spare_normal: None,
        };
        assert_eq!(rng.next_u64(), 11520);
        assert_eq!(rng.next_u64(), 0);
        assert_eq!(rng.next_u64(), 1509978240);
        assert_eq!(rng.next_u64(), 1215971899390074240);
    }

    #[test]
    fn the_stream_for_a_seed_never_changes() {
        let mut rng = Rng::new(42);
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        let mut again = Rng::new(42);
        assert_eq!(got, (0..3).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::new(43).next_u64(), got[0]);
        assert_ne!(Rng::stream(42, 0).next_u64(), Rng::stream(42, 1).next_u64());
    }

    #[test]
    fn uniform_and_below_stay_in_range() {
        let mut rng = Rng::new(7);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            let u = rng.uniform();
            assert!((0.0..1.0).contains(&u));
            counts[rng.index(3)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn normal_has_mean_zero_and_unit_variance() {
        let mut rng = Rng::new(9);
        let n = 100_000;
        let draws: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
