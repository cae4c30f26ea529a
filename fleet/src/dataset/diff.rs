//! `edgefleet dataset diff A B`: what changed between two dataset versions.
//!
//! - **Schema**: columns only in B (added), only in A (removed), and in both with another
//!   kind (changed).
//! - **Distributions**: every column in both with the same kind, B against A, through the
//!   fleet's drift code ([`crate::drift`]): A is the reference. Numeric columns are binned at
//!   A's quantiles ([`numeric_reference`], as a package's drift reference is built) and also
//!   get the exact two-sample KS statistic ([`ks_exact`]); categorical columns get one bucket
//!   per value seen in either version ([`categorical_reference`]). [`assess`] then computes
//!   PSI, JS, chi-square and binned KS, and decides drift with one Benjamini–Hochberg family
//!   across the columns, exactly as the fleet decides it for a device window.

use super::DatasetVersion;
use super::snapshot::{Column, ColumnKind, Table, Values};
use crate::drift::compare::ks_exact;
use crate::drift::profile::{categorical_reference, numeric_reference, summarize};
use crate::drift::{DetectorSettings, Merged, assess};
use edgefleet_protocol::drift::DriftReference;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A column present in both versions with different kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KindChange {
    /// Column.
    pub name: String,
    /// Its kind in A.
    pub a: ColumnKind,
    /// Its kind in B.
    pub b: ColumnKind,
}

/// One column's distribution, B against A. Statistics that are not finite are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ColumnDiff {
    /// Column.
    pub name: String,
    /// Its kind (the same in both).
    pub kind: ColumnKind,
    /// Non-missing values in A and in B.
    pub a_count: u64,
    /// Non-missing values in B.
    pub b_count: u64,
    /// Missing share in A (numeric columns; empty cells and NaN).
    pub a_missing_rate: Option<f64>,
    /// Missing share in B.
    pub b_missing_rate: Option<f64>,
    /// Mean in A (numeric columns).
    pub a_mean: Option<f64>,
    /// Mean in B.
    pub b_mean: Option<f64>,
    /// Population stability index.
    pub psi: Option<f64>,
    /// Jensen–Shannon divergence, base 2.
    pub js: Option<f64>,
    /// Pearson's chi-square statistic.
    pub chi_square: Option<f64>,
    /// Its p-value.
    pub chi_square_p: Option<f64>,
    /// KS from the bins (a lower bound on the exact one; numeric columns).
    pub ks: Option<f64>,
    /// The exact two-sample KS statistic (numeric columns).
    pub ks_exact: Option<f64>,
    /// Whether B had enough values to be tested (`min_rows`).
    pub tested: bool,
    /// Whether the column drifts (the fleet's rule).
    pub drifting: bool,
    /// Why, in words (empty when not drifting).
    pub reason: String,
}

/// `GET /v1/datasets/{name}/{version}/diff?against=`: B (`against`) compared with A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatasetDiff {
    /// A, `name@N`.
    pub a: String,
    /// B, `name@N`.
    pub b: String,
    /// Whether both have the same dataset digest.
    pub same_content: bool,
    /// Rows in A.
    pub a_rows: u64,
    /// Rows in B.
    pub b_rows: u64,
    /// Columns only in B.
    pub added: Vec<Column>,
    /// Columns only in A.
    pub removed: Vec<Column>,
    /// Columns whose kind changed.
    pub kind_changed: Vec<KindChange>,
    /// Distributions of the columns in both, in A's column order.
    pub columns: Vec<ColumnDiff>,
    /// Quantile bins for numeric columns.
    pub bins: usize,
    /// Whether any column drifts.
    pub drifting: bool,
}

/// What the assessment does not say about a column.
struct Sides {
    kind: ColumnKind,
    counts: (u64, u64),
    means: (Option<f64>, Option<f64>),
    missing: (Option<f64>, Option<f64>),
    ks_exact: Option<f64>,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn mean_and_missing(values: &[f64]) -> (u64, Option<f64>, Option<f64>) {
    let present: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let missing = (!values.is_empty()).then(|| (values.len() - present.len()) as f64 / values.len() as f64);
    let mean = (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64);
    (present.len() as u64, mean.and_then(finite), missing)
}

/// Compares `b` (with its parsed table) against `a`.
pub fn diff(
    a: &DatasetVersion,
    a_table: &Table,
    b: &DatasetVersion,
    b_table: &Table,
    bins: usize,
    settings: &DetectorSettings,
) -> DatasetDiff {
    let b_kinds: BTreeMap<&str, (usize, ColumnKind)> =
        b_table.columns.iter().enumerate().map(|(i, c)| (c.name.as_str(), (i, c.kind))).collect();
    let a_names: Vec<&str> = a_table.columns.iter().map(|c| c.name.as_str()).collect();
    let added = b_table.columns.iter().filter(|c| !a_names.contains(&c.name.as_str())).cloned().collect();
    let mut removed = Vec::new();
    let mut kind_changed = Vec::new();
    let mut profile = DriftReference::default();
    let mut merged = Merged { windows: 1, rows: b_table.rows, ..Merged::default() };
    let mut extra = Vec::new();
    for (ai, column) in a_table.columns.iter().enumerate() {
        let Some(&(bi, b_kind)) = b_kinds.get(column.name.as_str()) else {
            removed.push(column.clone());
            continue;
        };
        if b_kind != column.kind {
            kind_changed.push(KindChange { name: column.name.clone(), a: column.kind, b: b_kind });
            continue;
        }
        match (&a_table.values[ai], &b_table.values[bi]) {
            (Values::Numeric(x), Values::Numeric(y)) => {
                let feature = numeric_reference(&column.name, x, bins);
                merged.features.push(summarize(&feature.binning, y));
                profile.features.push(feature);
                let ((a_count, a_mean, a_missing), (b_count, b_mean, b_missing)) =
                    (mean_and_missing(x), mean_and_missing(y));
                extra.push(Sides {
                    kind: ColumnKind::Numeric,
                    counts: (a_count, b_count),
                    means: (a_mean, b_mean),
                    missing: (a_missing, b_missing),
                    ks_exact: finite(ks_exact(x, y)),
                });
            }
            (Values::Categorical(x), Values::Categorical(y)) => {
                // One code per value seen in either version, in sorted order.
                let mut seen: Vec<&str> = x.iter().chain(y).map(String::as_str).collect();
                seen.sort_unstable();
                seen.dedup();
                let code = |v: &String| seen.binary_search(&v.as_str()).map_or(f64::NAN, |i| i as f64);
                let (xc, yc): (Vec<f64>, Vec<f64>) = (x.iter().map(code).collect(), y.iter().map(code).collect());
                let feature = categorical_reference(&column.name, (0..seen.len() as i64).collect(), &xc);
                merged.features.push(summarize(&feature.binning, &yc));
                profile.features.push(feature);
                extra.push(Sides {
                    kind: ColumnKind::Categorical,
                    counts: (x.len() as u64, y.len() as u64),
                    means: (None, None),
                    missing: (None, None),
                    ks_exact: None,
                });
            }
            _ => kind_changed.push(KindChange { name: column.name.clone(), a: column.kind, b: b_kind }),
        }
    }
    let assessment = assess(&profile, &merged, settings);
    let columns: Vec<ColumnDiff> = assessment
        .features
        .iter()
        .zip(extra)
        .map(|(f, sides)| ColumnDiff {
            name: f.name.clone(),
            kind: sides.kind,
            a_count: sides.counts.0,
            b_count: sides.counts.1,
            a_missing_rate: sides.missing.0,
            b_missing_rate: sides.missing.1,
            a_mean: sides.means.0,
            b_mean: sides.means.1,
            psi: finite(f.psi),
            js: finite(f.js),
            chi_square: finite(f.chi_square.statistic),
            chi_square_p: finite(f.chi_square.p_value),
            // Categories have no order: KS only means something for numeric columns.
            ks: if sides.kind == ColumnKind::Numeric { finite(f.ks.statistic) } else { None },
            ks_exact: sides.ks_exact,
            tested: f.tested,
            drifting: f.drifting,
            reason: f.reason.clone(),
        })
        .collect();
    DatasetDiff {
        a: a.label(),
        b: b.label(),
        same_content: a.digest == b.digest,
        a_rows: a.rows,
        b_rows: b.rows,
        added,
        removed,
        kind_changed,
        drifting: columns.iter().any(|c| c.drifting),
        columns,
        bins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Provenance;
    use crate::dataset::snapshot::{parse, snapshot};

    fn version(name: &str, bytes: &[u8]) -> (DatasetVersion, Table) {
        let s = snapshot(bytes).expect("valid");
        let v = DatasetVersion {
            name: name.into(),
            version: 1,
            digest: s.digest,
            data: s.data,
            bytes: bytes.len() as u64,
            rows: s.rows,
            schema: s.columns,
            provenance: Provenance::default(),
        };
        (v, parse(bytes).expect("valid"))
    }

    fn csv(rows: impl Iterator<Item = (f64, &'static str, f64)>) -> Vec<u8> {
        let mut out = String::from("x,site,gone\n");
        for (x, site, g) in rows {
            out.push_str(&format!("{x},{site},{g}\n"));
        }
        out.into_bytes()
    }

    #[test]
    fn schema_changes_and_shifted_columns_are_found() {
        let a_bytes = csv((0..500).map(|i| (f64::from(i % 50), if i % 2 == 0 { "p1" } else { "p2" }, 1.0)));
        let mut b_text = String::from("x,site,gone,new\n");
        for i in 0..500 {
            b_text.push_str(&format!("{},{},oops,1\n", f64::from(i % 50) + 30.0, if i % 2 == 0 { "p1" } else { "p2" }));
        }
        let (a, at) = version("a", &a_bytes);
        let (b, bt) = version("b", b_text.as_bytes());
        let d = diff(&a, &at, &b, &bt, 10, &DetectorSettings::default());
        assert_eq!(d.added.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["new"]);
        assert!(d.removed.is_empty());
        assert_eq!(
            d.kind_changed,
            vec![KindChange { name: "gone".into(), a: ColumnKind::Numeric, b: ColumnKind::Categorical }]
        );
        assert_eq!(
            d.columns.iter().map(|c| (c.name.as_str(), c.kind)).collect::<Vec<_>>(),
            [("x", ColumnKind::Numeric), ("site", ColumnKind::Categorical)]
        );
        let (x, site) = (&d.columns[0], &d.columns[1]);
        assert!(x.drifting && x.ks_exact.is_some_and(|k| k > 0.5), "{x:?}");
        assert!(!site.drifting && site.psi.is_some_and(|p| p < 1e-9), "{site:?}");
        assert!(d.drifting && !d.same_content);
        // JSON round trip: every statistic is finite or null.
        let json = serde_json::to_string(&d).expect("json");
        assert_eq!(serde_json::from_str::<DatasetDiff>(&json).expect("parse"), d);
    }

    #[test]
    fn a_version_against_itself_shows_nothing() {
        let bytes = csv((0..300).map(|i| (f64::from(i), "p", f64::from(i % 3))));
        let (a, at) = version("a", &bytes);
        let d = diff(&a, &at, &a, &at, 10, &DetectorSettings::default());
        assert!(d.same_content && !d.drifting && d.added.is_empty() && d.kind_changed.is_empty());
        assert!(
            d.columns.iter().all(|c| c.psi.is_some_and(|p| p.abs() < 1e-12) && c.ks_exact.is_none_or(|k| k == 0.0))
        );
    }
}
