//! A human-readable manifest summary, shared by `edgefleet package inspect` and
//! `edgefleet-agent verify` so operators see the same thing on both sides.

use super::manifest::Manifest;
use core::fmt;

/// Displays a manifest as aligned `field  value` lines.
#[derive(Debug, Clone, Copy)]
pub struct ManifestSummary<'a>(pub &'a Manifest);

impl fmt::Display for ManifestSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        writeln!(f, "  model        {} {} (version seq {})", m.name, m.label, m.version_seq)?;
        writeln!(f, "  min agent    {}", m.min_agent_version)?;
        for spec in &m.inputs {
            writeln!(f, "  input        {spec}")?;
        }
        for spec in &m.outputs {
            writeln!(f, "  output       {spec}")?;
        }
        for v in &m.variants {
            write!(f, "  variant      {} {} {} bytes sha256 {}", v.hardware, v.precision, v.size, v.digest)?;
            if let Some(kind) = &v.accelerator_kind {
                write!(f, " ({kind})")?;
            }
            writeln!(f, " tolerance abs {} rel {}", v.golden_tolerance.abs, v.golden_tolerance.rel)?;
        }
        writeln!(f, "  golden       {} validation vector(s)", m.golden.len())?;
        writeln!(f, "  drift ref    {} feature(s)", m.drift_reference.features.len())?;
        let l = &m.lineage;
        write!(f, "  lineage      created_at_ms {}", l.created_at_ms)?;
        if let Some(run) = &l.training_run_id {
            write!(f, ", run {run}")?;
        }
        if let Some(d) = &l.dataset_digest {
            write!(f, ", dataset {d}")?;
        }
        if let Some(d) = &l.pipeline_spec_digest {
            write!(f, ", pipeline {d}")?;
        }
        if let Some(rev) = &l.code_revision {
            write!(f, ", code {rev}")?;
        }
        if let Some(parent) = l.parent_version_seq {
            write!(f, ", parent seq {parent}")?;
        }
        writeln!(f)
    }
}
