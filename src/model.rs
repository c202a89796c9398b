//! The object model: definitions (from `object-templates/` TOML and OMA DDF XML), device templates
//! with value generators, and the per-device object tree that stores only what differs from its
//! template.

pub mod ddf;
mod device;
pub mod generator;
mod path;
mod template;
mod value;

pub use ddf::{DdfError, load_ddf, parse_ddf};
pub use device::{Device, ModelError, WriteMode};
pub use generator::Generator;
pub use path::{Path, PathError};
pub use template::{
    DeviceSpec, DeviceTemplate, InstanceTemplate, ObjectInstances, ObjectTemplate, Resolver,
    ResourceTemplate, Source, TemplateError, TemplateFile, TemplateSet, from_toml,
    source_from_toml,
};
pub use value::{Record, ResourceType, Value};

use std::sync::Arc;

/// The type facts a codec needs about a resource (TLV and text carry no types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceSpec {
    pub kind: ResourceType,
    pub multiple: bool,
}

/// Where codecs look up resource types.
pub trait Schema {
    fn resource(&self, object: u16, resource: u16) -> Option<ResourceSpec>;
}

/// The schema of a peer that knows no object definitions: decoded values keep the type their
/// payload gives them.
pub struct Untyped;

impl Schema for Untyped {
    fn resource(&self, _object: u16, _resource: u16) -> Option<ResourceSpec> {
        None
    }
}

/// What a server may do to a resource (the DDF `Operations` field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Operations {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// One resource of an object definition.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceDef {
    pub id: u16,
    pub name: String,
    pub operations: Operations,
    pub multiple: bool,
    pub mandatory: bool,
    pub kind: ResourceType,
    pub units: Option<String>,
    /// The DDF `RangeEnumeration`, kept as written (`0..100`, `1-65534`, ...).
    pub range: Option<String>,
}

/// One object definition, shared by every device that has the object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectDef {
    pub id: u16,
    pub name: String,
    /// Object version as written (`1.0`, `1.1`...); `ver=` is sent at Register when it is not 1.0.
    pub version: String,
    pub multiple: bool,
    pub mandatory: bool,
    pub resources: Vec<ResourceDef>,
}

impl ObjectDef {
    pub fn resource(&self, id: u16) -> Option<&ResourceDef> {
        self.resources.iter().find(|r| r.id == id)
    }
}

/// Shared, immutable object definitions.
pub type SharedObjectDef = Arc<ObjectDef>;
