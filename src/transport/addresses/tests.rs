use super::*;
use std::collections::HashSet;

fn eph() -> PortRange {
    PortRange::new(32_768, 60_999).unwrap()
}

#[test]
fn plan_is_deterministic_and_follows_the_formula() {
    let plan = AddressPlan::loopback_default(eph()).unwrap();
    let again = AddressPlan::loopback_default(eph()).unwrap();
    for k in [0, 1, 2, 999, 123_456] {
        assert_eq!(plan.endpoint(k), again.endpoint(k));
    }
    assert_eq!(
        plan.endpoint(0).unwrap(),
        "127.0.0.1:20000".parse().unwrap()
    );
    assert_eq!(
        plan.endpoint(255).unwrap(),
        "127.0.1.0:20000".parse().unwrap()
    );
}

#[test]
fn no_duplicates_over_200k_clients_and_ports_below_ephemeral() {
    let n = 200_000;
    // Few addresses per port, so the port dimension is exercised too.
    let plan = AddressPlan::loopback_default(eph())
        .unwrap()
        .with_addresses_per_port(1_000);
    plan.check(n).unwrap();
    let mut seen = HashSet::with_capacity(n as usize);
    for k in 0..n {
        let ep = plan.endpoint(k).unwrap();
        assert!(ep.port() < 32_768, "{ep} in the ephemeral range");
        assert!(ep.ip().is_loopback());
        assert!(seen.insert(ep), "duplicate endpoint {ep} at {k}");
    }
    assert_eq!(
        plan.ports_used(n).unwrap(),
        PortRange::new(20_000, 20_199).unwrap()
    );
}

#[test]
fn default_plan_uses_one_port_for_100k_clients() {
    let plan = AddressPlan::loopback_default(eph()).unwrap();
    assert_eq!(plan.ports_used(100_000).unwrap().len(), 1);
    assert_eq!(plan.ports().last(), 32_767);
    plan.ports().check_outside(eph()).unwrap();
}

#[test]
fn capacity_error_is_clear() {
    let plan = AddressPlan::new(
        AddressSet::parse_list("127.0.0.2, 127.0.0.3").unwrap(),
        PortRange::new(10_000, 10_009).unwrap(),
    )
    .unwrap();
    assert_eq!(plan.capacity(), 20);
    assert!(plan.endpoint(19).is_ok());
    let err = plan.endpoint(20).unwrap_err();
    assert_eq!(
        err,
        PlanError::TooManyClients {
            clients: 21,
            capacity: 20,
            addresses: 2,
            ports: 10
        }
    );
    assert!(err.to_string().contains("add addresses"), "{err}");
}

#[test]
fn cidr_parsing() {
    let set = AddressSet::parse("10.1.0.0/16").unwrap();
    assert_eq!(set.len(), 65_534);
    assert_eq!(set.get(0), Some("10.1.0.1".parse().unwrap()));
    assert_eq!(set.get(65_533), Some("10.1.255.254".parse().unwrap()));
    assert_eq!(set.get(65_534), None);
    assert_eq!(AddressSet::parse_cidr("10.0.0.7/32").unwrap().len(), 1);
    assert_eq!(AddressSet::parse_cidr("10.0.0.6/31").unwrap().len(), 2);
    assert_eq!(
        AddressSet::parse_cidr("0.0.0.0/0").unwrap().len(),
        (1 << 32) - 2
    );
    for (bad, why) in [
        ("10.1.0.0", "expected address/prefix-length"),
        ("10.1.0.0/33", "prefix length above 32"),
        ("10.1.0.1/16", "host bits set"),
        ("10.1.0/16", "bad address"),
        ("10.1.0.0/x", "bad prefix length"),
        ("fd00::/129", "prefix length above 128"),
        ("fd00::1/64", "host bits set"),
    ] {
        let err = AddressSet::parse_cidr(bad).unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn ipv6_prefixes_give_one_address_per_client() {
    let set = AddressSet::parse("fd00:5::/64").unwrap();
    assert_eq!(set.len(), MAX_V6_ADDRESSES);
    assert_eq!(set.get(0), Some("fd00:5::1".parse().unwrap()));
    assert_eq!(set.get(99_999), Some("fd00:5::1:86a0".parse().unwrap()));
    assert_eq!(
        set.index_of("fd00:5::1:86a0".parse().unwrap()),
        Some(99_999)
    );
    assert_eq!(set.index_of("fd00:5::".parse().unwrap()), None);
    assert_eq!(set.index_of("127.0.0.1".parse().unwrap()), None);
    assert_eq!(AddressSet::parse("fd00::/120").unwrap().len(), 255);
    assert_eq!(
        AddressSet::parse("fd00::7/128").unwrap().get(0),
        Some("fd00::7".parse().unwrap())
    );
    assert_eq!(AddressSet::parse("fd00::6/127").unwrap().len(), 2);
    // A plan over a prefix: one port holds every client, each on its own address.
    let plan = AddressPlan::new(set, PortRange::new(20_000, 20_003).unwrap()).unwrap();
    assert_eq!(
        plan.endpoint(5).unwrap(),
        "[fd00:5::6]:20000".parse().unwrap()
    );
    assert_eq!(plan.index_of("[fd00:5::6]:20000".parse().unwrap()), Some(5));
    assert_eq!(plan.capacity(), 4 * MAX_V6_ADDRESSES);
}

#[test]
fn list_parsing() {
    let set = AddressSet::parse("127.0.0.5,127.0.0.6 ::1").unwrap();
    assert_eq!(set.len(), 3);
    assert_eq!(set.get(2), Some("::1".parse().unwrap()));
    assert_eq!(AddressSet::parse(" ,"), Err(PlanError::EmptyAddresses));
    assert!(matches!(
        AddressSet::parse("127.0.0.5,nope"),
        Err(PlanError::InvalidAddress { input }) if input == "nope"
    ));
    assert!(
        AddressSet::parse("127.0.0.5,127.0.0.5")
            .unwrap_err()
            .to_string()
            .contains("duplicate")
    );
    assert_eq!(
        AddressSet::parse("loopback").unwrap(),
        AddressSet::loopback()
    );
}

#[test]
fn port_ranges() {
    assert!(PortRange::new(0, 10).is_err());
    assert!(PortRange::new(10, 9).is_err());
    let e = eph();
    assert!(
        PortRange::new(30_000, 40_000)
            .unwrap()
            .check_outside(e)
            .is_err()
    );
    assert!(
        PortRange::new(61_000, 61_010)
            .unwrap()
            .check_outside(e)
            .is_ok()
    );
    assert!(PortRange::below_ephemeral(40_000, e).is_err());
    assert_eq!(parse_ephemeral_range("32768\t60999\n").unwrap(), e);
    assert!(parse_ephemeral_range("32768").is_err());
    assert!(parse_ephemeral_range("a b").is_err());
    // The host's range parses (or falls back to Linux's default).
    assert!(ephemeral_range().first() > 1024);
}

#[test]
fn index_of_inverts_endpoint() {
    let plans = [
        AddressPlan::loopback_default(eph())
            .unwrap()
            .with_addresses_per_port(1000),
        AddressPlan::new(
            AddressSet::parse_list("10.0.0.1, 10.0.0.7, ::1").unwrap(),
            PortRange::new(20_000, 21_100).unwrap(),
        )
        .unwrap(),
    ];
    for plan in &plans {
        for i in (0..3000).step_by(7) {
            let ep = plan.endpoint(i).unwrap();
            assert_eq!(plan.index_of(ep), Some(i), "{ep}");
        }
    }
    let plan = &plans[0];
    // An address past this plan's per-port share, or a port outside the range, is no client.
    assert_eq!(plan.index_of("127.0.100.1:20000".parse().unwrap()), None);
    assert_eq!(plan.index_of("127.0.0.1:19999".parse().unwrap()), None);
    assert_eq!(plan.index_of("10.0.0.1:20000".parse().unwrap()), None);
}

#[test]
fn rebound_endpoints_keep_the_port_and_take_spare_addresses_no_client_has() {
    let plan = AddressPlan::new(
        AddressSet::parse_cidr("10.1.0.0/29").unwrap(),
        PortRange::new(20_000, 20_009).unwrap(),
    )
    .unwrap()
    .with_addresses_per_port(3);
    // 8 addresses, 3 per port: 1 spare generation (addresses 3..6).
    for i in 0..30 {
        let home = plan.endpoint(i).unwrap();
        let moved = plan.rebound_endpoint(i, 1).unwrap();
        assert_eq!(moved.port(), home.port());
        assert_ne!(moved, home);
        assert_eq!(plan.index_of(moved), None, "{moved} belongs to a client");
        assert!(plan.is_spare(moved) && !plan.is_spare(home));
        assert_eq!(plan.rebound_endpoint(i, 2), Some(moved));
    }
    assert_eq!(plan.rebound_endpoint(0, 0), None);
    // Every address in use: nowhere to move.
    let full = AddressPlan::new(
        AddressSet::parse_list("10.0.0.1").unwrap(),
        PortRange::new(20_000, 20_009).unwrap(),
    )
    .unwrap();
    assert_eq!(full.rebound_endpoint(0, 1), None);
    // Loopback with many clients per port still has thousands of spare generations.
    let lo = AddressPlan::loopback_default(eph())
        .unwrap()
        .with_addresses_per_port(1000);
    let seen: HashSet<SocketAddr> = (1..=100)
        .map(|n| lo.rebound_endpoint(5, n).unwrap())
        .collect();
    assert_eq!(seen.len(), 100);
}
