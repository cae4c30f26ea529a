//! Two-sample statistics on bucket counts: a reference histogram (the training data, binned by
//! the package's drift reference) against a current one (a device's or cohort's merged
//! summaries). Pure functions; `fixtures/drift/make_fixtures.py` produces the numpy/scipy
//! values the tests hold them to (1e-9).
//!
//! Definitions (`p` = reference proportions, `q` = current proportions, per bucket):
//! - **PSI** = Σ (qᵢ − pᵢ)·ln(qᵢ/pᵢ), natural log, with each proportion floored at
//!   [`PSI_FLOOR`] so an empty bucket on one side stays finite (no renormalization).
//! - **Jensen–Shannon divergence**, **base 2** (so it lies in [0, 1]):
//!   ½·KL(p‖m) + ½·KL(q‖m), m = (p+q)/2, 0·log 0 = 0. Equals scipy's
//!   `jensenshannon(p, q, base=2)**2` (scipy returns the distance, its square root).
//! - **Chi-square**: Pearson's test of homogeneity on the 2×k table [reference; current]
//!   without continuity correction, buckets empty on both sides dropped, dof = k' − 1; the
//!   reference is a sample too, which this accounts for (scipy `chi2_contingency`).
//! - **KS from bins**: D = max |F_ref − F_cur| over the bucket boundaries. The exact statistic
//!   takes the maximum over every value, and the bucket boundaries are a subset of those
//!   points, so this D is a **lower bound** on the exact two-sample KS statistic (and its
//!   p-value an upper bound). p-value from the asymptotic Kolmogorov distribution at
//!   λ = √(n·m/(n+m))·D (scipy `special.kolmogorov`).

/// Floor applied to proportions in PSI.
pub const PSI_FLOOR: f64 = 1e-4;

fn proportions(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    counts.iter().map(|c| *c as f64 / total as f64).collect()
}

/// Population stability index of `current` against `reference` (same bucket count).
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let (p, q) = (proportions(reference), proportions(current));
    p.iter()
        .zip(&q)
        .map(|(p, q)| {
            let (p, q) = (p.max(PSI_FLOOR), q.max(PSI_FLOOR));
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// Jensen–Shannon divergence, base 2, in [0, 1].
pub fn js_divergence(reference: &[u64], current: &[u64]) -> f64 {
    let (p, q) = (proportions(reference), proportions(current));
    let kl_to_mid = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    let total: f64 = p
        .iter()
        .zip(&q)
        .map(|(p, q)| {
            let m = (p + q) / 2.0;
            kl_to_mid(*p, m) + kl_to_mid(*q, m)
        })
        .sum();
    (total / 2.0).max(0.0)
}

/// A chi-square test result.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ChiSquare {
    /// Pearson's statistic.
    pub statistic: f64,
    /// Degrees of freedom.
    pub dof: u32,
    /// Upper-tail probability.
    pub p_value: f64,
}

/// Pearson's chi-square test of homogeneity on the 2×k table `[reference; current]`.
pub fn chi_square(reference: &[u64], current: &[u64]) -> ChiSquare {
    let columns: Vec<(f64, f64)> =
        reference.iter().zip(current).filter(|(r, c)| **r + **c > 0).map(|(r, c)| (*r as f64, *c as f64)).collect();
    let (n_ref, n_cur): (f64, f64) = columns.iter().fold((0.0, 0.0), |(a, b), (r, c)| (a + r, b + c));
    let n = n_ref + n_cur;
    if columns.len() < 2 || n_ref == 0.0 || n_cur == 0.0 {
        return ChiSquare { statistic: 0.0, dof: 0, p_value: 1.0 };
    }
    let statistic = columns
        .iter()
        .map(|(r, c)| {
            let column = r + c;
            let (e_r, e_c) = (column * n_ref / n, column * n_cur / n);
            (r - e_r).powi(2) / e_r + (c - e_c).powi(2) / e_c
        })
        .sum::<f64>();
    let dof = (columns.len() - 1) as u32;
    ChiSquare { statistic, dof, p_value: chi_square_sf(statistic, dof) }
}

/// Upper tail of the chi-square distribution: Q(dof/2, x/2).
pub fn chi_square_sf(x: f64, dof: u32) -> f64 {
    if dof == 0 || x.is_nan() {
        return 1.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    puruspe::gammq(f64::from(dof) / 2.0, x / 2.0).clamp(0.0, 1.0)
}

/// A Kolmogorov–Smirnov result computed from bins.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ks {
    /// D over the bucket boundaries (a lower bound on the exact statistic).
    pub statistic: f64,
    /// Asymptotic p-value at that D (an upper bound).
    pub p_value: f64,
}

/// Two-sample KS statistic from bucket counts.
pub fn ks_from_bins(reference: &[u64], current: &[u64]) -> Ks {
    let (n, m) = (reference.iter().sum::<u64>(), current.iter().sum::<u64>());
    if n == 0 || m == 0 {
        return Ks { statistic: 0.0, p_value: 1.0 };
    }
    let (mut cum_r, mut cum_c, mut d) = (0u64, 0u64, 0.0f64);
    for (r, c) in reference.iter().zip(current) {
        cum_r += r;
        cum_c += c;
        d = d.max((cum_r as f64 / n as f64 - cum_c as f64 / m as f64).abs());
    }
    let (n, m) = (n as f64, m as f64);
    let lambda = (n * m / (n + m)).sqrt() * d;
    Ks { statistic: d, p_value: kolmogorov_sf(lambda) }
}

/// Survival function of the Kolmogorov distribution, Q(λ) = P(K > λ).
pub fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 1.0;
    }
    let q = if lambda < 1.0 {
        // Jacobi theta form, fast for small λ: P(K ≤ λ) = √(2π)/λ · Σ exp(−(2k−1)²π²/(8λ²)).
        let factor = (2.0 * std::f64::consts::PI).sqrt() / lambda;
        let x = -(std::f64::consts::PI.powi(2)) / (8.0 * lambda * lambda);
        let cdf: f64 = (1..=20).map(|k| ((2 * k - 1) as f64).powi(2) * x).map(f64::exp).sum::<f64>() * factor;
        1.0 - cdf
    } else {
        // Alternating series, fast for large λ: Q = 2 Σ (−1)^(k−1) exp(−2k²λ²).
        2.0 * (1..=100)
            .map(|k| {
                let sign = if k % 2 == 1 { 1.0 } else { -1.0 };
                sign * (-2.0 * (k * k) as f64 * lambda * lambda).exp()
            })
            .sum::<f64>()
    };
    q.clamp(0.0, 1.0)
}

/// Benjamini–Hochberg step-up at false discovery rate `q`: which hypotheses are rejected.
pub fn benjamini_hochberg(p_values: &[f64], q: f64) -> Vec<bool> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p_values[*a].total_cmp(&p_values[*b]));
    // The largest rank k with p_(k) ≤ k/m · q; every hypothesis up to it is rejected.
    let cutoff = order
        .iter()
        .enumerate()
        .filter(|(rank, i)| p_values[**i] <= (rank + 1) as f64 / m as f64 * q)
        .map(|(rank, _)| rank + 1)
        .max()
        .unwrap_or(0);
    let mut rejected = vec![false; m];
    for i in &order[..cutoff] {
        rejected[*i] = true;
    }
    rejected
}

/// Wilson score interval for `successes` of `n` at normal quantile `z`.
pub fn wilson(successes: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Newcombe's hybrid score interval for the difference of two proportions a − b (method 10),
/// built from the two Wilson intervals.
pub fn newcombe_difference(a: (u64, u64), b: (u64, u64), z: f64) -> Option<(f64, f64)> {
    let (la, ua) = wilson(a.0, a.1, z)?;
    let (lb, ub) = wilson(b.0, b.1, z)?;
    let (pa, pb) = (a.0 as f64 / a.1 as f64, b.0 as f64 / b.1 as f64);
    let d = pa - pb;
    let lower = d - ((pa - la).powi(2) + (ub - pb).powi(2)).sqrt();
    let upper = d + ((ua - pa).powi(2) + (pb - lb).powi(2)).sqrt();
    Some((lower, upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_histograms_show_no_drift() {
        let a = [10, 20, 30, 40];
        assert!(psi(&a, &a).abs() < 1e-15);
        assert!(js_divergence(&a, &a).abs() < 1e-15);
        assert_eq!(chi_square(&a, &a).statistic, 0.0);
        assert_eq!(ks_from_bins(&a, &a).statistic, 0.0);
    }

    #[test]
    fn disjoint_histograms_are_maximally_divergent() {
        assert!((js_divergence(&[5, 0], &[0, 7]) - 1.0).abs() < 1e-12);
        assert!((ks_from_bins(&[5, 0], &[0, 7]).statistic - 1.0).abs() < 1e-12);
    }

    #[test]
    fn empty_sides_are_not_evidence() {
        assert_eq!(chi_square(&[1, 2], &[0, 0]).p_value, 1.0);
        assert_eq!(ks_from_bins(&[0, 0], &[1, 2]).p_value, 1.0);
    }

    #[test]
    fn benjamini_hochberg_steps_up() {
        // p sorted: 0.01 ≤ 0.0125 (1/4·0.05), 0.02 ≤ 0.025, 0.03 ≤ 0.0375, 0.2 > 0.05.
        assert_eq!(benjamini_hochberg(&[0.03, 0.2, 0.01, 0.02], 0.05), vec![true, false, true, true]);
        // Step-up: rank 3's 0.045 ≤ 0.05 rejects all three, though 0.04 > 2/3·0.05.
        assert_eq!(benjamini_hochberg(&[0.01, 0.04, 0.045], 0.05), vec![true, true, true]);
        assert_eq!(benjamini_hochberg(&[0.01, 0.04, 0.06], 0.05), vec![true, false, false]);
        assert!(benjamini_hochberg(&[], 0.05).is_empty());
    }

    #[test]
    fn kolmogorov_forms_agree_where_they_meet() {
        // Both series are exact to double precision around λ = 1.
        let theta = {
            let lambda: f64 = 1.0;
            let factor = (2.0 * std::f64::consts::PI).sqrt() / lambda;
            let x = -(std::f64::consts::PI.powi(2)) / (8.0 * lambda * lambda);
            1.0 - (1..=20).map(|k| ((2 * k - 1) as f64).powi(2) * x).map(f64::exp).sum::<f64>() * factor
        };
        assert!((kolmogorov_sf(1.0) - theta).abs() < 1e-14);
        assert!((kolmogorov_sf(1.0) - 0.26999967167735456).abs() < 1e-14);
    }

    #[test]
    fn wilson_and_newcombe_bracket_the_estimate() {
        let (l, u) = wilson(45, 50, 1.96).unwrap();
        assert!(l < 0.9 && 0.9 < u);
        let (l, u) = newcombe_difference((45, 50), (40, 50), 1.96).unwrap();
        assert!(l < 0.1 && 0.1 < u);
        assert!(wilson(0, 0, 1.96).is_none());
    }
}
