//! What one host's plan can reach: source addresses x ports, the sockets the run needs and the
//! open-files limit; and the one decision whether the run fits, taken by `check` and `run` before
//! anything starts and by [`super::Engine::start`].

use super::TransportKind;
use crate::transport::per_client::FD_RESERVE;
use crate::transport::{FdLimit, check_fd_budget};

/// One host's address plan and open-files budget for this process's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// Source addresses (an IPv6 prefix counts at most [`crate::transport::addresses::MAX_V6_ADDRESSES`]).
    pub addresses: u64,
    /// Source ports.
    pub ports: u64,
    /// The clients this process runs.
    pub clients: u64,
    /// Address-port pairs the layout takes for them: more than `clients` when several engine
    /// threads each own whole ports ([`super::Layout::slots`]).
    pub slots: u64,
    pub transport: TransportKind,
    /// Sockets (open files) the clients need: see [`super::Layout::sockets`].
    pub sockets: u64,
    pub limit: FdLimit,
}

/// Why a plan cannot run on this host.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReachError {
    #[error(
        "{clients} clients need a source address and port each{spread}, but this host's plan \
         holds {capacity} ({addresses} address(es) x {ports} ports): give --bind more addresses (a CIDR \
         block, or an IPv6 prefix routed to this host) or more --ports, or run fewer clients \
         per process (--shard K/N across hosts)",
        clients = thousands(*clients),
        spread = spread_note(*clients, *slots),
        capacity = thousands(*capacity),
        addresses = thousands(*addresses),
        ports = thousands(*ports)
    )]
    TooManyClients {
        clients: u64,
        slots: u64,
        capacity: u64,
        addresses: u64,
        ports: u64,
    },
    #[error(
        "this run needs {sockets} sockets ({what}) + {FD_RESERVE} spare open files, but the \
         open-files hard limit (RLIMIT_NOFILE) is {hard}: {ways}, run fewer clients per process \
         (--shard K/N across hosts), or raise the hard limit",
        sockets = thousands(*sockets),
        hard = thousands(*hard),
        what = sockets_per(*transport),
        ways = ways_out(*transport)
    )]
    TooManyFiles {
        sockets: u64,
        hard: u64,
        transport: TransportKind,
    },
}

impl Reach {
    /// Clients the addresses and ports can tell apart.
    pub fn capacity(&self) -> u64 {
        self.addresses.saturating_mul(self.ports)
    }

    /// Whether the plan fits: enough address-port pairs for the clients, and its sockets within
    /// the open-files hard limit (the soft limit is raised up to it as needed).
    pub fn check(&self) -> Result<(), ReachError> {
        if self.slots > self.capacity() {
            return Err(ReachError::TooManyClients {
                clients: self.clients,
                slots: self.slots,
                capacity: self.capacity(),
                addresses: self.addresses,
                ports: self.ports,
            });
        }
        if check_fd_budget(self.sockets, self.limit).is_err() {
            return Err(ReachError::TooManyFiles {
                sockets: self.sockets,
                hard: self.limit.hard,
                transport: self.transport,
            });
        }
        Ok(())
    }

    /// `1 address x 12,768 ports = 12,768 clients; 30,000 asked for`.
    pub fn describe_host(&self) -> String {
        let plural = |n: u64, one: &str, many: &str| {
            format!("{} {}", thousands(n), if n == 1 { one } else { many })
        };
        format!(
            "{} x {} = {}; {} asked for",
            plural(self.addresses, "address", "addresses"),
            plural(self.ports, "port", "ports"),
            plural(self.capacity(), "client", "clients"),
            thousands(self.clients)
        )
    }

    /// `30,000 sockets + 64 spare of 20,000 open files (hard limit; soft 1,024)`.
    pub fn describe_files(&self) -> String {
        let what = match self.transport {
            TransportKind::Tcp => "TCP connections",
            TransportKind::Shared | TransportKind::PerClient => "sockets",
        };
        format!(
            "{} {what} + {FD_RESERVE} spare of {} open files (hard limit; soft {})",
            thousands(self.sockets),
            thousands(self.limit.hard),
            thousands(self.limit.soft)
        )
    }
}

/// What the engine threads' whole ports add to the clients' address-port pairs, if anything.
fn spread_note(clients: u64, slots: u64) -> String {
    if slots > clients {
        format!(
            " ({} pairs: each engine thread owns whole ports)",
            thousands(slots)
        )
    } else {
        String::new()
    }
}

fn sockets_per(transport: TransportKind) -> &'static str {
    match transport {
        TransportKind::Shared => "one per source port of each shard",
        TransportKind::PerClient => "one per client",
        TransportKind::Tcp => "one TCP connection per client",
    }
}

fn ways_out(transport: TransportKind) -> &'static str {
    match transport {
        TransportKind::Shared => {
            "give --bind more addresses (a CIDR block, or an IPv6 prefix routed to this host), so \
             each port's socket serves several clients"
        }
        TransportKind::PerClient => {
            "use the shared transport, whose sockets serve many clients each, with --bind more \
             addresses"
        }
        TransportKind::Tcp => "spread the clients over more hosts",
    }
}

/// `12768` as `12,768`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::AddressSet;
    use crate::transport::addresses::MAX_V6_ADDRESSES;

    const LIMIT: FdLimit = FdLimit {
        soft: 1024,
        hard: 20_000,
    };

    fn one_address(clients: u64, ports: u64, sockets: u64) -> Reach {
        Reach {
            addresses: 1,
            ports,
            clients,
            slots: clients,
            transport: TransportKind::Shared,
            sockets,
            limit: LIMIT,
        }
    }

    #[test]
    fn a_plan_within_its_addresses_ports_and_files_passes() {
        let reach = one_address(12_000, 12_768, 12_000);
        assert_eq!(reach.check(), Ok(()));
        assert_eq!(
            reach.describe_host(),
            "1 address x 12,768 ports = 12,768 clients; 12,000 asked for"
        );
        assert_eq!(
            reach.describe_files(),
            "12,000 sockets + 64 spare of 20,000 open files (hard limit; soft 1,024)"
        );
        // Right at the hard limit, the spare files included.
        assert_eq!(one_address(19_936, 30_000, 19_936).check(), Ok(()));
    }

    #[test]
    fn more_sockets_than_the_hard_limit_is_refused_naming_the_ways_out() {
        let err = one_address(30_000, 30_001, 30_000).check().unwrap_err();
        assert_eq!(
            err,
            ReachError::TooManyFiles {
                sockets: 30_000,
                hard: 20_000,
                transport: TransportKind::Shared
            }
        );
        let text = err.to_string();
        for part in [
            "30,000 sockets",
            "hard limit (RLIMIT_NOFILE) is 20,000",
            "--bind",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(text.contains("--shard K/N") && text.contains("raise the hard limit"));
        assert!(one_address(19_937, 30_000, 19_937).check().is_err());
        // Over TCP more addresses do not help: a connection per client whatever the plan.
        let tcp = Reach {
            transport: TransportKind::Tcp,
            ..one_address(25_000, 30_000, 25_000)
        };
        let text = tcp.check().unwrap_err().to_string();
        assert!(text.contains("one TCP connection per client"), "{text}");
        assert!(!text.contains("--bind"), "{text}");
    }

    #[test]
    fn more_clients_than_addresses_times_ports_is_refused() {
        let err = one_address(30_000, 12_768, 12_768).check().unwrap_err();
        assert_eq!(
            err,
            ReachError::TooManyClients {
                clients: 30_000,
                slots: 30_000,
                capacity: 12_768,
                addresses: 1,
                ports: 12_768
            }
        );
        let text = err.to_string();
        assert!(
            text.starts_with("30,000 clients") && text.contains("holds 12,768 (1 address(es) x"),
            "{text}"
        );
        assert!(
            text.contains("--bind") && text.contains("--shard K/N"),
            "{text}"
        );
        // Capacity is checked first: those clients would also be past the files limit.
        assert!(matches!(
            one_address(30_000, 12_768, 30_000).check(),
            Err(ReachError::TooManyClients { .. })
        ));
    }

    #[test]
    fn an_ipv6_prefix_counts_its_capped_addresses() {
        let prefix = AddressSet::parse("fd00:1::/64").unwrap();
        assert_eq!(prefix.len(), MAX_V6_ADDRESSES);
        let reach = Reach {
            addresses: prefix.len(),
            ports: 2,
            clients: 100_000,
            slots: 100_000,
            transport: TransportKind::Shared,
            sockets: 2,
            limit: LIMIT,
        };
        assert_eq!(reach.check(), Ok(()));
        assert_eq!(reach.capacity(), 2 * MAX_V6_ADDRESSES);
        assert_eq!(
            reach.describe_host(),
            "4,294,967,296 addresses x 2 ports = 8,589,934,592 clients; 100,000 asked for"
        );
        // No overflow at the widest plan.
        let widest = Reach {
            addresses: u64::MAX,
            ports: 65_535,
            ..reach
        };
        assert_eq!(widest.capacity(), u64::MAX);
    }

    #[test]
    fn thousands_groups_digits() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }

    #[test]
    fn whole_ports_per_engine_thread_count_against_the_plan() {
        use crate::fleet::Slice;
        use crate::transport::{AddressPlan, PortRange};
        // 4 clients, 1 address, 4 ports, 3 engine threads: each thread owns whole ports, so the
        // clients take 5 pairs of the 4 (the layout refuses it too).
        let plan = || {
            let one = AddressSet::parse("127.0.0.1").unwrap();
            AddressPlan::new(one, PortRange::new(20_000, 20_003).unwrap()).unwrap()
        };
        let layout = super::super::Layout::spread(plan(), 4, Slice::WHOLE, 3);
        assert_eq!(layout.slots(), 5);
        assert!(super::super::Layout::new(plan(), 4, Slice::WHOLE, 3).is_err());
        let reach = Reach {
            slots: layout.slots(),
            ..one_address(4, 4, 4)
        };
        let text = reach.check().unwrap_err().to_string();
        assert!(
            text.starts_with(
                "4 clients need a source address and port each (5 pairs: each engine thread \
                 owns whole ports), but this host's plan holds 4"
            ),
            "{text}"
        );
    }
}
