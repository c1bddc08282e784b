//! The openraft type configuration for a replicated state `S`.

use std::cmp::Ordering;
use std::fmt;
use std::io::Cursor;
use std::marker::PhantomData;

use crate::ReplicatedState;

/// openraft's `declare_raft_types!` cannot take generic parameters, so the type config is
/// spelled out by hand. The marker traits are implemented manually because `derive` would
/// demand them from `S` as well.
pub struct RaftTypes<S>(PhantomData<fn() -> S>);

impl<S> fmt::Debug for RaftTypes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaftTypes")
    }
}
impl<S> Clone for RaftTypes<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for RaftTypes<S> {}
impl<S> Default for RaftTypes<S> {
    fn default() -> Self {
        RaftTypes(PhantomData)
    }
}
impl<S> PartialEq for RaftTypes<S> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<S> Eq for RaftTypes<S> {}
impl<S> PartialOrd for RaftTypes<S> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<S> Ord for RaftTypes<S> {
    fn cmp(&self, _: &Self) -> Ordering {
        Ordering::Equal
    }
}

impl<S: ReplicatedState> openraft::RaftTypeConfig for RaftTypes<S> {
    type D = S::Command;
    /// The caller reads the state after its write instead of a per-entry response.
    type R = ();
    type NodeId = u64;
    type Node = openraft::BasicNode;
    type Entry = openraft::Entry<Self>;
    type SnapshotData = Cursor<Vec<u8>>;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}

pub type Entry<S> = openraft::Entry<RaftTypes<S>>;
pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type Membership = openraft::StoredMembership<u64, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;
pub type Raft<S> = openraft::Raft<RaftTypes<S>>;
pub type StorageError = openraft::StorageError<u64>;
