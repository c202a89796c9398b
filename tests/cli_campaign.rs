//! `run` with `[[campaign]]`: the embedded server runs the campaign against the fleet's devices
//! with object 5 and the outcome reaches the summary and `--json`.

#[path = "support/cli.rs"]
mod cli;
use cli::{scratch, swarm, text};

#[test]
fn a_fleet_campaign_runs_on_the_embedded_server_and_is_reported() {
    let dir = scratch("campaign");
    // An image file beside the fleet: `image` is relative to the fleet file.
    std::fs::write(dir.join("fw-9.bin"), vec![7u8; 1500]).unwrap();
    let fleet = dir.join("campaign.toml");
    std::fs::write(
        &fleet,
        "[[population]]\nname = \"meters\"\nshare = 1.0\ntemplate = \"smart-meter\"\n\
         [[campaign]]\nstart = \"1s\"\nmax_concurrent = 5\nimage = \"fw-9.bin\"\n\
         version = \"9\"\ntimeout = \"1s\"\n\
         [load]\nclients = 20\nrate = 100\nhold = \"0s\"\n",
    )
    .unwrap();
    let json = dir.join("result.json");
    let out = swarm(&[
        "run",
        fleet.to_str().unwrap(),
        "--no-tui",
        "--duration",
        "4s",
        "--ports",
        "26100-26199",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("firmware campaign targeted 20 "),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let campaign = &report["campaign"];
    let count = |field: &str| campaign[field].as_u64().unwrap();
    assert_eq!(count("targeted"), 20, "{campaign}");
    assert_eq!(count("targeted"), count("waiting") + count("started"));
    // Five slots: they were used.
    assert!(count("started") >= 5, "{campaign}");
    let failures: u64 = campaign["failures"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(failures, count("failed"));
    std::fs::remove_dir_all(&dir).unwrap();
}
