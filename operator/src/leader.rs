//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several operator
//! replicas exactly one reconciles and the others stand by.
//!
//! kube-lease-manager does the acquiring and renewing. On top of it we keep our own deadline,
//! because the manager cannot tell us the one thing that matters for safety: that a renewal
//! actually landed. Its renewal loop retries errors silently, and the kube client has no read
//! timeout by default, so a hung request would otherwise leave us reconciling long after another
//! replica took the lease over. The watchdog reads the Lease back after each expected renewal and
//! gives the leadership up — ending `work` — before the lease can run out by our own clock.

use crate::metrics::Metrics;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder, LeaseParams};
use std::{
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime},
};
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};
use tracing::{info, warn};

/// Where the lease lives and who we are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderConfig {
    /// Name of the Lease object.
    pub lease_name: String,
    /// Namespace of the Lease object (the operator's own).
    pub namespace: String,
    /// This replica's identity in the lease, usually the pod name.
    pub identity: String,
    /// How long the lease stays ours after a renewal (whole seconds; typically 15 s).
    pub lease_duration: Duration,
    /// How long before expiry we renew (whole seconds; typically 5 s). It is also the clock skew
    /// between nodes that the election tolerates.
    pub grace: Duration,
}

impl LeaderConfig {
    /// A config with the usual timings: a 15 s lease renewed 5 s before it expires.
    pub fn new(
        lease_name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            lease_name: lease_name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        }
    }
}

/// Why [`run_as_leader`] stopped early.
#[derive(thiserror::Error, Debug)]
pub enum LeaderError {
    /// The lease was taken over or could not be renewed while `work` ran; `work` was stopped.
    #[error("lost the leader lease {0}")]
    Lost(String),
    /// The election could not start (bad config, no access to the Lease, API unreachable).
    #[error("leader election failed: {0}")]
    Lease(String),
}

/// Waits until this replica holds the lease, then runs `work` while it keeps holding it.
///
/// Returns `Ok(())` when `work` finishes or `shutdown` fires (releasing the lease so a standby
/// takes over at once), and `Err(LeaderError::Lost)` if the lease is lost while working: `work`
/// is then dropped mid-flight and the caller should exit, so Kubernetes restarts it as a standby —
/// never two active reconcilers. `work` must therefore not leave detached tasks running once it
/// is dropped.
pub async fn run_as_leader<W, S>(
    client: Client,
    config: LeaderConfig,
    metrics: Arc<Metrics>,
    work: W,
    shutdown: S,
) -> Result<(), LeaderError>
where
    W: Future<Output = ()> + Send,
    S: Future<Output = ()> + Send,
{
    let (duration_secs, grace_secs) = lease_seconds(&config)?;
    let timing = Timing::new(duration_secs, grace_secs);
    let manager = LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.namespace)
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .with_parameters(LeaseParams::new(
            config.identity.clone(),
            duration_secs,
            grace_secs,
        ))
        .build()
        .await
        .map_err(|err| LeaderError::Lease(err.to_string()))?;
    let (lease, identity) = (&config.lease_name, &config.identity);

    let mut shutdown = Box::pin(shutdown);
    info!(%lease, %identity, "waiting for the leader lease");
    tokio::select! {
        biased;
        () = &mut shutdown => {
            // We may have locked it just as the shutdown came in; don't make a standby wait.
            release(&manager, timing.duration).await;
            info!(%lease, %identity, "shut down while standing by");
            return Ok(());
        }
        () = acquire(&manager) => {}
    }
    metrics.set_leader(true);
    info!(%lease, %identity, "acquired the leader lease");

    let api = Api::<Lease>::namespaced(client, &config.namespace);
    let mut work = Box::pin(work);
    let lost = tokio::select! {
        biased;
        () = &mut shutdown => None,
        () = &mut work => None,
        reason = keep_renewing(&manager, timing.retry) => Some(reason),
        reason = watch_lease(&api, &config, timing) => Some(reason),
    };
    // Stop the reconcilers before anyone else may start theirs.
    drop(work);
    metrics.set_leader(false);

    match lost {
        Some(reason) => {
            warn!(%lease, %identity, %reason, "lost the leader lease, stopped working");
            Err(LeaderError::Lost(config.lease_name))
        }
        None => {
            release(&manager, timing.duration).await;
            info!(%lease, %identity, "released the leader lease");
            Ok(())
        }
    }
}

/// The lease timings in whole seconds, the Lease API's unit. kube-lease-manager panics on values
/// it cannot use, so they are rejected here instead.
fn lease_seconds(config: &LeaderConfig) -> Result<(u64, u64), LeaderError> {
    let (duration, grace) = (config.lease_duration.as_secs(), config.grace.as_secs());
    if config.lease_name.is_empty() || config.identity.is_empty() {
        return Err(LeaderError::Lease(
            "lease name and identity must not be empty".into(),
        ));
    }
    if grace == 0 || grace >= duration || i32::try_from(duration).is_err() {
        return Err(LeaderError::Lease(format!(
            "need whole seconds with 1 <= grace < lease duration, got grace {grace}s and \
             duration {duration}s"
        )));
    }
    Ok((duration, grace))
}

/// Derived timings of the holding phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timing {
    duration: Duration,
    grace: Duration,
    /// How much earlier than the lease's real expiry we give it up: half the grace, so other
    /// replicas whose clocks run up to that much ahead never see it free while we still work.
    margin: Duration,
    /// Pause between retries of a failed renewal or check.
    retry: Duration,
}

impl Timing {
    fn new(duration_secs: u64, grace_secs: u64) -> Self {
        let grace = Duration::from_secs(grace_secs);
        Self {
            duration: Duration::from_secs(duration_secs),
            grace,
            margin: grace / 2,
            retry: (grace / 8).max(Duration::from_millis(100)),
        }
    }

    /// When to next read the lease, given our deadline for it. The manager renews `grace` before
    /// expiry, i.e. `grace - margin` before our deadline; look halfway between that renewal and
    /// the deadline, which leaves the other half for retries.
    fn next_check(&self, deadline: Instant, now: Instant) -> Instant {
        let check = deadline
            .checked_sub((self.grace - self.margin) / 2)
            .unwrap_or(now);
        check.max(self.retry_at(deadline, now))
    }

    /// When to try again after a check that did not move the deadline: after `retry`, but always
    /// before the deadline so there is one more chance to see the renewal.
    fn retry_at(&self, deadline: Instant, now: Instant) -> Instant {
        now + self.retry.min(deadline.saturating_duration_since(now) / 2)
    }
}

/// Until when, by our clock, we may act on `lease`: the renewTime we wrote (with our clock) plus
/// the lease duration, minus `margin`. `Err` says why the lease is not ours.
fn held_until(lease: &Lease, identity: &str, margin: Duration) -> Result<SystemTime, String> {
    let spec = lease.spec.as_ref().ok_or("the lease has no spec")?;
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => {}
        Some(holder) => return Err(format!("the lease is held by {holder}")),
        None => return Err("the lease has no holder".into()),
    }
    let renewed = spec
        .renew_time
        .as_ref()
        .map(|t| SystemTime::from(t.0))
        .ok_or("the lease has no renewTime")?;
    let seconds = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .ok_or("the lease has no valid leaseDurationSeconds")?;
    renewed
        .checked_add(Duration::from_secs(seconds))
        .and_then(|expiry| expiry.checked_sub(margin))
        .ok_or_else(|| "the lease's renewTime is out of range".into())
}

/// Resolves once this replica holds the lease. Errors are retried with backoff: while standing
/// by we hold nothing, so there is nothing unsafe about waiting out an API outage.
async fn acquire(manager: &LeaseManager) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match manager.changed().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(err) => {
                warn!(error = %err, retry_in = ?backoff, "leader election failed, retrying");
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Keeps the manager renewing the lease; resolves with the reason once it reports the lease gone.
/// Failed renewals are retried: whether the lease is still safely ours is [`watch_lease`]'s call.
async fn keep_renewing(manager: &LeaseManager, retry: Duration) -> String {
    loop {
        match manager.changed().await {
            Ok(true) => {}
            Ok(false) => return "another replica holds the lease".into(),
            Err(err) => {
                warn!(error = %err, "renewing the leader lease failed, retrying");
                sleep(retry).await;
            }
        }
    }
}

/// The watchdog: reads the lease back after every expected renewal and resolves with the reason
/// once it is not ours, or once our deadline passes without a confirmed renewal.
async fn watch_lease(api: &Api<Lease>, config: &LeaderConfig, timing: Timing) -> String {
    // We were just granted the lease, so it was renewed a moment ago; the full grace (rather than
    // the margin) covers that moment until the first check, which runs at once.
    let mut deadline = Instant::now() + timing.duration - timing.grace;
    let mut next_check = Instant::now();
    loop {
        sleep_until(next_check).await;
        if Instant::now() >= deadline {
            return "no renewal confirmed before the lease ran out".into();
        }
        match timeout_at(deadline, api.get_opt(&config.lease_name)).await {
            Err(_elapsed) => return "no renewal confirmed before the lease ran out".into(),
            Ok(Ok(None)) => return "the lease was deleted".into(),
            Ok(Err(err)) => {
                warn!(error = %err, lease = %config.lease_name, "checking the leader lease failed");
                next_check = timing.retry_at(deadline, Instant::now());
            }
            Ok(Ok(Some(lease))) => {
                let until = match held_until(&lease, &config.identity, timing.margin) {
                    Ok(until) => until,
                    Err(reason) => return reason,
                };
                let now = Instant::now();
                let left = until
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                deadline = now + left;
                next_check = timing.next_check(deadline, now);
            }
        }
    }
}

/// Frees the lease so a standby takes over at once instead of waiting for it to expire. Failing
/// is harmless (it then expires on its own), so it only warns; bounded because the client may
/// have no read timeout.
async fn release(manager: &LeaseManager, limit: Duration) {
    match timeout(limit, manager.release()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => warn!(error = %err, "could not release the leader lease"),
        Err(_elapsed) => warn!("timed out releasing the leader lease"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use k8s_openapi::{
        api::coordination::v1::LeaseSpec, apimachinery::pkg::apis::meta::v1::MicroTime,
        jiff::Timestamp,
    };
    use kube::{api::ObjectMeta, client::Body};
    use std::sync::atomic::{AtomicBool, Ordering};

    fn lease(holder: Option<&str>, renewed: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("strom-operator".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: holder.map(|_| MicroTime(renewed)),
                lease_duration_seconds: holder.map(|_| 15),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn rejects_timings_the_lease_manager_would_panic_on() {
        let ok = LeaderConfig::new("l", "ns", "me");
        assert_eq!(lease_seconds(&ok).ok(), Some((15, 5)));
        let ms = Duration::from_millis;
        for (duration, grace, expected) in [
            (ms(15_000), ms(5_400), Some((15, 5))),
            (ms(15_000), ms(0), None),
            (ms(15_000), ms(500), None),
            (ms(5_000), ms(5_000), None),
            (ms(5_000), ms(15_000), None),
        ] {
            let config = LeaderConfig {
                lease_duration: duration,
                grace,
                ..ok.clone()
            };
            assert_eq!(
                lease_seconds(&config).ok(),
                expected,
                "{duration:?}/{grace:?}"
            );
        }
        assert!(lease_seconds(&LeaderConfig::new("l", "ns", "")).is_err());
    }

    #[test]
    fn lease_is_ours_until_renewal_plus_duration_minus_margin() {
        let renewed = Timestamp::now();
        let margin = Duration::from_millis(2500);
        let until = held_until(&lease(Some("me"), renewed), "me", margin).expect("ours");
        assert_eq!(
            until,
            SystemTime::from(renewed) + Duration::from_millis(12_500)
        );
        let other = held_until(&lease(Some("you"), renewed), "me", margin);
        assert_eq!(other, Err("the lease is held by you".into()));
        assert!(held_until(&lease(None, renewed), "me", margin).is_err());
    }

    #[test]
    fn checks_between_the_expected_renewal_and_the_deadline() {
        let timing = Timing::new(15, 5);
        let now = Instant::now();
        let deadline = now + Duration::from_millis(12_500); // renewal due at now + 10 s
        assert_eq!(
            timing.next_check(deadline, now),
            now + Duration::from_millis(11_250)
        );
        // Renewal overdue: retry after `retry`, or sooner so the retry still beats the deadline.
        let close = now + Duration::from_millis(1500);
        assert_eq!(timing.next_check(close, now), now + timing.retry);
        let closer = now + Duration::from_millis(300);
        assert_eq!(
            timing.next_check(closer, now),
            now + Duration::from_millis(150)
        );
    }

    /// A fake API server for one Lease: 404 until created, then held by `holders` in turn on each
    /// GET (the last one repeating), and free again after a PATCH (the release). Returns the
    /// methods it saw, once the client is gone.
    async fn api_server(
        mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
        holders: &[&str],
    ) -> Vec<String> {
        let mut seen = Vec::new();
        let mut holders = holders.iter().copied();
        let mut holder = None;
        while let Some((request, reply)) = handle.next_request().await {
            let method = request.method().to_string();
            let created = seen.iter().any(|m| m == "POST");
            let released = seen.iter().any(|m| m == "PATCH");
            seen.push(method.clone());
            let (status, body) = match method.as_str() {
                "GET" if !created => (
                    404,
                    serde_json::json!({"kind": "Status", "apiVersion": "v1",
                    "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                ),
                "GET" if !released => {
                    holder = holders.next().or(holder);
                    (200, serde_json::json!(lease(holder, Timestamp::now())))
                }
                _ => (200, serde_json::json!(lease(None, Timestamp::now()))),
            };
            let status = if method == "POST" { 201 } else { status };
            let response = Response::builder()
                .status(status)
                .body(Body::from(body.to_string().into_bytes()));
            reply.send_response(response.expect("valid response"));
        }
        seen
    }

    #[tokio::test]
    async fn runs_work_once_the_lease_is_ours_then_releases_it() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move { api_server(handle, &["me"]).await });
        let metrics = Arc::new(Metrics::new());
        let worked = Arc::new(AtomicBool::new(false));
        let (m, w) = (metrics.clone(), worked.clone());
        let work = async move {
            assert!(m.render().contains("strom_operator_leader 1"));
            w.store(true, Ordering::SeqCst);
        };
        let client = Client::new(service, "default");
        let config = LeaderConfig::new("strom-operator", "default", "me");
        let leader = run_as_leader(
            client,
            config,
            metrics.clone(),
            work,
            std::future::pending(),
        );
        tokio::spawn(leader).await.expect("join").expect("led");

        assert!(worked.load(Ordering::SeqCst));
        assert!(metrics.render().contains("strom_operator_leader 0"));
        let seen = server.await.expect("join");
        assert_eq!(seen, ["GET", "POST", "GET", "PATCH", "GET"]);
    }

    #[tokio::test]
    async fn stops_work_when_another_replica_holds_the_lease() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move { api_server(handle, &["me", "you"]).await });
        let metrics = Arc::new(Metrics::new());
        let client = Client::new(service, "default");
        let config = LeaderConfig::new("strom-operator", "default", "me");
        let work = std::future::pending();
        let result = run_as_leader(
            client,
            config,
            metrics.clone(),
            work,
            std::future::pending(),
        );

        let err = result.await.expect_err("lost");
        assert!(matches!(err, LeaderError::Lost(ref name) if name == "strom-operator"));
        assert!(metrics.render().contains("strom_operator_leader 0"));
        assert!(!server.await.expect("join").contains(&"PATCH".to_owned()));
    }
}
