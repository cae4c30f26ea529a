//! [`BrokerUrl`]: where an MQTT broker is, as the agent and the fleet manager are configured
//! with it (`mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`).

use std::str::FromStr;

/// Where the broker is: host, port and whether the connection uses TLS.
///
/// Parsed from `mqtt://HOST[:PORT]` (plain TCP, default port 1883) or `mqtts://HOST[:PORT]`
/// (TLS, default port 8883); a trailing `/` is ignored.
///
/// ```
/// use edgefleet_protocol::BrokerUrl;
///
/// let url: BrokerUrl = "mqtts://broker.example".parse().unwrap();
/// assert_eq!((url.host.as_str(), url.port, url.tls), ("broker.example", 8883, true));
/// assert!("http://broker.example".parse::<BrokerUrl>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `mqtts://`: TLS.
    pub tls: bool,
}

impl FromStr for BrokerUrl {
    /// What is wrong with the URL, quoting it.
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else {
            return Err(format!("{url:?} must start with mqtt:// or mqtts://"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| format!("bad port {port:?} in {url:?}"))?),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!("no host in {url:?}"));
        }
        Ok(Self { host: host.to_string(), port, tls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, tls: bool) -> BrokerUrl {
        BrokerUrl { host: host.into(), port, tls }
    }

    #[test]
    fn parses_schemes_ports_and_defaults() {
        assert_eq!("mqtt://127.0.0.1:1883".parse(), Ok(url("127.0.0.1", 1883, false)));
        assert_eq!("mqtt://broker".parse(), Ok(url("broker", 1883, false)));
        assert_eq!("mqtts://broker".parse(), Ok(url("broker", 8883, true)));
        assert_eq!("mqtts://broker:8884/".parse(), Ok(url("broker", 8884, true)));
    }

    #[test]
    fn refuses_other_schemes_bad_ports_and_missing_hosts() {
        for (text, reason) in [
            ("http://x", "must start with mqtt:// or mqtts://"),
            ("broker:1883", "must start with mqtt:// or mqtts://"),
            ("mqtt://h:99999", "bad port \"99999\""),
            ("mqtt://h:port", "bad port \"port\""),
            ("mqtt://", "no host"),
            ("mqtt://:1883", "no host"),
            ("mqtt://a/b:1883", "no host"),
        ] {
            let e = text.parse::<BrokerUrl>().unwrap_err();
            assert!(e.contains(reason) && e.contains(text), "{text}: {e}");
        }
    }
}
