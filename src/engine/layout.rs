//! Which shard runs which client, and from which source address and port.
//!
//! The process runs the clients of its [`Slice`] of the fleet (all of them without `--shard`);
//! the `p`-th of those runs on shard `p % shards` (so every shard starts its share of each ramp
//! stage) as its local client `p / shards`. Each shard owns a contiguous block of endpoint
//! indices of the address plan, hence its own ports and sockets: no two shards read one socket.
//! Endpoints are numbered within the process, so each `--shard` process uses the address plan
//! from its start: processes on one host need disjoint `--ports`.

use std::net::SocketAddr;

use super::TransportKind;
use crate::fleet::Slice;
use crate::transport::{AddressPlan, PlanError, PortRange};

#[derive(Debug, Clone)]
pub struct Layout {
    plan: AddressPlan,
    /// The clients this process runs.
    slice: Slice,
    /// How many of them: `slice`'s share of the fleet.
    clients: u64,
    shards: u64,
    /// Endpoint indices per shard, a multiple of the plan's addresses per port.
    per_shard: u64,
}

impl Layout {
    /// Spreads `slice` of a fleet of `fleet_clients` over `shards` (at least 1, at most the
    /// slice's clients).
    pub fn new(
        plan: AddressPlan,
        fleet_clients: u64,
        slice: Slice,
        shards: u64,
    ) -> Result<Layout, PlanError> {
        let layout = Layout::spread(plan, fleet_clients, slice, shards);
        layout.plan.check(layout.slots())?;
        Ok(layout)
    }

    /// The address-port pairs the clients take: up to the last shard's last endpoint, the
    /// highest index in use (earlier shards own whole ports, so some pairs stay unused).
    pub fn slots(&self) -> u64 {
        let last = self.shards - 1;
        last * self.per_shard + self.shard_clients(last).max(1)
    }

    /// The spread of [`Layout::new`] without its capacity check: what a plan needs (its
    /// sockets) even when it does not fit. Only [`Layout::sockets`] may be asked of it.
    pub(super) fn spread(
        plan: AddressPlan,
        fleet_clients: u64,
        slice: Slice,
        shards: u64,
    ) -> Layout {
        let clients = slice.len(fleet_clients);
        let shards = shards.clamp(1, clients.max(1));
        let share = clients.div_ceil(shards).max(1);
        let per_port = plan.addresses().len().clamp(1, share);
        let per_shard = share.div_ceil(per_port) * per_port;
        let plan = plan.with_addresses_per_port(per_port);
        Layout {
            plan,
            slice,
            clients,
            shards,
            per_shard,
        }
    }

    /// The sockets (open files) the clients need: the shared transport opens one per port of
    /// each shard (as [`Layout::shard_ports`] counts them), the others one per client.
    pub fn sockets(&self, transport: TransportKind) -> u64 {
        match transport {
            TransportKind::Shared => (0..self.shards)
                .map(|s| {
                    self.shard_clients(s)
                        .max(1)
                        .div_ceil(self.plan.addresses_per_port())
                })
                .sum(),
            TransportKind::PerClient | TransportKind::Tcp => self.clients,
        }
    }

    pub fn shards(&self) -> u64 {
        self.shards
    }

    pub fn clients(&self) -> u64 {
        self.clients
    }

    /// The clients this process runs.
    pub fn slice(&self) -> Slice {
        self.slice
    }

    /// Clients run by `shard`.
    pub fn shard_clients(&self, shard: u64) -> u64 {
        self.clients.saturating_sub(shard).div_ceil(self.shards)
    }

    /// The fleet-wide index of `shard`'s client `local`.
    pub fn client_index(&self, shard: u64, local: u64) -> u64 {
        self.slice.client(local * self.shards + shard)
    }

    /// The shard and local index of fleet-wide client `index`; `None` when this process does
    /// not run it.
    pub fn locate(&self, index: u64) -> Option<(u64, u64)> {
        let p = self.slice.position(index).filter(|p| *p < self.clients)?;
        Some((p % self.shards, p / self.shards))
    }

    /// The source address and port of `shard`'s client `local`.
    pub fn endpoint(&self, shard: u64, local: u64) -> Option<SocketAddr> {
        if shard >= self.shards || local >= self.shard_clients(shard) {
            return None;
        }
        self.plan.endpoint(shard * self.per_shard + local).ok()
    }

    /// Where `shard`'s client `local` sends from after its `n`-th NAT rebinding on the shared
    /// transport: an address of the plan no client has, on the same port (its socket).
    pub fn rebound_endpoint(&self, shard: u64, local: u64, n: u64) -> Option<SocketAddr> {
        self.endpoint(shard, local)?;
        self.plan
            .rebound_endpoint(shard * self.per_shard + local, n)
    }

    /// Whether `addr` is an address [`Layout::rebound_endpoint`] may hand out.
    pub fn is_spare(&self, addr: SocketAddr) -> bool {
        self.plan.is_spare(addr)
    }

    /// The source address and port of fleet-wide client `index`, when this process runs it.
    pub fn endpoint_of_client(&self, index: u64) -> Option<SocketAddr> {
        let (shard, local) = self.locate(index)?;
        self.endpoint(shard, local)
    }

    /// The endpoints of the process's first and last clients.
    pub fn first_and_last_endpoints(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let at = |p: u64| self.endpoint_of_client(self.slice.client(p));
        (at(0), at(self.clients.saturating_sub(1)))
    }

    /// Which of `shard`'s clients owns `addr`.
    pub fn local_for(&self, shard: u64, addr: SocketAddr) -> Option<u64> {
        let local = self
            .plan
            .index_of(addr)?
            .checked_sub(shard * self.per_shard)?;
        (local < self.shard_clients(shard)).then_some(local)
    }

    /// The ports `shard` sends from and receives on: one shared socket each.
    pub fn shard_ports(&self, shard: u64) -> Result<PortRange, PlanError> {
        let count = self.shard_clients(shard).max(1);
        let port = |local| {
            self.plan
                .endpoint(shard * self.per_shard + local)
                .map(|e| e.port())
        };
        PortRange::new(port(0)?, port(count - 1)?)
    }

    /// From the first shard's first port to the last shard's last.
    pub fn ports_used(&self) -> PortRange {
        let first = self.shard_ports(0).map(PortRange::first);
        let last = self.shard_ports(self.shards - 1).map(PortRange::last);
        match (first, last) {
            (Ok(first), Ok(last)) => PortRange::new(first, last).unwrap_or(self.plan.ports()),
            _ => self.plan.ports(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::AddressSet;

    fn loopback(first: u16, last: u16) -> AddressPlan {
        AddressPlan::new(AddressSet::loopback(), PortRange::new(first, last).unwrap()).unwrap()
    }

    #[test]
    fn every_client_has_one_endpoint_and_shards_own_disjoint_ports() {
        for (clients, shards) in [(1, 4), (7, 2), (100_000, 2), (10, 3)] {
            let layout =
                Layout::new(loopback(20_000, 20_100), clients, Slice::WHOLE, shards).unwrap();
            let mut seen = std::collections::HashSet::new();
            for k in 0..clients {
                let (s, local) = layout.locate(k).unwrap();
                assert_eq!(layout.client_index(s, local), k);
                let ep = layout.endpoint_of_client(k).unwrap();
                assert!(seen.insert(ep), "{ep} twice");
                assert_eq!(layout.local_for(s, ep), Some(local));
                assert!(layout.shard_ports(s).unwrap().contains(ep.port()));
                for other in (0..layout.shards()).filter(|o| *o != s) {
                    assert_eq!(layout.local_for(other, ep), None);
                    assert!(!layout.shard_ports(other).unwrap().contains(ep.port()));
                }
            }
            let total: u64 = (0..layout.shards()).map(|s| layout.shard_clients(s)).sum();
            assert_eq!(total, clients);
            let ports: u64 = (0..layout.shards())
                .map(|s| layout.shard_ports(s).unwrap().len())
                .sum();
            assert_eq!(layout.sockets(TransportKind::Shared), ports);
            assert_eq!(layout.sockets(TransportKind::PerClient), clients);
        }
    }

    #[test]
    fn few_addresses_spread_over_ports_and_capacity_is_checked() {
        let plan = AddressPlan::new(
            AddressSet::parse_list("10.0.0.1, 10.0.0.2").unwrap(),
            PortRange::new(30_000, 30_009).unwrap(),
        )
        .unwrap();
        let layout = Layout::new(plan.clone(), 20, Slice::WHOLE, 2).unwrap();
        assert_eq!(
            layout.shard_ports(0).unwrap(),
            PortRange::new(30_000, 30_004).unwrap()
        );
        assert_eq!(
            layout.shard_ports(1).unwrap(),
            PortRange::new(30_005, 30_009).unwrap()
        );
        assert_eq!(layout.sockets(TransportKind::Shared), 10);
        assert!(matches!(
            Layout::new(plan.clone(), 21, Slice::WHOLE, 2),
            Err(PlanError::TooManyClients { .. })
        ));
        // A plan that does not fit still says what it would need: 2 shards of 11 over 2 addresses.
        let spread = Layout::spread(plan, 22, Slice::WHOLE, 2);
        assert_eq!(spread.sockets(TransportKind::Shared), 12);
    }

    #[test]
    fn a_slice_runs_its_clients_only_from_the_start_of_the_address_plan() {
        let clients = 103;
        let mut seen = vec![0u32; clients as usize];
        for index in 0..4 {
            let slice = Slice::new(index, 4).unwrap();
            let layout = Layout::new(loopback(20_000, 20_100), clients, slice, 3).unwrap();
            assert_eq!(layout.clients(), slice.len(clients));
            let mut ports = std::collections::HashSet::new();
            for s in 0..layout.shards() {
                for local in 0..layout.shard_clients(s) {
                    let k = layout.client_index(s, local);
                    assert!(slice.contains(k), "{k} is not in {slice}");
                    assert_eq!(layout.locate(k), Some((s, local)));
                    seen[k as usize] += 1;
                    let ep = layout.endpoint_of_client(k).unwrap();
                    assert_eq!(layout.local_for(s, ep), Some(local));
                    ports.insert(ep.port());
                }
            }
            // Another shard's clients have no endpoint here.
            let theirs = Slice::new((index + 1) % 4, 4).unwrap().client(0);
            assert_eq!(layout.locate(theirs), None);
            assert_eq!(layout.endpoint_of_client(theirs), None);
            // Each process numbers its endpoints from the plan's first port.
            assert_eq!(ports.iter().min(), Some(&20_000));
            let (first, last) = layout.first_and_last_endpoints();
            assert_eq!(first, layout.endpoint_of_client(slice.client(0)));
            assert_eq!(
                last,
                layout.endpoint_of_client(slice.client(slice.len(clients) - 1))
            );
        }
        assert!(seen.iter().all(|n| *n == 1));
    }
}
