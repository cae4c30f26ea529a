//! The fleet's drift statistics against numpy/scipy values (fixtures/drift/make_fixtures.py),
//! to 1e-9 relative.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet::drift::compare::{compare, read_table};
use edgefleet::drift::detector::DetectorSettings;
use edgefleet::drift::stats;
use edgefleet_protocol::drift::Binning;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/drift")
}

fn load(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(name)).unwrap()).unwrap()
}

#[track_caller]
fn close(what: &str, got: f64, want: f64) {
    let tolerance = 1e-9 * want.abs().max(1e-6);
    assert!((got - want).abs() <= tolerance, "{what}: got {got:e}, scipy {want:e}");
}

fn counts(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn histogram_statistics_match_scipy() {
    let cases = load("stats_cases.json");
    assert_eq!(f(&cases["psi_floor"]), stats::PSI_FLOOR);
    for (i, c) in cases["histograms"].as_array().unwrap().iter().enumerate() {
        let (r, cur) = (counts(&c["reference"]), counts(&c["current"]));
        close(&format!("case {i} psi"), stats::psi(&r, &cur), f(&c["psi"]));
        close(&format!("case {i} js"), stats::js_divergence(&r, &cur), f(&c["js"]));
        let chi = stats::chi_square(&r, &cur);
        close(&format!("case {i} chi2"), chi.statistic, f(&c["chi2"]));
        assert_eq!(u64::from(chi.dof), c["chi2_dof"].as_u64().unwrap(), "case {i} dof");
        close(&format!("case {i} chi2 p"), chi.p_value, f(&c["chi2_p"]));
        let ks = stats::ks_from_bins(&r, &cur);
        close(&format!("case {i} ks"), ks.statistic, f(&c["ks"]));
        close(&format!("case {i} ks p"), ks.p_value, f(&c["ks_p"]));
    }
}

#[test]
fn distributions_match_scipy() {
    let cases = load("stats_cases.json");
    for c in cases["kolmogorov"].as_array().unwrap() {
        close(&format!("kolmogorov({})", c["lambda"]), stats::kolmogorov_sf(f(&c["lambda"])), f(&c["sf"]));
    }
    for c in cases["chi2_sf"].as_array().unwrap() {
        let dof = c["dof"].as_u64().unwrap() as u32;
        close(&format!("chi2.sf({}, {dof})", c["x"]), stats::chi_square_sf(f(&c["x"]), dof), f(&c["sf"]));
    }
    for c in cases["benjamini_hochberg"].as_array().unwrap() {
        let p: Vec<f64> = c["p"].as_array().unwrap().iter().map(f).collect();
        let want: Vec<bool> = c["rejected"].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect();
        assert_eq!(stats::benjamini_hochberg(&p, f(&c["q"])), want, "p = {p:?}");
    }
}

#[test]
fn csv_comparison_matches_numpy_and_bounds_the_exact_ks() {
    let expected = load("compare_expected.json");
    let reference = read_table(&fixtures().join("reference.csv")).unwrap();
    let current_path = fixtures().join("current.csv");
    let current = read_table(&current_path).unwrap();
    let bins = expected["bins"].as_u64().unwrap() as usize;
    let result = compare(&reference, &current, &current_path, bins, &DetectorSettings::default()).unwrap();
    let columns = expected["columns"].as_array().unwrap();
    assert_eq!(result.assessment.features.len(), columns.len());
    for ((got, extra), want) in result.assessment.features.iter().zip(&result.columns).zip(columns) {
        let name = want["name"].as_str().unwrap();
        assert_eq!(got.name, name);
        let edges: Vec<f64> = want["edges"].as_array().unwrap().iter().map(f).collect();
        let profile = edgefleet::drift::profile::numeric_reference(name, reference.column(name).unwrap(), bins);
        assert_eq!(profile.binning, Binning::Numeric { edges }, "{name} edges");
        assert_eq!(profile.counts, counts(&want["reference_counts"]), "{name} reference counts");
        close(&format!("{name} psi"), got.psi, f(&want["psi"]));
        close(&format!("{name} js"), got.js, f(&want["js"]));
        close(&format!("{name} chi2"), got.chi_square.statistic, f(&want["chi2"]));
        close(&format!("{name} chi2 p"), got.chi_square.p_value, f(&want["chi2_p"]));
        close(&format!("{name} ks"), got.ks.statistic, f(&want["ks"]));
        close(&format!("{name} ks p"), got.ks.p_value, f(&want["ks_p"]));
        close(&format!("{name} exact ks"), extra.ks_exact, f(&want["ks_exact"]));
        assert!(got.ks.statistic <= extra.ks_exact + 1e-12, "{name}: binned KS must be a lower bound");
        assert_eq!(got.missing, want["missing"].as_u64().unwrap(), "{name} missing");
        close(&format!("{name} mean"), got.mean.unwrap(), f(&want["mean"]));
        close(&format!("{name} std"), got.std.unwrap(), f(&want["std"]));
    }
    let drifting: Vec<&str> = result.assessment.drifting().map(|f| f.name.as_str()).collect();
    assert_eq!(drifting, ["crest", "temp"], "the unchanged column must not be flagged");
}
