use std::mem::size_of;
use std::path::Path as FsPath;
use std::sync::Arc;

use super::*;
use crate::model::ddf::fixtures_dir;
use crate::model::{ObjectTemplate, TemplateSet, load_ddf};

const TEST_OBJECT: &str = r#"
[object]
id = 9000
name = "Test"
multiple = true

[resources.0]
name = "Label"
operations = "RW"
type = "string"
mandatory = true
value = "a"

[resources.1]
name = "List"
operations = "RW"
type = "integer"
multiple = true
value = [1, 2, 3]

[resources.2]
name = "Optional"
operations = "RW"
type = "integer"
value = 7

[resources.3]
name = "Level"
operations = "R"
type = "float"
generator = { kind = "walk", min = 0, max = 10, step = 1 }

[resources.4]
name = "Run"
operations = "E"
"#;

const TEST_DEVICE: &str = r#"
[device]
name = "test-device"

[[objects]]
id = 0
[[objects]]
id = 1
[[objects]]
id = 3
[[objects]]
id = 3303
count = 2
[[objects]]
id = 9000
ids = [0, 5]
"#;

fn template() -> Arc<DeviceTemplate> {
    let dir = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("object-templates");
    let mut set = TemplateSet::load_dir(&dir).unwrap();
    let files = [
        ("test-object.toml", TEST_OBJECT),
        ("test-device.toml", TEST_DEVICE),
    ];
    set.add_files(&files, None).unwrap();
    set.device("test-device").unwrap()
}

fn device(seed: u64) -> Device {
    Device::new(template(), seed, 1_700_000_000)
}

fn p(s: &str) -> Path {
    s.parse().unwrap()
}

fn secs(s: u64) -> Instant {
    Instant::from_micros(s * 1_000_000)
}

fn rec(path: &str, value: Value) -> Record {
    Record {
        path: p(path),
        value,
    }
}

fn paths(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.path.to_string()).collect()
}

fn one(d: &mut Device, path: &str) -> Value {
    let mut records = d.read(&p(path), secs(10)).unwrap();
    assert_eq!(records.len(), 1, "{path}");
    records.remove(0).value
}

#[test]
fn an_untouched_device_is_small() {
    let mut d = device(1);
    println!(
        "size_of::<Device>() = {}, heap = {}",
        size_of::<Device>(),
        d.heap_bytes()
    );
    assert!(size_of::<Device>() <= 32);
    assert_eq!(d.heap_bytes(), 0);
    // Reading stateless values allocates nothing; a random walk keeps a small cache.
    d.read(&p("/1/0"), secs(5)).unwrap();
    d.read(&p("/3/0/0"), secs(5)).unwrap();
    assert_eq!(d.heap_bytes(), 0);
    d.read(&p("/3303/0/5700"), secs(5)).unwrap();
    let used = d.heap_bytes();
    println!("after one walk read: {used} heap bytes");
    assert!(used > 0 && used < 256);
}

#[test]
fn read_levels_and_errors() {
    let mut d = device(1);
    let all = d.read(&p("/3303"), secs(1)).unwrap();
    assert!(all.iter().any(|r| r.path == p("/3303/0/5700")));
    assert!(all.iter().any(|r| r.path == p("/3303/1/5700")));
    let inst = paths(&d.read(&p("/3/0"), secs(1)).unwrap());
    assert!(inst.contains(&"/3/0/0".to_string()) && inst.contains(&"/3/0/6/1".to_string()));
    assert!(
        !inst.contains(&"/3/0/4".to_string()),
        "executables are skipped"
    );
    assert_eq!(one(&mut d, "/3/0/0"), Value::String("lwm2m-swarm".into()));
    assert_eq!(one(&mut d, "/3/0/6/1"), Value::Integer(5));
    assert_eq!(one(&mut d, "/3/0/13"), Value::Time(1_700_000_010));
    let err = |d: &mut Device, s: &str| d.read(&p(s), secs(1)).unwrap_err();
    assert_eq!(err(&mut d, "/3/0/4"), ModelError::NotAllowed(p("/3/0/4")));
    assert_eq!(err(&mut d, "/3/0/99"), ModelError::NotFound(p("/3/0/99")));
    assert_eq!(
        err(&mut d, "/3/0/15"),
        ModelError::NotFound(p("/3/0/15")),
        "defined, absent"
    );
    assert_eq!(err(&mut d, "/3/1"), ModelError::NotFound(p("/3/1")));
    assert_eq!(err(&mut d, "/77"), ModelError::NotFound(p("/77")));
    assert_eq!(err(&mut d, "/3/0/6/9"), ModelError::NotFound(p("/3/0/6/9")));
    assert_eq!(err(&mut d, "/3/0/0/0"), ModelError::NotFound(p("/3/0/0/0")));
    assert_eq!(err(&mut d, "/"), ModelError::NotAllowed(Path::ROOT));
}

#[test]
fn generated_values_follow_the_seed() {
    let read = |seed| {
        let mut d = device(seed);
        (0..20)
            .map(|s| {
                d.read(&p("/3303/0/5700"), secs(s * 7))
                    .unwrap()
                    .remove(0)
                    .value
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(read(42), read(42));
    assert_ne!(read(42), read(43));
    let mut d = device(42);
    let a = one(&mut d, "/3303/0/5700");
    assert_ne!(a, one(&mut d, "/3303/1/5700"), "instances differ");
}

#[test]
fn write_checks_permission_existence_and_type() {
    let mut d = device(1);
    let update = WriteMode::Update;
    let w = |d: &mut Device, path: &str, v: Value| d.write(&p(path), vec![rec(path, v)], update);
    assert_eq!(
        w(&mut d, "/3/0/0", Value::String("x".into())),
        Err(ModelError::NotAllowed(p("/3/0/0")))
    );
    assert_eq!(
        w(&mut d, "/3/5/13", Value::Time(1)),
        Err(ModelError::NotFound(p("/3/5/13")))
    );
    assert_eq!(
        w(&mut d, "/3/0/99", Value::Time(1)),
        Err(ModelError::NotFound(p("/3/0/99")))
    );
    assert!(matches!(
        w(&mut d, "/3/0/13", Value::String("x".into())),
        Err(ModelError::BadRequest(_))
    ));
    w(&mut d, "/3/0/13", Value::Integer(5)).unwrap();
    assert_eq!(one(&mut d, "/3/0/13"), Value::Time(5));
    w(&mut d, "/1/0/1", Value::Integer(600)).unwrap();
    assert_eq!(one(&mut d, "/1/0/1"), Value::Integer(600));
    // A record outside the target, or an instance id on a single resource, is refused whole.
    let records = vec![
        rec("/1/0/1", Value::Integer(1)),
        rec("/3/0/13", Value::Time(1)),
    ];
    assert!(matches!(
        d.write(&p("/1/0"), records, update),
        Err(ModelError::BadRequest(_))
    ));
    assert_eq!(one(&mut d, "/1/0/1"), Value::Integer(600));
    let bad = vec![rec("/1/0/1/0", Value::Integer(1))];
    assert!(matches!(
        d.write(&p("/1/0"), bad, update),
        Err(ModelError::BadRequest(_))
    ));
    assert_eq!(
        d.write(&p("/1"), vec![], update),
        Err(ModelError::NotAllowed(p("/1")))
    );
}

#[test]
fn replace_and_update_of_multi_instance_resources() {
    let mut d = device(1);
    let list = |d: &mut Device| paths(&d.read(&p("/9000/0/1"), secs(0)).unwrap());
    assert_eq!(list(&mut d), ["/9000/0/1/0", "/9000/0/1/1", "/9000/0/1/2"]);
    d.write(
        &p("/9000/0/1"),
        vec![rec("/9000/0/1/7", Value::Integer(9))],
        WriteMode::Update,
    )
    .unwrap();
    assert_eq!(list(&mut d).len(), 4);
    d.write(
        &p("/9000/0/1"),
        vec![rec("/9000/0/1/7", Value::Integer(8))],
        WriteMode::Replace,
    )
    .unwrap();
    assert_eq!(list(&mut d), ["/9000/0/1/7"]);
    assert_eq!(one(&mut d, "/9000/0/1/7"), Value::Integer(8));
    d.write(
        &p("/9000/0/1/3"),
        vec![rec("/9000/0/1/3", Value::Integer(3))],
        WriteMode::Replace,
    )
    .unwrap();
    assert_eq!(list(&mut d), ["/9000/0/1/3", "/9000/0/1/7"]);
}

#[test]
fn replace_of_an_instance_drops_unlisted_optional_resources() {
    let mut d = device(1);
    let records = vec![rec("/9000/0/0", Value::String("b".into()))];
    d.write(&p("/9000/0"), records, WriteMode::Replace).unwrap();
    let left = paths(&d.read(&p("/9000/0"), secs(0)).unwrap());
    assert_eq!(
        left,
        ["/9000/0/0", "/9000/0/3"],
        "label kept (mandatory), level is read-only"
    );
    assert_eq!(
        d.discover(&p("/9000/0/2")),
        Err(ModelError::NotFound(p("/9000/0/2")))
    );
    // Update leaves others alone.
    let records = vec![rec("/9000/5/2", Value::Integer(1))];
    d.write(&p("/9000/5"), records, WriteMode::Update).unwrap();
    assert_eq!(d.read(&p("/9000/5"), secs(0)).unwrap().len(), 6);
}

#[test]
fn create_and_delete() {
    let mut d = device(1);
    let unspecified = Path::resource(9000, crate::content::UNSPECIFIED_INSTANCE, 0);
    let label = Record {
        path: unspecified,
        value: Value::String("new".into()),
    };
    let id = d.create(9000, None, vec![label]).unwrap();
    assert_eq!(id, 1, "lowest free id");
    assert_eq!(one(&mut d, "/9000/1/0"), Value::String("new".into()));
    assert_eq!(
        one(&mut d, "/9000/1/2"),
        Value::Integer(7),
        "from the object template"
    );
    assert_eq!(d.instances(9000), [0, 1, 5]);
    assert!(matches!(
        d.create(9000, Some(5), vec![]),
        Err(ModelError::BadRequest(_))
    ));
    assert_eq!(
        d.create(3, None, vec![]),
        Err(ModelError::NotAllowed(Path::object(3)))
    );
    assert_eq!(
        d.create(77, None, vec![]),
        Err(ModelError::NotFound(Path::object(77)))
    );
    let wrong = vec![rec("/9000/0/0", Value::Integer(1))];
    assert!(matches!(
        d.create(9000, None, wrong),
        Err(ModelError::BadRequest(_))
    ));
    let unknown = vec![rec("/9000/0/42", Value::Integer(1))];
    assert!(matches!(
        d.create(9000, None, unknown),
        Err(ModelError::BadRequest(_))
    ));

    assert_eq!(d.delete(&p("/3/0")), Err(ModelError::NotAllowed(p("/3/0"))));
    assert_eq!(
        d.delete(&p("/9000")),
        Err(ModelError::NotAllowed(p("/9000")))
    );
    d.delete(&p("/9000/1")).unwrap();
    d.delete(&p("/3303/1")).unwrap();
    assert_eq!(
        d.delete(&p("/3303/1")),
        Err(ModelError::NotFound(p("/3303/1")))
    );
    assert_eq!(
        d.read(&p("/3303/1"), secs(0)),
        Err(ModelError::NotFound(p("/3303/1")))
    );
    assert!(
        !d.registration_paths()
            .iter()
            .any(|(path, _)| *path == p("/3303/1"))
    );
    // Deleting a template instance then creating it again starts it fresh.
    assert_eq!(d.create(3303, Some(1), vec![]).unwrap(), 1);
    assert!(d.read(&p("/3303/1/5700"), secs(0)).is_ok());
}

#[test]
fn create_needs_mandatory_writable_resources_the_template_lacks() {
    let def = Arc::new(
        load_ddf(&fixtures_dir().join("3312.xml"))
            .unwrap()
            .remove(0),
    );
    let bare = ObjectTemplate {
        def,
        resources: Vec::new(),
        default_count: 0,
    };
    let template = Arc::new(DeviceTemplate::new("bare").with_object(&bare, &[]));
    let mut d = Device::new(template, 0, 0);
    assert!(matches!(
        d.create(3312, None, vec![]),
        Err(ModelError::BadRequest(_))
    ));
    let on = vec![rec("/3312/0/5850", Value::Boolean(true))];
    assert_eq!(d.create(3312, None, on), Ok(0));
    assert_eq!(one(&mut d, "/3312/0/5850"), Value::Boolean(true));
}

#[test]
fn discover_and_registration() {
    let d = device(1);
    let found = d.discover(&p("/3/0")).unwrap();
    assert_eq!(found[0], (p("/3/0"), None));
    assert!(found.contains(&(p("/3/0/6"), Some(2))));
    assert!(found.contains(&(p("/3/0/4"), None)));
    assert_eq!(
        d.discover(&p("/3")).unwrap()[..2],
        [(p("/3"), None), (p("/3/0"), None)]
    );
    assert_eq!(d.discover(&p("/3/0/6")).unwrap(), [(p("/3/0/6"), Some(2))]);
    assert_eq!(
        d.discover(&p("/3/0/99")),
        Err(ModelError::NotFound(p("/3/0/99")))
    );
    assert_eq!(d.discover(&p("/3/9")), Err(ModelError::NotFound(p("/3/9"))));

    let reg = d.registration_paths();
    let shown: Vec<String> = reg
        .iter()
        .map(|(path, ver)| ver.map_or(path.to_string(), |v| format!("{path};ver={v}")))
        .collect();
    assert_eq!(
        shown,
        [
            "/1;ver=1.1",
            "/1/0",
            "/3;ver=1.2",
            "/3/0",
            "/3303;ver=1.1",
            "/3303/0",
            "/3303/1",
            "/9000/0",
            "/9000/5"
        ]
    );
}

#[test]
fn execute_checks() {
    let d = device(1);
    assert_eq!(d.check_execute(&p("/3/0/4")), Ok(()));
    assert_eq!(
        d.check_execute(&p("/3/0/0")),
        Err(ModelError::NotAllowed(p("/3/0/0")))
    );
    assert_eq!(
        d.check_execute(&p("/3/0")),
        Err(ModelError::NotAllowed(p("/3/0")))
    );
    assert_eq!(
        d.check_execute(&p("/3/9/4")),
        Err(ModelError::NotFound(p("/3/9/4")))
    );
    assert_eq!(
        d.check_execute(&p("/3/0/98")),
        Err(ModelError::NotFound(p("/3/0/98")))
    );
}

#[test]
fn provision_ignores_permissions_and_factory_reset_forgets() {
    let mut d = device(1);
    let ssid = rec("/1/0/0", Value::Integer(7));
    assert_eq!(
        d.write(&p("/1/0/0"), vec![ssid.clone()], WriteMode::Update),
        Err(ModelError::NotAllowed(p("/1/0/0")))
    );
    d.provision(ssid).unwrap();
    assert_eq!(one(&mut d, "/1/0/0"), Value::Integer(7));
    d.provision(rec("/0/0/0", Value::String("coaps://server:5684".into())))
        .unwrap();
    assert_eq!(
        d.read(&p("/0/0/0"), secs(0)),
        Err(ModelError::NotAllowed(p("/0/0/0")))
    );
    assert!(matches!(
        d.provision(rec("/3/0/4", Value::Integer(1))),
        Err(ModelError::BadRequest(_))
    ));
    assert_eq!(
        d.provision(rec("/0/3/0", Value::String("x".into()))),
        Err(ModelError::NotFound(p("/0/3/0")))
    );
    assert!(d.heap_bytes() > 0);
    d.factory_reset();
    assert_eq!(d.heap_bytes(), 0);
    assert_eq!(one(&mut d, "/1/0/0"), Value::Integer(123));
}

#[test]
fn schema_comes_from_the_template() {
    use crate::model::{ResourceSpec, Schema};
    let d = device(1);
    let spec = ResourceSpec {
        kind: ResourceType::Float,
        multiple: false,
    };
    assert_eq!(Schema::resource(&d, 3303, 5700), Some(spec));
    assert_eq!(Schema::resource(&d, 3, 6).map(|s| s.multiple), Some(true));
    assert_eq!(Schema::resource(&d, 3, 999), None);
}
