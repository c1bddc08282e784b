//! Which `__consumer_offsets` partitions this coordinator serves and the groups of each:
//! a partition is loading while its log is replayed, loaded until its leadership moves
//! away, and not owned otherwise.
//!
//! Locking: `slots` is only ever held for map work, never while waiting for a group's
//! lock, so taking `slots` while holding a group's lock (to check a claim) cannot deadlock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::state::Group;

pub(crate) type SharedGroup = Arc<Mutex<Group>>;

/// Where a partition of the offsets topic stands on this coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionStatus {
    /// Not led here (or never announced): its groups get NOT_COORDINATOR.
    NotOwned,
    /// Being replayed: its groups get COORDINATOR_LOAD_IN_PROGRESS.
    Loading,
    Loaded,
}

impl PartitionStatus {
    /// The error for a request on a group of a partition in this state, if any.
    pub fn refusal(self) -> Option<ResponseError> {
        match self {
            PartitionStatus::NotOwned => Some(ResponseError::NotCoordinator),
            PartitionStatus::Loading => Some(ResponseError::CoordinatorLoadInProgress),
            PartitionStatus::Loaded => None,
        }
    }
}

#[derive(Debug)]
enum Slot {
    Loading {
        epoch: u64,
    },
    Loaded {
        epoch: u64,
        groups: HashMap<String, SharedGroup>,
    },
}

/// A group found in a loaded partition, valid while that partition keeps the load epoch
/// it was found in: an unload (and any later reload) makes every older claim stale, so
/// work on a group object that was dropped from memory is refused instead of written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub partition: i32,
    epoch: u64,
}

#[derive(Debug)]
pub(crate) struct Partitions {
    slots: RwLock<HashMap<i32, Slot>>,
    next_epoch: AtomicU64,
    /// Per partition, the end offset of the latest write the coordinator made (or found
    /// when loading); an answer that depends on the log waits until this is replicated.
    /// Only ever grows, so a late reader never waits for less than it must.
    written_end: Mutex<HashMap<i32, i64>>,
    /// Bumped whenever a partition finishes loading or stops being owned, so a request
    /// can wait for a load in progress instead of polling.
    changes: watch::Sender<u64>,
}

impl Default for Partitions {
    fn default() -> Partitions {
        Partitions {
            slots: RwLock::default(),
            next_epoch: AtomicU64::default(),
            written_end: Mutex::default(),
            changes: watch::Sender::new(0),
        }
    }
}

impl Partitions {
    /// A receiver that sees every later ownership change (subscribe before looking at the
    /// status, so no change between the look and the wait is missed).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn status(&self, partition: i32) -> PartitionStatus {
        match self.slots.read().get(&partition) {
            None => PartitionStatus::NotOwned,
            Some(Slot::Loading { .. }) => PartitionStatus::Loading,
            Some(Slot::Loaded { .. }) => PartitionStatus::Loaded,
        }
    }

    /// Every partition loading or loaded here, in order.
    pub fn owned(&self) -> Vec<i32> {
        let mut owned: Vec<i32> = self.slots.read().keys().copied().collect();
        owned.sort_unstable();
        owned
    }

    pub fn any_loading(&self) -> bool {
        self.slots
            .read()
            .values()
            .any(|s| matches!(s, Slot::Loading { .. }))
    }

    fn loaded(
        slots: &HashMap<i32, Slot>,
        partition: i32,
    ) -> Result<(u64, &HashMap<String, SharedGroup>), ResponseError> {
        match slots.get(&partition) {
            None => Err(ResponseError::NotCoordinator),
            Some(Slot::Loading { .. }) => Err(ResponseError::CoordinatorLoadInProgress),
            Some(Slot::Loaded { epoch, groups }) => Ok((*epoch, groups)),
        }
    }

    /// The group if it exists; an error if the partition is not served here.
    pub fn get(
        &self,
        partition: i32,
        group_id: &str,
    ) -> Result<Option<(SharedGroup, Claim)>, ResponseError> {
        let slots = self.slots.read();
        let (epoch, groups) = Self::loaded(&slots, partition)?;
        Ok(groups
            .get(group_id)
            .map(|g| (g.clone(), Claim { partition, epoch })))
    }

    pub fn get_or_create(
        &self,
        partition: i32,
        group_id: &str,
        make: impl FnOnce() -> Group,
    ) -> Result<(SharedGroup, Claim), ResponseError> {
        if let Some(found) = self.get(partition, group_id)? {
            return Ok(found);
        }
        let mut slots = self.slots.write();
        match slots.get_mut(&partition) {
            None => Err(ResponseError::NotCoordinator),
            Some(Slot::Loading { .. }) => Err(ResponseError::CoordinatorLoadInProgress),
            Some(Slot::Loaded { epoch, groups }) => {
                let group = groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| Arc::new(Mutex::new(make())))
                    .clone();
                Ok((
                    group,
                    Claim {
                        partition,
                        epoch: *epoch,
                    },
                ))
            }
        }
    }

    /// Whether the claim's partition is still loaded in the same epoch.
    pub fn is_current(&self, claim: Claim) -> bool {
        matches!(
            self.slots.read().get(&claim.partition),
            Some(Slot::Loaded { epoch, .. }) if *epoch == claim.epoch
        )
    }

    /// Every group of every loaded partition, with its claim.
    pub fn loaded_groups(&self) -> Vec<(SharedGroup, Claim)> {
        let slots = self.slots.read();
        let mut out = Vec::new();
        for (partition, slot) in slots.iter() {
            if let Slot::Loaded { epoch, groups } = slot {
                let claim = Claim {
                    partition: *partition,
                    epoch: *epoch,
                };
                out.extend(groups.values().map(|g| (g.clone(), claim)));
            }
        }
        out
    }

    /// Forgets `group` if it is still the one its partition holds under `group_id`.
    pub fn remove_group(&self, claim: Claim, group_id: &str, group: &SharedGroup) {
        let mut slots = self.slots.write();
        if let Some(Slot::Loaded { epoch, groups }) = slots.get_mut(&claim.partition) {
            if *epoch == claim.epoch && groups.get(group_id).is_some_and(|g| Arc::ptr_eq(g, group))
            {
                groups.remove(group_id);
            }
        }
    }

    /// Marks the partition loading and returns the load's epoch; `None` when it already
    /// is loading or loaded.
    pub fn begin_load(&self, partition: i32) -> Option<u64> {
        let mut slots = self.slots.write();
        if slots.contains_key(&partition) {
            return None;
        }
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed);
        slots.insert(partition, Slot::Loading { epoch });
        Some(epoch)
    }

    /// Installs what a load replayed, unless the partition was unloaded (or reloaded)
    /// meanwhile; returns whether it was installed.
    pub fn finish_load(&self, partition: i32, epoch: u64, groups: HashMap<String, Group>) -> bool {
        let mut slots = self.slots.write();
        match slots.get(&partition) {
            Some(Slot::Loading { epoch: current }) if *current == epoch => {
                let groups = groups
                    .into_iter()
                    .map(|(id, g)| (id, Arc::new(Mutex::new(g))))
                    .collect();
                slots.insert(partition, Slot::Loaded { epoch, groups });
                drop(slots);
                self.changed();
                true
            }
            _ => false,
        }
    }

    /// Gives up a load that failed, so the partition reads as not owned again.
    pub fn abandon_load(&self, partition: i32, epoch: u64) {
        let mut slots = self.slots.write();
        if matches!(slots.get(&partition), Some(Slot::Loading { epoch: e }) if *e == epoch) {
            slots.remove(&partition);
            drop(slots);
            self.changed();
        }
    }

    /// Stops serving the partition; returns its groups so their waiters can be answered.
    pub fn unload(&self, partition: i32) -> Vec<SharedGroup> {
        let removed = self.slots.write().remove(&partition);
        self.changed();
        match removed {
            Some(Slot::Loaded { groups, .. }) => groups.into_values().collect(),
            _ => Vec::new(),
        }
    }

    pub fn note_written(&self, partition: i32, end_offset: i64) {
        let mut ends = self.written_end.lock();
        let end = ends.entry(partition).or_insert(end_offset);
        *end = (*end).max(end_offset);
    }

    pub fn written_end(&self, partition: i32) -> Option<i64> {
        self.written_end.lock().get(&partition).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_goes_loading_loaded_and_away() {
        let p = Partitions::default();
        assert_eq!(p.status(3), PartitionStatus::NotOwned);
        assert_eq!(p.get(3, "g").err(), Some(ResponseError::NotCoordinator));
        let epoch = p.begin_load(3).expect("first load");
        assert!(p.begin_load(3).is_none(), "one load at a time");
        assert_eq!(
            p.get(3, "g").err(),
            Some(ResponseError::CoordinatorLoadInProgress)
        );
        assert!(p.any_loading());
        let mut groups = HashMap::new();
        groups.insert("g".to_string(), Group::new("g", 0));
        assert!(p.finish_load(3, epoch, groups));
        let (_, claim) = p.get(3, "g").unwrap().expect("loaded group");
        assert!(p.is_current(claim));
        assert_eq!(p.unload(3).len(), 1);
        assert!(!p.is_current(claim), "an unload makes claims stale");
        assert_eq!(p.status(3), PartitionStatus::NotOwned);
    }

    #[test]
    fn a_load_overtaken_by_an_unload_installs_nothing() {
        let p = Partitions::default();
        let first = p.begin_load(1).unwrap();
        p.unload(1);
        let second = p.begin_load(1).unwrap();
        assert!(!p.finish_load(1, first, HashMap::new()));
        assert_eq!(p.status(1), PartitionStatus::Loading);
        p.abandon_load(1, first);
        assert_eq!(
            p.status(1),
            PartitionStatus::Loading,
            "not the stale load's slot"
        );
        assert!(p.finish_load(1, second, HashMap::new()));
        assert_eq!(p.status(1), PartitionStatus::Loaded);
    }

    #[test]
    fn the_written_end_only_grows() {
        let p = Partitions::default();
        assert_eq!(p.written_end(0), None);
        p.note_written(0, 10);
        p.note_written(0, 4);
        assert_eq!(p.written_end(0), Some(10));
    }
}
