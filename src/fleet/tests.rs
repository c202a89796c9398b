use crate::toml_span::Located;
use std::time::Duration;

use super::*;
use crate::coap::uri::parse_uri;

fn fleet(text: &str) -> Fleet {
    Fleet::from_toml(text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn with_load(populations: &str, load: &str) -> Fleet {
    fleet(&format!("{populations}\n[load]\n{load}\nhold = \"1m\"\n"))
}

const ONE_GROUP: &str = "[[population]]\nname = \"a\"\nshare = 1.0\ntemplate = \"smart-meter\"\n";

#[test]
fn stages_schedule_starts_linearly_within_each_stage() {
    let f = with_load(
        ONE_GROUP,
        "stages = [{ target = 1000, over = \"10s\" }, { target = 3000, over = \"10s\" }]",
    );
    assert_eq!(f.clients, 3000);
    let plan = f.plan();
    let ms = Duration::from_millis;
    let at = |slot| plan.start_offset(slot);
    assert_eq!(at(0), ms(0));
    assert_eq!(at(1), ms(10));
    assert_eq!(at(999), ms(9990));
    assert_eq!(at(1000), ms(10_000));
    assert_eq!(at(1001), ms(10_005));
    assert_eq!(at(2999), ms(19_995));
    assert_eq!(plan.ramp_duration(), ms(20_000));
    // One group: start order is index order.
    assert_eq!(plan.client(1001).unwrap().start, ms(10_005));
}

#[test]
fn plateau_and_burst_stages() {
    let f = with_load(
        ONE_GROUP,
        "stages = [{ target = 10, over = \"0s\" }, { target = 10, over = \"5s\" }, { target = 20, over = \"10s\" }]",
    );
    let plan = f.plan();
    assert_eq!(plan.start_offset(9), Duration::ZERO);
    assert_eq!(plan.start_offset(10), Duration::from_secs(5));
    assert_eq!(plan.start_offset(15), Duration::from_secs(10));
}

#[test]
fn rate_schedule() {
    let plan = with_load(ONE_GROUP, "clients = 500\nrate = 250").plan();
    assert_eq!(plan.start_offset(0), Duration::ZERO);
    assert_eq!(plan.start_offset(250), Duration::from_secs(1));
    assert_eq!(plan.start_offset(1), Duration::from_millis(4));
    assert_eq!(plan.ramp_duration(), Duration::from_secs(2));
    assert_eq!(plan.total_duration(), Duration::from_secs(2 + 60 + 30));
}

#[test]
fn shares_distribute_exactly_the_total() {
    let one = |n: &str| {
        format!("[[population]]\nname = \"{n}\"\nshare = 0.3333333333333333\ntemplate = \"t\"\n")
    };
    let pops = one("x") + &one("y") + &one("z");
    for clients in [3, 4, 5, 10, 100, 1001, 999_999] {
        let f = fleet(&format!(
            "{pops}[load]\nclients = {clients}\nrate = 10\nhold = \"0s\"\n"
        ));
        let counts: Vec<u64> = f.groups.iter().map(|g| g.count).collect();
        assert_eq!(counts.iter().sum::<u64>(), clients, "{counts:?}");
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
    }
    let f = with_load(
        "[[population]]\nname = \"a\"\ncount = 7\ntemplate = \"t\"\n\
         [[population]]\nname = \"b\"\nshare = 0.6\ntemplate = \"t\"\n\
         [[population]]\nname = \"c\"\nshare = 0.33\ntemplate = \"t\"\n",
        "clients = 100\nrate = 1",
    );
    let counts: Vec<u64> = f.groups.iter().map(|g| g.count).collect();
    assert_eq!(counts, vec![7, 60, 33]);
}

#[test]
fn endpoint_names_use_prefix_width_and_start() {
    let f = fleet(&format!(
        "[client]\nendpoint_prefix = \"dev-\"\nwidth = 5\nstart = 100\n{ONE_GROUP}\
         [load]\nclients = 3\nrate = 1\nhold = \"0s\"\n"
    ));
    let plan = f.plan();
    assert_eq!(plan.client(0).unwrap().endpoint, "dev-00100");
    assert_eq!(plan.client(2).unwrap().endpoint, "dev-00102");
    let wide = Naming {
        prefix: "n".into(),
        width: 2,
        start: 0,
    };
    assert_eq!(wide.endpoint(123), "n123");
    let default = with_load(ONE_GROUP, "clients = 3\nrate = 1").plan();
    assert_eq!(default.client(1).unwrap().endpoint, "swarm-000001");
}

#[test]
fn groups_are_interleaved_and_start_slots_are_a_permutation() {
    let f = with_load(
        "[[population]]\nname = \"a\"\ncount = 7\ntemplate = \"t\"\n\
         [[population]]\nname = \"b\"\ncount = 3\ntemplate = \"t\"\n\
         [[population]]\nname = \"c\"\ncount = 5\ntemplate = \"t\"\n",
        "rate = 1",
    );
    let plan = f.plan();
    assert_eq!(plan.clients, 15);
    let mut slots: Vec<u64> = (0..15).map(|k| plan.start_slot(k).unwrap()).collect();
    let by_slot: Vec<usize> = {
        let mut order: Vec<(u64, usize)> = (0..15)
            .map(|k| (slots[k as usize], plan.group_of(k).unwrap()))
            .collect();
        order.sort_unstable();
        order.into_iter().map(|(_, g)| g).collect()
    };
    slots.sort_unstable();
    assert_eq!(slots, (0..15).collect::<Vec<_>>());
    // Every group starts early: the first five starts include all three groups.
    for g in 0..3 {
        assert!(by_slot[..5].contains(&g), "{by_slot:?}");
    }
    assert_eq!(plan.client(7).unwrap().group, 1);
    assert_eq!(plan.groups[2].range(), 10..15);
}

#[test]
fn client_settings_merge_fleet_defaults_and_overrides() {
    let f = fleet(
        "[client]\nlifetime = \"1h\"\nlwm2m = \"1.2\"\nseed = 9\n\
         [[population]]\nname = \"s\"\ncount = 2\ntemplate = \"t\"\nbehaviour = \"sleepy\"\n\
         [population.client]\nawake_window = \"20s\"\nseed = 4\n\
         [[population]]\nname = \"c\"\ncount = 2\ntemplate = \"t\"\nbehaviour = \"churn\"\n\
         churn_every = \"10m\"\nchurn_jitter = \"1m\"\n\
         [load]\nrate = 1\nhold = \"0s\"\n",
    );
    let (s, c) = (&f.groups[0], &f.groups[1]);
    assert_eq!(s.config.lifetime, Duration::from_secs(3600));
    assert_eq!(s.config.version, crate::client::LwM2mVersion::V1_2);
    assert!(s.config.queue_mode && !c.config.queue_mode);
    assert_eq!(s.config.awake_window, Duration::from_secs(20));
    assert_eq!((s.seed, c.seed), (4, 9));
    assert_eq!(
        c.behaviour,
        Behaviour::Churn {
            every: Duration::from_secs(600),
            jitter: Duration::from_secs(60)
        }
    );
    assert_eq!(f.clients, 4);
}

#[test]
fn wire_guards_take_fleet_defaults_and_population_overrides() {
    use crate::client::{AcceptRequests, DEFAULT_BLOCK1_MAX_BODY, DEFAULT_MAX_OBSERVATIONS};
    let f = fleet(
        "[client]\naccept_requests = \"server\"\nblock1_max_size = 4096\n\
         [[population]]\nname = \"a\"\ncount = 1\ntemplate = \"t\"\n\
         [[population]]\nname = \"b\"\ncount = 1\ntemplate = \"t\"\n\
         [population.client]\naccept_requests = \"any\"\nblock1_idle_timeout = \"5s\"\n\
         max_observations = 3\n\
         [load]\nrate = 1\nhold = \"0s\"\n",
    );
    let (a, b) = (&f.groups[0].config, &f.groups[1].config);
    assert_eq!(a.accept_requests, AcceptRequests::Server);
    assert_eq!(b.accept_requests, AcceptRequests::Any);
    assert_eq!((a.block1_max_body, b.block1_max_body), (4096, 4096));
    assert_eq!(a.block1_idle_timeout, Duration::from_secs(93));
    assert_eq!(b.block1_idle_timeout, Duration::from_secs(5));
    assert_eq!(a.max_observations, DEFAULT_MAX_OBSERVATIONS);
    assert_eq!(b.max_observations, 3);
    let plain = fleet(&format!(
        "{ONE_GROUP}[load]\nclients = 1\nrate = 1\nhold = \"0s\"\n"
    ));
    let defaults = &plain.groups[0].config;
    assert_eq!(defaults.accept_requests, AcceptRequests::ServerHost);
    assert_eq!(defaults.block1_max_body, DEFAULT_BLOCK1_MAX_BODY);
}

#[test]
fn bad_wire_guards_name_their_field_and_say_what_is_allowed() {
    let base = format!("{ONE_GROUP}[load]\nclients = 5\nrate = 1\nhold = \"0s\"\n");
    for (setting, field, says) in [
        (
            "accept_requests = \"nobody\"",
            "accept_requests",
            "\"server-host\"",
        ),
        ("block1_max_size = 8", "block1_max_size", "16 to"),
        (
            "block1_max_size = 100000000000",
            "block1_max_size",
            "64 MiB",
        ),
        (
            "block1_idle_timeout = \"0s\"",
            "block1_idle_timeout",
            "more than 0s",
        ),
        ("block1_idle_timeout = \"soon\"", "block1_idle_timeout", ""),
        ("max_observations = 0", "max_observations", "1 to 10000"),
    ] {
        let line = format!("[population.client]\n{setting}\n[load]");
        rejected_on_line_6(&base.replacen("[load]", &line, 1), setting, field, says);
    }
}

/// `text` (one population setting on line 6) must be refused naming `field` on
/// line 6, with a message that contains `says`.
fn rejected_on_line_6(text: &str, setting: &str, field: &str, says: &str) {
    match Fleet::from_toml(text, "t.toml") {
        Err(FleetError::Invalid(located)) => {
            assert_eq!(
                (located.line, located.field.as_str()),
                (6, field),
                "{setting}"
            );
            let shown = FleetError::Invalid(located).to_string();
            assert!(shown.contains(says), "{setting}: {shown}");
        }
        other => panic!("{setting}: {other:?}"),
    }
}

/// The line, field and message of the error `result` must be (a panic otherwise).
pub(super) fn located(result: Result<Fleet, FleetError>) -> (usize, String, String) {
    match result {
        Err(FleetError::Invalid(Located {
            line,
            field,
            message,
            ..
        })) => (line, field, message),
        other => panic!("{other:?}"),
    }
}

fn error(text: &str) -> (usize, String) {
    match Fleet::from_toml(text, "t.toml") {
        Err(FleetError::Invalid(Located {
            file, line, field, ..
        })) => {
            assert_eq!(file, "t.toml");
            (line, field)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_counts_below_one_or_too_large_say_so_in_words() {
    let base = format!("{ONE_GROUP}[load]\nclients = 5\nrate = 1\nhold = \"0s\"\n");
    let message = |to: &str| match Fleet::from_toml(&base.replacen("clients = 5", to, 1), "t.toml")
    {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{to} accepted"),
    };
    // 0 and -3 get the same words: neither is "0 or more" with 0 refused.
    assert_eq!(
        message("clients = 0"),
        "t.toml:6: field `clients`: expected a whole number of at least 1, found 0"
    );
    assert_eq!(
        message("clients = -3"),
        "t.toml:6: field `clients`: expected a whole number of at least 1, found the number -3"
    );
    let huge = message("clients = 99999999999999999999");
    assert!(huge.starts_with("t.toml:6:"), "{huge}");
    assert!(huge.contains("a number too large"), "{huge}");
    assert!(!huge.contains("target type"), "{huge}");
    let pops = base.replacen("share = 1.0", "count = 0", 1);
    let count = Fleet::from_toml(&pops, "t.toml").unwrap_err().to_string();
    assert!(
        count.ends_with("field `count`: expected a whole number of at least 1, found 0"),
        "{count}"
    );
}

#[test]
fn a_missing_fleet_file_is_no_such_file_without_the_os_number() {
    let e = Fleet::load(std::path::Path::new("fleets/nope.toml")).unwrap_err();
    assert_eq!(e.to_string(), "fleets/nope.toml: cannot read: no such file");
}

#[test]
fn errors_name_line_and_field() {
    let base = format!("{ONE_GROUP}[load]\nclients = 5\nrate = 1\nhold = \"0s\"\n");
    let bad = |from: &str, to: &str| error(&base.replacen(from, to, 1));
    assert_eq!(bad("rate = 1", "rate = 0"), (7, "rate".into()));
    assert_eq!(bad("rate = 1", "rat = 1"), (7, "rat".into()));
    assert_eq!(bad("clients = 5", "clients = -5"), (6, "clients".into()));
    assert_eq!(bad("share = 1.0", "share = 1.5"), (3, "share".into()));
    assert_eq!(
        bad("template", "churn_every = \"1m\"\ntemplate"),
        (4, "churn_every".into())
    );
    assert_eq!(
        bad("[load]", "[population.client]\nwidth = 3\n[load]"),
        (6, "width".into())
    );
    assert_eq!(
        bad(
            "[load]",
            "[population.client]\nqueue_mode = true\nawake_window = \"0s\"\n[load]"
        ),
        (7, "awake_window".into())
    );
    assert_eq!(
        bad(
            "[load]",
            "[population.values]\n\"3303/x\" = { value = 1 }\n[load]"
        ),
        (6, "3303/x".into())
    );
    assert_eq!(
        bad(
            "[[population]]",
            "[server]\nuri = \"http://x\"\n[[population]]"
        ),
        (2, "uri".into())
    );
    assert_eq!(
        error("[load]\nrate = 1\nhold = \"0s\"\n"),
        (1, "population".into())
    );
}

#[test]
fn server_uris() {
    let uri = parse_uri("coap://example.com:5690").unwrap();
    assert_eq!(
        (uri.host.as_str(), uri.port, uri.scheme),
        ("example.com", 5690, Scheme::Coap)
    );
    assert_eq!(parse_uri("coap://10.0.0.1").unwrap().port, 5683);
    assert_eq!(
        parse_uri("coaps://[::1]").unwrap().to_string(),
        "coaps://[::1]:5684"
    );
    for bad in [
        "coap://",
        "coap://h:0",
        "coap://h:99999",
        "coap://h:1/rd",
        "udp://h:1",
        "coap://[::1",
    ] {
        assert!(parse_uri(bad).is_err(), "{bad}");
    }
}

#[test]
fn coaps_without_security_is_rejected() {
    // With credentials it is accepted: see credentials/tests.rs.
    let err = Fleet::from_toml(
        &format!(
            "[server]\nuri = \"coaps://h\"\n{ONE_GROUP}[load]\nclients = 1\nrate = 1\nhold = \"0s\"\n"
        ),
        "t.toml",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("t.toml:2: field `uri`: coaps:// needs"),
        "{err}"
    );
}

#[test]
fn command_line_values_replace_the_file() {
    const HALF: &str = "[[population]]\nname = \"a\"\nshare = 0.5\ntemplate = \"smart-meter\"\n";
    let text = format!(
        "[client]\nseed = 7\n{HALF}[[population]]\nname = \"b\"\nshare = 0.5\n\
         template = \"smart-meter\"\n[population.client]\nseed = 9\n\
         [load]\nstages = [{{ target = 100, over = \"10s\" }}, {{ target = 200, over = \"10s\" }}]\n\
         hold = \"1m\"\n"
    );
    let plain = Fleet::from_toml(&text, "t.toml").unwrap();
    assert_eq!(plain.clients, 200);
    assert_eq!(plain.plan().stop_at(), Duration::from_secs(80));

    // More clients keep the stages' shape; a seed reaches every population.
    let overrides = Overrides {
        server: Some(parse_uri("coap://127.0.0.1:5999").unwrap()),
        clients: Some(1000),
        seed: Some(3),
        duration: Some(Duration::from_secs(30)),
        ..Overrides::default()
    };
    let f = Fleet::from_toml_with(&text, "t.toml", &overrides).unwrap();
    assert_eq!(f.clients, 1000);
    assert_eq!(f.groups.iter().map(|g| g.count).sum::<u64>(), 1000);
    assert_eq!(f.groups[1].count, 500);
    assert!(f.groups.iter().all(|g| g.seed == 3));
    assert_eq!(f.server.as_ref().unwrap().port, 5999);
    let overridden = f.plan();
    assert_eq!(overridden.start_offset(500), Duration::from_secs(10));
    assert_eq!(overridden.stop_at(), Duration::from_secs(30));
    assert_eq!(overridden.total_duration(), Duration::from_secs(60));

    // A rate replaces the stages.
    let rated = Overrides {
        rate: Some(50.0),
        ..Overrides::default()
    };
    let f = Fleet::from_toml_with(&text, "t.toml", &rated).unwrap();
    assert_eq!(f.load.ramp, Ramp::Rate(50.0));
    assert_eq!(f.plan().ramp_duration(), Duration::from_secs(4));

    // The usual checks apply to overridden values.
    let too_few = Overrides {
        clients: Some(1),
        ..Overrides::default()
    };
    let err = Fleet::from_toml_with(&text, "t.toml", &too_few)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gives 0 of 1 clients"), "{err}");
}

#[test]
fn stop_rate_follows_the_fastest_stage_within_the_stop_timeout() {
    let staged = with_load(
        ONE_GROUP,
        "stages = [{ target = 100, over = \"10s\" }, { target = 1100, over = \"10s\" }]\nstop_timeout = \"100s\"",
    );
    assert!((staged.plan().stop_rate() - 100.0).abs() < 1e-9);
    // 1000 clients at 1/s would need 1000 s: the stop goes faster, done in half of 20 s.
    let slow = with_load(
        ONE_GROUP,
        "clients = 1000\nrate = 1\nstop_timeout = \"20s\"",
    );
    assert!((slow.plan().stop_rate() - 100.0).abs() < 1e-9);
}

#[test]
fn thresholds_are_parsed_and_located() {
    let f = with_load(
        ONE_GROUP,
        "clients = 5\nrate = 1\nthresholds = [\n  \"register.p99<500ms\",\n  \"update.error_rate < 1%\",\n]",
    );
    let texts: Vec<&str> = f.load.thresholds.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["register.p99<500ms", "update.error_rate < 1%"]);
    assert!(
        with_load(ONE_GROUP, "clients = 5\nrate = 1")
            .load
            .thresholds
            .is_empty()
    );

    let text = format!(
        "{ONE_GROUP}[load]\nclients = 5\nrate = 1\nhold = \"0s\"\nthresholds = [\n  \"register.p99<500ms\",\n  \"register.p99<500\",\n]\n"
    );
    let Err(FleetError::Invalid(e)) = Fleet::from_toml(&text, "t.toml") else {
        panic!("a bad threshold is an error");
    };
    assert_eq!((e.line, e.field.as_str()), (11, "thresholds"));
    assert!(e.message.contains("with its unit"), "{e}");
    assert_eq!(
        error(&text.replace("thresholds = [", "thresholds = 3\nx = [")),
        (9, "thresholds".into())
    );
}

#[test]
fn a_bootstrap_table_makes_every_client_bootstrap() {
    let text = format!(
        "[server]\nuri = \"coap://10.0.0.1:5783\"\n[bootstrap]\nfinish_timeout = \"30s\"\n\
         content_format = \"senml-cbor\"\n{ONE_GROUP}[population.client]\nlwm2m = \"1.0\"\n\
         [load]\nclients = 3\nrate = 1\nhold = \"0s\"\n"
    );
    let f = fleet(&text);
    let expected = crate::client::ClientBootstrapConfig {
        finish_timeout: Duration::from_secs(30),
        preferred_format: Some(crate::content::ContentFormat::SenmlCbor),
    };
    assert_eq!(f.bootstrap.as_ref(), Some(&expected));
    // Population settings keep it (a 1.0 population simply sends no pct).
    assert_eq!(f.groups[0].config.bootstrap.as_ref(), Some(&expected));
    let shown = f.plan().to_string();
    assert!(
        shown.contains("server    coap://10.0.0.1:5783 (a bootstrap server)"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "bootstrap Bootstrap-Request first, Finish within 30s, preferred format senml-cbor"
        ),
        "{shown}"
    );
    // An empty table is enough; without one, nobody bootstraps.
    let embedded = fleet(&format!(
        "[bootstrap]\n{ONE_GROUP}[load]\nclients = 1\nrate = 1\nhold = \"0s\"\n"
    ));
    assert_eq!(
        embedded.groups[0].config.bootstrap,
        Some(crate::client::ClientBootstrapConfig::default())
    );
    assert!(
        embedded
            .plan()
            .to_string()
            .contains("server    embedded (a bootstrap server")
    );
    let unconfigured = fleet(&format!(
        "{ONE_GROUP}[load]\nclients = 1\nrate = 1\nhold = \"0s\"\n"
    ));
    assert!(unconfigured.groups[0].config.bootstrap.is_none());
}

#[test]
fn bootstrap_errors_name_line_and_field() {
    let base = format!(
        "[bootstrap]\nfinish_timeout = \"30s\"\ncontent_format = \"tlv\"\n{ONE_GROUP}\
         [load]\nclients = 5\nrate = 1\nhold = \"0s\"\n"
    );
    let bad = |from: &str, to: &str| error(&base.replacen(from, to, 1));
    assert_eq!(bad("\"30s\"", "\"0s\""), (2, "finish_timeout".into()));
    assert_eq!(bad("\"30s\"", "\"soon\""), (2, "finish_timeout".into()));
    assert_eq!(bad("\"tlv\"", "\"json\""), (3, "content_format".into()));
    assert_eq!(bad("content_format", "format"), (3, "format".into()));
    let over_tcp = format!("[server]\nuri = \"coap+tcp://127.0.0.1:5783\"\n{base}");
    assert_eq!(error(&over_tcp), (3, "bootstrap".into()));
}

const THREE_GROUPS: &str = "[[population]]\nname = \"a\"\ncount = 700\ntemplate = \"t\"\n\
     [[population]]\nname = \"b\"\ncount = 301\ntemplate = \"t\"\n\
     [[population]]\nname = \"c\"\ncount = 45\ntemplate = \"t\"\n";

#[test]
fn shards_share_every_stage_of_the_ramp() {
    let stages = with_load(
        THREE_GROUPS,
        "stages = [{ target = 100, over = \"10s\" }, { target = 100, over = \"5s\" }, \
         { target = 1046, over = \"20s\" }]",
    )
    .plan();
    let rate = with_load(THREE_GROUPS, "rate = 100").plan();
    for plan in [stages, rate] {
        let whole = plan.stage_shares();
        for count in [1, 2, 3, 7, 16] {
            let parts: Vec<Vec<StageShare>> = (0..count)
                .map(|i| {
                    let slice = Slice::new(i, count).unwrap();
                    plan.clone().with_slice(slice).unwrap().stage_shares()
                })
                .collect();
            for (s, stage) in whole.iter().enumerate() {
                assert_eq!(stage.mine, stage.to - stage.from);
                // Counted directly: the slice's clients whose start slot is in the stage.
                for (i, part) in parts.iter().enumerate() {
                    let slice = Slice::new(i as u32, count).unwrap();
                    let direct = slice
                        .clients(plan.clients)
                        .filter(|k| (stage.from..stage.to).contains(&plan.start_slot(*k).unwrap()))
                        .count() as u64;
                    assert_eq!(part[s].mine, direct);
                    // An even share, within one client per population.
                    let even = (stage.to - stage.from) / u64::from(count);
                    assert!(part[s].mine.abs_diff(even) <= 3, "{:?}", part[s]);
                }
                // The shards' rates add up to the stage's.
                let mine: u64 = parts.iter().map(|p| p[s].mine).sum();
                assert_eq!(mine, stage.to - stage.from);
                if !stage.over.is_zero() {
                    let rates: f64 = parts.iter().map(|p| p[s].rate()).sum();
                    assert!((rates - stage.rate()).abs() < 1e-9 * stage.rate().max(1.0));
                }
            }
        }
    }
}

#[test]
fn a_shard_without_clients_and_a_different_load_are_told_apart() {
    let plan = with_load(ONE_GROUP, "clients = 3\nrate = 1").plan();
    let e = plan
        .clone()
        .with_slice(Slice::new(3, 4).unwrap())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "--shard 3/4: a fleet of 3 clients has no client for shard 3: run at most 3 shards"
    );
    let other = with_load(ONE_GROUP, "clients = 3\nrate = 2").plan();
    assert_ne!(plan.load_definition(), other.load_definition());
    // A shard is the same test as the whole fleet.
    let shard = plan.clone().with_slice(Slice::new(1, 2).unwrap()).unwrap();
    assert_eq!(shard.load_definition(), plan.load_definition());
    let text = plan
        .with_slice(Slice::new(1, 2).unwrap())
        .unwrap()
        .to_string();
    assert!(
        text.contains(
            "shard     1/2: 1 clients (swarm-000001 .. swarm-000001, every 2 from client 1)"
        ),
        "{text}"
    );
    assert!(text.contains("this shard 1 at 0.3/s"), "{text}");
}

#[test]
fn firmware_settings_take_fleet_defaults_and_population_overrides() {
    use crate::client::{FirmwareConfig, FirmwareFailures};
    let f = fleet(
        "[client]\nfirmware = { update_time = \"2m\", download_rate = 1500 }\n\
         [[population]]\nname = \"a\"\ncount = 1\ntemplate = \"t\"\n\
         [[population]]\nname = \"b\"\ncount = 1\ntemplate = \"t\"\n\
         [population.client]\nfirmware = { package_limit = 65536, version = \"2.0.0\", \
         failures = { integrity = 0.05, update = 0.1 } }\n\
         [load]\nrate = 1\nhold = \"0s\"\n",
    );
    let (a, b) = (&f.groups[0].config.firmware, &f.groups[1].config.firmware);
    assert_eq!(a.update_time, Duration::from_secs(120));
    assert_eq!(a.download_rate, Some(1500));
    assert_eq!(a.package_limit, FirmwareConfig::default().package_limit);
    assert_eq!(a.failures, FirmwareFailures::default());
    // The population's table overrides field by field.
    assert_eq!(b.update_time, Duration::from_secs(120));
    assert_eq!(b.download_rate, Some(1500));
    assert_eq!(b.package_limit, 65536);
    assert_eq!(b.version.as_deref(), Some("2.0.0"));
    let expected = FirmwareFailures {
        integrity: 0.05,
        update: 0.1,
        ..FirmwareFailures::default()
    };
    assert_eq!(b.failures, expected);
}

#[test]
fn bad_firmware_settings_name_their_field() {
    let base = format!("{ONE_GROUP}[load]\nclients = 5\nrate = 1\nhold = \"0s\"\n");
    for (setting, field, says) in [
        ("update_time = \"soon\"", "firmware.update_time", ""),
        ("package_limit = 0", "firmware.package_limit", "1 GiB"),
        ("download_rate = 0", "firmware.download_rate", "at least 1"),
        ("version = \"\"", "firmware.version", "1 to 255"),
        (
            "failures = { storage = 1.5 }",
            "firmware.storage",
            "not a share from 0 to 1",
        ),
        (
            "failures = { storage = 0.6, connection = 0.6 }",
            "firmware.failures",
            "at most 1",
        ),
        ("speed = 10", "speed", ""),
    ] {
        let line = format!("[population.client]\nfirmware = {{ {setting} }}\n[load]");
        rejected_on_line_6(&base.replacen("[load]", &line, 1), setting, field, says);
    }
}

#[test]
fn a_missing_device_template_is_reported_where_the_population_names_it() {
    let text = "[[population]]\nname = \"a\"\nshare = 1.0\n\ntemplate = \"nope\"\n\
                [load]\nclients = 3\nrate = 1\nhold = \"1m\"\n";
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("object-templates");
    let templates = crate::model::TemplateSet::load_dir(&dir).expect("shipped templates");
    let err = fleet(text).check(&templates).unwrap_err();
    let FleetError::Invalid(Located {
        line,
        field,
        message,
        ..
    }) = err
    else {
        panic!("{err}");
    };
    assert_eq!((line, field.as_str()), (5, "template"), "{message}");
    assert!(message.contains("no device template \"nope\""), "{message}");
}

#[test]
fn a_share_written_as_a_percentage_is_read_back() {
    let text = "[[population]]\nname = \"a\"\ntemplate = \"smart-meter\"\nshare = 60\n\
                [load]\nclients = 3\nrate = 1\nhold = \"1m\"\n";
    let (line, field, message) = located(Fleet::from_toml(text, "t.toml"));
    assert_eq!((line, field.as_str()), (4, "share"));
    assert_eq!(
        message,
        "60 is not a share between 0 and 1 (more than 0): did you mean 0.6 (60%)?"
    );
}

#[test]
fn shares_that_do_not_add_up_name_the_populations() {
    let two = |a: f64, b: f64| {
        format!(
            "[[population]]\nname = \"sensors\"\nshare = {a}\ntemplate = \"smart-meter\"\n\
             [[population]]\nname = \"meters\"\nshare = {b}\ntemplate = \"smart-meter\"\n\
             [load]\nclients = 10\nrate = 1\nhold = \"1m\"\n"
        )
    };
    let (line, field, short) = located(Fleet::from_toml(&two(0.5, 0.4), "t.toml"));
    assert_eq!((line, field.as_str()), (1, "population"), "{short}");
    assert_eq!(
        short,
        "the populations make 9 clients, not the 10 of [load] clients: \"sensors\" share 0.5 \
         (5 clients) + \"meters\" share 0.4 (4 clients); make the shares add up to 1"
    );
    let (_, field, over) = located(Fleet::from_toml(&two(0.7, 0.4), "t.toml"));
    assert_eq!(field, "population");
    assert_eq!(
        over,
        "the populations' shares add up to 1.1, more than 1: \"sensors\" share 0.7 + \"meters\" \
         share 0.4"
    );
}
