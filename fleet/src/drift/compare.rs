//! `edgefleet drift compare`: the fleet's drift statistics on two CSV files. The reference
//! file is binned exactly as a package's drift reference is built ([`super::profile`]), the
//! current file is summarized against those bins, and [`super::detector::assess`] computes the
//! statistics: the same code path the fleet runs on device summaries.

use super::detector::{Assessment, DetectorSettings, assess};
use super::merge::Merged;
use super::profile::{numeric_reference, summarize};
use edgefleet_protocol::drift::DriftReference;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Why a comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The file could not be read or is not CSV.
    #[error("{path}: {detail}")]
    Read {
        /// File.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A cell is not a number.
    #[error(
        "{path}: line {line}, column {column:?}: {value:?} is not a number (leave it empty or write NaN for a missing value)"
    )]
    NotANumber {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Column name.
        column: String,
        /// The cell.
        value: String,
    },
    /// The current file lacks a reference column.
    #[error("{path} has no column {column:?} (the reference has it)")]
    MissingColumn {
        /// File.
        path: PathBuf,
        /// Column name.
        column: String,
    },
}

/// A numeric table: column names and values per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Header.
    pub columns: Vec<String>,
    /// `values[c][row]`.
    pub values: Vec<Vec<f64>>,
}

impl Table {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// The values of `column`.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.columns.iter().position(|c| c == name).map(|i| self.values[i].as_slice())
    }
}

/// Reads a CSV file with a header row; empty cells and `NaN` are missing values.
pub fn read_table(path: &Path) -> Result<Table, CompareError> {
    let read_err = |detail: String| CompareError::Read { path: path.to_path_buf(), detail };
    let mut reader =
        csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(|e| read_err(e.to_string()))?;
    let columns: Vec<String> =
        reader.headers().map_err(|e| read_err(e.to_string()))?.iter().map(str::to_string).collect();
    if columns.is_empty() {
        return Err(read_err("no header row".into()));
    }
    let mut values = vec![Vec::new(); columns.len()];
    for record in reader.records() {
        let record = record.map_err(|e| read_err(e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        for (i, cell) in record.iter().enumerate() {
            let value = if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
                f64::NAN
            } else {
                cell.parse::<f64>().map_err(|_| CompareError::NotANumber {
                    path: path.to_path_buf(),
                    line,
                    column: columns[i].clone(),
                    value: cell.to_string(),
                })?
            };
            values[i].push(value);
        }
    }
    Ok(Table { columns, values })
}

/// The comparison of one column.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnComparison {
    /// The exact two-sample KS statistic on the raw values (the binned one is a lower bound).
    pub ks_exact: f64,
}

/// `drift compare`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Quantile bins per column.
    pub bins: usize,
    /// Reference rows.
    pub reference_rows: usize,
    /// Current rows.
    pub current_rows: usize,
    /// The fleet's statistics per column, in the reference's column order.
    pub assessment: Assessment,
    /// Extra per-column figures, same order.
    pub columns: Vec<ColumnComparison>,
    /// The detector settings used.
    pub settings: DetectorSettings,
}

/// Compares `current` with `reference`, column by column.
pub fn compare(
    reference: &Table,
    current: &Table,
    current_path: &Path,
    bins: usize,
    settings: &DetectorSettings,
) -> Result<Comparison, CompareError> {
    let mut profile = DriftReference::default();
    let mut merged = Merged { windows: 1, rows: current.rows() as u64, ..Merged::default() };
    let mut columns = Vec::new();
    for (name, values) in reference.columns.iter().zip(&reference.values) {
        let now = current
            .column(name)
            .ok_or_else(|| CompareError::MissingColumn { path: current_path.to_path_buf(), column: name.clone() })?;
        let feature = numeric_reference(name, values, bins);
        merged.features.push(summarize(&feature.binning, now));
        profile.features.push(feature);
        columns.push(ColumnComparison { ks_exact: ks_exact(values, now) });
    }
    Ok(Comparison {
        bins,
        reference_rows: reference.rows(),
        current_rows: current.rows(),
        assessment: assess(&profile, &merged, settings),
        columns,
        settings: *settings,
    })
}

/// The exact two-sample KS statistic over the finite values of `a` and `b`.
pub fn ks_exact(a: &[f64], b: &[f64]) -> f64 {
    let sorted = |v: &[f64]| {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        s.sort_by(f64::total_cmp);
        s
    };
    let (a, b) = (sorted(a), sorted(b));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_ks_matches_hand_computation() {
        assert_eq!(ks_exact(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
        assert!((ks_exact(&[1.0, 2.0], &[3.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!((ks_exact(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn bad_cells_and_missing_columns_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = dir.path().join("a.csv");
        std::fs::write(&a, "x,y\n1,2\n3,oops\n").unwrap_or_else(|e| panic!("{e}"));
        let err = read_table(&a).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("line 3") && err.contains("\"y\"") && err.contains("oops"), "{err}");
        std::fs::write(&a, "x,y\n1,\n3,NaN\n").unwrap_or_else(|e| panic!("{e}"));
        let t = read_table(&a).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.values[1].iter().all(|v| v.is_nan()));
        let other = Table { columns: vec!["x".into()], values: vec![vec![1.0]] };
        let err = compare(&t, &other, Path::new("b.csv"), 4, &DetectorSettings::default()).err();
        assert!(err.is_some_and(|e| e.to_string().contains("no column \"y\"")));
    }
}
