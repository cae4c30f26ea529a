//! `edgefleet health`: device health states with their reasons.

use super::{Conn, print_json};
use anyhow::Result;
use std::process::ExitCode;

/// Which devices `edgefleet health` shows.
pub(crate) struct Filter {
    pub(crate) device: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) select: Option<String>,
    pub(crate) state: Option<String>,
}

/// Where the WHY column starts (DEVICE 24, STATE 10, MODEL 28, a space after each).
const REASONS_AT: usize = 24 + 1 + 10 + 1 + 28 + 1;

/// `edgefleet health`
pub(crate) fn run(conn: &Conn, filter: Filter) -> Result<ExitCode> {
    let Filter { device, model, select, state } = filter;
    let client = conn.client();
    if let Some(m) = &model {
        super::require_model(&client, m)?;
    }
    if let Some(d) = &device {
        super::require_device(&client, d)?;
    }
    let mut rows = client.health(device.as_deref(), model.as_deref())?;
    if let Some(select) = &select {
        let picked: std::collections::BTreeSet<String> =
            client.devices(select)?.into_iter().map(|d| d.id.as_str().to_string()).collect();
        rows.retain(|h| picked.contains(h.device.as_str()));
    }
    if let Some(state) = &state {
        rows.retain(|h| h.state.as_str() == state.as_str());
    }
    if conn.json {
        print_json(&rows);
        return Ok(ExitCode::SUCCESS);
    }
    let mut by_state = std::collections::BTreeMap::new();
    println!("{:<24} {:<10} {:<28} WHY", "DEVICE", "STATE", "MODEL (inferences, p99)");
    for h in &rows {
        *by_state.entry(h.state.as_str()).or_insert(0) += 1;
        let models: Vec<String> = h
            .models
            .iter()
            .map(|m| format!("{}@{} ({}, {}µs)", m.model, m.version_seq, m.inferences, m.p99_us))
            .collect();
        // The reasons column starts after the three fixed ones; long reasons wrap under it.
        let why = super::wrap(&h.reasons.join("; "), super::output_width().saturating_sub(REASONS_AT));
        println!("{:<24} {:<10} {:<28} {}", h.device.as_str(), h.state.as_str(), models.join(" "), why[0]);
        for more in &why[1..] {
            println!("{:REASONS_AT$}{more}", "");
        }
        if let Some(s) = &h.sensor {
            println!("{:<24} {}", "", sensor_line(s));
        }
    }
    println!(
        "{} device(s): {}",
        rows.len(),
        by_state.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// One line of serial sensor link health under its device.
fn sensor_line(s: &edgefleet::api::health::SensorLink) -> String {
    let who = match (&s.sensor_id, &s.firmware_version) {
        (Some(id), Some(version)) => format!("sensor {id} fw {version}"),
        _ => "sensor (no hello yet)".to_string(),
    };
    let last = match s.since_last_frame_ms {
        Some(ms) => format!("last frame {:.1} s ago", ms as f64 / 1000.0),
        None => "no frame yet".to_string(),
    };
    format!(
        "{who}: {} frames, {} CRC errors, {} resyncs, {} gaps, {} dropped, {} reconnects, {last}{}{}",
        s.frames,
        s.crc_errors,
        s.resyncs,
        s.sequence_gaps,
        s.queue_drops,
        s.reconnects,
        if s.port_open { "" } else { ", port closed" },
        if s.silent { ", SILENT" } else { "" },
    )
}
