//! Device templates: which objects a kind of device has, its instances, and how each resource gets
//! its value. Built once (from `object-templates/` or in code) and shared by every device of that
//! kind through an `Arc`.

mod convert;
mod format;
mod set;

use std::sync::Arc;

use super::generator::DEFAULT_SAMPLE_US;
use super::{Generator, ObjectDef, ResourceDef, ResourceType, Value};

pub use convert::source_from_toml;
pub use format::{DeviceSpec, Resolver, TemplateFile, from_toml};
pub use set::{TemplateError, TemplateSet};

/// Where a present resource's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A single-instance resource.
    Single(Generator),
    /// A multi-instance resource: (resource instance id, generator), by id.
    Multi(Vec<(u16, Generator)>),
    /// An executable resource: present, no value.
    Execute,
}

/// One present resource of an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceTemplate {
    pub id: u16,
    pub source: Source,
}

/// An object definition with the resources a new instance starts with.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectTemplate {
    pub def: Arc<ObjectDef>,
    /// Present resources of a fresh instance, by id.
    pub resources: Vec<ResourceTemplate>,
    /// Instances a device gets when its template does not say.
    pub default_count: u16,
}

/// One instance in a device template.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceTemplate {
    pub id: u16,
    pub resources: Vec<ResourceTemplate>,
}

/// An object of a device template: its definition, the resources of instances the server
/// creates, and the instances every device starts with.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectInstances {
    pub def: Arc<ObjectDef>,
    pub prototype: Vec<ResourceTemplate>,
    pub instances: Vec<InstanceTemplate>,
}

/// A device template: objects by id.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceTemplate {
    pub name: String,
    pub description: String,
    /// How often generated values change (µs).
    pub sample_interval_us: u64,
    objects: Vec<ObjectInstances>,
}

impl ObjectTemplate {
    /// An object whose mandatory resources get default values chosen by type (DDF objects).
    pub fn from_def(def: Arc<ObjectDef>) -> Self {
        let resources = def
            .resources
            .iter()
            .filter(|r| r.mandatory)
            .map(|r| ResourceTemplate {
                id: r.id,
                source: default_source(r),
            })
            .collect();
        ObjectTemplate {
            def,
            resources,
            default_count: 1,
        }
    }
}

/// A default by type: zeros and empty strings, a slow walk for floats, the clock for times.
pub fn default_source(def: &ResourceDef) -> Source {
    let generator = match def.kind {
        ResourceType::None => return Source::Execute,
        ResourceType::Float => Generator::Walk {
            min: 0.0,
            max: 100.0,
            step: 1.0,
            every_us: None,
        },
        ResourceType::Time => Generator::Now,
        kind => Generator::Constant(zero(kind)),
    };
    if def.multiple {
        Source::Multi(vec![(0, generator)])
    } else {
        Source::Single(generator)
    }
}

fn zero(kind: ResourceType) -> Value {
    match kind {
        ResourceType::String => Value::String(String::new()),
        ResourceType::UnsignedInteger => Value::UnsignedInteger(0),
        ResourceType::Float => Value::Float(0.0),
        ResourceType::Boolean => Value::Boolean(false),
        ResourceType::Opaque => Value::Opaque(Vec::new()),
        ResourceType::Time => Value::Time(0),
        ResourceType::Objlnk => Value::Objlnk(u16::MAX, u16::MAX),
        ResourceType::Corelnk => Value::Corelnk(String::new()),
        ResourceType::Integer | ResourceType::None => Value::Integer(0),
    }
}

/// Checks that `source` fits the resource: kind, multiplicity and generator parameters.
pub fn check_source(def: &ResourceDef, source: &Source) -> Result<(), String> {
    match source {
        Source::Execute if def.kind == ResourceType::None => Ok(()),
        Source::Execute => Err(format!(
            "resource {} ({}) is not executable",
            def.id, def.name
        )),
        Source::Single(_) if def.multiple => Err(format!(
            "resource {} ({}) is multi-instance: give a list",
            def.id, def.name
        )),
        Source::Multi(_) if !def.multiple => Err(format!(
            "resource {} ({}) is single-instance",
            def.id, def.name
        )),
        Source::Single(g) => g.check(def.kind),
        Source::Multi(list) => list.iter().try_for_each(|(_, g)| g.check(def.kind)),
    }
}

fn put(resources: &mut Vec<ResourceTemplate>, resource: ResourceTemplate) {
    match resources.binary_search_by_key(&resource.id, |r| r.id) {
        Ok(i) => resources[i] = resource,
        Err(i) => resources.insert(i, resource),
    }
}

impl DeviceTemplate {
    pub fn new(name: impl Into<String>) -> Self {
        DeviceTemplate {
            name: name.into(),
            description: String::new(),
            sample_interval_us: DEFAULT_SAMPLE_US,
            objects: Vec::new(),
        }
    }

    /// Adds (or replaces) an object with instances `ids`, each starting from the object's
    /// resources.
    #[must_use]
    pub fn with_object(mut self, object: &ObjectTemplate, ids: &[u16]) -> Self {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let entry = ObjectInstances {
            def: Arc::clone(&object.def),
            prototype: object.resources.clone(),
            instances: ids
                .into_iter()
                .map(|id| InstanceTemplate {
                    id,
                    resources: object.resources.clone(),
                })
                .collect(),
        };
        match self
            .objects
            .binary_search_by_key(&object.def.id, |o| o.def.id)
        {
            Ok(i) => self.objects[i] = entry,
            Err(i) => self.objects.insert(i, entry),
        }
        self
    }

    /// Sets how a resource gets its value, in one instance or (with `None`) in every instance
    /// and in instances created later.
    pub fn set(
        &mut self,
        object: u16,
        instance: Option<u16>,
        resource: u16,
        source: Source,
    ) -> Result<(), String> {
        let entry = self
            .objects
            .iter_mut()
            .find(|o| o.def.id == object)
            .ok_or_else(|| format!("the template has no object {object}"))?;
        let def = entry
            .def
            .resource(resource)
            .ok_or_else(|| format!("object {object} has no resource {resource}"))?;
        check_source(def, &source)?;
        let item = ResourceTemplate {
            id: resource,
            source,
        };
        match instance {
            None => {
                put(&mut entry.prototype, item.clone());
                for inst in &mut entry.instances {
                    put(&mut inst.resources, item.clone());
                }
            }
            Some(id) => {
                let inst = entry
                    .instances
                    .iter_mut()
                    .find(|i| i.id == id)
                    .ok_or_else(|| format!("the template has no instance /{object}/{id}"))?;
                put(&mut inst.resources, item);
            }
        }
        Ok(())
    }

    pub fn objects(&self) -> &[ObjectInstances] {
        &self.objects
    }

    pub fn object(&self, id: u16) -> Option<&ObjectInstances> {
        self.objects
            .binary_search_by_key(&id, |o| o.def.id)
            .ok()
            .map(|i| &self.objects[i])
    }
}

impl ObjectInstances {
    pub fn instance(&self, id: u16) -> Option<&InstanceTemplate> {
        self.instances
            .binary_search_by_key(&id, |i| i.id)
            .ok()
            .map(|i| &self.instances[i])
    }
}

impl InstanceTemplate {
    pub fn resource(&self, id: u16) -> Option<&ResourceTemplate> {
        find_resource(&self.resources, id)
    }
}

pub(crate) fn find_resource(list: &[ResourceTemplate], id: u16) -> Option<&ResourceTemplate> {
    list.binary_search_by_key(&id, |r| r.id)
        .ok()
        .map(|i| &list[i])
}

impl crate::model::Schema for DeviceTemplate {
    fn resource(&self, object: u16, resource: u16) -> Option<crate::model::ResourceSpec> {
        let def = self.object(object)?.def.resource(resource)?;
        Some(crate::model::ResourceSpec {
            kind: def.kind,
            multiple: def.multiple,
        })
    }
}

#[cfg(test)]
mod tests;
