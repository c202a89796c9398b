//! `[network]` and a population's `network = { ... }`: the emulated link, checked.

use std::time::Duration;

use toml::Spanned;

use super::raw::RawNetwork;
use super::span::At;
use super::{FleetError, NetworkConditions, parse_duration};

/// `base` with the fields `raw` gives, each checked: a population's table overrides the
/// fleet-wide one field by field.
pub(super) fn conditions(
    raw: &RawNetwork,
    base: NetworkConditions,
    at: &At,
) -> Result<NetworkConditions, FleetError> {
    let mut c = base;
    let probability = |field: &str, v: Option<f64>, into: &mut f64| {
        if let Some(p) = v {
            if !(0.0..=1.0).contains(&p) {
                return Err(at.err(
                    field,
                    format!("{p}: a probability per datagram, from 0 to 1 (0.2 is 20%)"),
                ));
            }
            *into = p;
        }
        Ok(())
    };
    probability("loss", raw.loss, &mut c.loss)?;
    probability("duplicate", raw.duplicate, &mut c.duplicate)?;
    probability("reorder", raw.reorder, &mut c.reorder)?;
    let duration = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|text| parse_duration(text).map_err(|e| at.err(field, e.to_string())))
            .transpose()
    };
    if let Some(d) = duration("delay", &raw.delay)? {
        c.delay = d;
    }
    if let Some(d) = duration("jitter", &raw.jitter)? {
        c.jitter = d;
    }
    if let Some(every) = duration("rebind_every", &raw.rebind_every)? {
        if every < MIN_REBIND_EVERY {
            return Err(at.err(
                "rebind_every",
                format!("at least {}ms", MIN_REBIND_EVERY.as_millis()),
            ));
        }
        c.rebind_every = Some(every);
    }
    Ok(c)
}

/// Rebinding more often than this is no NAT any server would meet (and a typo for "10m").
const MIN_REBIND_EVERY: Duration = Duration::from_millis(100);

/// The fleet-wide table, or clear conditions without one.
pub(super) fn fleet_wide(
    raw: Option<&Spanned<RawNetwork>>,
    file: &str,
    text: &str,
) -> Result<NetworkConditions, FleetError> {
    let Some(raw) = raw else {
        return Ok(NetworkConditions::default());
    };
    let at = At {
        file,
        text,
        span: raw.span(),
    };
    conditions(raw.get_ref(), NetworkConditions::default(), &at)
}

/// Over TCP the kernel retransmits what is lost: emulating a datagram link there would measure
/// nothing real, so it is refused.
pub(super) fn check_datagrams(
    network: &NetworkConditions,
    tcp: bool,
    at: &At,
) -> Result<(), FleetError> {
    if tcp && !network.is_clear() {
        return Err(at.err(
            "network",
            "network impairment emulates a datagram link (UDP, DTLS): it does not apply to a \
             coap+tcp:// or coaps+tcp:// server; remove [network] or use coap:// / coaps://",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::fleet::{Fleet, NetworkConditions};

    const MS: Duration = Duration::from_millis(1);

    fn fleet_with(network: &str, population_extra: &str) -> String {
        format!(
            "{network}\n[[population]]\nname = \"a\"\nshare = 0.5\ntemplate = \"smart-meter\"\n\
             [[population]]\nname = \"b\"\nshare = 0.5\ntemplate = \"smart-meter\"\n\
             {population_extra}\n[load]\nclients = 4\nrate = 1\nhold = \"0s\"\n"
        )
    }

    fn error(text: &str) -> (usize, String, String) {
        crate::fleet::tests::located(Fleet::from_toml(text, "t.toml"))
    }

    #[test]
    fn a_population_overrides_the_fleet_wide_table_field_by_field() {
        let text = fleet_with(
            "[network]\nloss = 0.2\ndelay = \"100ms\"\njitter = \"20ms\"\nduplicate = 0.01\n\
             reorder = 0.02\nrebind_every = \"10m\"",
            "network = { loss = 0.5, rebind_every = \"1m\" }",
        );
        let f = Fleet::from_toml(&text, "t.toml").unwrap();
        let wide = NetworkConditions {
            loss: 0.2,
            delay: 100 * MS,
            jitter: 20 * MS,
            duplicate: 0.01,
            reorder: 0.02,
            rebind_every: Some(Duration::from_secs(600)),
        };
        assert_eq!(f.groups[0].network, wide);
        let b = NetworkConditions {
            loss: 0.5,
            rebind_every: Some(Duration::from_secs(60)),
            ..wide
        };
        assert_eq!(f.groups[1].network, b);
        assert_eq!(f.plan().groups[1].network, b);
        // `check` prints each population's link.
        let printed = f.plan().to_string();
        assert!(
            printed.contains(
                "network: loss 50%, duplicate 1%, reorder 2%, delay 100ms ± 20ms, rebind every 1m"
            ),
            "{printed}"
        );
        // Without any table, nothing is emulated.
        let clear = Fleet::from_toml(&fleet_with("", ""), "t.toml").unwrap();
        assert!(clear.groups.iter().all(|g| g.network.is_clear()));
    }

    #[test]
    fn bad_values_name_their_line_and_field() {
        let wide = |table: &str| error(&fleet_with(&format!("[network]\n{table}"), ""));
        let (line, field, message) = wide("delay = \"1ms\"\nloss = 1.5");
        assert_eq!((line, field.as_str()), (3, "loss"));
        assert!(message.contains("from 0 to 1"), "{message}");
        assert_eq!(wide("duplicate = -0.1").1, "duplicate");
        assert_eq!(wide("reorder = nan").1, "reorder");
        assert_eq!(wide("delay = \"-5ms\"").1, "delay");
        assert_eq!(wide("jitter = \"20\"").1, "jitter");
        assert_eq!(wide("rebind_every = \"0s\"").1, "rebind_every");
        assert_eq!(wide("lost = 0.1").1, "lost");
        // In a population's table, the line is the population's.
        let (line, field, _) = error(&fleet_with("", "network = { delay = \"soon\" }"));
        assert_eq!((line, field.as_str()), (10, "delay"));
    }

    #[test]
    fn a_tcp_server_refuses_impairment() {
        let tcp = "[server]\nuri = \"coap+tcp://127.0.0.1:5684\"\n[client]\nlwm2m = \"1.1\"\n";
        let (line, field, message) = error(&fleet_with(&format!("{tcp}[network]\nloss = 0.1"), ""));
        assert_eq!((line, field.as_str()), (5, "network"));
        assert!(message.contains("coap+tcp://"), "{message}");
        let text = fleet_with(tcp, "network = { delay = \"10ms\" }");
        assert_eq!(error(&text).1, "network");
    }
}
