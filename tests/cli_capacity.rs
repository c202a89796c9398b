//! `capacity` against the embedded server, capped at 20 registrations: the search climbs, finds
//! the cap, narrows, and ends with its `capacity:` line and every step in `--json`.

use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;
use cli::{broken_line, scratch, swarm, text};

const FLEET: &str = "[client]\nlifetime = \"60s\"\nendpoint_prefix = \"cap-\"\nwidth = 4\n\
    [[population]]\nname = \"sensors\"\nshare = 0.5\ntemplate = \"environment-sensor\"\n\
    [[population]]\nname = \"meters\"\nshare = 0.5\ntemplate = \"smart-meter\"\n\
    [load]\nclients = 10\nrate = 10\nhold = \"1s\"\nstop_timeout = \"3s\"\n";

#[test]
fn capacity_against_the_embedded_server_ends_with_its_line() {
    let dir = scratch("capacity");
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, FLEET).unwrap();
    let json = dir.join("steps.json");
    let out = swarm(&[
        "capacity",
        fleet.to_str().unwrap(),
        "--start",
        "10",
        "--factor",
        "2",
        "--step",
        "1s",
        "--hold",
        "200ms",
        "--max",
        "100",
        "--refine",
        "2",
        "--max-registrations",
        "20",
        "--threshold",
        "register.error_rate<1%",
        "--shards",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // 10/s and 20/s fit the 20 registrations; 40/s does not; 30/s and 25/s neither.
    assert_eq!(
        stdout.lines().last(),
        Some("capacity: 20 registrations/s (next step 25/s failed: register.error_rate = 20%)"),
        "{stdout}"
    );
    let steps: Vec<&str> = stdout.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(steps.len(), 5, "{stdout}");
    assert!(steps[0].starts_with("step 1: 10/s (10 clients, cap-0000 .. cap-0009)"));
    assert!(steps[1].ends_with(": held"), "{}", steps[1]);
    assert!(steps[2].contains("registered 20 of 40"), "{}", steps[2]);
    // The server took every step's Registers as new ones: 10 + 20 + 3 x 20, none a duplicate.
    let server = broken_line(&stdout, "embedded server: ").expect("the embedded server's counts");
    assert!(server.contains(" registers 90,"), "{server}");
    assert!(server.contains(" duplicates 0"), "{server}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["unit"], "registrations/s");
    assert_eq!(report["capacity"], 20.0);
    assert_eq!(report["failed_at"], 25.0);
    assert_eq!(report["incomplete"], false);
    let steps = report["steps"].as_array().unwrap();
    let loads: Vec<f64> = steps.iter().map(|s| s["load"].as_f64().unwrap()).collect();
    assert_eq!(loads, [10.0, 20.0, 40.0, 30.0, 25.0]);
    let passed: Vec<bool> = steps
        .iter()
        .map(|s| s["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(passed, [true, true, false, false, false]);
    // Each step registers fresh endpoints, right after the last step's, and de-registers them.
    let mut next = 0;
    for step in steps {
        let clients = step["clients"].as_u64().unwrap();
        // load x 1 s: whole numbers here.
        assert_eq!(Some(clients), step["load"].as_f64().map(|l| l as u64));
        assert_eq!(step["first_endpoint"], format!("cap-{next:04}"));
        next += clients;
        assert_eq!(step["last_endpoint"], format!("cap-{:04}", next - 1));
        let kind = |k: &str| {
            step["requests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["kind"] == k)
                .unwrap_or_else(|| panic!("no {k} in {step}"))
                .clone()
        };
        let (register, deregister) = (kind("register"), kind("deregister"));
        let ok = register["ok"].as_u64().unwrap();
        assert_eq!(register["sent"].as_u64(), Some(clients), "{step}");
        assert_eq!(ok, clients.min(20), "{step}");
        assert_eq!(register["error"].as_u64(), Some(clients - ok), "{step}");
        assert_eq!(deregister["ok"].as_u64(), Some(ok), "{step}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn capacity_by_clients_reports_the_most_clients_held() {
    let dir = scratch("capacity-clients");
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, FLEET).unwrap();
    let out = swarm(&[
        "capacity",
        fleet.to_str().unwrap(),
        "--by",
        "clients",
        "--start",
        "10",
        "--factor",
        "2",
        "--step",
        "2s",
        "--hold",
        "200ms",
        "--max",
        "100",
        "--refine",
        "1",
        "--max-registrations",
        "25",
        "--threshold",
        "register.error_rate<1%",
        "--shards",
        "1",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // 10 and 20 clients fit the 25 registrations; 40 and then 30 do not.
    assert_eq!(
        stdout.lines().last(),
        Some("capacity: 20 clients (next step 30 clients failed: register.error_rate = 16.7%)"),
        "{stdout}"
    );
    let steps = stdout.lines().filter(|l| l.starts_with("step ")).count();
    assert_eq!(steps, 4, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn capacity_needs_a_threshold_and_a_sane_range() {
    let dir = scratch("capacity-bad");
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, FLEET).unwrap();
    let fleet = fleet.to_str().unwrap();
    let out = swarm(&["capacity", fleet]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("give --threshold EXPR"), "{stderr}");
    let out = swarm(&[
        "capacity",
        fleet,
        "--threshold",
        "register.p99<1s",
        "--start",
        "50",
        "--max",
        "10",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--max 10 is below --start 50"), "{stderr}");
    let out = swarm(&[
        "capacity",
        fleet,
        "--threshold",
        "register.p99<1s",
        "--factor",
        "1",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("give a number above 1"), "{stderr}");
    let out = swarm(&["capacity", "--help"]);
    let (stdout, _) = text(&out);
    for heading in [
        "Load:",
        "Output:",
        "Engine:",
        "Embedded server load:",
        "Examples:",
    ] {
        assert!(stdout.contains(heading), "{heading} in {stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
