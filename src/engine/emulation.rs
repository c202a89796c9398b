//! A shard's emulated link (`[network]`): each population's [`Impairment`] applied to the
//! datagrams both ways, the delay line holding those in flight, and the clients' addresses
//! after NAT rebindings. A shard whose populations all have a clear link has none of it.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::clock::Instant;
use crate::fleet::Plan;
use crate::transport::impairment::{DelayLine, Fate, Impairment, ImpairmentStats};

/// A datagram on the emulated link.
#[derive(Clone)]
pub(super) enum InFlight {
    /// From client `local` to the server: sent when due, from where the client is then (as
    /// if the NAT sat at the link's far end).
    Out {
        local: u32,
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    /// From the server to client `local`: handed to it when due.
    In {
        local: u32,
        peer: SocketAddr,
        bytes: Vec<u8>,
    },
}

/// What the link does with a datagram now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Passage {
    Now,
    /// In the delay line until due.
    Later,
    Lost,
}

pub(super) struct Emulation {
    /// Per population: `None` for a link that leaves datagrams alone.
    impairments: Vec<Option<Impairment>>,
    line: DelayLine<InFlight>,
    /// Clients a rebinding moved: local index -> (address now, rebindings so far).
    moved: HashMap<u32, (SocketAddr, u64)>,
    /// The addresses they moved to -> local index.
    owners: HashMap<SocketAddr, u32>,
}

impl Emulation {
    /// `None` when no population of `plan` emulates anything. Shard `shard`'s decisions are
    /// seeded from each population's seed.
    pub(super) fn new(plan: &Plan, shard: u64) -> Option<Emulation> {
        if plan.groups.iter().all(|g| g.network.is_clear()) {
            return None;
        }
        let impairments = plan
            .groups
            .iter()
            .map(|g| {
                g.network
                    .impairs_datagrams()
                    .then(|| Impairment::new(g.network, super::mix(g.seed ^ NETWORK_SALT, shard)))
            })
            .collect();
        Some(Emulation {
            impairments,
            line: DelayLine::default(),
            moved: HashMap::new(),
            owners: HashMap::new(),
        })
    }

    /// Passes a datagram of population `group` through the link at `now`: it goes (or arrives)
    /// at once, or is held in the line (`datagram` makes the copy held), or is lost.
    pub(super) fn pass(
        &mut self,
        now: Instant,
        group: usize,
        stats: &mut ImpairmentStats,
        datagram: impl FnOnce() -> InFlight,
    ) -> Passage {
        let Some(impairment) = self.impairments.get_mut(group).and_then(Option::as_mut) else {
            return Passage::Now;
        };
        let fate = impairment.decide(now);
        stats.count(now, &fate);
        let Fate::Deliver { at, copy, .. } = fate else {
            return Passage::Lost;
        };
        if at <= now && copy.is_none() {
            return Passage::Now;
        }
        let held = datagram();
        if at <= now {
            // Only the duplicate is held: it takes the datagram itself, no clone.
            if let Some(copy) = copy {
                self.line.push(copy, held);
            }
            return Passage::Now;
        }
        if let Some(copy) = copy {
            self.line.push(copy, held.clone());
        }
        self.line.push(at, held);
        Passage::Later
    }

    /// The next datagram due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<InFlight> {
        self.line.pop_due(now)
    }

    pub(super) fn next_due(&self) -> Option<Instant> {
        self.line.next_due()
    }

    /// Where client `local` sends from: where its last rebinding put it, else `home`.
    pub(super) fn source(&self, local: u32, home: Option<SocketAddr>) -> Option<SocketAddr> {
        self.moved.get(&local).map(|(at, _)| *at).or(home)
    }

    /// How many times client `local` was rebound.
    pub(super) fn rebindings(&self, local: u32) -> u64 {
        self.moved.get(&local).map_or(0, |(_, n)| *n)
    }

    /// Records that client `local` now sends from `to`.
    pub(super) fn moved_to(&mut self, local: u32, to: SocketAddr) {
        let n = self.rebindings(local) + 1;
        if let Some((old, _)) = self.moved.insert(local, (to, n)) {
            self.owners.remove(&old);
        }
        self.owners.insert(to, local);
    }

    /// Which client a datagram addressed to `to` is for: `Ok(local)` for an address a client
    /// moved to, `Err(true)` for a client's address from before it moved (a NAT that forgot
    /// the mapping drops it), `Err(false)` when `to` is not the emulation's to say.
    pub(super) fn owner(&self, to: SocketAddr, home_of: Option<u64>) -> Result<u32, bool> {
        if let Some(local) = self.owners.get(&to) {
            return Ok(*local);
        }
        Err(home_of.is_some_and(|l| self.moved.contains_key(&(l as u32))))
    }
}

/// Keeps the link's random draws apart from the clients' own (same group seed).
const NETWORK_SALT: u64 = 0x4E37_11E7;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fleet::Fleet;

    fn plan(network: &str, second: &str) -> Plan {
        let text = format!(
            "{network}\n[[population]]\nname = \"a\"\ncount = 2\ntemplate = \"smart-meter\"\n\
             [[population]]\nname = \"b\"\ncount = 2\ntemplate = \"smart-meter\"\n{second}\n\
             [load]\nclients = 4\nrate = 1\nhold = \"0s\"\n"
        );
        Fleet::from_toml(&text, "t.toml").unwrap().plan()
    }

    fn out(n: u8) -> InFlight {
        InFlight::Out {
            local: 0,
            to: "127.0.0.1:2".parse().unwrap(),
            bytes: vec![n],
        }
    }

    #[test]
    fn a_clear_fleet_has_no_emulation() {
        assert!(Emulation::new(&plan("", ""), 0).is_none());
        let loss_in_b = plan("", "network = { loss = 1.0 }");
        assert!(Emulation::new(&loss_in_b, 0).is_some());
    }

    #[test]
    fn each_population_gets_its_own_link() {
        let p = plan("[network]\ndelay = \"10ms\"", "network = { loss = 1.0 }");
        let mut e = Emulation::new(&p, 0).unwrap();
        let mut stats = ImpairmentStats::default();
        let now = Instant::ZERO;
        assert_eq!(e.pass(now, 0, &mut stats, || out(1)), Passage::Later);
        assert_eq!(e.pass(now, 1, &mut stats, || out(2)), Passage::Lost);
        assert_eq!((stats.delayed, stats.dropped), (1, 1));
        assert_eq!(e.next_due(), Some(now + Duration::from_millis(10)));
        assert!(e.pop_due(now + Duration::from_millis(9)).is_none());
        match e.pop_due(now + Duration::from_millis(10)) {
            Some(InFlight::Out { bytes, .. }) => assert_eq!(bytes, vec![1]),
            _ => panic!("the delayed datagram"),
        }
        assert!(e.next_due().is_none());
    }

    #[test]
    fn rebinding_on_shared_sockets_needs_a_spare_address() {
        use crate::engine::{EngineConfig, EngineError, TransportKind, plan_layout};
        use crate::transport::AddressSet;
        let p = plan("[network]\nrebind_every = \"1m\"", "");
        let mut config = EngineConfig::new("127.0.0.1:5683".parse().unwrap());
        config.shards = 1;
        // 127.0.0.0/8: plenty.
        assert!(plan_layout(&p, &config).is_ok());
        config.addresses = Some(AddressSet::parse_list("127.0.0.1").unwrap());
        assert!(matches!(
            plan_layout(&p, &config),
            Err(EngineError::NoSpareAddresses)
        ));
        // A socket of its own per client: the kernel gives the new port.
        config.transport = TransportKind::PerClient;
        assert!(plan_layout(&p, &config).is_ok());
        // Without rebinding, one address is enough.
        config.transport = TransportKind::Shared;
        assert!(plan_layout(&plan("[network]\nloss = 0.1", ""), &config).is_ok());
    }

    #[test]
    fn a_rebound_client_is_found_at_its_new_address_and_not_at_its_old_one() {
        let p = plan("[network]\nrebind_every = \"1s\"", "");
        let mut e = Emulation::new(&p, 0).unwrap();
        let home: SocketAddr = "127.0.0.3:20000".parse().unwrap();
        let first: SocketAddr = "127.0.1.3:20000".parse().unwrap();
        let second: SocketAddr = "127.0.2.3:20000".parse().unwrap();
        // Rebinding alone delays nothing.
        let mut stats = ImpairmentStats::default();
        assert_eq!(
            e.pass(Instant::ZERO, 0, &mut stats, || out(0)),
            Passage::Now
        );
        assert_eq!(e.source(3, Some(home)), Some(home));
        assert_eq!(e.owner(home, Some(3)), Err(false));
        e.moved_to(3, first);
        e.moved_to(3, second);
        assert_eq!(e.rebindings(3), 2);
        assert_eq!(e.source(3, Some(home)), Some(second));
        assert_eq!(e.owner(second, None), Ok(3));
        // The home address and the first move are both stale now.
        assert_eq!(e.owner(home, Some(3)), Err(true));
        assert_eq!(e.owner(first, None), Err(false));
        // Another client at its home address is its own.
        assert_eq!(
            e.owner("127.0.0.4:20000".parse().unwrap(), Some(4)),
            Err(false)
        );
    }
}
