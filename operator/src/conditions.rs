//! Status conditions that do not churn: `lastTransitionTime` moves only when a condition's
//! status flips, so GitOps tools (Argo CD, Flux) see no change on an idle resync.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const NOT_READY: &str = "NotReady";
pub const WARNING: &str = "Warning";
/// True while a rolling restart is under way or waiting; see `roll::roller`.
pub const ROLLING_RESTART: &str = "RollingRestart";

/// The Ready condition among `conditions`.
pub fn ready(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == READY)
}

/// A condition as the reconciler decides it, before timestamps.
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    pub kind: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Decided {
    pub fn new(
        kind: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Decided {
            kind,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Ready, NotReady and Warning for one outcome: `problem` is `None` when ready, else the
/// reason and message of what is wrong; `warnings` are reasons and messages that do not stop
/// the resource from working.
pub fn decide(
    problem: Option<(&str, String)>,
    ready_message: &str,
    warnings: &[(&str, String)],
) -> Vec<Decided> {
    let mut out = match problem {
        None => vec![
            Decided::new(READY, true, "Ready", ready_message),
            Decided::new(NOT_READY, false, "Ready", ready_message),
        ],
        Some((reason, message)) => vec![
            Decided::new(READY, false, reason, message.clone()),
            Decided::new(NOT_READY, true, reason, message),
        ],
    };
    out.push(if warnings.is_empty() {
        Decided::new(WARNING, false, "NoWarnings", "")
    } else {
        let reason = warnings
            .iter()
            .map(|(r, _)| *r)
            .collect::<Vec<_>>()
            .join(",");
        let message = warnings
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Decided::new(WARNING, true, reason, message)
    });
    out
}

/// Turns decided conditions into `metav1.Condition`s, keeping each previous
/// `lastTransitionTime` unless the status changed.
pub fn merge(
    previous: &[Condition],
    decided: Vec<Decided>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    decided
        .into_iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" }.to_string();
            let since = previous
                .iter()
                .find(|c| c.type_ == d.kind && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: d.kind.to_string(),
                status,
                reason: d.reason,
                message: d.message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// Whether the resource's Ready condition is True.
pub fn is_ready(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = merge(
            &[],
            decide(Some(("Pending", "0/3 ready".into())), "ok", &[]),
            Some(1),
            at(100),
        );
        assert_eq!(first.len(), 3);
        assert!(first
            .iter()
            .all(|c| c.last_transition_time == Time(at(100))));

        // Same status, new message: time kept.
        let second = merge(
            &first,
            decide(Some(("Pending", "2/3 ready".into())), "ok", &[]),
            Some(1),
            at(200),
        );
        assert_eq!(second[0].message, "2/3 ready");
        assert!(second
            .iter()
            .all(|c| c.last_transition_time == Time(at(100))));

        // Ready flips: Ready and NotReady move, Warning stays.
        let third = merge(&second, decide(None, "3/3 ready", &[]), Some(2), at(300));
        let get = |t: &str| {
            third
                .iter()
                .find(|c| c.type_ == t)
                .expect("condition present")
        };
        assert_eq!(get(READY).status, "True");
        assert_eq!(get(READY).last_transition_time, Time(at(300)));
        assert_eq!(get(NOT_READY).status, "False");
        assert_eq!(get(NOT_READY).last_transition_time, Time(at(300)));
        assert_eq!(get(WARNING).last_transition_time, Time(at(100)));
        assert_eq!(get(READY).observed_generation, Some(2));
        assert!(is_ready(&third));
        assert!(!is_ready(&second));
    }

    #[test]
    fn warnings_join_into_one_condition() {
        let c = decide(None, "ok", &[("A", "first".into()), ("B", "second".into())]);
        let w = c
            .iter()
            .find(|c| c.kind == WARNING)
            .expect("warning condition");
        assert!(w.status);
        assert_eq!(w.reason, "A,B");
        assert_eq!(w.message, "first; second");
    }
}
