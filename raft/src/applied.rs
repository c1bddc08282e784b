//! The latest applied state, published to local readers and to observers.

use std::sync::Arc;

use tokio::sync::watch;

/// A state together with the log index it reflects.
#[derive(Debug)]
pub(crate) struct Applied<S> {
    pub index: u64,
    pub state: Arc<S>,
}

impl<S> Clone for Applied<S> {
    fn clone(&self) -> Self {
        Applied {
            index: self.index,
            state: Arc::clone(&self.state),
        }
    }
}

/// Two channels: the public one carries just the state; the internal one pairs it with its
/// index so long-polling observers never see an index with a state that does not match it.
pub(crate) struct Publisher<S> {
    applied: watch::Sender<Applied<S>>,
    state: watch::Sender<Arc<S>>,
}

impl<S: Default> Publisher<S> {
    pub fn new() -> Self {
        let initial = Arc::new(S::default());
        Publisher {
            applied: watch::Sender::new(Applied {
                index: 0,
                state: Arc::clone(&initial),
            }),
            state: watch::Sender::new(initial),
        }
    }
}

impl<S> Publisher<S> {
    pub fn publish(&self, index: u64, state: Arc<S>) {
        self.applied.send_replace(Applied {
            index,
            state: Arc::clone(&state),
        });
        self.state.send_replace(state);
    }

    pub fn current(&self) -> Applied<S> {
        self.applied.borrow().clone()
    }

    pub fn subscribe_state(&self) -> watch::Receiver<Arc<S>> {
        self.state.subscribe()
    }

    pub fn subscribe_applied(&self) -> watch::Receiver<Applied<S>> {
        self.applied.subscribe()
    }
}
