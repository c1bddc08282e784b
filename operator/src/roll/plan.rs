//! The order and pace of a roll: one broker at a time, brokers that are not ready first
//! (a broker that is not serving cannot be made worse), the active controller last.

/// One broker pod as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub ordinal: i32,
    pub ready: bool,
    /// Has at least one restart reason.
    pub outdated: bool,
    /// Stuck (CrashLoopBackOff, Pending) on any template.
    pub stuck: bool,
}

/// What the roller does in this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing is outdated.
    Idle,
    /// Restart this broker. `check_safety` is false for a broker that is not ready: it
    /// serves nothing and holds no ISR place a restart could take away.
    Restart { broker: i32, check_safety: bool },
    /// Another broker is not ready on its current template: restarting a healthy one now
    /// would take two brokers out at once.
    WaitFor { not_ready: Vec<i32> },
}

/// Outdated brokers in the order the roller takes them.
pub fn order(brokers: &[Broker], controller: Option<i32>) -> Vec<i32> {
    let mut pending: Vec<&Broker> = brokers.iter().filter(|b| b.outdated).collect();
    pending.sort_by_key(|b| (b.ready, Some(b.ordinal) == controller, b.ordinal));
    pending.into_iter().map(|b| b.ordinal).collect()
}

/// The next step, given every broker pod and the active controller (if known).
pub fn next_step(brokers: &[Broker], controller: Option<i32>) -> Step {
    let Some(&first) = order(brokers, controller).first() else {
        return Step::Idle;
    };
    let Some(candidate) = brokers.iter().find(|b| b.ordinal == first) else {
        return Step::Idle;
    };
    if !candidate.ready {
        return Step::Restart {
            broker: first,
            check_safety: false,
        };
    }
    let not_ready: Vec<i32> = brokers
        .iter()
        .filter(|b| !b.ready)
        .map(|b| b.ordinal)
        .collect();
    if !not_ready.is_empty() {
        return Step::WaitFor { not_ready };
    }
    Step::Restart {
        broker: first,
        check_safety: true,
    }
}

/// Brokers stuck on their current template: reported, never restarted in a loop.
pub fn stuck_current(brokers: &[Broker]) -> Vec<i32> {
    brokers
        .iter()
        .filter(|b| b.stuck && !b.outdated)
        .map(|b| b.ordinal)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ordinal: i32, ready: bool, outdated: bool) -> Broker {
        Broker {
            ordinal,
            ready,
            outdated,
            stuck: false,
        }
    }

    #[test]
    fn nothing_outdated_is_idle() {
        assert_eq!(
            next_step(&[b(0, true, false), b(1, false, false)], Some(0)),
            Step::Idle
        );
    }

    #[test]
    fn not_ready_first_controller_last() {
        let brokers = [
            b(0, true, true),
            b(1, true, true),
            b(2, false, true),
            b(3, true, true),
        ];
        assert_eq!(order(&brokers, Some(1)), vec![2, 0, 3, 1]);
        assert_eq!(order(&brokers, None), vec![2, 0, 1, 3]);
    }

    #[test]
    fn a_not_ready_outdated_broker_restarts_without_the_safety_check() {
        let brokers = [b(0, true, true), b(1, false, true)];
        assert_eq!(
            next_step(&brokers, Some(0)),
            Step::Restart {
                broker: 1,
                check_safety: false
            }
        );
    }

    #[test]
    fn the_controller_goes_last_with_the_safety_check() {
        let brokers = [b(0, true, true), b(1, true, true), b(2, true, false)];
        assert_eq!(
            next_step(&brokers, Some(0)),
            Step::Restart {
                broker: 1,
                check_safety: true
            }
        );
        let only_controller = [b(0, true, true), b(1, true, false), b(2, true, false)];
        assert_eq!(
            next_step(&only_controller, Some(0)),
            Step::Restart {
                broker: 0,
                check_safety: true
            }
        );
    }

    #[test]
    fn a_current_broker_that_is_not_ready_holds_the_roll() {
        // Broker 1 was just restarted and is still starting: one at a time.
        let brokers = [b(0, true, true), b(1, false, false), b(2, true, true)];
        assert_eq!(
            next_step(&brokers, Some(0)),
            Step::WaitFor { not_ready: vec![1] }
        );
    }

    #[test]
    fn stuck_on_the_current_template_is_reported_not_restarted() {
        let mut stuck_current_template = b(1, false, false);
        stuck_current_template.stuck = true;
        let mut stuck_old_template = b(2, false, true);
        stuck_old_template.stuck = true;
        let brokers = [
            b(0, true, false),
            stuck_current_template,
            stuck_old_template,
        ];
        assert_eq!(stuck_current(&brokers), vec![1]);
        assert_eq!(
            next_step(&brokers, Some(0)),
            Step::Restart {
                broker: 2,
                check_safety: false
            },
            "the old template is restarted: it is not serving"
        );
        let only_current = [b(0, true, false), brokers[1].clone()];
        assert_eq!(next_step(&only_current, Some(0)), Step::Idle);
    }
}
