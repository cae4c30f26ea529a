//! False alarms on null data: 1,000 seeded trials in which devices see exactly the training
//! distribution. Prints the measured rates (recorded in ARCHITECTURE.md).
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet::drift::profile::{numeric_reference, summarize};
use edgefleet::drift::{DetectorSettings, Merged, Persistence, assess};
use edgefleet_protocol::drift::DriftReference;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const FEATURES: usize = 8;

/// Box–Muller: one standard normal draw.
fn normal(rng: &mut SmallRng) -> f64 {
    let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Feature i: a different shape per feature (normal, skewed, heavy-ish tails).
fn draw(rng: &mut SmallRng, i: usize) -> f64 {
    let z = normal(rng);
    match i % 3 {
        0 => 1.0 + 0.2 * z,
        1 => (0.5 * z).exp(),
        _ => z * z * (1.0 + i as f64),
    }
}

fn sample(rng: &mut SmallRng, rows: usize) -> Vec<Vec<f64>> {
    (0..FEATURES).map(|i| (0..rows).map(|_| draw(rng, i)).collect()).collect()
}

#[test]
fn null_data_rarely_flags_a_window_and_almost_never_alerts() {
    let settings = DetectorSettings::default();
    let no_effect_floor = DetectorSettings { min_psi: 0.0, ..settings };
    let (trials, windows_per_trial, rows) = (1000usize, 5, 300);
    // Also at the demo's small windows: 80 rows in 5 bins.
    small_windows_stay_quiet();
    let (mut flagged, mut flagged_tests_only, mut alerts, mut windows) = (0, 0, 0, 0);
    for trial in 0..trials {
        let mut rng = SmallRng::seed_from_u64(trial as u64);
        let training = sample(&mut rng, 2000);
        let reference = DriftReference {
            features: training.iter().enumerate().map(|(i, v)| numeric_reference(&format!("f{i}"), v, 10)).collect(),
            ..DriftReference::default()
        };
        let mut persistence = Persistence::default();
        let mut alerted = false;
        for _ in 0..windows_per_trial {
            let current = sample(&mut rng, rows);
            let merged = Merged {
                windows: 1,
                rows: rows as u64,
                features: reference.features.iter().zip(&current).map(|(r, v)| summarize(&r.binning, v)).collect(),
                ..Merged::default()
            };
            let a = assess(&reference, &merged, &settings);
            assert!(a.evaluated);
            windows += 1;
            flagged += usize::from(a.is_drifting());
            flagged_tests_only += usize::from(assess(&reference, &merged, &no_effect_floor).is_drifting());
            alerted |= persistence.record(a.is_drifting(), &settings);
        }
        alerts += usize::from(alerted);
    }
    let rate = |n: usize, of: usize| n as f64 / of as f64;
    println!(
        "null data, {trials} trials × {windows_per_trial} windows × {rows} rows × {FEATURES} features: \
         windows flagged {:.4} (tests alone, no PSI floor: {:.4}), trials alerting {:.4}",
        rate(flagged, windows),
        rate(flagged_tests_only, windows),
        rate(alerts, trials)
    );
    assert!(rate(flagged, windows) <= 0.05);
    // BH at q under the global null bounds the family-wise rate by q (default 0.01), plus slack
    // for the chi-square approximation.
    assert!(rate(flagged_tests_only, windows) <= 2.0 * settings.fdr);
    assert!(rate(alerts, trials) <= 0.001);
}

/// The demo's shape: 80-row windows, 5 quantile bins, 14 features. Prints the per-window rate.
fn small_windows_stay_quiet() {
    let settings = DetectorSettings { min_rows: 60, ..DetectorSettings::default() };
    let (mut flagged, mut windows) = (0, 0);
    for trial in 0..300u64 {
        let mut rng = SmallRng::seed_from_u64(10_000 + trial);
        let training: Vec<Vec<f64>> = (0..14).map(|i| (0..4000).map(|_| draw(&mut rng, i)).collect()).collect();
        let reference = DriftReference {
            features: training.iter().enumerate().map(|(i, v)| numeric_reference(&format!("f{i}"), v, 5)).collect(),
            ..DriftReference::default()
        };
        for _ in 0..10 {
            let merged = Merged {
                windows: 1,
                rows: 80,
                features: reference
                    .features
                    .iter()
                    .enumerate()
                    .map(|(i, r)| summarize(&r.binning, &(0..80).map(|_| draw(&mut rng, i)).collect::<Vec<_>>()))
                    .collect(),
                ..Merged::default()
            };
            windows += 1;
            flagged += usize::from(assess(&reference, &merged, &settings).is_drifting());
        }
    }
    let rate = flagged as f64 / windows as f64;
    println!("null data, 80-row windows, 5 bins, 14 features: windows flagged {rate:.4}");
    assert!(rate <= 0.02, "{rate}");
}
