//! Broker lifecycle decisions: registration, fencing (missed heartbeats), unfencing
//! (caught up), and controlled shutdown, with the leader and ISR changes each one implies.

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::change::{advance, first_eligible};
use crate::error::{ApiError, ApiResult};
use crate::metadata::{
    BrokerEndpoint, BrokerRegistration, MetadataImage, MetadataRecord, PartitionImage, NO_LEADER,
};

fn registered(image: &MetadataImage, id: i32) -> ApiResult<&BrokerRegistration> {
    image.broker(id).ok_or_else(|| {
        ApiError::new(
            ResponseError::BrokerIdNotRegistered,
            format!("broker {id} is not registered"),
        )
    })
}

/// What the active controller knows of the session of a registered incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// This controller processed a heartbeat (or the registration) of that incarnation
    /// within `broker.session.timeout.ms`: the process is alive.
    Live,
    /// No contact within the session, or none at all since this controller took over
    /// (a controller that just started or was just elected has heard from nobody yet).
    Expired,
}

/// Whether a broker whose last contact with this controller was `last_contact` (when the
/// controller processed its heartbeat or registration; `None`: never since it became
/// active) still holds a session at `now`. Kafka's `hasValidSession`: only contact this
/// controller saw counts, so a restarted controller does not keep a dead process's
/// registration alive on its behalf.
pub fn session_state(last_contact: Option<Instant>, now: Instant, session: Duration) -> Session {
    match last_contact {
        Some(at) if now.saturating_duration_since(at) <= session => Session::Live,
        _ => Session::Expired,
    }
}

/// Whether an unfenced broker is to be fenced for missed heartbeats at `now`. Its session
/// runs from its last contact, but never from before `heard_floor`: the moment this
/// controller became active, or the end of the latest stall of the controller itself
/// (heartbeats queued behind a stalled controller were sent in time; it would be wrong to
/// fence a broker for the controller's own delay).
pub fn session_expired(
    last_contact: Option<Instant>,
    heard_floor: Instant,
    now: Instant,
    session: Duration,
) -> bool {
    let from = last_contact.map_or(heard_floor, |at| at.max(heard_floor));
    now.saturating_duration_since(from) > session
}

/// Decides a broker registration. The new registration starts fenced. A retry of the same
/// incarnation with the same details changes nothing. A different incarnation is refused
/// while the old one is unfenced and its session live, as Kafka does
/// (DUPLICATE_BROKER_REGISTRATION): two processes with one node id must not both serve.
/// When the old incarnation's session has expired in this controller's eyes (no contact
/// within the session, or none since the controller took over, as after a restart of a
/// single node), the old process is taken for dead: it is fenced (its leaderships move,
/// as for missed heartbeats, with `unclean(topic)` deciding unclean elections) and the new
/// one registered at once, instead of waiting out a session nobody is keeping.
pub fn register_broker(
    image: &MetadataImage,
    id: i32,
    incarnation: Uuid,
    endpoints: Vec<BrokerEndpoint>,
    rack: Option<String>,
    old_session: Session,
    unclean: &dyn Fn(&str) -> bool,
) -> ApiResult<Vec<MetadataRecord>> {
    if id < 0 {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("broker id {id} is negative"),
        ));
    }
    let mut records = Vec::new();
    if let Some(old) = image.broker(id) {
        if old.incarnation == incarnation {
            if old.endpoints == endpoints && old.rack == rack {
                return Ok(Vec::new());
            }
        } else if !old.fenced {
            if old_session == Session::Live {
                return Err(ApiError::new(
                    ResponseError::DuplicateBrokerRegistration,
                    format!(
                        "broker {id} is registered by another process (incarnation {}) that is \
                         still heartbeating; retry once its session has expired",
                        old.incarnation
                    ),
                ));
            }
            records = fence_broker(image, id, unclean)?;
        }
    }
    records.push(MetadataRecord::RegisterBroker {
        id,
        incarnation,
        endpoints,
        rack,
    });
    Ok(records)
}

/// Decides unfencing a broker that has caught up: the broker may lead again, and every
/// offline partition whose ISR still holds it (it was the last in-sync replica) gets it as
/// leader. An already unfenced broker changes nothing.
pub fn unfence_broker(image: &MetadataImage, id: i32) -> ApiResult<Vec<MetadataRecord>> {
    let broker = registered(image, id)?;
    if !broker.fenced {
        return Ok(Vec::new());
    }
    let mut records = vec![MetadataRecord::UnfenceBroker { id }];
    if broker.shutting_down {
        // It may serve as a follower until it stops, but leads nothing new.
        return Ok(records);
    }
    for (topic, p) in image.partitions() {
        if p.is_offline() && p.isr.contains(&id) {
            let next = PartitionImage {
                leader: id,
                ..p.clone()
            };
            records.extend(advance(p, next).map(|n| n.to_record(topic.topic_id)));
        }
    }
    Ok(records)
}

/// Decides fencing a broker (heartbeats stopped, or it finished shutting down). It leaves
/// every ISR except where it is the last member: Kafka keeps that one so the partition can
/// come back with it without losing data. Partitions it led get the first replica (in
/// replica order) that is in the remaining ISR and live; with none they go offline, unless
/// `unclean(topic)` allows an unclean election, which picks the first live replica and
/// makes it the whole ISR (what it has is now the truth; anything else is lost).
pub fn fence_broker(
    image: &MetadataImage,
    id: i32,
    unclean: &dyn Fn(&str) -> bool,
) -> ApiResult<Vec<MetadataRecord>> {
    let broker = registered(image, id)?;
    let mut records = Vec::new();
    if !broker.fenced {
        records.push(MetadataRecord::FenceBroker { id });
    }
    let live = |b: i32| b != id && image.is_live(b);
    for (topic, p) in image.partitions() {
        if !p.isr.contains(&id) && p.leader != id {
            continue;
        }
        let mut next = p.clone();
        if next.isr.len() > 1 {
            next.isr.retain(|&b| b != id);
        }
        if p.leader == id {
            next.leader = first_eligible(&p.replicas, |b| next.isr.contains(&b) && live(b));
            if next.leader == NO_LEADER && unclean(&topic.name) {
                next.leader = first_eligible(&p.replicas, live);
                if next.leader != NO_LEADER {
                    next.isr = vec![next.leader];
                }
            }
        }
        records.extend(advance(p, next).map(|n| n.to_record(topic.topic_id)));
    }
    Ok(records)
}

/// Decides UnregisterBroker, as Kafka's controller does (`ReplicationControlManager`):
/// an unknown id is BROKER_ID_NOT_REGISTERED; otherwise the broker first leaves ISRs and
/// leaderships exactly as when it is fenced (so no partition is led by a broker the
/// cluster no longer knows), then its registration goes. Kafka does not refuse a broker
/// that is still alive, and neither does Strom: such a process learns from its next
/// heartbeat that it is unknown and registers again, fenced, as a new incarnation. The
/// replicas it holds are untouched: moving them off first is the caller's job
/// (AlterPartitionReassignments), as with `kafka-cluster.sh unregister`.
pub fn unregister_broker(
    image: &MetadataImage,
    id: i32,
    unclean: &dyn Fn(&str) -> bool,
) -> ApiResult<Vec<MetadataRecord>> {
    let mut records = fence_broker(image, id, unclean)?;
    records.push(MetadataRecord::UnregisterBroker { id });
    Ok(records)
}

/// Decides controlled shutdown, as KRaft does: marks the broker as shutting down (once),
/// moves each of its leaderships to another live ISR member, and takes it out of ISRs
/// that have other members. A partition with no other live in-sync replica goes offline
/// (its ISR keeps the broker, so it leads again when it comes back) rather than holding
/// the shutdown up: waiting could not make another replica eligible. Returns the records
/// and how many partitions went offline.
pub fn controlled_shutdown(
    image: &MetadataImage,
    id: i32,
) -> ApiResult<(Vec<MetadataRecord>, usize)> {
    let broker = registered(image, id)?;
    let mut records = Vec::new();
    if !broker.shutting_down {
        records.push(MetadataRecord::BrokerShuttingDown { id });
    }
    let live = |b: i32| b != id && image.is_live(b);
    let mut remaining = 0;
    for (topic, p) in image.partitions() {
        if !p.isr.contains(&id) && p.leader != id {
            continue;
        }
        let mut next = p.clone();
        if p.leader == id {
            let successor = first_eligible(&p.replicas, |b| p.isr.contains(&b) && live(b));
            if successor == NO_LEADER {
                remaining += 1;
            }
            next.leader = successor;
        }
        if next.isr.len() > 1 && next.leader != NO_LEADER {
            next.isr.retain(|&b| b != id);
        }
        records.extend(advance(p, next).map(|n| n.to_record(topic.topic_id)));
    }
    Ok((records, remaining))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::testkit::{apply, cluster, part, register, with_partition};

    fn never(_: &str) -> bool {
        false
    }

    #[test]
    fn registration_starts_fenced_and_refuses_a_live_duplicate() {
        let image = MetadataImage::default();
        let inc = Uuid::new_v4();
        let live = Session::Live;
        let records =
            register_broker(&image, 1, inc, vec![], Some("a".into()), live, &never).unwrap();
        let image = apply(&image, &records);
        assert!(image.brokers[&1].fenced);
        assert!(
            register_broker(&image, 1, inc, vec![], Some("a".into()), live, &never)
                .unwrap()
                .is_empty()
        );
        // Fenced: a restarted process may take over.
        assert_eq!(
            register_broker(&image, 1, Uuid::new_v4(), vec![], None, live, &never)
                .unwrap()
                .len(),
            1
        );
        let image = apply(&image, &unfence_broker(&image, 1).unwrap());
        let e = register_broker(&image, 1, Uuid::new_v4(), vec![], None, live, &never).unwrap_err();
        assert_eq!(e.error, ResponseError::DuplicateBrokerRegistration);
        let e =
            register_broker(&image, -3, Uuid::new_v4(), vec![], None, live, &never).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidRequest);
        for e in [
            unfence_broker(&image, 9).unwrap_err(),
            fence_broker(&image, 9, &never).unwrap_err(),
            controlled_shutdown(&image, 9).unwrap_err(),
        ] {
            assert_eq!(e.error, ResponseError::BrokerIdNotRegistered);
        }
    }

    #[test]
    fn a_new_incarnation_replaces_an_unfenced_one_whose_session_expired() {
        let mut image = cluster(&[1, 2]);
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 1);
        with_partition(&mut image, "solo", 0, &[1], &[1], 1);
        let old = image.brokers[&1].incarnation;
        let new = Uuid::new_v4();
        let records =
            register_broker(&image, 1, new, vec![], None, Session::Expired, &never).unwrap();
        assert!(matches!(
            records.last(),
            Some(MetadataRecord::RegisterBroker { incarnation, .. }) if *incarnation == new
        ));
        let image = apply(&image, &records);
        let b = &image.brokers[&1];
        assert!(b.fenced && b.incarnation == new && b.incarnation != old);
        // The dead process's leaderships moved as if it had been fenced for missed
        // heartbeats; its only-replica partition keeps it in the ISR and leads again
        // once the new process is unfenced.
        let t0 = part(&image, "t", 0);
        assert_eq!((t0.leader, t0.isr.clone()), (2, vec![2]));
        assert_eq!(part(&image, "solo", 0).leader, NO_LEADER);
        let image = apply(&image, &unfence_broker(&image, 1).unwrap());
        assert_eq!(part(&image, "solo", 0).leader, 1);
    }

    #[test]
    fn unregistering_removes_the_registration_after_fencing_it_out_of_isrs() {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[3, 1, 2], &[3, 1, 2], 3);
        with_partition(&mut image, "solo", 0, &[3], &[3], 3);
        let e = unregister_broker(&image, 7, &never).unwrap_err();
        assert_eq!(e.error, ResponseError::BrokerIdNotRegistered);
        let records = unregister_broker(&image, 3, &never).unwrap();
        assert!(matches!(
            records.last(),
            Some(MetadataRecord::UnregisterBroker { id: 3 })
        ));
        let image = apply(&image, &records);
        assert!(image.broker(3).is_none());
        // Leadership and ISR moved as for fencing; the replica lists are untouched.
        let t0 = part(&image, "t", 0);
        assert_eq!((t0.leader, t0.isr.clone()), (1, vec![1, 2]));
        assert_eq!(t0.replicas, vec![3, 1, 2]);
        assert_eq!(part(&image, "solo", 0).leader, NO_LEADER);
        // A second request finds nothing to unregister, as Kafka answers it.
        let e = unregister_broker(&image, 3, &never).unwrap_err();
        assert_eq!(e.error, ResponseError::BrokerIdNotRegistered);
    }

    #[test]
    fn sessions_count_only_contact_this_controller_saw() {
        let t0 = Instant::now();
        let session = Duration::from_secs(9);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(session_state(None, at(0), session), Session::Expired);
        assert_eq!(session_state(Some(t0), at(9), session), Session::Live);
        assert_eq!(session_state(Some(t0), at(10), session), Session::Expired);
        // Fencing: never from before the floor (takeover or the controller's own stall).
        assert!(!session_expired(None, at(5), at(14), session));
        assert!(session_expired(None, at(5), at(15), session));
        assert!(
            !session_expired(Some(t0), at(20), at(25), session),
            "stalled controller"
        );
        assert!(session_expired(Some(at(20)), t0, at(30), session));
        assert!(!session_expired(Some(at(20)), t0, at(29), session));
    }

    #[test]
    fn fencing_the_leader_elects_the_next_live_isr_member() {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2, 3], &[1, 2, 3], 1);
        with_partition(&mut image, "t", 1, &[2, 1, 3], &[2, 1], 2);
        with_partition(&mut image, "t", 2, &[2, 3], &[2, 3], 2);
        let image = apply(&image, &fence_broker(&image, 1, &never).unwrap());
        assert!(image.brokers[&1].fenced);
        let p0 = part(&image, "t", 0);
        assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
        assert_eq!((p0.leader_epoch, p0.partition_epoch), (6, 11));
        let p1 = part(&image, "t", 1);
        assert_eq!((p1.leader, p1.isr.clone()), (2, vec![2]));
        assert_eq!(
            (p1.leader_epoch, p1.partition_epoch),
            (5, 11),
            "leader kept"
        );
        let p2 = part(&image, "t", 2);
        assert_eq!(p2.partition_epoch, 10, "untouched");
    }

    #[test]
    fn fencing_skips_dead_isr_members_and_keeps_the_last_one() {
        let mut image = cluster(&[1, 2, 3]);
        image.apply(&MetadataRecord::FenceBroker { id: 2 });
        with_partition(&mut image, "t", 0, &[1, 2, 3], &[1, 2, 3], 1);
        with_partition(&mut image, "t", 1, &[1, 2], &[1], 1);
        let image = apply(&image, &fence_broker(&image, 1, &never).unwrap());
        assert_eq!(part(&image, "t", 0).leader, 3, "2 is fenced, so 3 leads");
        let p1 = part(&image, "t", 1);
        assert_eq!((p1.leader, p1.isr.clone()), (NO_LEADER, vec![1]));
        assert_eq!(p1.leader_epoch, 6);
        // The last in-sync replica comes back: it leads again, no data lost.
        let image = apply(&image, &unfence_broker(&image, 1).unwrap());
        let p1 = part(&image, "t", 1);
        assert_eq!(
            (p1.leader, p1.isr.clone(), p1.leader_epoch),
            (1, vec![1], 7)
        );
        assert!(unfence_broker(&image, 1).unwrap().is_empty());
    }

    #[test]
    fn unclean_election_picks_a_live_replica_only_where_enabled() {
        let mut image = cluster(&[1, 2]);
        with_partition(&mut image, "dirty", 0, &[1, 2], &[1], 1);
        with_partition(&mut image, "clean", 0, &[1, 2], &[1], 1);
        let unclean = |t: &str| t == "dirty";
        let image = apply(&image, &fence_broker(&image, 1, &unclean).unwrap());
        let dirty = part(&image, "dirty", 0);
        assert_eq!((dirty.leader, dirty.isr.clone()), (2, vec![2]));
        let clean = part(&image, "clean", 0);
        assert_eq!((clean.leader, clean.isr.clone()), (NO_LEADER, vec![1]));
    }

    #[test]
    fn fencing_an_only_replica_takes_its_partition_offline() {
        let mut image = cluster(&[1, 2]);
        with_partition(&mut image, "t", 0, &[1], &[1], 1);
        let image = apply(&image, &fence_broker(&image, 1, &|_| true).unwrap());
        assert_eq!(part(&image, "t", 0).leader, NO_LEADER);
    }

    #[test]
    fn unfencing_a_new_registration_elects_it_where_it_was_last_in_sync() {
        let mut image = cluster(&[2]);
        register(&mut image, 1, None);
        with_partition(&mut image, "t", 0, &[1, 2], &[1], NO_LEADER);
        with_partition(&mut image, "t", 1, &[1, 2], &[2], NO_LEADER);
        let image = apply(&image, &unfence_broker(&image, 1).unwrap());
        assert_eq!(part(&image, "t", 0).leader, 1);
        assert_eq!(
            part(&image, "t", 1).leader,
            NO_LEADER,
            "1 is not in that ISR"
        );
    }

    #[test]
    fn controlled_shutdown_moves_every_leadership_it_can() {
        let mut image = cluster(&[1, 2, 3]);
        with_partition(&mut image, "t", 0, &[1, 2, 3], &[1, 2, 3], 1);
        with_partition(&mut image, "t", 1, &[2, 1], &[2, 1], 2);
        with_partition(&mut image, "t", 2, &[1, 3], &[1], 1);
        with_partition(&mut image, "t", 3, &[3, 2], &[3, 2], 3);
        let (records, offline) = controlled_shutdown(&image, 1).unwrap();
        assert_eq!(offline, 1, "partition 2 has no other in-sync replica");
        let image = apply(&image, &records);
        assert!(image.brokers[&1].shutting_down && !image.is_live(1));
        let p0 = part(&image, "t", 0);
        assert_eq!(
            (p0.leader, p0.isr.clone(), p0.leader_epoch),
            (2, vec![2, 3], 6)
        );
        assert_eq!(part(&image, "t", 1).isr, vec![2]);
        let p2 = part(&image, "t", 2);
        assert_eq!(
            (p2.leader, p2.isr.clone(), p2.partition_epoch),
            (NO_LEADER, vec![1], 11),
            "offline, keeping 1 in the ISR so it leads again on return"
        );
        assert_eq!(part(&image, "t", 3).partition_epoch, 10, "not involved");
        // A retry with 3 caught up on partition 2 moves nothing more and marks nothing again.
        let mut image = image;
        with_partition(&mut image, "t", 2, &[1, 3], &[1, 3], 1);
        let (records, offline) = controlled_shutdown(&image, 1).unwrap();
        assert_eq!(offline, 0);
        assert!(!records
            .iter()
            .any(|r| matches!(r, MetadataRecord::BrokerShuttingDown { .. })));
        let image = apply(&image, &records);
        assert!(image
            .partitions()
            .all(|(_, p)| p.leader != 1 && !p.isr.contains(&1)));
        // A shutting-down broker is never chosen as a new leader.
        let image = apply(&image, &fence_broker(&image, 3, &|_| true).unwrap());
        assert_eq!(part(&image, "t", 2).leader, NO_LEADER);
    }

    #[test]
    fn controlled_shutdown_does_not_hand_leadership_to_another_shutting_down_broker() {
        let mut image = cluster(&[1, 2]);
        image.apply(&MetadataRecord::BrokerShuttingDown { id: 2 });
        with_partition(&mut image, "t", 0, &[1, 2], &[1, 2], 1);
        let (records, offline) = controlled_shutdown(&image, 1).unwrap();
        assert_eq!(offline, 1);
        let image = apply(&image, &records);
        let p = part(&image, "t", 0);
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1, 2]));
    }
}
