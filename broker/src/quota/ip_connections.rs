//! `connection_creation_rate` per IP address (KIP-612), as Kafka's `ConnectionQuotas`
//! enforces it when a connection is accepted: the quota of the connection's own IP entity,
//! else of the default IP entity; each IP's new connections counted in a sampled rate
//! (`quota.window.num` × `quota.window.size.seconds`). A connection that would take the
//! rate over the quota is not counted, not served, and closed once its throttle time (at
//! most one window) has passed.
//!
//! An IP entity may name a host instead of an address. Kafka resolves such a name when its
//! quota is applied (`InetAddress.getByName`), not per connection; here the names are
//! resolved again whenever the quotas change ([`IpConnectionRates::resolve_host_names`],
//! off the accept loop), and a connection matches by the addresses last resolved.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::entity::{CONNECTION_CREATION_RATE, IP};
use super::rate::{bounded_throttle_time_ms, Sampled, WindowConfig};
use super::resolve::ClientQuotaMap;

/// Past this many tracked addresses, ones idle for longer than the rate's span are dropped.
const PRUNE_ABOVE: usize = 1024;

/// The connection rates of the addresses that have a quota.
#[derive(Debug, Default)]
pub struct IpConnectionRates {
    config: WindowConfig,
    rates: Mutex<HashMap<IpAddr, Sampled>>,
    /// The addresses of the IP entities named by a host name, as last resolved.
    host_names: RwLock<HostAddresses>,
}

/// Host name to the addresses it resolved to.
type HostAddresses = HashMap<String, Vec<IpAddr>>;

impl IpConnectionRates {
    /// Counts a new connection from `ip` against its quota; `Err` with the time to hold it
    /// before closing when it would go over (the connection is then not counted).
    pub fn admit(&self, quotas: &ClientQuotaMap, ip: IpAddr, now: i64) -> Result<(), Duration> {
        let ip = ip.to_canonical();
        let Some(limit) = connection_rate_for(quotas, &self.host_names.read(), ip) else {
            return Ok(());
        };
        let mut rates = self.rates.lock();
        if rates.len() > PRUNE_ABOVE {
            let span = self.config.window_ms * self.config.samples as i64;
            rates.retain(|_, rate| rate.last_event_ms().is_some_and(|t| now - t < span));
        }
        let rate = rates.entry(ip).or_default();
        rate.record(&self.config, 1.0, now);
        let observed = rate.rate(&self.config, now);
        if observed <= limit {
            return Ok(());
        }
        let window = rate.window_size(&self.config, now);
        let throttle_ms = bounded_throttle_time_ms(observed, limit, window, self.config.window_ms);
        rate.record(&self.config, -1.0, now);
        Err(Duration::from_millis(throttle_ms.max(0) as u64))
    }

    /// Resolves the host names among `quotas`' IP entities and keeps their addresses for
    /// [`admit`](Self::admit), replacing the previous resolution. A name that does not
    /// resolve (any more) applies to no connection; that is logged.
    pub async fn resolve_host_names(&self, quotas: &ClientQuotaMap) {
        let mut resolved = HostAddresses::new();
        for name in host_names(quotas) {
            let looked_up: std::io::Result<Vec<IpAddr>> =
                tokio::net::lookup_host((name.as_str(), 0))
                    .await
                    .map(|found| found.map(|a| a.ip().to_canonical()).collect());
            match looked_up {
                Ok(addresses) => {
                    tracing::debug!(host = %name, ?addresses, "resolved an ip quota entity");
                    resolved.insert(name, addresses);
                }
                Err(e) => tracing::warn!(host = %name, error = %e,
                    "an ip quota entity's host name does not resolve; its connection_creation_rate applies to no connection"),
            }
        }
        *self.host_names.write() = resolved;
    }
}

/// The IP entities with a connection quota that name a host rather than an address.
fn host_names(quotas: &ClientQuotaMap) -> BTreeSet<String> {
    quotas
        .iter()
        .filter(|(_, values)| values.contains_key(CONNECTION_CREATION_RATE))
        .filter_map(|(entity, _)| entity.0.get(IP).cloned().flatten())
        .filter(|name| name.parse::<IpAddr>().is_err())
        .collect()
}

/// Kafka's `connectionRateForIp`: the IP's own quota (by its address, else by a host name
/// that resolved to it), else the default IP entity's.
fn connection_rate_for(quotas: &ClientQuotaMap, hosts: &HostAddresses, ip: IpAddr) -> Option<f64> {
    let (mut by_host, mut default) = (None, None);
    for (entity, values) in quotas {
        let Some(rate) = values.get(CONNECTION_CREATION_RATE) else {
            continue;
        };
        match entity.0.get(IP) {
            Some(Some(name)) => match name.parse::<IpAddr>() {
                Ok(address) if address.to_canonical() == ip => return Some(*rate),
                Ok(_) => {}
                Err(_) if hosts.get(name).is_some_and(|a| a.contains(&ip)) => by_host = Some(*rate),
                Err(_) => {}
            },
            Some(None) => default = Some(*rate),
            None => {}
        }
    }
    by_host.or(default)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::quota::entity::QuotaEntity;

    fn ip_quota(quotas: &mut ClientQuotaMap, ip: Option<&str>, rate: f64) {
        let entity = QuotaEntity(BTreeMap::from([(IP.to_string(), ip.map(str::to_string))]));
        quotas
            .entry(entity)
            .or_default()
            .insert(CONNECTION_CREATION_RATE.to_string(), rate);
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_quota_wins_over_the_default_and_others_are_unlimited() {
        let mut quotas = ClientQuotaMap::new();
        let none = HostAddresses::new();
        assert_eq!(connection_rate_for(&quotas, &none, addr("10.0.0.1")), None);
        ip_quota(&mut quotas, Some("10.0.0.1"), 5.0);
        assert_eq!(
            connection_rate_for(&quotas, &none, addr("10.0.0.1")),
            Some(5.0)
        );
        assert_eq!(connection_rate_for(&quotas, &none, addr("10.0.0.2")), None);
        ip_quota(&mut quotas, None, 2.0);
        assert_eq!(
            connection_rate_for(&quotas, &none, addr("10.0.0.1")),
            Some(5.0)
        );
        assert_eq!(
            connection_rate_for(&quotas, &none, addr("10.0.0.2")),
            Some(2.0)
        );
        // An IPv4 client seen through a dual-stack socket is the same address.
        assert_eq!(
            connection_rate_for(&quotas, &none, addr("::ffff:10.0.0.1").to_canonical()),
            Some(5.0)
        );
    }

    #[test]
    fn a_host_name_applies_to_the_addresses_it_resolved_to_below_an_address_quota() {
        let mut quotas = ClientQuotaMap::new();
        ip_quota(&mut quotas, Some("db.example"), 3.0);
        ip_quota(&mut quotas, None, 1.0);
        assert_eq!(
            host_names(&quotas),
            BTreeSet::from(["db.example".to_string()])
        );
        // Not resolved (yet, or any more): the default applies.
        let none = HostAddresses::new();
        assert_eq!(
            connection_rate_for(&quotas, &none, addr("10.0.0.7")),
            Some(1.0)
        );
        let hosts = HostAddresses::from([(
            "db.example".to_string(),
            vec![addr("10.0.0.7"), addr("10.0.0.8")],
        )]);
        assert_eq!(
            connection_rate_for(&quotas, &hosts, addr("10.0.0.7")),
            Some(3.0)
        );
        assert_eq!(
            connection_rate_for(&quotas, &hosts, addr("10.0.0.8")),
            Some(3.0)
        );
        assert_eq!(
            connection_rate_for(&quotas, &hosts, addr("10.0.0.9")),
            Some(1.0)
        );
        // The address's own entity wins over a name that resolves to it.
        ip_quota(&mut quotas, Some("10.0.0.8"), 9.0);
        assert_eq!(
            connection_rate_for(&quotas, &hosts, addr("10.0.0.8")),
            Some(9.0)
        );
        assert_eq!(
            host_names(&quotas).len(),
            1,
            "an address is not a host name"
        );
    }

    #[test]
    fn a_fresh_address_gets_the_quota_over_the_whole_span_then_is_throttled() {
        // Kafka's Rate counts a young sensor as spanning samples - 1 windows: at 2/s with
        // 11 one-second samples, 20 connections fit at once and the 21st goes over.
        let mut quotas = ClientQuotaMap::new();
        ip_quota(&mut quotas, Some("10.0.0.1"), 2.0);
        let rates = IpConnectionRates::default();
        for n in 1..=20 {
            assert_eq!(
                rates.admit(&quotas, addr("10.0.0.1"), 0),
                Ok(()),
                "connection {n}"
            );
        }
        // (2.1 - 2) / 2 × 10 s = 500 ms, and a refused connection is not counted.
        let refused = rates.admit(&quotas, addr("10.0.0.1"), 0);
        assert_eq!(refused, Err(Duration::from_millis(500)));
        assert_eq!(refused, rates.admit(&quotas, addr("10.0.0.1"), 0));
        // Other addresses have their own rate (and here no quota at all).
        assert_eq!(rates.admit(&quotas, addr("10.0.0.2"), 0), Ok(()));
        // The span stays stretched to 10 s until ten windows have really passed, so a
        // second later there is still no room; at 10.5 s, 21 connections are 2/s.
        assert!(rates.admit(&quotas, addr("10.0.0.1"), 1000).is_err());
        assert_eq!(rates.admit(&quotas, addr("10.0.0.1"), 10_500), Ok(()));
    }

    #[test]
    fn the_throttle_is_at_most_one_window() {
        let mut quotas = ClientQuotaMap::new();
        ip_quota(&mut quotas, None, 0.1);
        let rates = IpConnectionRates::default();
        assert_eq!(rates.admit(&quotas, addr("10.0.0.9"), 0), Ok(()));
        assert_eq!(
            rates.admit(&quotas, addr("10.0.0.9"), 0),
            Err(Duration::from_millis(1000))
        );
    }
}
