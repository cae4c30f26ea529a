//! The operator's rollout plan: which version, in which stages, under which gates.
//!
//! A plan is checked once by [`RolloutPlan::validate`]; the state machine only accepts valid
//! plans. The text forms the CLI accepts (`1%,10%,50%,100%`, `10m`, `5%`) are parsed here.

use edgefleet_protocol::ModelName;
use serde::{Deserialize, Serialize};

/// What a track does when its gate fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFail {
    /// Stop the track and leave its devices as they are for an operator to decide.
    Pause,
    /// Stop the track and roll its committed devices back to their last-known-good model.
    Rollback,
}

/// A staged rollout of one model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    /// The model to roll out.
    pub model: ModelName,
    /// Its version sequence (from the signed manifest).
    pub version_seq: u64,
    /// Cumulative share of each hardware track per stage, in percent (strictly increasing, ends at 100).
    pub stages: Vec<u8>,
    /// How long a stage bakes after its last device resolved, in milliseconds.
    pub bake_ms: u64,
    /// Largest tolerated install failure rate over completed devices, in `[0, 1]`.
    pub max_failure_rate: f64,
    /// Completed devices a gate needs before it decides.
    pub min_sample: u32,
    /// Confidence of the Wilson bounds the gate decides on, in `(0, 1)`.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Largest tolerated share of dispatched devices that never answered, in `[0, 1]`.
    pub max_unreachable_rate: f64,
    /// Most deployments in flight at once for the whole rollout.
    pub max_concurrent_downloads: u32,
    /// What a failing gate does to its track.
    pub on_fail: OnFail,
    /// Longest a track's gate may hold (undecided) before the track fails by its deadline,
    /// in milliseconds, counted from the end of the bake. None: a hold waits for an operator.
    #[serde(default)]
    pub max_hold_ms: Option<u64>,
    /// What an expired hold does to its track (None: the same as `on_fail`).
    #[serde(default)]
    pub on_hold_timeout: Option<OnFail>,
    /// Inference-health gate against a control cohort (None: install outcomes only).
    #[serde(default)]
    pub health: Option<HealthGate>,
}

/// The inference-health part of a gate: the cohort of a track's devices running the new
/// version against the control cohort, the same track's devices still on the old version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthGate {
    /// Largest tolerated increase of the inference error rate, absolute (0.01 = one
    /// percentage point), decided on Wilson bounds of both cohorts.
    pub max_error_rate_increase: f64,
    /// Largest tolerated ratio of p99 latency, new over control (each cohort's figure is the
    /// median of its devices' p99 over their last report window).
    pub max_p99_ratio: f64,
    /// Inferences the new cohort must have run before the health gate decides.
    pub min_inferences: u64,
    /// A/B accuracy gate: smallest tolerated labelled-accuracy difference new − control
    /// (−0.01 = at most one percentage point worse), decided on Newcombe's interval of the
    /// difference. `None`: accuracy is not gated.
    #[serde(default)]
    pub min_accuracy_delta: Option<f64>,
    /// Labelled inferences each cohort needs before the accuracy gate decides.
    #[serde(default = "default_min_labelled")]
    pub min_labelled: u64,
}

fn default_min_labelled() -> u64 {
    100
}

fn default_confidence() -> f64 {
    0.95
}

/// A plan that cannot run, with the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The stage list is empty.
    #[error("stages: the list is empty; give cumulative percentages ending at 100%, e.g. 1%,10%,50%,100%")]
    NoStages,
    /// A stage is 0 or above 100.
    #[error("stages: stage {index} is {percent}%, expected 1% to 100%")]
    StageOutOfRange {
        /// 0-based stage index.
        index: usize,
        /// The offending value.
        percent: u64,
    },
    /// A stage does not exceed the one before.
    #[error(
        "stages: stage {index} ({percent}%) does not exceed the stage before ({previous}%); stages are cumulative and strictly increasing"
    )]
    StagesNotIncreasing {
        /// 0-based stage index.
        index: usize,
        /// Its value.
        percent: u8,
        /// The stage before.
        previous: u8,
    },
    /// The last stage is not 100%.
    #[error("stages: the last stage is {0}%, it must be 100% so every target is reached")]
    LastStageNot100(u8),
    /// A rate outside `[0, 1]` (or not a number).
    #[error("{field}: {value} is not a rate between 0 and 1 (0% to 100%)")]
    RateOutOfRange {
        /// The field.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// A confidence outside `(0, 1)`.
    #[error("confidence: {0} must be strictly between 0 and 1, e.g. 0.95")]
    Confidence(f64),
    /// A zero limit.
    #[error("{0}: must be at least 1")]
    Zero(&'static str),
    /// A latency ratio below 1 (or not a number).
    #[error("max_p99_ratio: {0} must be a number of at least 1.0 (1.5 = 50% slower tolerated)")]
    Ratio(f64),
    /// Text that does not parse.
    #[error("{field}: cannot parse {text:?}: {why}")]
    Parse {
        /// The field.
        field: &'static str,
        /// The text given.
        text: String,
        /// What was expected.
        why: &'static str,
    },
}

impl RolloutPlan {
    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), PlanError> {
        check_stages(&self.stages)?;
        check_rate("max_failure_rate", self.max_failure_rate)?;
        check_rate("max_unreachable_rate", self.max_unreachable_rate)?;
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(PlanError::Confidence(self.confidence));
        }
        if self.min_sample == 0 {
            return Err(PlanError::Zero("min_sample"));
        }
        if self.max_concurrent_downloads == 0 {
            return Err(PlanError::Zero("max_concurrent_downloads"));
        }
        if self.max_hold_ms == Some(0) {
            return Err(PlanError::Zero("max_hold"));
        }
        if let Some(h) = &self.health {
            check_rate("max_error_rate_increase", h.max_error_rate_increase)?;
            if !(h.max_p99_ratio.is_finite() && h.max_p99_ratio >= 1.0) {
                return Err(PlanError::Ratio(h.max_p99_ratio));
            }
            if h.min_inferences == 0 {
                return Err(PlanError::Zero("min_inferences"));
            }
        }
        Ok(())
    }
}

fn check_rate(field: &'static str, value: f64) -> Result<(), PlanError> {
    if (0.0..=1.0).contains(&value) { Ok(()) } else { Err(PlanError::RateOutOfRange { field, value }) }
}

/// Parses a stage list such as `1%,10%,50%,100%` (the `%` is optional) and validates its shape.
pub fn parse_stages(text: &str) -> Result<Vec<u8>, PlanError> {
    let mut stages = Vec::new();
    for (index, part) in text.split(',').enumerate() {
        let digits = part.trim().trim_end_matches('%').trim();
        let value: u64 = digits.parse().map_err(|_| PlanError::Parse {
            field: "stages",
            text: part.trim().to_owned(),
            why: "expected a percentage such as 10%",
        })?;
        let percent = u8::try_from(value).map_err(|_| PlanError::StageOutOfRange { index, percent: value })?;
        stages.push(percent);
    }
    check_stages(&stages)?;
    Ok(stages)
}

/// Stages are 1..=100, strictly increasing, and end at 100.
fn check_stages(stages: &[u8]) -> Result<(), PlanError> {
    if stages.is_empty() {
        return Err(PlanError::NoStages);
    }
    for (index, &percent) in stages.iter().enumerate() {
        if !(1..=100).contains(&percent) {
            return Err(PlanError::StageOutOfRange { index, percent: percent.into() });
        }
        if index > 0 && percent <= stages[index - 1] {
            return Err(PlanError::StagesNotIncreasing { index, percent, previous: stages[index - 1] });
        }
    }
    match stages.last() {
        Some(&last) if last != 100 => Err(PlanError::LastStageNot100(last)),
        _ => Ok(()),
    }
}

/// Parses a duration such as `10m`, `30s`, `0s`, `2h` or `500ms` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, PlanError> {
    let t = text.trim();
    let bad = |why| PlanError::Parse { field: "duration", text: t.to_owned(), why };
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let value: u64 = digits.parse().map_err(|_| bad("expected a number followed by ms, s, m or h, e.g. 10m"))?;
    let scale = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad("expected a unit of ms, s, m or h, e.g. 10m")),
    };
    value.checked_mul(scale).ok_or_else(|| bad("too long"))
}

/// Parses a rate such as `5%`, `0.5%` or `0.05` into a fraction in `[0, 1]`.
pub fn parse_rate(field: &'static str, text: &str) -> Result<f64, PlanError> {
    let t = text.trim();
    let bad = || PlanError::Parse {
        field,
        text: t.to_owned(),
        why: "expected a percentage such as 5% or a fraction such as 0.05",
    };
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => t.parse::<f64>().map_err(|_| bad())?,
    };
    check_rate(field, value)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn plan() -> RolloutPlan {
        RolloutPlan {
            model: ModelName::new("m").unwrap(),
            version_seq: 2,
            stages: vec![1, 10, 50, 100],
            bake_ms: 0,
            max_failure_rate: 0.05,
            min_sample: 20,
            confidence: 0.95,
            max_unreachable_rate: 0.2,
            max_concurrent_downloads: 100,
            on_fail: OnFail::Pause,
            max_hold_ms: None,
            on_hold_timeout: None,
            health: None,
        }
    }

    #[test]
    fn parses_stages_durations_and_rates() {
        assert_eq!(parse_stages("1%,10%,50%,100%").unwrap(), vec![1, 10, 50, 100]);
        assert_eq!(parse_stages(" 5 , 100% ").unwrap(), vec![5, 100]);
        assert_eq!(parse_duration_ms("10m").unwrap(), 600_000);
        assert_eq!(parse_duration_ms("30s").unwrap(), 30_000);
        assert_eq!(parse_duration_ms("0s").unwrap(), 0);
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert!((parse_rate("r", "5%").unwrap() - 0.05).abs() < 1e-12);
        assert!(parse_rate("r", "150%").is_err());
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("m").is_err());
    }

    #[test]
    fn bad_stage_lists_are_refused_with_the_reason() {
        assert_eq!(parse_stages("10%,50%").unwrap_err(), PlanError::LastStageNot100(50));
        assert!(matches!(parse_stages("10%,10%,100%").unwrap_err(), PlanError::StagesNotIncreasing { index: 1, .. }));
        assert!(matches!(parse_stages("0%,100%").unwrap_err(), PlanError::StageOutOfRange { index: 0, .. }));
        assert!(matches!(parse_stages("300%").unwrap_err(), PlanError::StageOutOfRange { percent: 300, .. }));
        assert!(matches!(parse_stages("ten").unwrap_err(), PlanError::Parse { .. }));
        assert!(parse_stages("").is_err());
        let msg = parse_stages("10%,50%").unwrap_err().to_string();
        assert!(msg.contains("100%"), "{msg}");
    }

    #[test]
    fn validate_checks_every_field() {
        assert_eq!(plan().validate(), Ok(()));
        let mut p = plan();
        p.stages = vec![50, 10, 100];
        assert!(matches!(p.validate(), Err(PlanError::StagesNotIncreasing { .. })));
        let mut p = plan();
        p.max_failure_rate = 1.5;
        assert!(matches!(p.validate(), Err(PlanError::RateOutOfRange { field: "max_failure_rate", .. })));
        let mut p = plan();
        p.max_unreachable_rate = f64::NAN;
        assert!(matches!(p.validate(), Err(PlanError::RateOutOfRange { field: "max_unreachable_rate", .. })));
        let mut p = plan();
        p.confidence = 1.0;
        assert!(matches!(p.validate(), Err(PlanError::Confidence(_))));
        let mut p = plan();
        p.max_concurrent_downloads = 0;
        assert_eq!(p.validate(), Err(PlanError::Zero("max_concurrent_downloads")));
        let mut p = plan();
        p.stages.clear();
        assert_eq!(p.validate(), Err(PlanError::NoStages));
    }

    #[test]
    fn confidence_defaults_to_95_percent() {
        let json = r#"{"model":"m","version_seq":1,"stages":[100],"bake_ms":0,"max_failure_rate":0.1,
            "min_sample":1,"max_unreachable_rate":0.1,"max_concurrent_downloads":1,"on_fail":"rollback"}"#;
        let p: RolloutPlan = serde_json::from_str(json).unwrap();
        assert_eq!(p.confidence, 0.95);
        assert_eq!(p.on_fail, OnFail::Rollback);
    }
}
