//! The Events the controllers record. Best effort: failing to record one never fails a
//! reconcile. Notes are cut to the 1 kB the Events API allows.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};

use crate::conditions;

/// The Events API's limit on a note.
const MAX_NOTE: usize = 1000;

/// Records an Event about `object`, naming `related` too when given (the recorder folds
/// Events with one reason into a series per related object).
pub async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    object: &K,
    kind: EventType,
    reason: &str,
    action: &str,
    note: String,
    related: Option<ObjectReference>,
) {
    let event = Event {
        type_: kind,
        reason: reason.into(),
        note: Some(truncate(note, MAX_NOTE)),
        action: action.into(),
        secondary: related,
    };
    if let Err(e) = recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(kind = %K::kind(&()), name = %object.name_any(), error = %e, "could not record event");
    }
}

/// One Event when the Ready condition's status or reason changed between two
/// condition lists: Normal when it became True, Warning otherwise, with its message.
pub async fn announce_ready_transition<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    object: &K,
    previous: &[Condition],
    now: &[Condition],
) {
    let Some(ready) = conditions::ready(now) else {
        return;
    };
    if conditions::ready(previous).map(|c| (&c.status, &c.reason))
        == Some((&ready.status, &ready.reason))
    {
        return;
    }
    let kind = if ready.status == "True" {
        EventType::Normal
    } else {
        EventType::Warning
    };
    let (reason, message) = (ready.reason.clone(), ready.message.clone());
    publish(
        recorder,
        object,
        kind,
        &reason,
        "UpdateStatus",
        message,
        None,
    )
    .await;
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("abc".into(), 10), "abc");
        assert_eq!(truncate("abcdef".into(), 3), "abc");
        // 'é' is two bytes: a cut in its middle moves before it.
        assert_eq!(truncate("aé".into(), 2), "a");
    }
}
