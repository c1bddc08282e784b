//! Limits on client connections: how many, from where, and how long one may sit idle or
//! dribble a request. Kafka's keys and defaults, plus one Strom key for the partial-request
//! bound Kafka has no name for.

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use super::{bad, parse_int, ConfigError};

/// The keys read here with their defaults; merged into the broker's defaults like
/// `BROKER_DEFAULTS`.
pub const CONNECTION_DEFAULTS: &[(&str, &str)] = &[
    // Kafka: 10 minutes; negative disables idle expiry, as in Kafka's Selector.
    ("connections.max.idle.ms", "600000"),
    ("max.connections", "2147483647"),
    ("max.connections.per.ip", "2147483647"),
    ("max.connections.per.ip.overrides", ""),
    // Kafka's default, Int.MaxValue, is no limit.
    ("max.connection.creation.rate", "2147483647"),
    // Strom's own: once the first byte of a request arrived, the whole request (size
    // prefix and body) must arrive within this time.
    ("socket.request.read.timeout.ms", "30000"),
];

/// The connection limits, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    /// `connections.max.idle.ms`: `None` when negative (never expire).
    pub max_idle: Option<Duration>,
    /// `max.connections`: beyond it the acceptor waits for a connection to close.
    pub max_connections: u32,
    /// `max.connections.per.ip`: beyond it a new connection is closed at once.
    pub max_per_ip: u32,
    /// `max.connections.per.ip.overrides`, host names resolved at start-up.
    pub per_ip_overrides: BTreeMap<IpAddr, u32>,
    /// `socket.request.read.timeout.ms`: the time a started request has to arrive whole.
    pub request_read_timeout: Duration,
    /// `max.connection.creation.rate`, new connections a second across the broker's
    /// listeners (the inter-broker one excepted); `None` without a limit.
    pub creation_rate: Option<f64>,
    /// `listener.name.<l>.max.connection.creation.rate`, by listener name.
    pub listener_creation_rates: BTreeMap<String, f64>,
}

/// The per-listener form of `max.connection.creation.rate`; the unprefixed key is the
/// broker-wide limit, not a listener default (as in Kafka).
const CREATION_RATE_KEY: &str = "max.connection.creation.rate";

/// Whether `key` is a listener's `listener.name.<l>.max.connection.creation.rate`.
pub fn is_listener_creation_rate_key(key: &str) -> bool {
    key.strip_prefix("listener.name.")
        .and_then(|rest| rest.strip_suffix(CREATION_RATE_KEY))
        .is_some_and(|name| name.len() > 1 && name.ends_with('.'))
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        let get = |key: &str| {
            CONNECTION_DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
        };
        ConnectionLimits::parse(&get, &[]).expect("the defaults parse")
    }
}

impl ConnectionLimits {
    /// Reads the keys through `get` (`None` is the same as the default's absence), with
    /// the per-listener keys of `listeners`.
    pub fn parse<'a>(
        get: &dyn Fn(&str) -> Option<&'a str>,
        listeners: &[String],
    ) -> Result<Self, ConfigError> {
        let value = |key: &str| get(key).unwrap_or("");
        let idle = parse_int(
            "connections.max.idle.ms",
            value("connections.max.idle.ms"),
            i64::MIN,
            i64::MAX,
        )?;
        let max = i32::MAX as i64;
        let max_connections = parse_int("max.connections", value("max.connections"), 0, max)?;
        let max_per_ip = parse_int(
            "max.connections.per.ip",
            value("max.connections.per.ip"),
            0,
            max,
        )?;
        let per_ip_overrides = parse_overrides(value("max.connections.per.ip.overrides"))?;
        if max_per_ip == 0 && per_ip_overrides.is_empty() {
            // Kafka's rule: a zero default only makes sense with hosts allowed explicitly.
            return Err(bad(
                "max.connections.per.ip",
                "0 refuses every client; set max.connections.per.ip.overrides too",
            ));
        }
        let read_timeout = parse_int(
            "socket.request.read.timeout.ms",
            value("socket.request.read.timeout.ms"),
            1,
            i64::MAX,
        )?;
        let rate = |key: &str, raw: &str| -> Result<Option<f64>, ConfigError> {
            let n = parse_int(key, raw, 0, max)?;
            Ok((n < max).then_some(n as f64))
        };
        let creation_rate = rate(CREATION_RATE_KEY, value(CREATION_RATE_KEY))?;
        let mut listener_creation_rates = BTreeMap::new();
        for listener in listeners {
            let key = format!(
                "listener.name.{}.{CREATION_RATE_KEY}",
                listener.to_ascii_lowercase()
            );
            if let Some(limit) = get(&key).map(|raw| rate(&key, raw)).transpose()?.flatten() {
                listener_creation_rates.insert(listener.clone(), limit);
            }
        }
        Ok(ConnectionLimits {
            max_idle: u64::try_from(idle).ok().map(Duration::from_millis),
            max_connections: max_connections as u32,
            max_per_ip: max_per_ip as u32,
            per_ip_overrides,
            request_read_timeout: Duration::from_millis(read_timeout as u64),
            creation_rate,
            listener_creation_rates,
        })
    }

    /// The per-IP limit for `ip`: its override if any, else `max.connections.per.ip`.
    pub fn per_ip_limit(&self, ip: IpAddr) -> u32 {
        self.per_ip_overrides
            .get(&ip.to_canonical())
            .copied()
            .unwrap_or(self.max_per_ip)
    }
}

/// Kafka's syntax, `host1:100,127.0.0.1:200`. A host name is resolved now, once, and every
/// address it resolves to gets the limit (Kafka also resolves at configuration time); an
/// IPv6 address is written in brackets, `[::1]:50`.
fn parse_overrides(raw: &str) -> Result<BTreeMap<IpAddr, u32>, ConfigError> {
    let key = "max.connections.per.ip.overrides";
    let mut out = BTreeMap::new();
    for entry in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, limit) = entry
            .rsplit_once(':')
            .ok_or_else(|| bad(key, format!("'{entry}' is not host:limit")))?;
        let limit = parse_int(key, limit, 0, i32::MAX as i64)? as u32;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .map_err(|e| bad(key, format!("cannot resolve '{host}': {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        if ips.is_empty() {
            return Err(bad(key, format!("'{host}' resolves to no address")));
        }
        for ip in ips {
            out.insert(ip.to_canonical(), limit);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ConnectionLimits, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .or_else(|| {
                    CONNECTION_DEFAULTS
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| *v)
                })
        };
        ConnectionLimits::parse(&get, &["PLAINTEXT".into(), "REPLICATION".into()])
    }

    #[test]
    fn kafka_defaults() {
        let l = ConnectionLimits::default();
        assert_eq!(l.max_idle, Some(Duration::from_secs(600)));
        assert_eq!(l.max_connections, i32::MAX as u32);
        assert_eq!(l.max_per_ip, i32::MAX as u32);
        assert!(l.per_ip_overrides.is_empty());
        assert_eq!(l.request_read_timeout, Duration::from_secs(30));
    }

    #[test]
    fn overrides_by_ip_and_name() {
        let l = parse(&[
            ("max.connections.per.ip", "5"),
            (
                "max.connections.per.ip.overrides",
                "127.0.0.2:100, [::1]:7,localhost:3",
            ),
        ])
        .unwrap();
        assert_eq!(l.per_ip_limit("127.0.0.2".parse().unwrap()), 100);
        assert_eq!(l.per_ip_limit("127.0.0.1".parse().unwrap()), 3);
        assert_eq!(l.per_ip_limit("10.0.0.1".parse().unwrap()), 5);
        // An IPv4 peer seen through a dual-stack socket is the same host.
        assert_eq!(l.per_ip_limit("::ffff:127.0.0.2".parse().unwrap()), 100);
    }

    #[test]
    fn connection_creation_rates_broker_wide_and_per_listener() {
        assert_eq!(ConnectionLimits::default().creation_rate, None);
        let l = parse(&[
            ("max.connection.creation.rate", "10"),
            (
                "listener.name.replication.max.connection.creation.rate",
                "3",
            ),
            ("listener.name.other.max.connection.creation.rate", "1"),
        ])
        .unwrap();
        assert_eq!(l.creation_rate, Some(10.0));
        assert_eq!(
            l.listener_creation_rates,
            [("REPLICATION".to_string(), 3.0)].into_iter().collect()
        );
        let err = parse(&[("listener.name.plaintext.max.connection.creation.rate", "-1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listener.name.plaintext.max.connection.creation.rate"),
            "{err}"
        );
        assert!(is_listener_creation_rate_key(
            "listener.name.plaintext.max.connection.creation.rate"
        ));
        assert!(!is_listener_creation_rate_key(
            "listener.name..max.connection.creation.rate"
        ));
        assert!(!is_listener_creation_rate_key(
            "max.connection.creation.rate"
        ));
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = parse(&[("max.connections.per.ip.overrides", "host-without-limit")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max.connections.per.ip.overrides"), "{err}");
        let err = parse(&[("max.connections.per.ip", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max.connections.per.ip"), "{err}");
        let err = parse(&[("socket.request.read.timeout.ms", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("socket.request.read.timeout.ms"), "{err}");
        assert_eq!(
            parse(&[("connections.max.idle.ms", "-1")])
                .unwrap()
                .max_idle,
            None
        );
    }
}
