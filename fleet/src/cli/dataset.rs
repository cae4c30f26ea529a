//! `edgefleet dataset create|list|show|diff|export`: versioned datasets (fleet/DATASETS.md),
//! all kept by the fleet manager; this side only talks to its API.

use super::{Conn, ms_ago, print_json};
use anyhow::{Context, Result};
use clap::{ArgGroup, Subcommand};
use edgefleet::api::datasets::{DatasetDiff, DatasetVersion, FromSamplesRequest};
use edgefleet::dataset::split_ref;
use edgefleet_protocol::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `edgefleet dataset ...`
#[derive(Debug, Subcommand)]
pub(crate) enum DatasetCommand {
    /// Snapshot a CSV file, or the fleet's sampled device records, as the next version of
    /// NAME (`NAME@N`). The same content as the latest version returns that version.
    #[command(group(ArgGroup::new("source").required(true).args(["from_csv", "from_samples"])))]
    Create {
        /// Dataset name (letters, digits, '.', '_', '-').
        name: String,
        /// A CSV file: a header row, then one row per record.
        #[arg(long, value_name = "FILE")]
        from_csv: Option<PathBuf>,
        /// The sampled (input, output, label) records the devices sent for --model.
        #[arg(long, requires = "model")]
        from_samples: bool,
        /// With --from-samples: the model.
        #[arg(long, requires = "from_samples")]
        model: Option<String>,
        /// With --from-samples: only devices this selector picks (hw=gpu,site=plant-3).
        #[arg(long, requires = "from_samples")]
        select: Option<String>,
        /// With --from-samples: only records this recent (30m, 1h, 7d is 168h).
        #[arg(long, requires = "from_samples")]
        since: Option<String>,
        /// With --from-samples: only records with a ground-truth label.
        #[arg(long, requires = "from_samples")]
        labelled_only: bool,
    },
    /// Every dataset with its latest version.
    List,
    /// One dataset's versions (NAME), or one version in full (NAME@3, NAME@sha256:<hex>).
    Show {
        /// NAME or NAME@VERSION.
        dataset: String,
    },
    /// Schema and distribution differences of B against A (the fleet's drift statistics:
    /// A is the reference).
    Diff {
        /// A: NAME or NAME@VERSION.
        a: String,
        /// B: NAME or NAME@VERSION.
        b: String,
        /// Quantile bins for numeric columns.
        #[arg(long, default_value_t = 10)]
        bins: usize,
        /// Fewest values a column needs to be tested.
        #[arg(long, default_value_t = 100)]
        min_rows: u64,
        /// Benjamini–Hochberg false discovery rate.
        #[arg(long, default_value_t = 0.01)]
        fdr: f64,
        /// Smallest PSI that counts as drift.
        #[arg(long, default_value_t = 0.1)]
        min_psi: f64,
    },
    /// Write a version's CSV, byte for byte as it was snapshotted (its digest is checked).
    Export {
        /// NAME or NAME@VERSION.
        dataset: String,
        /// Output CSV file.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a `dataset` subcommand.
pub(crate) fn run(conn: &Conn, command: DatasetCommand) -> Result<ExitCode> {
    let client = conn.client();
    match command {
        DatasetCommand::Create { name, from_csv, model, select, since, labelled_only, .. } => {
            let answer = match (from_csv, model) {
                (Some(file), _) => {
                    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                    let file_name = file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                    client.create_dataset(&name, &file_name, &bytes)?
                }
                (None, Some(model)) => {
                    let request =
                        FromSamplesRequest { model, select: select.unwrap_or_default(), since, labelled_only };
                    client.create_dataset_from_samples(&name, &request)?
                }
                (None, None) => anyhow::bail!("give --from-csv FILE or --from-samples --model M"),
            };
            if conn.json {
                print_json(&answer);
            } else {
                let d = &answer.dataset;
                if answer.created {
                    println!("created {} ({} rows, {} columns)", d.label(), d.rows, d.schema.len());
                } else {
                    println!("unchanged: the content equals the latest version, {} (no new version)", d.label());
                }
                println!("  digest  sha256:{}", d.digest);
                println!("  data    sha256:{} ({} bytes)", d.data, d.bytes);
            }
        }
        DatasetCommand::List => {
            let list = client.datasets()?;
            if conn.json {
                print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<28} {:>8} {:>8} {:>8} {:<14} {:<12} DIGEST",
                "DATASET", "VERSIONS", "ROWS", "COLUMNS", "SOURCE", "CREATED"
            );
            for d in &list {
                let v = &d.latest;
                println!(
                    "{:<28} {:>8} {:>8} {:>8} {:<14} {:<12} sha256:{}",
                    v.label(),
                    d.versions,
                    v.rows,
                    v.schema.len(),
                    v.provenance.source,
                    ms_ago(v.provenance.created_at_ms),
                    short(&v.digest)
                );
            }
        }
        DatasetCommand::Show { dataset } => {
            if dataset.contains('@') {
                let (name, version) = split_ref(&dataset);
                let v = client.dataset_version(name, version)?;
                if conn.json {
                    print_json(&v);
                } else {
                    print_version(&v);
                }
            } else {
                let detail = client.dataset(&dataset)?;
                if conn.json {
                    print_json(&detail);
                    return Ok(ExitCode::SUCCESS);
                }
                println!("{:<8} {:>8} {:<14} {:<16} {:<12} DIGEST", "VERSION", "ROWS", "SOURCE", "BY", "CREATED");
                for v in &detail.versions {
                    println!(
                        "{:<8} {:>8} {:<14} {:<16} {:<12} sha256:{}",
                        v.version,
                        v.rows,
                        v.provenance.source,
                        v.provenance.created_by,
                        ms_ago(v.provenance.created_at_ms),
                        short(&v.digest)
                    );
                }
                if let Some(latest) = detail.versions.last() {
                    println!();
                    print_version(latest);
                }
            }
        }
        DatasetCommand::Diff { a, b, bins, min_rows, fdr, min_psi } => {
            let (name, version) = split_ref(&a);
            let query = [
                ("bins", bins.to_string()),
                ("min_rows", min_rows.to_string()),
                ("fdr", fdr.to_string()),
                ("min_psi", min_psi.to_string()),
            ];
            let d = client.diff_datasets(name, version, &b, &query)?;
            if conn.json {
                print_json(&d);
            } else {
                print_diff(&d);
            }
        }
        DatasetCommand::Export { dataset, out } => {
            let (name, version) = split_ref(&dataset);
            // Pin the number first, so the bytes are those of the version shown.
            let v = client.dataset_version(name, version)?;
            let bytes = client.dataset_data(&v.name, &v.version.to_string())?;
            let got = Digest::sha256(&bytes);
            anyhow::ensure!(
                got == v.data,
                "{}: the fleet manager sent bytes with digest sha256:{got}, not the dataset's sha256:{}; nothing written",
                v.label(),
                v.data
            );
            write_atomically(&out, &bytes)?;
            if conn.json {
                print_json(&serde_json::json!({
                    "dataset": v.label(),
                    "digest": v.digest,
                    "data": v.data,
                    "bytes": bytes.len(),
                    "out": out.display().to_string(),
                }));
            } else {
                println!(
                    "{} → {} ({} rows, {} bytes, sha256:{} verified)",
                    v.label(),
                    out.display(),
                    v.rows,
                    bytes.len(),
                    v.data
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn short(d: &Digest) -> String {
    d.to_hex()[..16].to_string()
}

fn write_atomically(out: &Path, bytes: &[u8]) -> Result<()> {
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.partial", out.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, out)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", out.display()))
}

fn print_version(v: &DatasetVersion) {
    let p = &v.provenance;
    println!("{} — {} rows, {} bytes", v.label(), v.rows, v.bytes);
    println!("  digest      sha256:{}", v.digest);
    println!("  data        sha256:{}", v.data);
    println!("  created     by {} {}", p.created_by, ms_ago(p.created_at_ms));
    match p.source.as_str() {
        "samples" => {
            let mut how = vec![format!("samples of {}", p.model.as_deref().unwrap_or("-"))];
            how.extend(p.select.as_ref().map(|s| format!("select {s}")));
            how.extend(p.since_ms.map(|ms| format!("since {}", super::rollouts::duration(ms))));
            if p.labelled_only {
                how.push("labelled only".into());
            }
            println!("  source      {}", how.join(", "));
        }
        _ => println!("  source      {}{}", p.source, p.file.as_ref().map(|f| format!(" ({f})")).unwrap_or_default()),
    }
    if !p.devices.is_empty() {
        println!("  devices     {}", p.devices.join(", "));
    }
    if let Some(t) = p.time_range {
        println!("  rows from   {} to {} (device clock, ms)", t.from_ms, t.to_ms);
    }
    if !p.model_versions.is_empty() {
        let versions: Vec<String> = p.model_versions.iter().map(|m| format!("{}@{}", m.model, m.version_seq)).collect();
        println!("  served by   {}", versions.join(", "));
    }
    println!("  columns");
    for c in &v.schema {
        println!("    {:<24} {}", c.name, c.kind.as_str());
    }
}

fn stat(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

fn print_diff(d: &DatasetDiff) {
    println!(
        "{} ({} rows) → {} ({} rows){}",
        d.a,
        d.a_rows,
        d.b,
        d.b_rows,
        if d.same_content { ": same content" } else { "" }
    );
    for c in &d.added {
        println!("  + column {} ({})", c.name, c.kind.as_str());
    }
    for c in &d.removed {
        println!("  - column {} ({})", c.name, c.kind.as_str());
    }
    for c in &d.kind_changed {
        println!("  ~ column {}: {} → {}", c.name, c.a.as_str(), c.b.as_str());
    }
    if d.columns.is_empty() {
        return;
    }
    println!(
        "{:<20} {:<11} {:>10} {:>10} {:>8} {:>8} {:>10} {:>8} {:>9}  DRIFT",
        "COLUMN", "KIND", "MEAN A", "MEAN B", "PSI", "JS(b2)", "CHI2 p", "KS≥", "KS exact"
    );
    for c in &d.columns {
        let p = match c.chi_square_p {
            Some(0.0) => "<1e-300".to_string(),
            Some(p) => format!("{p:.2e}"),
            None => "-".into(),
        };
        println!(
            "{:<20} {:<11} {:>10} {:>10} {:>8} {:>8} {:>10} {:>8} {:>9}  {}",
            c.name,
            c.kind.as_str(),
            stat(c.a_mean, 3),
            stat(c.b_mean, 3),
            stat(c.psi, 4),
            stat(c.js, 4),
            p,
            stat(c.ks, 4),
            stat(c.ks_exact, 4),
            if c.drifting {
                c.reason.as_str()
            } else if c.tested {
                "-"
            } else {
                "(too few values)"
            }
        );
    }
}
