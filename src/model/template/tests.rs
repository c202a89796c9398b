use std::path::{Path as FsPath, PathBuf};

use super::*;
use crate::model::ddf::fixtures_dir;
use crate::model::load_ddf;

fn templates_dir() -> PathBuf {
    FsPath::new(env!("CARGO_MANIFEST_DIR")).join("object-templates")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(templates_dir().join(name)).unwrap()
}

/// Parses a changed copy of a shipped file together with the other shipped files.
fn load_altered(name: &str, from: &str, to: &str) -> (String, usize) {
    let text = read(name);
    assert!(text.contains(from), "{name} has no {from:?}");
    let altered = text.replacen(from, to, 1);
    let line = altered[..altered.find(to).unwrap()].matches('\n').count() + 1;
    let mut files: Vec<(String, String)> = std::fs::read_dir(templates_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            (file, text)
        })
        .collect();
    for (file, text) in &mut files {
        if file == name {
            text.clone_from(&altered);
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .collect();
    let err = TemplateSet::default().add_files(&refs, None).unwrap_err();
    (err.to_string(), line)
}

fn assert_names(message: &str, file: &str, line: usize, field: &str) {
    assert!(
        message.contains(&format!("{file}:{line}:")),
        "no {file}:{line} in: {message}"
    );
    assert!(
        message.contains(&format!("`{field}`")),
        "no field {field} in: {message}"
    );
}

#[test]
fn every_shipped_file_loads() {
    for entry in std::fs::read_dir(templates_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.display().to_string();
            from_toml(&text, &name).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let set = TemplateSet::load_dir(&templates_dir()).unwrap();
    let names: Vec<&str> = set.device_names().collect();
    assert_eq!(names, ["environment-sensor", "smart-meter"]);
    let env = set.device("environment-sensor").unwrap();
    let ids: Vec<u16> = env.objects().iter().map(|o| o.def.id).collect();
    assert_eq!(ids, [0, 1, 3, 4, 6, 3301, 3303, 3304]);
    assert_eq!(env.object(3303).unwrap().instances.len(), 2);
    let meter = set.device("smart-meter").unwrap();
    assert!(meter.object(3312).is_some() && meter.object(5).is_some());
}

#[test]
fn shipped_objects_follow_the_registry() {
    let set = TemplateSet::load_dir(&templates_dir()).unwrap();
    for (id, file) in [
        (0, "0.xml"),
        (1, "1-1_1.xml"),
        (3, "3.xml"),
        (4, "4.xml"),
        (5, "5.xml"),
        (6, "6.xml"),
        (3301, "3301.xml"),
        (3303, "3303.xml"),
        (3304, "3304.xml"),
        (3312, "3312.xml"),
    ] {
        let ours = &set.object(id).unwrap().def;
        let oma = load_ddf(&fixtures_dir().join(file)).unwrap().remove(0);
        assert_eq!(
            (ours.multiple, &ours.version),
            (oma.multiple, &oma.version),
            "{id}"
        );
        for res in &ours.resources {
            let theirs = oma.resource(res.id).unwrap();
            let facts = |r: &ResourceDef| (r.kind, r.operations, r.multiple, r.mandatory);
            assert_eq!(facts(res), facts(theirs), "/{id}/{}", res.id);
        }
        // Every mandatory resource is there.
        for res in oma.resources.iter().filter(|r| r.mandatory) {
            assert!(ours.resource(res.id).is_some(), "/{id}/{} missing", res.id);
        }
    }
}

#[test]
fn unknown_field_is_named_with_file_and_line() {
    let (msg, line) = load_altered(
        "temperature.toml",
        "name = \"Sensor Units\"",
        "colour = \"red\"",
    );
    let _ = msg.find("temperature.toml").expect("file");
    assert_names(&msg, "temperature.toml", line, "colour");
    let (msg, line) = load_altered(
        "smart-meter.toml",
        "[[objects]]\nid = 5",
        "[[objects]]\nidd = 5",
    );
    assert_names(&msg, "smart-meter.toml", line + 1, "idd");
}

#[test]
fn bad_value_is_named_with_file_and_line() {
    let (msg, line) = load_altered("humidity.toml", "min = 30.0", "min = \"dry\"");
    assert_names(&msg, "humidity.toml", line, "min");
    let (msg, line) = load_altered(
        "environment-sensor.toml",
        "sample_interval_s = 1.0",
        "sample_interval_s = \"fast\"",
    );
    assert_names(&msg, "environment-sensor.toml", line, "sample_interval_s");
    let (msg, line) = load_altered("server.toml", "value = 300", "value = \"long\"");
    assert_names(&msg, "server.toml", line, "value");
}

#[test]
fn bad_type_and_generator_params_are_rejected() {
    let (msg, line) = load_altered("temperature.toml", "type = \"float\"", "type = \"double\"");
    assert_names(&msg, "temperature.toml", line, "type");
    assert!(msg.contains("double"), "{msg}");
    let (msg, line) = load_altered(
        "humidity.toml",
        "min = 30.0, max = 70.0",
        "min = 80.0, max = 70.0",
    );
    assert_names(&msg, "humidity.toml", line, "generator");
    assert!(msg.contains("greater than max"), "{msg}");
    let (msg, _) = load_altered("illuminance.toml", "period_s = 86400", "period_s = 0");
    assert!(msg.contains("period_s must be a positive"), "{msg}");
    let (msg, _) = load_altered("location.toml", "kind = \"now\"", "kind = \"tomorrow\"");
    assert!(
        msg.contains("tomorrow") && msg.contains("location.toml"),
        "{msg}"
    );
    // A generator that cannot make a string.
    let (msg, line) = load_altered(
        "device.toml",
        "value = \"swarm-generic\"",
        "generator = { kind = \"now\" }",
    );
    assert_names(&msg, "device.toml", line, "generator");
    // A device override of an unknown resource, and of an unknown object.
    let (msg, line) = load_altered(
        "smart-meter.toml",
        "9 = { value = 100 }",
        "99 = { value = 100 }",
    );
    assert_names(&msg, "smart-meter.toml", line, "99");
    let (msg, line) = load_altered("smart-meter.toml", "id = 3312", "id = 3399");
    assert_names(&msg, "smart-meter.toml", line, "id");
    // A float where the type says string.
    let (msg, line) = load_altered(
        "environment-sensor.toml",
        "5750 = { value = \"outdoor\" }",
        "5750 = { value = 1.5 }",
    );
    assert_names(&msg, "environment-sensor.toml", line, "value");
}

#[test]
fn devices_can_take_objects_from_ddf() {
    let device = r#"
[device]
name = "barometer"

[[objects]]
id = 3315
ddf = "3315.xml"
count = 2
[objects.instance.1]
5700 = { value = 1013.25 }
"#;
    let mut set = TemplateSet::default();
    set.add_files(&[("baro.toml", device)], Some(&fixtures_dir()))
        .unwrap();
    let t = set.device("barometer").unwrap();
    let obj = t.object(3315).unwrap();
    assert_eq!(obj.instances.len(), 2);
    let five = obj.instance(1).unwrap().resource(5700).unwrap();
    assert_eq!(
        five.source,
        Source::Single(Generator::Constant(Value::Float(1013.25)))
    );
    // Default by type for a mandatory float: a walk.
    let zero = obj.instance(0).unwrap().resource(5700).unwrap();
    assert!(matches!(
        zero.source,
        Source::Single(Generator::Walk { .. })
    ));
    // Without a directory to read from, the reference is refused with the file and line.
    let err = TemplateSet::default()
        .add_files(&[("baro.toml", device)], None)
        .unwrap_err();
    assert!(err.to_string().contains("baro.toml:6:"), "{err}");
}

#[test]
fn templates_can_be_built_in_code() {
    let def = load_ddf(&fixtures_dir().join("3303.xml"))
        .unwrap()
        .remove(0);
    let object = ObjectTemplate::from_def(Arc::new(def));
    let mut t = DeviceTemplate::new("t").with_object(&object, &[0, 2]);
    let hot = Source::Single(Generator::Constant(Value::Float(99.0)));
    t.set(3303, Some(2), 5700, hot.clone()).unwrap();
    assert_eq!(
        t.object(3303)
            .unwrap()
            .instance(2)
            .unwrap()
            .resource(5700)
            .unwrap()
            .source,
        hot
    );
    assert!(t.set(3303, Some(1), 5700, hot.clone()).is_err());
    let text = Source::Single(Generator::Constant(Value::String("x".into())));
    assert!(t.set(3303, None, 5700, text).is_err());
}

#[test]
fn load_dir_reads_xml_objects_too() {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-templates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ddf = "<LWM2M><Object><Name>Thing</Name><ObjectID>20000</ObjectID>\
        <MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory>\
        <Resources><Item ID=\"1\"><Name>Level</Name><Operations>R</Operations>\
        <MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory>\
        <Type>Integer</Type></Item></Resources></Object></LWM2M>";
    std::fs::write(dir.join("thing.xml"), ddf).unwrap();
    let device = "[device]\nname = \"thing\"\n[[objects]]\nid = 20000\ncount = 3\n";
    std::fs::write(dir.join("thing.toml"), device).unwrap();
    let set = TemplateSet::load_dir(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let t = set.unwrap().device("thing").unwrap();
    let obj = t.object(20000).unwrap();
    assert_eq!(obj.instances.len(), 3);
    let level = obj.instance(2).unwrap().resource(1).unwrap();
    assert_eq!(
        level.source,
        Source::Single(Generator::Constant(Value::Integer(0)))
    );
}
