//! Address plan: which (source address, source port) each simulated client uses.
//!
//! The server tells clients apart by source address and port, so every client needs a distinct
//! pair. The plan is a pure function of the client index: client `k` gets address
//! `k % addresses` and port `first_port + k / addresses`, so a handful of ports (one shared socket
//! each) cover many clients when many addresses are local, as all of 127.0.0.0/8 is.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where the kernel's ephemeral port range is published.
pub const EPHEMERAL_RANGE_PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// First source port of the default plan; the plan stays below the ephemeral range.
pub const DEFAULT_FIRST_PORT: u16 = 20_000;

/// The most addresses an IPv6 prefix gives the plan (2^32): far past what one host can run, and
/// small enough that addresses x ports cannot overflow.
pub const MAX_V6_ADDRESSES: u64 = 1 << 32;

/// Errors building or using an address plan.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    #[error("invalid CIDR block {input:?}: {reason}")]
    InvalidCidr { input: String, reason: &'static str },
    #[error("invalid address {input:?} in the address list")]
    InvalidAddress { input: String },
    #[error("the address set is empty")]
    EmptyAddresses,
    #[error("invalid port range {first}-{last}: {reason}")]
    InvalidPorts {
        first: u16,
        last: u16,
        reason: &'static str,
    },
    #[error("cannot parse the ephemeral port range {input:?}")]
    InvalidEphemeralRange { input: String },
    #[error(
        "the address plan holds {capacity} clients ({addresses} addresses x {ports} ports) but \
         {clients} were asked for: add addresses (a wider CIDR block or a longer list) or ports"
    )]
    TooManyClients {
        clients: u64,
        capacity: u64,
        addresses: u64,
        ports: u64,
    },
    #[error(
        "source ports {first}-{last} overlap the kernel's ephemeral range {eph_first}-{eph_last}: \
         servers replying from ephemeral ports could collide; pick ports below {eph_first}"
    )]
    PortsInEphemeralRange {
        first: u16,
        last: u16,
        eph_first: u16,
        eph_last: u16,
    },
}

/// The set of local source addresses clients are spread over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressSet {
    /// Consecutive IPv4 addresses starting at `first`.
    V4Range { first: Ipv4Addr, count: u32 },
    /// Consecutive IPv6 addresses starting at `first`: a prefix routed to this host.
    V6Range { first: Ipv6Addr, count: u64 },
    /// An explicit list (IPv4 or IPv6), for hosts with a few configured addresses.
    List(Vec<IpAddr>),
}

impl AddressSet {
    /// 127.0.0.1 to 127.255.255.254: every one is local on Linux, no configuration needed.
    pub fn loopback() -> Self {
        Self::V4Range {
            first: Ipv4Addr::LOCALHOST,
            count: (1 << 24) - 2,
        }
    }

    /// Parses `a.b.c.d/len` or an IPv6 prefix. IPv4 blocks wider than /31 skip the network and
    /// broadcast addresses; IPv6 prefixes wider than /127 skip the subnet-router anycast address
    /// (all host bits zero) and hold at most [`MAX_V6_ADDRESSES`] addresses.
    pub fn parse_cidr(input: &str) -> Result<Self, PlanError> {
        let err = |reason| PlanError::InvalidCidr {
            input: input.to_owned(),
            reason,
        };
        let (addr, len) = input
            .trim()
            .split_once('/')
            .ok_or_else(|| err("expected address/prefix-length"))?;
        let addr: IpAddr = addr.parse().map_err(|_| err("bad address"))?;
        let len: u32 = len.parse().map_err(|_| err("bad prefix length"))?;
        let addr = match addr {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => return Self::v6_prefix(v6, len).map_err(err),
        };
        if len > 32 {
            return Err(err("prefix length above 32"));
        }
        let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
        let base = u32::from(addr);
        if base & !mask != 0 {
            return Err(err("host bits set; write the network address"));
        }
        let size = 1u64 << (32 - len);
        let (first, count) = if size <= 2 {
            (base, size)
        } else {
            (base + 1, size - 2)
        };
        Ok(Self::V4Range {
            first: Ipv4Addr::from(first),
            count: count as u32,
        })
    }

    /// Parses a comma- or whitespace-separated list of addresses; duplicates are rejected
    /// because they would give two clients the same endpoint.
    pub fn parse_list(input: &str) -> Result<Self, PlanError> {
        let mut list = Vec::new();
        for item in input
            .split([',', ' ', '\n', '\t'])
            .filter(|s| !s.is_empty())
        {
            let addr: IpAddr = item.parse().map_err(|_| PlanError::InvalidAddress {
                input: item.to_owned(),
            })?;
            if list.contains(&addr) {
                return Err(PlanError::InvalidAddress {
                    input: format!("{item} (duplicate)"),
                });
            }
            list.push(addr);
        }
        if list.is_empty() {
            return Err(PlanError::EmptyAddresses);
        }
        Ok(Self::List(list))
    }

    /// `loopback`, a CIDR block (contains `/`) or an address list.
    pub fn parse(input: &str) -> Result<Self, PlanError> {
        match input.trim() {
            "loopback" => Ok(Self::loopback()),
            s if s.contains('/') => Self::parse_cidr(s),
            s => Self::parse_list(s),
        }
    }

    fn v6_prefix(addr: Ipv6Addr, len: u32) -> Result<Self, &'static str> {
        if len > 128 {
            return Err("prefix length above 128");
        }
        let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
        let base = u128::from(addr);
        if base & !mask != 0 {
            return Err("host bits set; write the network address");
        }
        let size = 1u128.checked_shl(128 - len).unwrap_or(u128::MAX);
        let (first, count) = if size <= 2 {
            (base, size)
        } else {
            (base + 1, size - 1)
        };
        Ok(Self::V6Range {
            first: Ipv6Addr::from(first),
            count: count.min(u128::from(MAX_V6_ADDRESSES)) as u64,
        })
    }

    pub fn len(&self) -> u64 {
        match self {
            Self::V4Range { count, .. } => u64::from(*count),
            Self::V6Range { count, .. } => *count,
            Self::List(list) => list.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th address, if `i < len()`.
    pub fn get(&self, i: u64) -> Option<IpAddr> {
        match self {
            Self::V4Range { first, count } => (i < u64::from(*count))
                .then(|| IpAddr::V4(Ipv4Addr::from(u32::from(*first) + i as u32))),
            Self::V6Range { first, count } => {
                (i < *count).then(|| IpAddr::V6(Ipv6Addr::from(u128::from(*first) + u128::from(i))))
            }
            Self::List(list) => list.get(usize::try_from(i).ok()?).copied(),
        }
    }

    /// The position of `ip` in the set: the inverse of [`AddressSet::get`].
    pub fn index_of(&self, ip: IpAddr) -> Option<u64> {
        match (self, ip) {
            (Self::V4Range { first, count }, IpAddr::V4(v4)) => {
                let i = u32::from(v4).checked_sub(u32::from(*first))?;
                (i < *count).then_some(u64::from(i))
            }
            (Self::V6Range { first, count }, IpAddr::V6(v6)) => {
                let i = u128::from(v6).checked_sub(u128::from(*first))?;
                (i < u128::from(*count)).then_some(i as u64)
            }
            (Self::V4Range { .. }, IpAddr::V6(_)) | (Self::V6Range { .. }, IpAddr::V4(_)) => None,
            (Self::List(list), ip) => list.iter().position(|a| *a == ip).map(|i| i as u64),
        }
    }
}

/// An inclusive range of source ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    pub fn new(first: u16, last: u16) -> Result<Self, PlanError> {
        let err = |reason| PlanError::InvalidPorts {
            first,
            last,
            reason,
        };
        if first == 0 {
            return Err(err("port 0 means 'any port' and cannot be planned"));
        }
        if first > last {
            return Err(err("first port above last port"));
        }
        Ok(Self { first, last })
    }

    /// From `first` up to just below the ephemeral range `eph`.
    pub fn below_ephemeral(first: u16, eph: PortRange) -> Result<Self, PlanError> {
        Self::new(first, eph.first.saturating_sub(1))
    }

    pub fn first(self) -> u16 {
        self.first
    }

    pub fn last(self) -> u16 {
        self.last
    }

    pub fn len(self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    /// Always false: a range holds at least one port.
    pub fn is_empty(self) -> bool {
        false
    }

    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// Fails when the ranges overlap.
    pub fn check_outside(self, eph: PortRange) -> Result<(), PlanError> {
        if self.first <= eph.last && eph.first <= self.last {
            return Err(PlanError::PortsInEphemeralRange {
                first: self.first,
                last: self.last,
                eph_first: eph.first,
                eph_last: eph.last,
            });
        }
        Ok(())
    }
}

/// Parses the contents of `ip_local_port_range` (`"32768\t60999\n"`).
pub fn parse_ephemeral_range(input: &str) -> Result<PortRange, PlanError> {
    let bad = || PlanError::InvalidEphemeralRange {
        input: input.to_owned(),
    };
    let mut parts = input.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(first)), Some(Ok(last)), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    PortRange::new(first, last).map_err(|_| bad())
}

/// Reads the kernel's ephemeral port range; Linux's default when the file is unreadable.
pub fn ephemeral_range() -> PortRange {
    std::fs::read_to_string(EPHEMERAL_RANGE_PATH)
        .ok()
        .and_then(|s| parse_ephemeral_range(&s).ok())
        .unwrap_or(PortRange {
            first: 32_768,
            last: 60_999,
        })
}

/// Deterministic map from client index to source endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPlan {
    addresses: AddressSet,
    ports: PortRange,
    /// Addresses used per port: fewer than all spreads clients over more ports (more sockets).
    per_port: u64,
}

impl AddressPlan {
    pub fn new(addresses: AddressSet, ports: PortRange) -> Result<Self, PlanError> {
        if addresses.is_empty() {
            return Err(PlanError::EmptyAddresses);
        }
        let per_port = addresses.len();
        Ok(Self {
            addresses,
            ports,
            per_port,
        })
    }

    /// Loopback addresses, ports from [`DEFAULT_FIRST_PORT`] up to below the ephemeral range.
    pub fn loopback_default(eph: PortRange) -> Result<Self, PlanError> {
        Self::new(
            AddressSet::loopback(),
            PortRange::below_ephemeral(DEFAULT_FIRST_PORT, eph)?,
        )
    }

    /// Uses at most `n` addresses per port, so `clients` spread over more ports; e.g. one port
    /// per engine shard with `n = clients.div_ceil(shards)`.
    #[must_use]
    pub fn with_addresses_per_port(mut self, n: u64) -> Self {
        self.per_port = n.clamp(1, self.addresses.len());
        self
    }

    pub fn capacity(&self) -> u64 {
        self.per_port * self.ports.len()
    }

    pub fn check(&self, clients: u64) -> Result<(), PlanError> {
        if clients > self.capacity() {
            return Err(PlanError::TooManyClients {
                clients,
                capacity: self.capacity(),
                addresses: self.per_port,
                ports: self.ports.len(),
            });
        }
        Ok(())
    }

    /// The endpoint of client `index`.
    pub fn endpoint(&self, index: u64) -> Result<SocketAddr, PlanError> {
        self.check(index + 1)?;
        let addr = self.addresses.get(index % self.per_port);
        let port = u64::from(self.ports.first) + index / self.per_port;
        // check() bounds both: index % per_port < len, and port <= last.
        Ok(SocketAddr::new(
            addr.ok_or(PlanError::EmptyAddresses)?,
            port as u16,
        ))
    }

    /// The client index whose endpoint is `addr`: the inverse of [`AddressPlan::endpoint`].
    pub fn index_of(&self, addr: SocketAddr) -> Option<u64> {
        if !self.ports.contains(addr.port()) {
            return None;
        }
        let a = self
            .addresses
            .index_of(addr.ip())
            .filter(|a| *a < self.per_port)?;
        Some(u64::from(addr.port() - self.ports.first) * self.per_port + a)
    }

    /// Client `index`'s endpoint after its `n`-th NAT rebinding (n >= 1): the same port, an
    /// address of the set beyond those the plan gives clients, cycling through the spare ones.
    /// `None` when the set has no spare address for that port.
    pub fn rebound_endpoint(&self, index: u64, n: u64) -> Option<SocketAddr> {
        let spares = self.addresses.len() / self.per_port - 1;
        if spares == 0 || n == 0 {
            return None;
        }
        let home = self.endpoint(index).ok()?;
        let generation = (n - 1) % spares + 1;
        let ip = self
            .addresses
            .get(index % self.per_port + generation * self.per_port)?;
        Some(SocketAddr::new(ip, home.port()))
    }

    /// Whether `addr` is one of the spare endpoints [`AddressPlan::rebound_endpoint`] hands
    /// out: a port of the plan, an address of the set past those the plan gives clients.
    pub fn is_spare(&self, addr: SocketAddr) -> bool {
        self.ports.contains(addr.port())
            && self
                .addresses
                .index_of(addr.ip())
                .is_some_and(|a| a >= self.per_port)
    }

    /// How many consecutive client indices share one port.
    pub fn addresses_per_port(&self) -> u64 {
        self.per_port
    }

    /// The ports `clients` clients use: one shared socket each.
    pub fn ports_used(&self, clients: u64) -> Result<PortRange, PlanError> {
        self.check(clients.max(1))?;
        let last = u64::from(self.ports.first) + (clients.max(1) - 1) / self.per_port;
        PortRange::new(self.ports.first, last as u16)
    }

    pub fn ports(&self) -> PortRange {
        self.ports
    }

    pub fn addresses(&self) -> &AddressSet {
        &self.addresses
    }
}

#[cfg(test)]
mod tests;
