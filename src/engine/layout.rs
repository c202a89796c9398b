//! Which shard runs which client, and from which source address and port.
//!
//! Client `k` runs on shard `k % shards` (so every shard starts its share of each ramp stage) as
//! its local client `k / shards`. Each shard owns a contiguous block of endpoint indices of the
//! address plan, hence its own ports and sockets: no two shards read one socket.

use std::net::SocketAddr;

use crate::transport::{AddressPlan, PlanError, PortRange};

#[derive(Debug, Clone)]
pub struct Layout {
    plan: AddressPlan,
    clients: u64,
    shards: u64,
    /// Endpoint indices per shard, a multiple of the plan's addresses per port.
    per_shard: u64,
}

impl Layout {
    /// Spreads `clients` over `shards` (at least 1, at most `clients`).
    pub fn new(plan: AddressPlan, clients: u64, shards: u64) -> Result<Layout, PlanError> {
        let shards = shards.clamp(1, clients.max(1));
        let share = clients.div_ceil(shards).max(1);
        let per_port = plan.addresses().len().clamp(1, share);
        let per_shard = share.div_ceil(per_port) * per_port;
        let plan = plan.with_addresses_per_port(per_port);
        let layout = Layout {
            plan,
            clients,
            shards,
            per_shard,
        };
        // The last shard's last endpoint is the highest index in use.
        let last = shards - 1;
        let highest = last * per_shard + layout.shard_clients(last).max(1);
        layout.plan.check(highest)?;
        Ok(layout)
    }

    pub fn shards(&self) -> u64 {
        self.shards
    }

    pub fn clients(&self) -> u64 {
        self.clients
    }

    /// Clients run by `shard`.
    pub fn shard_clients(&self, shard: u64) -> u64 {
        self.clients.saturating_sub(shard).div_ceil(self.shards)
    }

    /// The fleet-wide index of `shard`'s client `local`.
    pub fn client_index(&self, shard: u64, local: u64) -> u64 {
        local * self.shards + shard
    }

    /// The shard and local index of client `index`.
    pub fn locate(&self, index: u64) -> (u64, u64) {
        (index % self.shards, index / self.shards)
    }

    /// The source address and port of `shard`'s client `local`.
    pub fn endpoint(&self, shard: u64, local: u64) -> Option<SocketAddr> {
        if shard >= self.shards || local >= self.shard_clients(shard) {
            return None;
        }
        self.plan.endpoint(shard * self.per_shard + local).ok()
    }

    pub fn endpoint_of_client(&self, index: u64) -> Option<SocketAddr> {
        if index >= self.clients {
            return None;
        }
        let (shard, local) = self.locate(index);
        self.endpoint(shard, local)
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
            let layout = Layout::new(loopback(20_000, 20_100), clients, shards).unwrap();
            let mut seen = std::collections::HashSet::new();
            for k in 0..clients {
                let (s, local) = layout.locate(k);
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
        }
    }

    #[test]
    fn few_addresses_spread_over_ports_and_capacity_is_checked() {
        let plan = AddressPlan::new(
            AddressSet::parse_list("10.0.0.1, 10.0.0.2").unwrap(),
            PortRange::new(30_000, 30_009).unwrap(),
        )
        .unwrap();
        let layout = Layout::new(plan.clone(), 20, 2).unwrap();
        assert_eq!(
            layout.shard_ports(0).unwrap(),
            PortRange::new(30_000, 30_004).unwrap()
        );
        assert_eq!(
            layout.shard_ports(1).unwrap(),
            PortRange::new(30_005, 30_009).unwrap()
        );
        assert!(matches!(
            Layout::new(plan, 21, 2),
            Err(PlanError::TooManyClients { .. })
        ));
    }
}
