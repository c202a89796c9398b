//! The server under test's address as users write it: `coap://`, `coaps://`, `coap+tcp://` or
//! `coaps+tcp://`, a host and a port.

use std::fmt;

/// URI scheme of the server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Coap,
    Coaps,
    /// CoAP over TCP (RFC 8323, `LwM2M` binding `T`).
    CoapTcp,
    /// CoAP over TLS over TCP.
    CoapsTcp,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Coap => "coap",
            Scheme::Coaps => "coaps",
            Scheme::CoapTcp => "coap+tcp",
            Scheme::CoapsTcp => "coaps+tcp",
        }
    }

    /// Over TCP (one connection per client).
    pub fn is_tcp(self) -> bool {
        matches!(self, Scheme::CoapTcp | Scheme::CoapsTcp)
    }
}

/// `coap://host:port` (port 5683 / 5684 when omitted; likewise for `coap+tcp://` and
/// `coaps+tcp://`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUri {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ServerUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.as_str();
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Parses `coap://host[:port]`, `coaps://...`, `coap+tcp://...` and `coaps+tcp://...` (IPv6
/// hosts in brackets).
pub fn parse_uri(uri: &str) -> Result<ServerUri, String> {
    let schemes = [
        Scheme::Coap,
        Scheme::Coaps,
        Scheme::CoapTcp,
        Scheme::CoapsTcp,
    ];
    let Some((scheme, rest)) = schemes.into_iter().find_map(|s| {
        uri.strip_prefix(s.as_str())
            .and_then(|r| r.strip_prefix("://"))
            .map(|rest| (s, rest))
    }) else {
        return Err(format!(
            "{uri:?}: expected coap://, coaps://, coap+tcp:// or coaps+tcp://host:port"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('?') {
        return Err(format!("{uri:?}: give only host and port, no path"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{uri:?}: unclosed '['"))?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{uri:?}: missing host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{uri:?}: port {p:?} is not a port from 1 to 65535"))?,
        None if matches!(scheme, Scheme::Coap | Scheme::CoapTcp) => 5683,
        None => 5684,
    };
    Ok(ServerUri {
        scheme,
        host: host.to_string(),
        port,
    })
}
