//! Every shipped fleet file loads, checks against the shipped templates and plans; altered copies
//! are rejected with the file, line and field.

use std::path::{Path, PathBuf};

use lwm2m_swarm::fleet::{Fleet, FleetError};
use lwm2m_swarm::model::TemplateSet;
use lwm2m_swarm::toml_span::Located;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn templates() -> TemplateSet {
    TemplateSet::load_dir(&root().join("object-templates")).unwrap()
}

fn fleet_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("fleets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Fleet {
    Fleet::load(path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_shipped_fleet_loads_checks_and_plans() {
    let templates = templates();
    let files = fleet_files();
    assert!(files.len() >= 4, "{files:?}");
    for path in files {
        let fleet = load(&path);
        let devices = fleet.check(&templates).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(devices.len(), fleet.groups.len());
        let plan = fleet.plan();
        let total: u64 = plan.groups.iter().map(|g| g.count).sum();
        assert_eq!(total, plan.clients, "{}", path.display());
        let last = plan.client(plan.clients - 1).unwrap();
        assert!(last.start <= plan.ramp_duration(), "{}", path.display());
        assert!(plan.client(plan.clients).is_none());
        assert!(plan.to_string().contains("hold"));
    }
}

#[test]
fn demo_fleet_plan_reads_well() {
    let fleet = load(&root().join("fleets/demo.toml"));
    let plan = fleet.plan();
    let text = plan.to_string();
    assert!(text.contains("server    embedded"), "{text}");
    assert!(
        text.contains("clients   1000 (demo-0000 .. demo-0999)"),
        "{text}"
    );
    assert!(text.contains("600 x environment-sensor"), "{text}");
    assert!(text.contains("400 x smart-meter"), "{text}");
    assert!(text.contains("stage     200 -> 1000 over 10s"), "{text}");
}

/// `demo.toml` with `from` replaced by `to` is rejected at `line` for `field`.
fn rejects(from: &str, to: &str, line: usize, field: &str) {
    let path = root().join("fleets/demo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in demo.toml");
    let altered = text.replacen(from, to, 1);
    let err = Fleet::from_toml(&altered, "demo.toml")
        .and_then(|f| f.check(&templates()).map(|_| f))
        .unwrap_err();
    let FleetError::Invalid(Located {
        file,
        line: got_line,
        field: got_field,
        ..
    }) = &err
    else {
        panic!("{err}");
    };
    assert_eq!(
        (file.as_str(), *got_line, got_field.as_str()),
        ("demo.toml", line, field),
        "{err}"
    );
}

fn line_of(needle: &str) -> usize {
    let text = std::fs::read_to_string(root().join("fleets/demo.toml")).unwrap();
    let at = text.find(needle).unwrap();
    text[..at].matches('\n').count() + 1
}

#[test]
fn altered_copies_are_rejected_with_file_line_and_field() {
    let l = line_of("lifetime = \"5m\"");
    rejects("lifetime = \"5m\"", "lifetim = \"5m\"", l, "lifetim");
    rejects(
        "lifetime = \"5m\"",
        "lifetime = \"5 minutes\"",
        l,
        "lifetime",
    );
    rejects("lifetime = \"5m\"", "lifetime = \"2s\"", l, "lifetime");
    rejects("lifetime = \"5m\"", "lifetime = 300", l, "lifetime");
    let l = line_of("update_jitter");
    rejects(
        "update_jitter = 0.05",
        "update_jitter = 0.5",
        l,
        "update_jitter",
    );
    let l = line_of("lwm2m = ");
    rejects("lwm2m = \"1.1\"", "lwm2m = \"2.0\"", l, "lwm2m");
    let l = line_of("behaviour = \"always-on\"");
    rejects(
        "behaviour = \"always-on\"",
        "behaviour = \"asleep\"",
        l,
        "behaviour",
    );
    // At the line that names the template, not the population's first.
    let l = line_of("template = \"smart-meter\"");
    rejects(
        "template = \"smart-meter\"",
        "template = \"toaster\"",
        l,
        "template",
    );
    let l = line_of("share = 0.4");
    rejects(
        "share = 0.4",
        "share = 0.5",
        line_of("[[population]]\nname = \"sensors\""),
        "population",
    );
    rejects("share = 0.4", "share = 0.4\ncount = 3", l, "share");
    let l = line_of("{ target = 1000");
    rejects(
        "{ target = 1000, over = \"10s\" }",
        "{ target = 1000, over = \"10\" }",
        l,
        "over",
    );
    rejects("{ target = 1000, over", "{ target = 100, over", l, "target");
    rejects(
        "clients = 1000",
        "clients = 999",
        line_of("clients = 1000"),
        "clients",
    );
    rejects("hold = \"60s\"", "hold = \"\"", line_of("hold = "), "hold");
    rejects(
        "stop_timeout = \"10s\"",
        "stop_timeout = \"10s\"\nrate = 5",
        line_of("stages"),
        "stages",
    );
    let l = line_of("\"/3303/0/5700\"");
    rejects("\"/3303/0/5700\"", "\"/3303/0\"", l, "/3303/0");
    rejects("\"/3303/0/5700\"", "\"/3303/9/5700\"", l, "/3303/9/5700");
    rejects("\"/3303/0/5700\"", "\"/3303/0/9999\"", l, "/3303/0/9999");
    rejects(
        "kind = \"walk\", min = 22",
        "kind = \"walk\", min = \"cold\"",
        l,
        "/3303/0/5700",
    );
}
