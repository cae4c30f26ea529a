//! `edgefleet drift ...`, `edgefleet scorecard` and `edgefleet samples`: the drift report, A/B
//! scorecard and sampled records from a running fleet manager, and the offline CSV tools
//! (compare, profile) on the same code path as the fleet.

use super::{Conn, j, print_json, s};
use anyhow::{Context, Result};
use clap::Subcommand;
use edgefleet::api::drift::{AssessmentView, DriftState};
use edgefleet::drift::compare::{compare, read_table};
use edgefleet::drift::profile::{categorical_reference, numeric_reference};
use edgefleet::drift::{Assessment, DetectorSettings};
use edgefleet_protocol::drift::DriftReference;
use std::path::PathBuf;
use std::process::ExitCode;

/// `edgefleet drift ...`
#[derive(Debug, Subcommand)]
pub(crate) enum DriftCommand {
    /// Drift per device and per cohort for a model (from the fleet manager).
    Report {
        /// Model name.
        #[arg(long)]
        model: String,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
    },
    /// The fleet's drift statistics for two CSV files (header row; one column per feature).
    /// Exits 1 when a column drifts.
    Compare {
        /// Reference data (e.g. the training set): the bins come from it.
        #[arg(long)]
        reference: PathBuf,
        /// Current data.
        #[arg(long)]
        current: PathBuf,
        /// Quantile bins per column.
        #[arg(long, default_value_t = 10)]
        bins: usize,
        /// Benjamini–Hochberg false discovery rate.
        #[arg(long, default_value_t = 0.01)]
        fdr: f64,
        /// Smallest PSI that counts as drift.
        #[arg(long, default_value_t = 0.1)]
        min_psi: f64,
    },
    /// Build a package drift reference (JSON for `package build --drift-reference`) from a
    /// training CSV: quantile bins per feature column, in column order.
    Profile {
        /// Training data (header row; one column per model input value, in input order).
        #[arg(long)]
        data: PathBuf,
        /// Quantile bins per column.
        #[arg(long, default_value_t = 10)]
        bins: usize,
        /// A column holding the model's predicted class on the training data (categorical
        /// reference for `prediction`), excluded from the features.
        #[arg(long)]
        prediction_column: Option<String>,
        /// A column holding the model's confidence (largest output) on the training data.
        #[arg(long)]
        confidence_column: Option<String>,
        /// A categorical feature column (repeatable): its integer codes become the reference's
        /// categories (devices count unseen codes as "other", with a top-K sketch of them).
        #[arg(long = "categorical")]
        categorical: Vec<String>,
        /// Where to write the JSON.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `edgefleet samples ...`
#[derive(Debug, Subcommand)]
pub(crate) enum SamplesCommand {
    /// Write the raw (input, output) records devices sampled (`[sampling] sample_rate`, or a
    /// SetSamplingPolicy) as CSV: device, version_seq, inference_id, timestamp_ms, in_0…,
    /// out_0… — a retraining dataset.
    Export {
        /// Model name.
        #[arg(long)]
        model: String,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
        /// At most this many sample batches.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Output CSV file.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a samples subcommand.
pub(crate) fn samples(conn: &Conn, command: SamplesCommand) -> Result<ExitCode> {
    let SamplesCommand::Export { model, device, limit, out } = command;
    let client = conn.client();
    super::require_model(&client, &model)?;
    if let Some(d) = &device {
        super::require_device(&client, d)?;
    }
    let records = client.samples(&model, device.as_deref(), limit)?;
    // A label column only when a device reported ground truth for a record.
    let csv = edgefleet::dataset::samples::to_csv(&records, records.iter().any(|r| r.label.is_some()));
    std::fs::write(&out, csv).with_context(|| format!("writing {}", out.display()))?;
    if conn.json {
        print_json(&serde_json::json!({"records": records.len(), "out": out.display().to_string()}));
    } else {
        println!("{} sampled record(s) of {model} → {}", records.len(), out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a drift subcommand.
pub(crate) fn run(conn: &Conn, command: DriftCommand) -> Result<ExitCode> {
    match command {
        DriftCommand::Report { model, device } => report(conn, &model, device.as_deref()),
        DriftCommand::Compare { reference, current, bins, fdr, min_psi } => {
            anyhow::ensure!(bins >= 2, "--bins must be at least 2");
            let settings = DetectorSettings { fdr, min_psi, ..DetectorSettings::default() };
            settings.validate().map_err(|(field, why)| anyhow::anyhow!("{}: {why}", field.replace("drift.", "--")))?;
            let reference_table = read_table(&reference)?;
            let current_table = read_table(&current)?;
            let result = compare(&reference_table, &current_table, &current, bins, &settings)?;
            let drifting = result.assessment.is_drifting();
            if conn.json {
                print_json(&serde_json::to_value(&result)?);
            } else {
                println!(
                    "{} reference rows, {} current rows, {} quantile bins; BH FDR {}, PSI ≥ {}",
                    result.reference_rows, result.current_rows, result.bins, fdr, min_psi
                );
                print_assessment(
                    &result.assessment,
                    Some(&result.columns.iter().map(|c| c.ks_exact).collect::<Vec<_>>()),
                );
            }
            Ok(if drifting { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        DriftCommand::Profile { data, bins, prediction_column, confidence_column, categorical, out } => {
            anyhow::ensure!(bins >= 2, "--bins must be at least 2");
            let table = read_table(&data)?;
            let mut reference = DriftReference::default();
            let codes_of = |values: &[f64]| {
                let mut codes: Vec<i64> = values.iter().filter(|v| v.is_finite()).map(|v| *v as i64).collect();
                codes.sort_unstable();
                codes.dedup();
                codes
            };
            for c in &categorical {
                anyhow::ensure!(table.column(c).is_some(), "--categorical {c:?}: no such column in {}", data.display());
            }
            for (name, values) in table.columns.iter().zip(&table.values) {
                if Some(name) == prediction_column.as_ref() {
                    reference.prediction = Some(categorical_reference(name, codes_of(values), values));
                } else if categorical.contains(name) {
                    reference.features.push(categorical_reference(name, codes_of(values), values));
                } else if Some(name) == confidence_column.as_ref() {
                    reference.confidence = Some(numeric_reference(name, values, bins));
                } else {
                    reference.features.push(numeric_reference(name, values, bins));
                }
            }
            for (flag, column) in
                [("--prediction-column", &prediction_column), ("--confidence-column", &confidence_column)]
            {
                if let Some(c) = column {
                    anyhow::ensure!(table.column(c).is_some(), "{flag} {c:?}: no such column in {}", data.display());
                }
            }
            let json = serde_json::to_vec_pretty(&reference)?;
            std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "drift reference: {} feature(s){}{} from {} rows → {}",
                reference.features.len(),
                if reference.prediction.is_some() { ", prediction" } else { "" },
                if reference.confidence.is_some() { ", confidence" } else { "" },
                table.rows(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_assessment(a: &Assessment, ks_exact: Option<&[f64]>) {
    println!(
        "{:<20} {:>7} {:>8} {:>8} {:>10} {:>10} {:>8} {:>9}  DRIFT",
        "FEATURE", "COUNT", "PSI", "JS(b2)", "CHI2", "CHI2 p", "KS≥", "KS exact"
    );
    for (i, f) in a.features.iter().enumerate() {
        let exact = ks_exact.and_then(|k| k.get(i)).map_or("-".to_string(), |k| format!("{k:.4}"));
        let p = match f.chi_square.p_value {
            0.0 => "<1e-300".to_string(),
            p => format!("{p:.2e}"),
        };
        println!(
            "{:<20} {:>7} {:>8.4} {:>8.4} {:>10.2} {:>10} {:>8.4} {:>9}  {}",
            f.name,
            f.count,
            f.psi,
            f.js,
            f.chi_square.statistic,
            p,
            f.ks.statistic,
            exact,
            if f.drifting {
                f.reason.as_str()
            } else if f.tested {
                "-"
            } else {
                "(too few values)"
            }
        );
    }
}

fn report(conn: &Conn, model: &str, device: Option<&str>) -> Result<ExitCode> {
    let client = conn.client();
    super::require_model(&client, model)?;
    if let Some(d) = device {
        super::require_device(&client, d)?;
    }
    let answer = client.drift(model, device)?;
    if conn.json {
        print_json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    let devices = &answer.devices;
    let drifting = devices.iter().filter(|d| d.state == DriftState::Drifting).count();
    println!("model {model}: {} device(s), {drifting} drifting", devices.len());
    println!("{:<24} {:<9} {:<8} {:<16} WHY", "DEVICE", "STATE", "VERSION", "RECENT WINDOWS");
    for d in devices {
        let recent: String =
            d.recent_windows.iter().flatten().map(|drifted| if *drifted { 'D' } else { '.' }).collect();
        println!(
            "{:<24} {:<9} {:<8} {:<16} {}",
            d.device.as_str(),
            d.state.as_str(),
            s(&d.version_seq),
            recent,
            d.reasons.join("; ")
        );
    }
    println!(
        "\n{:<36} {:>7} {:>9} {:>8}  DRIFTING FEATURES (merged windows)",
        "COHORT", "DEVICES", "DRIFTING", "MAX PSI"
    );
    for c in &answer.cohorts {
        let features = drifting_features(c.assessment.as_ref());
        let max_psi = c.assessment.as_ref().and_then(|a| a.max_psi).map_or("-".into(), |p| format!("{p:.3}"));
        println!(
            "{:<36} {:>7} {:>9} {:>8}  {}",
            c.cohort,
            c.devices,
            c.drifting_devices,
            max_psi,
            if features.is_empty() { "-".to_string() } else { features.join(", ") }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn drifting_features(a: Option<&AssessmentView>) -> Vec<String> {
    a.map(|a| a.drifting.iter().map(|f| f.feature.clone()).collect()).unwrap_or_default()
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{:.2}%", x * 100.0))
}

fn interval(v: Option<(f64, f64)>) -> String {
    match v {
        Some((l, u)) => format!("[{:.2}%, {:.2}%]", l * 100.0, u * 100.0),
        None => "-".into(),
    }
}

/// `edgefleet scorecard ROLLOUT`
pub(crate) fn scorecard(conn: &Conn, id: &str) -> Result<ExitCode> {
    let answer = conn.client().scorecard(id)?;
    if conn.json {
        print_json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "rollout {} — {}@{} ({})",
        answer.rollout,
        answer.model,
        answer.version_seq,
        super::rollouts::status_word(answer.status)
    );
    for t in &answer.tracks {
        let (new, control, diff) = (&t.new, &t.control, &t.difference);
        let control_version = control.version_seq.map_or("none yet".to_string(), |v| format!("v{v}"));
        println!("\n[{}] new v{} vs control {control_version}", t.hardware, j(&new.version_seq));
        println!("  {:<24} {:>22} {:>22}", "", "NEW", "CONTROL");
        let row = |name: &str, a: String, b: String| println!("  {name:<24} {a:>22} {b:>22}");
        row("devices with windows", s(&new.devices_with_windows), s(&control.devices_with_windows));
        row("rows summarized", s(&new.rows), s(&control.rows));
        row("accuracy (labelled)", pct(new.accuracy.accuracy), pct(control.accuracy.accuracy));
        row("  95% CI", interval(new.accuracy.ci95), interval(control.accuracy.ci95));
        row("  labels", s(&new.accuracy.labelled), s(&control.accuracy.labelled));
        let errors = |c: &edgefleet::api::drift::CohortCard| c.latency_errors.as_ref().and_then(|l| l.error_rate);
        let p99 = |c: &edgefleet::api::drift::CohortCard| c.latency_errors.as_ref().and_then(|l| l.p99_us);
        row("error rate", pct(errors(new)), pct(errors(control)));
        row("p99 latency µs (median)", s(&p99(new)), s(&p99(control)));
        if diff.latency_errors_from == "gate decision" {
            println!("  (error rate and latency as the gate saw them: no device runs the new version now)");
        }
        let drift = |v: Option<&AssessmentView>| {
            let features = drifting_features(v);
            match v.and_then(|a| a.max_psi) {
                Some(p) if features.is_empty() => format!("none (max PSI {p:.3})"),
                Some(p) => format!("{} (max PSI {p:.3})", features.join(",")),
                None => "-".into(),
            }
        };
        row("drift vs reference", drift(new.drift_vs_reference.as_ref()), drift(control.drift_vs_reference.as_ref()));
        let shift = diff.prediction_shift.as_ref();
        println!(
            "  accuracy difference {} (95% CI {}); p99 ratio {}; prediction shift PSI {} (chi-square p {})",
            pct(diff.accuracy_delta),
            interval(diff.accuracy_delta_ci95),
            diff.p99_ratio.map_or("-".into(), |r| format!("{r:.2}")),
            finite(shift.map(|p| p.psi)).map_or("-".into(), |p| format!("{p:.4}")),
            finite(shift.map(|p| p.chi2_p)).map_or("-".into(), |p| format!("{p:.2e}")),
        );
        if let Some(gate) = &t.gate {
            let verdict = gate.health.as_ref().map_or("no health gate", |h| super::rollouts::verdict_word(h.verdict));
            println!("  gate: {} ({verdict})", gate.decision);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A statistic sent as `null` (not finite) reads back as NaN: shown as missing, as before.
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| !x.is_nan())
}
