//! Where new partitions' replicas go: Kafka's assignment, which spreads replicas and
//! preferred leaders (first replicas) evenly over the live brokers and, when the brokers
//! name racks, puts each partition's replicas in as many different racks as it can.
//! Like Kafka's StripedReplicaPlacer it also uses fenced brokers, but only for followers
//! and only when the live ones are too few for the replication factor: a cluster with a
//! broker down can still create a topic of RF 3 (Kafka's __consumer_offsets, made on the
//! first group's use), whose replica on the fenced broker joins the ISR when it is back.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::metadata::MetadataImage;

/// What placement needs to know about a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub rack: Option<String>,
    /// Registered but fenced: may hold a follower, never a new partition's leader, and
    /// is left out of the new partition's ISR.
    #[serde(default)]
    pub fenced: bool,
}

/// The live brokers: registered, unfenced, not shutting down.
pub fn live_broker_infos(image: &MetadataImage) -> Vec<BrokerInfo> {
    image
        .live_brokers()
        .into_iter()
        .map(|b| BrokerInfo {
            id: b.id,
            rack: b.rack.clone(),
            fenced: false,
        })
        .collect()
}

/// The brokers placement may use, as Kafka's usable brokers: the live ones and the fenced
/// ones (marked), not those shutting down.
pub fn placeable_broker_infos(image: &MetadataImage) -> Vec<BrokerInfo> {
    let mut brokers = live_broker_infos(image);
    brokers.extend(
        image
            .brokers
            .values()
            .filter(|b| b.fenced && !b.shutting_down)
            .map(|b| BrokerInfo {
                id: b.id,
                rack: b.rack.clone(),
                fenced: true,
            }),
    );
    brokers
}

/// Replicas for partitions `first_partition..first_partition + count` of `topic`.
///
/// Kafka's scheme: brokers in a fixed order (racks alternating when rack-aware); partition
/// `p`'s first replica is broker `(p + start) % n`, so preferred leaders rotate over every
/// broker; followers sit at a distance from the first that shifts by one every `n`
/// partitions, so followers rotate too. Kafka draws `start` and the initial shift at
/// random; here they come from a hash of the topic name, which spreads single-partition
/// topics over the brokers just as well, keeps the decision a pure function, and makes
/// CreatePartitions (which passes the existing count as `first_partition`) continue the
/// very spread the topic was created with.
///
/// Fenced brokers (`BrokerInfo::fenced`) are used only when the live ones are fewer than
/// `rf`, as Kafka only turns to its fenced list once the unfenced one is exhausted: every
/// live broker then holds a replica, and the remaining followers rotate over the fenced
/// brokers by partition.
pub(crate) fn place(
    topic: &str,
    first_partition: i32,
    count: i32,
    rf: i16,
    brokers: &[BrokerInfo],
) -> ApiResult<BTreeMap<i32, Vec<i32>>> {
    let (fenced, live): (Vec<BrokerInfo>, Vec<BrokerInfo>) =
        brokers.iter().cloned().partition(|b| b.fenced);
    if live.is_empty() && !fenced.is_empty() {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            "all brokers are currently fenced: a new partition needs a live leader",
        ));
    }
    let order = broker_order(&live)?;
    let n = order.len();
    if rf < 1 {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            format!("replication factor must be at least 1, got {rf}"),
        ));
    }
    let rf = rf as usize;
    if rf > n + fenced.len() {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {rf} is larger than the {} registered broker(s)",
                n + fenced.len()
            ),
        ));
    }
    let extra = rf.saturating_sub(n);
    let rf = rf - extra;
    let mut fenced_ids: Vec<i32> = fenced.iter().map(|b| b.id).collect();
    fenced_ids.sort_unstable();
    let seed = name_hash(topic);
    let start = (seed % n as u64) as usize;
    let base_shift = ((seed >> 32) % n as u64) as usize;
    let rack_count = order
        .iter()
        .filter_map(|(_, rack)| *rack)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Ok((first_partition..first_partition + count)
        .map(|p| {
            let p_index = p.max(0) as usize;
            let first = (p_index + start) % n;
            let shift = base_shift + p_index / n;
            let replicas = if rack_count == 0 {
                followers_plain(first, shift, rf, n)
            } else {
                followers_rack_aware(first, shift * rack_count, rf, &order, rack_count)
            };
            let mut ids: Vec<i32> = replicas.into_iter().map(|i| order[i].0).collect();
            ids.extend((0..extra).map(|k| fenced_ids[(p_index + k) % fenced_ids.len()]));
            (p, ids)
        })
        .collect())
}

/// Brokers in placement order: by id, or, when every broker has a rack, alternating
/// racks (first broker of each rack, then the second of each, ...) so consecutive
/// positions are in different racks.
fn broker_order(brokers: &[BrokerInfo]) -> ApiResult<Vec<(i32, Option<&str>)>> {
    let mut by_id: BTreeMap<i32, Option<&str>> = BTreeMap::new();
    for b in brokers {
        by_id.insert(b.id, b.rack.as_deref());
    }
    if by_id.is_empty() {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            "no live brokers to place replicas on",
        ));
    }
    let unracked: Vec<i32> = by_id
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(id, _)| *id)
        .collect();
    if unracked.len() == by_id.len() {
        return Ok(by_id.into_iter().collect());
    }
    if !unracked.is_empty() {
        // Kafka refuses too ("Not all brokers have rack information"): a rack-aware spread
        // cannot be promised, and silently dropping it would hide a misconfiguration.
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!(
                "not all brokers have rack information: broker(s) {unracked:?} have no broker.rack \
                 while others do; set broker.rack on every broker or on none, or give an explicit \
                 replica assignment"
            ),
        ));
    }
    let mut racks: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in &by_id {
        if let Some(rack) = rack {
            racks.entry(rack).or_default().push(*id);
        }
    }
    let deepest = racks.values().map(Vec::len).max().unwrap_or(0);
    let mut order = Vec::with_capacity(by_id.len());
    for round in 0..deepest {
        for (rack, ids) in &racks {
            if let Some(id) = ids.get(round) {
                order.push((*id, Some(*rack)));
            }
        }
    }
    Ok(order)
}

/// Position of the `j`-th follower: somewhere among the other `n - 1` brokers, never the
/// first replica's own position.
fn follower_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    (first + 1 + (shift + j) % (n - 1)) % n
}

fn followers_plain(first: usize, shift: usize, rf: usize, n: usize) -> Vec<usize> {
    let mut replicas = vec![first];
    replicas.extend((0..rf - 1).map(|j| follower_index(first, shift, j, n)));
    replicas
}

/// Walks the follower positions as `followers_plain` does but skips a broker whose rack
/// already holds a replica until every rack holds one, so with at least `rf` racks no two
/// replicas share a rack.
fn followers_rack_aware(
    first: usize,
    shift: usize,
    rf: usize,
    order: &[(i32, Option<&str>)],
    rack_count: usize,
) -> Vec<usize> {
    let n = order.len();
    let mut replicas = vec![first];
    let mut racks_used = vec![order[first].1];
    let mut step = 0;
    for _ in 1..rf {
        let acceptable = |i: usize| {
            !replicas.contains(&i)
                && (racks_used.len() >= rack_count || !racks_used.contains(&order[i].1))
        };
        // Every other position is visited within n - 1 steps, and one is acceptable: a rack
        // without a replica has a broker without one, and rf <= n.
        let found = (0..n - 1)
            .map(|d| step + d)
            .find(|&s| acceptable(follower_index(first, shift, s, n)));
        let chosen = match found {
            Some(s) => {
                step = s + 1;
                follower_index(first, shift, s, n)
            }
            None => match (0..n).find(|i| !replicas.contains(i)) {
                Some(i) => i,
                None => break,
            },
        };
        if !racks_used.contains(&order[chosen].1) {
            racks_used.push(order[chosen].1);
        }
        replicas.push(chosen);
    }
    replicas
}

/// FNV-1a: a stable hash written out here because std's `DefaultHasher` may change between
/// Rust releases and the placement should not.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    fn plain(n: i32) -> Vec<BrokerInfo> {
        (1..=n)
            .map(|id| BrokerInfo {
                id,
                rack: None,
                fenced: false,
            })
            .collect()
    }

    fn racked(n: i32, racks: i32) -> Vec<BrokerInfo> {
        (1..=n)
            .map(|id| BrokerInfo {
                id,
                rack: Some(format!("rack-{}", id % racks)),
                fenced: false,
            })
            .collect()
    }

    fn counts(placement: &BTreeMap<i32, Vec<i32>>, leaders_only: bool) -> HashMap<i32, usize> {
        let mut c = HashMap::new();
        for replicas in placement.values() {
            let take = if leaders_only { 1 } else { replicas.len() };
            for b in &replicas[..take] {
                *c.entry(*b).or_default() += 1;
            }
        }
        c
    }

    fn spread(c: &HashMap<i32, usize>, brokers: usize) -> usize {
        let max = c.values().copied().max().unwrap_or(0);
        let min = if c.len() < brokers {
            0
        } else {
            c.values().copied().min().unwrap_or(0)
        };
        max - min
    }

    #[test]
    fn leaders_and_replicas_are_balanced_without_racks() {
        for n in 1..=7 {
            for rf in 1..=n as i16 {
                for partitions in [1, n, 2 * n + 1, 5 * n] {
                    let p = place("orders", 0, partitions, rf, &plain(n)).unwrap();
                    assert_eq!(p.len(), partitions as usize);
                    for replicas in p.values() {
                        let distinct: BTreeSet<_> = replicas.iter().collect();
                        assert_eq!(distinct.len(), rf as usize, "{replicas:?}");
                    }
                    let leaders = counts(&p, true);
                    assert!(
                        spread(&leaders, n as usize) <= 1,
                        "n={n} rf={rf} {leaders:?}"
                    );
                    let all = counts(&p, false);
                    if partitions % n == 0 {
                        assert_eq!(spread(&all, n as usize), 0, "n={n} rf={rf} {all:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_rack_gets_one_replica_when_there_are_enough_racks() {
        for racks in 1..=4 {
            for per_rack in 1..=3 {
                let n = racks * per_rack;
                for rf in 1..=n as i16 {
                    let p = place("t", 0, 3 * n, rf, &racked(n, racks)).unwrap();
                    for replicas in p.values() {
                        let distinct: BTreeSet<_> = replicas.iter().collect();
                        assert_eq!(distinct.len(), rf as usize);
                        let used: BTreeSet<i32> = replicas.iter().map(|b| b % racks).collect();
                        assert_eq!(
                            used.len(),
                            (rf as usize).min(racks as usize),
                            "racks={racks} n={n} rf={rf} {replicas:?}"
                        );
                    }
                    let leaders = counts(&p, true);
                    assert!(spread(&leaders, n as usize) <= 1, "{leaders:?}");
                    let all = counts(&p, false);
                    assert!(spread(&all, n as usize) <= rf as usize, "{all:?}");
                }
            }
        }
    }

    #[test]
    fn uneven_racks_still_spread_over_racks() {
        // Racks of 3, 1 and 1 brokers: every partition with rf 3 still uses all racks.
        let brokers: Vec<BrokerInfo> = [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "c")]
            .into_iter()
            .map(|(id, r)| BrokerInfo {
                id,
                rack: Some(r.into()),
                fenced: false,
            })
            .collect();
        let rack_of = |b: i32| brokers.iter().find(|x| x.id == b).unwrap().rack.clone();
        let p = place("x", 0, 20, 3, &brokers).unwrap();
        for replicas in p.values() {
            let used: BTreeSet<_> = replicas.iter().map(|b| rack_of(*b)).collect();
            assert_eq!(used.len(), 3, "{replicas:?}");
        }
    }

    #[test]
    fn more_partitions_continue_the_spread() {
        let brokers = plain(4);
        let whole = place("t", 0, 12, 2, &brokers).unwrap();
        let mut pieces = place("t", 0, 5, 2, &brokers).unwrap();
        pieces.extend(place("t", 5, 7, 2, &brokers).unwrap());
        assert_eq!(whole, pieces);
    }

    #[test]
    fn single_partition_topics_do_not_all_land_on_one_broker() {
        let brokers = plain(3);
        let firsts: BTreeSet<i32> = (0..30)
            .map(|i| place(&format!("topic-{i}"), 0, 1, 1, &brokers).unwrap()[&0][0])
            .collect();
        assert_eq!(firsts.len(), 3);
    }

    #[test]
    fn fenced_brokers_fill_only_the_followers_the_live_ones_cannot() {
        let mut brokers = plain(4);
        brokers[3].fenced = true; // broker 4
                                  // Enough live brokers: the fenced one gets nothing, as Kafka prefers unfenced ones.
        let p = place("t", 0, 12, 3, &brokers).unwrap();
        assert!(p.values().all(|r| !r.contains(&4)), "{p:?}");
        assert_eq!(p, place("t", 0, 12, 3, &plain(3)).unwrap());
        // RF 4 on 3 live: every partition has the three live ones, led by one of them,
        // and the fenced broker as its last follower.
        let p = place("t", 0, 6, 4, &brokers).unwrap();
        for replicas in p.values() {
            assert_eq!(replicas.len(), 4);
            assert_eq!(replicas[3], 4, "{replicas:?}");
            let mut live = replicas[..3].to_vec();
            live.sort_unstable();
            assert_eq!(live, vec![1, 2, 3]);
        }
        // Two fenced followers needed, two fenced brokers: both, rotating by partition.
        let mut two_down = plain(4);
        two_down[2].fenced = true;
        two_down[3].fenced = true;
        let p = place("t", 0, 4, 3, &two_down).unwrap();
        for (i, replicas) in p.values().enumerate() {
            assert!([1, 2].contains(&replicas[0]), "{replicas:?}");
            assert!([3, 4].contains(&replicas[2]), "{replicas:?}");
            assert_ne!(replicas[1], replicas[2]);
            let fenced = p.values().nth((i + 1) % 4).unwrap()[2];
            assert_ne!(
                replicas[2], fenced,
                "consecutive partitions alternate: {p:?}"
            );
        }
        // More than registered, or nobody live to lead: refused.
        let e = place("t", 0, 1, 5, &brokers).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicationFactor);
        let mut all_fenced = plain(2);
        all_fenced.iter_mut().for_each(|b| b.fenced = true);
        let e = place("t", 0, 1, 1, &all_fenced).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicationFactor);
        assert!(e.message.contains("fenced"), "{}", e.message);
    }

    #[test]
    fn impossible_requests_are_refused() {
        let e = place("t", 0, 1, 4, &plain(3)).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicationFactor);
        let e = place("t", 0, 1, 0, &plain(3)).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicationFactor);
        let e = place("t", 0, 1, 1, &[]).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicationFactor);
        let mut mixed = racked(3, 3);
        mixed[1].rack = None;
        let e = place("t", 0, 1, 1, &mixed).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidRequest);
        assert!(e.message.contains("[2]"), "{}", e.message);
    }
}
