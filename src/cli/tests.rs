//! Whole command lines parsed in-process: each command's defaults, every option at once, the
//! options that need or exclude others, and what a bad value is told. What the commands then
//! do is tests/cli.rs's, which runs the binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;

use super::args::{LimitArgs, TransportArg};
use super::check::CheckArgs;
use super::credentials::{CredentialsArgs, FormatArg};
use super::run::RunArgs;
use super::serve::ServeArgs;
use super::{Cli, Command};
use crate::model::Path;
use crate::report::MergeArgs;

/// Parses `line`, split at whitespace, after the program's name.
fn parse(line: &str) -> Result<Command, clap::Error> {
    Cli::parse_args(std::iter::once("lwm2m-swarm").chain(line.split_whitespace()))
        .map(|c| c.command)
}

/// The arguments of command `$variant`, parsed from `line` after the command's name.
macro_rules! parsed {
    ($variant:ident, $name:literal, $line:expr) => {
        match parse(&format!("{} {}", $name, $line)) {
            Ok(Command::$variant(args)) => args,
            other => panic!("{}: {other:?}", $line),
        }
    };
}

fn run(line: &str) -> RunArgs {
    parsed!(Run, "run", line)
}

fn serve(line: &str) -> ServeArgs {
    parsed!(Serve, "serve", line)
}

fn check(line: &str) -> CheckArgs {
    parsed!(Check, "check", line)
}

fn credentials(line: &str) -> CredentialsArgs {
    parsed!(Credentials, "credentials", line)
}

fn report(line: &str) -> MergeArgs {
    parsed!(Report, "report", line)
}

/// The error's kind and its message as printed, without the usage and help hint after it.
fn error(line: &str) -> (ErrorKind, String) {
    let e = parse(line).expect_err("a parse error");
    let text = e.to_string();
    let message = text.split("\n\n").next().unwrap_or_default().to_string();
    (e.kind(), message)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn run_defaults() {
    let a = run("fleets/demo.toml");
    assert_eq!(a.fleet.fleet, PathBuf::from("fleets/demo.toml"));
    assert!(a.fleet.server.is_none());
    assert_eq!(a.fleet.clients, None);
    assert_eq!(a.timing.rate, None);
    assert_eq!(a.timing.duration, None);
    assert_eq!(a.timing.seed, None);
    assert!(a.fleet.psk_identity.is_none());
    assert!(a.fleet.psk_key.is_none());
    assert_eq!(a.fleet.templates, None);
    assert_eq!(a.engine.transport, TransportArg::Shared);
    assert!(a.engine.bind.is_none());
    assert!(a.engine.ports.is_none());
    assert_eq!(a.engine.shards, 0);
    assert!(a.load.is_empty());
    assert!(!a.no_tui);
    assert_eq!(a.progress_every, secs(2));
    assert_eq!(a.report.json, None);
    assert_eq!(a.report.hdr_log, None);
    assert_eq!(a.report.plot, None);
    assert!(a.report.thresholds.is_empty());
    assert_eq!(a.report.prometheus, None);
}

#[test]
fn run_with_every_option() {
    let a = run("fleets/demo.toml --server coaps://192.0.2.10:5684 \
        --clients 500 --rate 25.5 --duration 1h30m --seed 42 \
        --psk-identity id-{number} --psk-key 00112233 --templates my-templates \
        --transport per-client --bind 10.1.0.0/30 --ports 30000-30099 --shards 3 \
        --read /3/0/0@1m --observe /3303/0/5700 --pmin 5 --pmax 50 \
        --write /1/0/3=10@2m --execute /1/0/8@10m --discover /3/0@5m \
        --no-tui --progress-every 500ms \
        --json out.json --hdr-log out.hlog --plot out.svg \
        --threshold register.p99<500ms --threshold update.error_rate<1% \
        --prometheus 127.0.0.1:9464");
    let server = a.fleet.server.expect("--server");
    assert_eq!(server.to_string(), "coaps://192.0.2.10:5684");
    assert_eq!(a.fleet.clients, Some(500));
    assert_eq!(a.timing.rate, Some(25.5));
    assert_eq!(a.timing.duration, Some(secs(5400)));
    assert_eq!(a.timing.seed, Some(42));
    assert_eq!(a.fleet.psk_identity.unwrap().to_string(), "id-{number}");
    let key = a.fleet.psk_key.expect("--psk-key");
    assert_eq!(key.secret().unwrap().expose(), [0x00, 0x11, 0x22, 0x33]);
    assert_eq!(a.fleet.templates, Some(PathBuf::from("my-templates")));
    assert_eq!(a.engine.transport, TransportArg::PerClient);
    assert_eq!(a.engine.bind.expect("--bind").len(), 2);
    let ports = a.engine.ports.expect("--ports");
    assert_eq!((ports.first(), ports.last()), (30000, 30099));
    assert_eq!(a.engine.shards, 3);
    assert_eq!(a.load.read, Some((Path::resource(3, 0, 0), secs(60))));
    assert_eq!(a.load.observe, Some(Path::resource(3303, 0, 5700)));
    assert_eq!((a.load.pmin, a.load.pmax), (Some(5), Some(50)));
    assert_eq!(
        a.load.write,
        Some((Path::resource(1, 0, 3), "10".to_string(), secs(120)))
    );
    assert_eq!(a.load.execute, Some((Path::resource(1, 0, 8), secs(600))));
    let (discover, every) = a.load.discover.expect("--discover");
    assert_eq!(
        (discover.to_string(), every),
        ("/3/0".to_string(), secs(300))
    );
    assert!(a.no_tui);
    assert_eq!(a.progress_every, Duration::from_millis(500));
    assert_eq!(a.report.json, Some(PathBuf::from("out.json")));
    assert_eq!(a.report.hdr_log, Some(PathBuf::from("out.hlog")));
    assert_eq!(a.report.plot, Some(PathBuf::from("out.svg")));
    let thresholds: Vec<&str> = a
        .report
        .thresholds
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(thresholds, ["register.p99<500ms", "update.error_rate<1%"]);
    assert_eq!(
        a.report.prometheus,
        Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
    );
}

#[test]
fn run_refuses_what_it_cannot_use() {
    let (kind, text) = error("run");
    assert_eq!(kind, ErrorKind::MissingRequiredArgument, "{text}");
    assert!(text.contains("<FLEET>"), "{text}");
    for needs_observe in ["--pmin", "--pmax"] {
        let (kind, text) = error(&format!("run f.toml {needs_observe} 5"));
        assert_eq!(kind, ErrorKind::MissingRequiredArgument, "{text}");
        assert!(text.contains("--observe <PATH>"), "{text}");
    }
    let (kind, text) = error("run f.toml --rate 0");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
    assert_eq!(
        text,
        "error: invalid value '0' for '--rate <RATE>': a rate must be more than 0 clients/s"
    );
    let (kind, text) = error("run f.toml --clients 0");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
    assert!(text.contains("'--clients <CLIENTS>'"), "{text}");
    assert!(
        text.ends_with("expected a whole number of at least 1"),
        "{text}"
    );
    // A negative number reaches the parser (not clap's "use '-- -1'") and is refused in words.
    let (kind, text) = error("run f.toml --rate -1");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
    assert!(
        text.ends_with("a rate must be more than 0 clients/s"),
        "{text}"
    );
    let (kind, text) = error("run f.toml --clients -5");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
    assert!(!text.contains("18446744073709551615"), "{text}");
    let (_, text) = error("run f.toml --duration soon");
    assert_eq!(
        text,
        "error: invalid value 'soon' for '--duration <DURATION>': \"soon\" is not a duration \
         like \"5m\" (a whole number, then ms, s, m, h or d)"
    );
    let (kind, text) = error("run f.toml --server http://x");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
    assert!(text.contains("'--server <SERVER>'"), "{text}");
    assert!(text.contains("coap://"), "{text}");
    let (kind, text) = error("run f.toml --transport tcp");
    assert_eq!(kind, ErrorKind::InvalidValue, "{text}");
    let help = parse("run f.toml --transport tcp").unwrap_err().to_string();
    assert!(
        help.contains("[possible values: shared, per-client]"),
        "{help}"
    );
    let (_, text) = error("run f.toml --ports 9000");
    assert!(
        text.ends_with("\"9000\": expected FIRST-LAST, e.g. 20000-29999"),
        "{text}"
    );
    let (_, text) = error("run f.toml --read /3/0/0");
    assert!(
        text.ends_with("expected PATH@PERIOD, e.g. /3/0/13@30s"),
        "{text}"
    );
    let (_, text) = error("run f.toml --progress-every 0s");
    assert!(text.ends_with("must be more than 0s"), "{text}");
    let (kind, text) = error("run f.toml --threshold register.p99");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
    assert!(
        text.contains("no comparison; expected REQUEST.METRIC OP VALUE"),
        "{text}"
    );
    let (kind, text) = error("run f.toml --colour red");
    assert_eq!(kind, ErrorKind::UnknownArgument, "{text}");
}

#[test]
fn a_bad_psk_key_is_not_quoted_by_the_parser() {
    // Checked when the fleet is loaded, whose error names the option and not the value.
    let a = run("f.toml --psk-key 5ec12e7x");
    let key = a.fleet.psk_key.expect("--psk-key");
    assert_eq!(format!("{key:?}"), "HexArg(<hidden>)");
    let failure = key.secret().unwrap_err();
    assert_eq!(
        failure.message,
        "--psk-key: not a hex key: give two hex digits per byte"
    );
}

#[test]
fn serve_defaults() {
    let a = serve("");
    assert_eq!(a.bind, None);
    assert!(a.psk_key.is_none());
    assert_eq!(a.bootstrap, None);
    assert_eq!(a.bootstrap_lifetime, secs(300));
    assert!(a.load.is_empty());
    assert_eq!(a.duration, None);
    assert_eq!(a.seed, 0);
    assert_eq!(a.status_every, secs(5));
    // The caps `run`'s embedded server keeps.
    let (limits, defaults) = (&a.limits, LimitArgs::default());
    assert_eq!(limits.registrations, defaults.registrations);
    assert_eq!(limits.lifetime, 86_400);
    assert_eq!(limits.lifetime, defaults.lifetime);
    assert_eq!(limits.dtls_sessions, defaults.dtls_sessions);
    assert_eq!(limits.bootstrap_sessions, defaults.bootstrap_sessions);
}

#[test]
fn serve_takes_caps_and_refuses_zero() {
    let a = serve(
        "--max-registrations 10 --max-lifetime 1h --max-dtls-sessions 20 \
         --max-bootstrap-sessions 30",
    );
    let config = a.limits.server(crate::server::ServerConfig::default());
    assert_eq!((config.max_registrations, config.max_lifetime), (10, 3600));
    assert_eq!(
        (a.limits.dtls_sessions, a.limits.bootstrap_sessions),
        (20, 30)
    );
    for line in [
        "serve --max-registrations 0",
        "serve --max-dtls-sessions 0",
        "serve --max-lifetime 500ms",
    ] {
        let (kind, text) = error(line);
        assert_eq!(kind, ErrorKind::ValueValidation, "{line}: {text}");
    }
}

#[test]
fn serve_with_every_option() {
    let a = serve(
        "--bind 0.0.0.0:5684 --psk-key abcd \
        --bootstrap 127.0.0.1:5783 --bootstrap-lifetime 1m \
        --read /3/0/13@30s --observe /3/0/13 --pmin 1 --pmax 2 \
        --write /1/0/3=60@1m --execute /1/0/8@10m --discover /3/0@5m --lwm2m-cbor \
        --duration 10s --seed 7 --status-every 1s",
    );
    assert_eq!(a.bind, Some(SocketAddr::from(([0, 0, 0, 0], 5684))));
    assert_eq!(a.psk_key.unwrap().secret().unwrap().expose(), [0xab, 0xcd]);
    assert_eq!(a.bootstrap, Some(SocketAddr::from(([127, 0, 0, 1], 5783))));
    assert_eq!(a.bootstrap_lifetime, secs(60));
    assert_eq!(
        a.load.describe(),
        "read /3/0/13 every 30s, observe /3/0/13 pmin 1s pmax 2s, write /1/0/3=60 every 1m, \
         execute /1/0/8 every 10m, discover /3/0 every 5m, LWM2M CBOR from 1.2 clients"
    );
    assert!(a.load.server_config().lwm2m_cbor);
    assert_eq!(a.duration, Some(secs(10)));
    assert_eq!(a.seed, 7);
    assert_eq!(a.status_every, secs(1));
}

#[test]
fn serve_takes_composite_load() {
    let a = serve(
        "--read-composite /3/0/13,/3303/0/5700@30s --observe-composite /3303/0/5700,/3303/1/5700 \
        --write-composite /3/0/14=+01:00,/1/0/3=60@1m",
    );
    assert_eq!(
        a.load.describe(),
        "read-composite /3/0/13,/3303/0/5700 every 30s, \
         observe-composite /3303/0/5700,/3303/1/5700, write-composite /3/0/14=+01:00,/1/0/3=60 every 1m"
    );
    let config = a.load.server_config();
    assert_eq!(
        config.observe_composite,
        Some(vec![
            Path::resource(3303, 0, 5700),
            Path::resource(3303, 1, 5700)
        ])
    );
    let write = config.write_composite.expect("--write-composite");
    assert_eq!(write.every, secs(60));
    assert_eq!(write.values[1], (Path::resource(1, 0, 3), "60".to_string()));
    assert_eq!(
        config.read_composite.expect("--read-composite").paths.len(),
        2
    );
    let (_, text) = error("serve --read-composite /3/0/13,/3/0/14");
    assert!(text.contains("expected PATH,PATH@PERIOD"), "{text}");
    let (_, text) = error("serve --observe-composite /3/0/13,/3/x");
    assert!(text.contains("\"/3/x\" is not an LWM2M path"), "{text}");
}

#[test]
fn serve_refuses_what_it_cannot_use() {
    let (kind, text) = error("serve --bootstrap-lifetime 1m");
    assert_eq!(kind, ErrorKind::MissingRequiredArgument, "{text}");
    assert!(text.contains("--bootstrap <ADDR>"), "{text}");
    let (kind, text) = error("serve --pmax 60");
    assert_eq!(kind, ErrorKind::MissingRequiredArgument, "{text}");
    assert!(text.contains("--observe <PATH>"), "{text}");
    let (kind, text) = error("serve --bind localhost");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
    assert!(text.contains("'--bind <BIND>'"), "{text}");
    let (_, text) = error("serve --status-every 0s");
    assert!(text.ends_with("must be more than 0s"), "{text}");
    let (_, text) = error("serve --write /1/0/3@1m");
    assert!(
        text.ends_with("\"/1/0/3@1m\": expected PATH=VALUE@PERIOD"),
        "{text}"
    );
    let (_, text) = error("serve --observe /3/x");
    assert!(text.contains("path segment \"x\" is not an id"), "{text}");
    // A fleet is `run`'s and `check`'s, not `serve`'s.
    let (kind, text) = error("serve fleets/demo.toml");
    assert_eq!(kind, ErrorKind::UnknownArgument, "{text}");
}

#[test]
fn check_takes_the_fleet_and_engine_options() {
    let a = check("fleets/demo.toml");
    assert_eq!(a.fleet.fleet, PathBuf::from("fleets/demo.toml"));
    assert_eq!(a.fleet.clients, None);
    assert_eq!(a.engine.transport, TransportArg::Shared);
    assert_eq!(a.engine.shards, 0);
    let a = check(
        "fleets/demo.toml --clients 50 --rate 5 --duration 30s \
        --transport per-client --bind loopback --ports 21000-21009 --shards 2",
    );
    assert_eq!(a.fleet.clients, Some(50));
    assert_eq!(a.timing.rate, Some(5.0));
    assert_eq!(a.timing.duration, Some(secs(30)));
    assert_eq!(a.engine.transport, TransportArg::PerClient);
    assert!(a.engine.bind.is_some());
    let ports = a.engine.ports.expect("--ports");
    assert_eq!((ports.first(), ports.last()), (21000, 21009));
    assert_eq!(a.engine.shards, 2);
    assert_eq!(a.open_files, None);
    // Planning another host: its open-files limit, a positive number.
    assert_eq!(
        check("f.toml --open-files 1048576").open_files,
        Some(1_048_576)
    );
    let (kind, text) = error("check f.toml --open-files 0");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
    // It sends nothing, so writes no reports; it takes the embedded server's load, to show it.
    let (kind, text) = error("check f.toml --json out.json");
    assert_eq!(kind, ErrorKind::UnknownArgument, "{text}");
    let check = parsed!(Check, "check", "f.toml --observe /3/0/13 --read /3/0/0@1m");
    assert_eq!(check.load.observe, Some(Path::resource(3, 0, 13)));
    let (kind, text) = error("check f.toml --shards -1");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
    assert!(
        text.ends_with("expected a whole number, 0 or more"),
        "{text}"
    );
    let (kind, text) = error("check f.toml --shards many");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
}

#[test]
fn credentials_options() {
    let a = credentials("fleets/dtls-psk.toml");
    assert_eq!(a.fleet.fleet, PathBuf::from("fleets/dtls-psk.toml"));
    assert_eq!(a.format, FormatArg::Csv);
    assert_eq!(a.output, None);
    assert_eq!(a.output_dir, None);
    assert!(!a.private_keys);
    let a = credentials(
        "fleets/dtls-psk.toml --format json -o keys.json --private-keys --psk-identity {endpoint}",
    );
    assert_eq!(a.format, FormatArg::Json);
    assert_eq!(a.output, Some(PathBuf::from("keys.json")));
    assert!(a.private_keys);
    assert_eq!(a.fleet.psk_identity.unwrap().to_string(), "{endpoint}");
    let a = credentials("f.toml --output-dir certs");
    assert_eq!(a.output_dir, Some(PathBuf::from("certs")));

    let (kind, text) = error("credentials f.toml --output a --output-dir b");
    assert_eq!(kind, ErrorKind::ArgumentConflict, "{text}");
    assert!(text.contains("--output-dir"), "{text}");
    let (kind, text) = error("credentials f.toml --format xml");
    assert_eq!(kind, ErrorKind::InvalidValue, "{text}");
    assert!(text.contains("'xml'"), "{text}");
    let (_, text) = error("credentials f.toml --psk-identity {serial}");
    assert!(
        text.ends_with("unknown placeholder {serial}: use {endpoint}, {index} or {number}"),
        "{text}"
    );
}

#[test]
fn report_options() {
    let a = report("a.json b.json");
    assert_eq!(a.files, [PathBuf::from("a.json"), PathBuf::from("b.json")]);
    assert!(a.thresholds.is_empty());
    assert_eq!(a.plot, None);
    assert_eq!(a.json, None);
    assert_eq!(
        report("a.json b.json --json merged.json").json,
        Some(PathBuf::from("merged.json"))
    );
    let a =
        report("a.json --threshold register.p99<500ms --threshold notify.ok>=10 --plot merged.svg");
    assert_eq!(a.files, [PathBuf::from("a.json")]);
    let thresholds: Vec<&str> = a.thresholds.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(thresholds, ["register.p99<500ms", "notify.ok>=10"]);
    assert_eq!(a.plot, Some(PathBuf::from("merged.svg")));

    let (kind, text) = error("report");
    assert_eq!(kind, ErrorKind::MissingRequiredArgument, "{text}");
    assert!(text.contains("<FILE>..."), "{text}");
    let (kind, text) = error("report a.json --threshold register.p99<fast");
    assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
    assert!(text.contains("threshold \"register.p99<fast\": "), "{text}");
}

#[test]
fn help_and_version_are_not_errors() {
    // `main_with` exits 0 for these: clap prints them to stdout.
    for asked in ["--help", "--version", "run --help"] {
        let e = parse(asked).expect_err("clap answers them with an Err");
        assert!(!e.use_stderr(), "{asked}: {e}");
    }
    let e = parse("").expect_err("a command is needed");
    assert!(e.use_stderr(), "{e}");
    let e = parse("launch").expect_err("no such command");
    assert_eq!(e.kind(), ErrorKind::InvalidSubcommand, "{e}");
    assert!(e.use_stderr(), "{e}");
}

#[test]
fn lwm2m_cbor_alone_keeps_the_demo_load() {
    let a = run("fleets/demo.toml --lwm2m-cbor");
    let load = a.load.or_demo();
    assert!(load.read.is_some() && load.observe.is_some());
    assert!(load.server_config().lwm2m_cbor);
}
