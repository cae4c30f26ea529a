//! Confidence bounds for gate decisions: the Wilson score interval.
//!
//! A gate never decides on a point estimate: with `k` failures out of `n` completed devices it
//! asks whether the whole Wilson interval lies above (fail) or below (pass) the threshold.

use serde::{Deserialize, Serialize};

/// A two-sided confidence interval for a proportion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound, in `[0, 1]`.
    pub lower: f64,
    /// Upper bound, in `[0, 1]`.
    pub upper: f64,
}

/// The z score of a two-sided interval at `confidence` (0.95 → 1.96).
///
/// `confidence` is clamped into `(0, 1)`; the plan validates it before it gets here.
pub fn z_for_confidence(confidence: f64) -> f64 {
    let c = confidence.clamp(1e-12, 1.0 - 1e-12);
    inverse_normal_cdf(1.0 - (1.0 - c) / 2.0)
}

/// Wilson score interval for `k` events out of `n` trials at z score `z`.
///
/// `n == 0` knows nothing: `[0, 1]`. `k` above `n` is treated as `n`.
pub fn wilson(k: u64, n: u64, z: f64) -> Interval {
    if n == 0 {
        return Interval { lower: 0.0, upper: 1.0 };
    }
    let n_f = n as f64;
    let p = k.min(n) as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = p + z2 / (2.0 * n_f);
    let margin = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    Interval { lower: ((centre - margin) / denom).clamp(0.0, 1.0), upper: ((centre + margin) / denom).clamp(0.0, 1.0) }
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9).
///
/// `p` must be in `(0, 1)`; values outside are clamped to ±38 (far beyond any useful z).
pub fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    const P_LOW: f64 = 0.024_25;
    if p.is_nan() || p <= 0.0 {
        return -38.0;
    }
    if p >= 1.0 {
        return 38.0;
    }
    if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn wilson_matches_known_values() {
        let i = wilson(5, 20, 1.96);
        assert!(close(i.lower, 0.1119, 1e-4) && close(i.upper, 0.4687, 1e-4), "{i:?}");
        // 0 of 10: lower 0, upper z²/(n+z²).
        let i = wilson(0, 10, 1.96);
        assert_eq!(i.lower, 0.0);
        assert!(close(i.upper, 0.2775, 1e-4), "{i:?}");
        // 10 of 10 mirrors it.
        let i = wilson(10, 10, 1.96);
        assert!(close(i.lower, 0.7225, 1e-4) && close(i.upper, 1.0, 1e-12), "{i:?}");
        // 50 of 100.
        let i = wilson(50, 100, 1.96);
        assert!(close(i.lower, 0.4038, 1e-4) && close(i.upper, 0.5962, 1e-4), "{i:?}");
        assert_eq!(wilson(0, 0, 1.96), Interval { lower: 0.0, upper: 1.0 });
    }

    #[test]
    fn z_scores_match_tables() {
        assert!(close(z_for_confidence(0.95), 1.959_964, 1e-6));
        assert!(close(z_for_confidence(0.99), 2.575_829, 1e-6));
        assert!(close(z_for_confidence(0.90), 1.644_854, 1e-6));
        assert!(close(inverse_normal_cdf(0.5), 0.0, 1e-12));
        assert!(close(inverse_normal_cdf(0.001), -3.090_232, 1e-6));
        assert!(close(inverse_normal_cdf(0.999), 3.090_232, 1e-6));
    }

    #[test]
    fn bounds_contain_the_point_estimate_and_narrow_with_n() {
        for n in 1..200u64 {
            for k in [0, n / 3, n] {
                let i = wilson(k, n, 1.96);
                let p = k as f64 / n as f64;
                assert!(i.lower <= p + 1e-12 && p <= i.upper + 1e-12, "k={k} n={n} {i:?}");
            }
        }
        let small = wilson(1, 10, 1.96);
        let large = wilson(100, 1000, 1.96);
        assert!(large.upper - large.lower < small.upper - small.lower);
    }
}
