//! OMA `DDF` XML object definitions (the registry format) into [`ObjectDef`]s.

use std::path::Path as FsPath;

use roxmltree::{Document, Node};

use super::{ObjectDef, Operations, ResourceDef, ResourceType};

#[derive(Debug, thiserror::Error)]
pub enum DdfError {
    #[error("{file}: cannot read: {}", crate::plain::io_error(source))]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not well-formed XML: {source}")]
    Xml {
        file: String,
        source: roxmltree::Error,
    },
    #[error("{file}:{line}: <{element}>: {message}")]
    Invalid {
        file: String,
        line: u32,
        element: String,
        message: String,
    },
}

/// Reads a DDF file.
pub fn load_ddf(path: &FsPath) -> Result<Vec<ObjectDef>, DdfError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DdfError::Io {
        file: file.clone(),
        source,
    })?;
    parse_ddf(&text, &file)
}

/// Parses every `<Object>` of a DDF document; `file` names it in errors.
pub fn parse_ddf(xml: &str, file: &str) -> Result<Vec<ObjectDef>, DdfError> {
    let doc = Document::parse(xml).map_err(|source| DdfError::Xml {
        file: file.to_string(),
        source,
    })?;
    let p = Parser { doc: &doc, file };
    let objects: Vec<ObjectDef> = doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("Object"))
        .map(|n| p.object(n))
        .collect::<Result<_, _>>()?;
    if objects.is_empty() {
        return Err(p.invalid(doc.root_element(), "no <Object> element"));
    }
    Ok(objects)
}

struct Parser<'a, 'input> {
    doc: &'a Document<'input>,
    file: &'a str,
}

impl Parser<'_, '_> {
    fn invalid(&self, node: Node, message: impl Into<String>) -> DdfError {
        DdfError::Invalid {
            file: self.file.to_string(),
            line: self.doc.text_pos_at(node.range().start).row,
            element: node.tag_name().name().to_string(),
            message: message.into(),
        }
    }

    fn object(&self, node: Node) -> Result<ObjectDef, DdfError> {
        let id = self.number(self.child(node, "ObjectID")?)?;
        let resources = match node.children().find(|n| n.has_tag_name("Resources")) {
            Some(list) => list
                .children()
                .filter(|n| n.has_tag_name("Item"))
                .map(|n| self.item(n))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let version = match node.children().find(|n| n.has_tag_name("ObjectVersion")) {
            Some(v) if !text(v).is_empty() => text(v).to_string(),
            _ => "1.0".to_string(),
        };
        Ok(ObjectDef {
            id,
            name: text(self.child(node, "Name")?).to_string(),
            version,
            multiple: self.multiple(self.child(node, "MultipleInstances")?)?,
            mandatory: self.mandatory(self.child(node, "Mandatory")?)?,
            resources,
        })
    }

    fn item(&self, node: Node) -> Result<ResourceDef, DdfError> {
        let id = node
            .attribute("ID")
            .and_then(|v| v.trim().parse::<u16>().ok())
            .ok_or_else(|| self.invalid(node, "missing or bad ID attribute"))?;
        let ops_node = self.child(node, "Operations")?;
        let operations = match text(ops_node) {
            "R" => Operations {
                read: true,
                ..Operations::default()
            },
            "W" => Operations {
                write: true,
                ..Operations::default()
            },
            "RW" => Operations {
                read: true,
                write: true,
                execute: false,
            },
            "E" => Operations {
                execute: true,
                ..Operations::default()
            },
            "" => Operations::default(),
            other => return Err(self.invalid(ops_node, format!("unknown operations {other:?}"))),
        };
        let type_node = self.child(node, "Type")?;
        let kind = type_from_name(text(type_node)).ok_or_else(|| {
            self.invalid(type_node, format!("unknown type {:?}", text(type_node)))
        })?;
        let optional = |name: &str| {
            node.children()
                .find(|n| n.has_tag_name(name))
                .map(|n| text(n).to_string())
                .filter(|s| !s.is_empty())
        };
        Ok(ResourceDef {
            id,
            name: text(self.child(node, "Name")?).to_string(),
            operations,
            multiple: self.multiple(self.child(node, "MultipleInstances")?)?,
            mandatory: self.mandatory(self.child(node, "Mandatory")?)?,
            kind,
            units: optional("Units"),
            range: optional("RangeEnumeration"),
        })
    }

    fn child<'n, 'i>(&self, node: Node<'n, 'i>, name: &str) -> Result<Node<'n, 'i>, DdfError> {
        node.children()
            .find(|n| n.has_tag_name(name))
            .ok_or_else(|| self.invalid(node, format!("missing <{name}>")))
    }

    fn number(&self, node: Node) -> Result<u16, DdfError> {
        text(node).parse().map_err(|_| {
            self.invalid(
                node,
                format!("{:?} is not an id from 0 to 65535", text(node)),
            )
        })
    }

    fn multiple(&self, node: Node) -> Result<bool, DdfError> {
        match text(node) {
            "Multiple" => Ok(true),
            "Single" => Ok(false),
            other => Err(self.invalid(node, format!("expected Single or Multiple, got {other:?}"))),
        }
    }

    fn mandatory(&self, node: Node) -> Result<bool, DdfError> {
        match text(node) {
            "Mandatory" => Ok(true),
            "Optional" => Ok(false),
            other => Err(self.invalid(
                node,
                format!("expected Mandatory or Optional, got {other:?}"),
            )),
        }
    }
}

fn text<'a>(node: Node<'a, '_>) -> &'a str {
    node.text().unwrap_or("").trim()
}

/// The DDF type names; empty means no value (executable resources).
pub fn type_from_name(name: &str) -> Option<ResourceType> {
    Some(match name {
        "String" => ResourceType::String,
        "Integer" => ResourceType::Integer,
        "Unsigned Integer" => ResourceType::UnsignedInteger,
        "Float" => ResourceType::Float,
        "Boolean" => ResourceType::Boolean,
        "Opaque" => ResourceType::Opaque,
        "Time" => ResourceType::Time,
        "Objlnk" => ResourceType::Objlnk,
        "Corelnk" => ResourceType::Corelnk,
        "" => ResourceType::None,
        _ => return None,
    })
}

/// The project's own DDF files for tests: facts of the few objects the tests use.
#[cfg(test)]
pub(crate) fn fixtures_dir() -> std::path::PathBuf {
    FsPath::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddf")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A full OMA registry checkout, when `LWM2M_REGISTRY_DIR` names one.
    fn registry() -> Option<PathBuf> {
        let dir = PathBuf::from(std::env::var_os("LWM2M_REGISTRY_DIR")?);
        assert!(
            dir.is_dir(),
            "LWM2M_REGISTRY_DIR={} is not a directory",
            dir.display()
        );
        Some(dir)
    }

    /// The `.xml` files under `dir`, as paths relative to it, sorted.
    fn xml_files(dir: &FsPath) -> Vec<PathBuf> {
        fn walk(root: &FsPath, dir: &FsPath, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else if path.extension().is_some_and(|e| e == "xml") {
                    out.push(path.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    fn load(name: &str) -> ObjectDef {
        load_ddf(&fixtures_dir().join(name)).unwrap().remove(0)
    }

    #[test]
    fn loads_every_fixture_file() {
        let files = xml_files(&fixtures_dir());
        assert_eq!(files.len(), 12, "{files:?}");
        for file in &files {
            let objects = load_ddf(&fixtures_dir().join(file)).unwrap_or_else(|e| panic!("{e}"));
            assert!(!objects[0].resources.is_empty(), "{}", file.display());
        }
    }

    #[test]
    fn loads_every_registry_file() {
        let Some(dir) = registry() else {
            println!("skipped: LWM2M_REGISTRY_DIR is not set (it names an OMA registry checkout)");
            return;
        };
        let files = xml_files(&dir);
        assert!(!files.is_empty(), "no .xml file under {}", dir.display());
        for file in &files {
            let objects = load_ddf(&dir.join(file)).unwrap_or_else(|e| panic!("{e}"));
            assert!(!objects[0].resources.is_empty(), "{}", file.display());
        }
        println!("loaded {} DDF files from {}", files.len(), dir.display());
    }

    /// Every fact a fixture states matches the registry file of the same name.
    #[test]
    fn fixtures_match_the_registry() {
        let Some(dir) = registry() else {
            println!("skipped: LWM2M_REGISTRY_DIR is not set (it names an OMA registry checkout)");
            return;
        };
        for file in xml_files(&fixtures_dir()) {
            let ours = load_ddf(&fixtures_dir().join(&file)).unwrap().remove(0);
            let theirs = load_ddf(&dir.join(&file)).unwrap().remove(0);
            let name = file.display();
            let object = |o: &ObjectDef| {
                (
                    o.id,
                    o.name.clone(),
                    o.version.clone(),
                    o.multiple,
                    o.mandatory,
                )
            };
            assert_eq!(object(&ours), object(&theirs), "{name}");
            for res in &ours.resources {
                let other = theirs
                    .resource(res.id)
                    .unwrap_or_else(|| panic!("{name}: no resource {}", res.id));
                assert_eq!(res, other, "{name}: resource {}", res.id);
            }
            for res in theirs.resources.iter().filter(|r| r.mandatory) {
                assert!(
                    ours.resource(res.id).is_some(),
                    "{name}: mandatory resource {} missing",
                    res.id
                );
            }
        }
    }

    #[test]
    fn known_facts() {
        let device = load("3.xml");
        assert_eq!(
            (device.id, device.version.as_str(), device.multiple),
            (3, "1.2", false)
        );
        let reboot = device.resource(4).unwrap();
        assert_eq!(reboot.name, "Reboot");
        assert!(reboot.operations.execute && !reboot.operations.read && reboot.mandatory);
        assert_eq!(reboot.kind, ResourceType::None);
        let sources = device.resource(6).unwrap();
        assert!(sources.multiple && sources.kind == ResourceType::Integer);
        assert_eq!(device.resource(13).unwrap().kind, ResourceType::Time);
        assert_eq!(device.resource(9).unwrap().range.as_deref(), Some("0..100"));

        let temp = load("3303.xml");
        assert!(temp.multiple && !temp.mandatory);
        let value = temp.resource(5700).unwrap();
        assert_eq!(value.kind, ResourceType::Float);
        assert_eq!(
            value.operations,
            Operations {
                read: true,
                write: false,
                execute: false
            }
        );

        assert!(load("1-1_1.xml").resource(7).unwrap().operations.write);
        assert_eq!(
            load("5.xml").resource(0).unwrap().kind,
            ResourceType::Opaque
        );
        assert_eq!(
            load("3.xml").resource(22).unwrap().kind,
            ResourceType::Objlnk
        );
        assert_eq!(
            load("4.xml").resource(2).unwrap().name,
            "Radio Signal Strength"
        );
        // LwM2M 1.0 Device has no <ObjectVersion>: the default applies.
        assert_eq!(load("lwm2m-1.0/3-1_0.xml").version, "1.0");
    }

    #[test]
    fn errors_name_file_and_element() {
        let xml = "<LWM2M><Object><Name>X</Name><ObjectID>7a</ObjectID></Object></LWM2M>";
        let err = parse_ddf(xml, "bad.xml").unwrap_err().to_string();
        assert!(
            err.contains("bad.xml") && err.contains("<ObjectID>"),
            "{err}"
        );
        let xml = "<LWM2M><Object><ObjectID>9</ObjectID><Name>X</Name>\
            <MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory>\
            <Resources><Item ID=\"1\"><Name>A</Name><Operations>RX</Operations></Item></Resources>\
            </Object></LWM2M>";
        let err = parse_ddf(xml, "ops.xml").unwrap_err().to_string();
        assert!(
            err.contains("ops.xml:1: <Operations>") && err.contains("RX"),
            "{err}"
        );
        assert!(
            parse_ddf("<LWM2M>", "cut.xml")
                .unwrap_err()
                .to_string()
                .contains("cut.xml")
        );
    }
}
