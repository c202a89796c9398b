//! The object tree of one simulated device: its template (shared by every device made from it)
//! plus only what differs (written values, created and deleted instances, generator state).

mod store;
mod write;

use std::sync::Arc;

use self::store::{Diff, Written, key4};
use super::generator::Context;
use super::template::{ResourceTemplate, Source, find_resource};
use super::{DeviceTemplate, Generator, ObjectDef, Path, Record, ResourceDef, ResourceType, Value};
use crate::clock::Instant;
use crate::model::{ResourceSpec, Schema};

/// How a Write applies its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// PUT: the target is replaced (a multi-instance resource loses unlisted instances).
    Replace,
    /// POST: only the listed items change.
    Update,
}

/// Why an operation on the object tree was refused; the client maps these to CoAP codes.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    /// 4.04
    #[error("{0} does not exist")]
    NotFound(Path),
    /// 4.05
    #[error("operation not allowed on {0}")]
    NotAllowed(Path),
    /// 4.00
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// One device's object tree: the shared template plus a sparse diff. An untouched device is
/// four words and owns no heap.
#[derive(Debug, Clone)]
pub struct Device {
    template: Arc<DeviceTemplate>,
    seed: u64,
    unix_origin: i64,
    diff: Option<Box<Diff>>,
}

fn base_in<'t>(
    template: &'t DeviceTemplate,
    diff: Option<&Diff>,
    object: u16,
    instance: u16,
) -> Option<&'t [ResourceTemplate]> {
    let obj = template.object(object)?;
    match diff.and_then(|d| d.instance(object, instance)) {
        Some(true) => Some(&obj.prototype),
        Some(false) => None,
        None => obj.instance(instance).map(|i| i.resources.as_slice()),
    }
}

fn not_found(path: Path) -> ModelError {
    ModelError::NotFound(path)
}

fn bad(message: impl Into<String>) -> ModelError {
    ModelError::BadRequest(message.into())
}

impl Device {
    /// `seed` makes generated values repeat exactly; `unix_origin` is the Unix time (seconds) at
    /// `Instant::ZERO`, for time-valued resources.
    pub fn new(template: Arc<DeviceTemplate>, seed: u64, unix_origin: i64) -> Self {
        Device {
            template,
            seed,
            unix_origin,
            diff: None,
        }
    }

    pub fn template(&self) -> &Arc<DeviceTemplate> {
        &self.template
    }

    /// The Unix time (seconds) at the clock's zero.
    pub fn unix_origin(&self) -> i64 {
        self.unix_origin
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The object definition for `object`, if the device has that object.
    pub fn object_def(&self, object: u16) -> Option<&ObjectDef> {
        self.template.object(object).map(|o| &*o.def)
    }

    /// The definition of a resource of an object the device has.
    pub fn resource_def(&self, object: u16, resource: u16) -> Option<&ResourceDef> {
        self.object_def(object)?.resource(resource)
    }

    /// Existing instance ids of `object`, in order.
    pub fn instances(&self, object: u16) -> Vec<u16> {
        let Some(obj) = self.template.object(object) else {
            return Vec::new();
        };
        let mut ids: Vec<u16> = obj.instances.iter().map(|i| i.id).collect();
        if let Some(diff) = &self.diff {
            for (id, created) in diff.instances_of(object) {
                match (created, ids.binary_search(&id)) {
                    (true, Err(at)) => ids.insert(at, id),
                    (false, Ok(at)) => {
                        ids.remove(at);
                    }
                    _ => {}
                }
            }
        }
        ids
    }

    /// The template resources an existing instance starts from (its own, or the object's
    /// prototype for a created one); `None` when the instance does not exist.
    fn base(&self, object: u16, instance: u16) -> Option<&[ResourceTemplate]> {
        base_in(&self.template, self.diff.as_deref(), object, instance)
    }

    fn written(&self, object: u16, instance: u16, resource: u16) -> Option<&Written> {
        self.diff.as_ref()?.written([object, instance, resource])
    }

    /// Present resource ids of an existing instance, in order.
    fn resource_ids(&self, object: u16, instance: u16, base: &[ResourceTemplate]) -> Vec<u16> {
        let mut ids: Vec<u16> = base.iter().map(|r| r.id).collect();
        if let Some(diff) = &self.diff {
            for (id, w) in diff.written_in(object, instance) {
                match (w, ids.binary_search(&id)) {
                    (Written::Absent, Ok(at)) => {
                        ids.remove(at);
                    }
                    (Written::Single(_) | Written::Multi(_), Err(at)) => ids.insert(at, id),
                    _ => {}
                }
            }
        }
        ids
    }

    /// Resource instance ids of a present multi-instance resource.
    fn instance_ids_of(&self, path: [u16; 3], base: &[ResourceTemplate]) -> Vec<u16> {
        match self.written(path[0], path[1], path[2]) {
            Some(Written::Multi(list)) => list.iter().map(|(id, _)| *id).collect(),
            Some(_) => Vec::new(),
            None => match find_resource(base, path[2]).map(|r| &r.source) {
                Some(Source::Multi(list)) => list.iter().map(|(id, _)| *id).collect(),
                _ => Vec::new(),
            },
        }
    }

    fn generate(
        &mut self,
        generator: &Generator,
        kind: ResourceType,
        path: Path,
        now: Instant,
    ) -> Value {
        let ctx = Context {
            seed: self.seed,
            path,
            now,
            unix_origin: self.unix_origin,
            sample_us: self.template.sample_interval_us,
        };
        if !generator.has_state() {
            return generator.value(kind, &ctx, &mut None);
        }
        let key = key4(&path);
        let mut state = self.diff.as_ref().and_then(|d| d.walk(key));
        let value = generator.value(kind, &ctx, &mut state);
        if let Some(state) = state {
            self.diff.get_or_insert_default().set_walk(key, state);
        }
        value
    }

    /// Records of one present resource (none for an executable or absent one).
    fn resource_records(
        &mut self,
        object: u16,
        instance: u16,
        def: &ResourceDef,
        now: Instant,
    ) -> Vec<Record> {
        let template = Arc::clone(&self.template);
        let Some(base) = base_in(&template, self.diff.as_deref(), object, instance) else {
            return Vec::new();
        };
        let base_source = find_resource(base, def.id).map(|r| r.source.clone());
        let res_path = Path::resource(object, instance, def.id);
        let ri_path = |ri| Path::resource_instance(object, instance, def.id, ri);
        let mut out = Vec::new();
        match self.written(object, instance, def.id).cloned() {
            Some(Written::Absent) => {}
            Some(Written::Single(value)) => out.push(Record {
                path: res_path,
                value,
            }),
            Some(Written::Multi(list)) => {
                for (ri, value) in list {
                    let value = match (value, &base_source) {
                        (Some(v), _) => v,
                        (None, Some(Source::Multi(gens))) => {
                            match gens.iter().find(|(id, _)| *id == ri) {
                                Some((_, g)) => self.generate(g, def.kind, ri_path(ri), now),
                                None => continue,
                            }
                        }
                        (None, _) => continue,
                    };
                    out.push(Record {
                        path: ri_path(ri),
                        value,
                    });
                }
            }
            None => match &base_source {
                Some(Source::Single(g)) => {
                    let value = self.generate(g, def.kind, res_path, now);
                    out.push(Record {
                        path: res_path,
                        value,
                    });
                }
                Some(Source::Multi(gens)) => {
                    for (ri, g) in gens {
                        let value = self.generate(g, def.kind, ri_path(*ri), now);
                        out.push(Record {
                            path: ri_path(*ri),
                            value,
                        });
                    }
                }
                Some(Source::Execute) | None => {}
            },
        }
        out
    }

    fn read_instance(&mut self, object: u16, instance: u16, now: Instant, out: &mut Vec<Record>) {
        let template = Arc::clone(&self.template);
        let Some(obj) = template.object(object) else {
            return;
        };
        let Some(base) = base_in(&template, self.diff.as_deref(), object, instance) else {
            return;
        };
        for id in self.resource_ids(object, instance, base) {
            if let Some(def) = obj.def.resource(id).filter(|d| d.operations.read) {
                out.extend(self.resource_records(object, instance, def, now));
            }
        }
    }

    /// Objects (with versions) and existing instances, in id order, for the Register payload.
    /// Objects without instances appear as an object path alone. Security (0) is left out.
    pub fn registration_paths(&self) -> Vec<(Path, Option<&str>)> {
        self.object_paths(|id| id != 0)
    }

    /// The same with Security, for a Bootstrap-Discover.
    pub fn bootstrap_paths(&self) -> Vec<(Path, Option<&str>)> {
        self.object_paths(|_| true)
    }

    fn object_paths(&self, include: impl Fn(u16) -> bool) -> Vec<(Path, Option<&str>)> {
        let mut out = Vec::new();
        for obj in self.template.objects().iter().filter(|o| include(o.def.id)) {
            let id = obj.def.id;
            let version = Some(obj.def.version.as_str()).filter(|v| *v != "1.0");
            let instances = self.instances(id);
            if version.is_some() || instances.is_empty() {
                out.push((Path::object(id), version));
            }
            out.extend(instances.into_iter().map(|i| (Path::instance(id, i), None)));
        }
        out
    }

    /// Reads every readable value at or under `path` (`/o`, `/o/i`, `/o/i/r` or `/o/i/r/ri`).
    /// Errors: `NotFound`, or `NotAllowed` for a resource that is not readable.
    pub fn read(&mut self, path: &Path, now: Instant) -> Result<Vec<Record>, ModelError> {
        let ids = path.ids();
        let Some(&object) = ids.first() else {
            return Err(ModelError::NotAllowed(*path));
        };
        let mut out = Vec::new();
        if ids.len() == 1 {
            if self.object_def(object).is_none() {
                return Err(not_found(*path));
            }
            for instance in self.instances(object) {
                self.read_instance(object, instance, now, &mut out);
            }
            return Ok(out);
        }
        let instance = ids[1];
        let Some(base) = self.base(object, instance) else {
            return Err(not_found(*path));
        };
        if ids.len() == 2 {
            self.read_instance(object, instance, now, &mut out);
            return Ok(out);
        }
        let resource = ids[2];
        let present = self
            .resource_ids(object, instance, base)
            .binary_search(&resource)
            .is_ok();
        let template = Arc::clone(&self.template);
        let def = template
            .object(object)
            .and_then(|o| o.def.resource(resource));
        let def = def.ok_or_else(|| not_found(*path))?;
        if !def.operations.read {
            return Err(ModelError::NotAllowed(*path));
        }
        if !present || (ids.len() == 4 && !def.multiple) {
            return Err(not_found(*path));
        }
        out = self.resource_records(object, instance, def, now);
        if ids.len() == 4 {
            out.retain(|r| r.path == *path);
            if out.is_empty() {
                return Err(not_found(*path));
            }
        }
        Ok(out)
    }

    /// The value of a single-instance resource (`/o/i/r`) as the client itself sees it,
    /// whatever the server may read: Security keys and URIs included.
    pub fn value(&mut self, path: &Path, now: Instant) -> Option<Value> {
        let &[object, instance, resource] = path.ids() else {
            return None;
        };
        let base = self.base(object, instance)?;
        if self
            .resource_ids(object, instance, base)
            .binary_search(&resource)
            .is_err()
        {
            return None;
        }
        let template = Arc::clone(&self.template);
        let def = template.object(object)?.def.resource(resource)?;
        let records = self.resource_records(object, instance, def, now);
        records.into_iter().next().map(|r| r.value)
    }

    /// Checks that `path` is an executable resource of an existing instance.
    pub fn check_execute(&self, path: &Path) -> Result<(), ModelError> {
        let ids = path.ids();
        if ids.len() != 3 {
            return Err(ModelError::NotAllowed(*path));
        }
        self.base(ids[0], ids[1]).ok_or_else(|| not_found(*path))?;
        let def = self
            .resource_def(ids[0], ids[2])
            .ok_or_else(|| not_found(*path))?;
        if def.operations.execute {
            Ok(())
        } else {
            Err(ModelError::NotAllowed(*path))
        }
    }

    /// Deletes an instance (`/o/i`). Instances of single-instance objects cannot be deleted.
    pub fn delete(&mut self, path: &Path) -> Result<(), ModelError> {
        let ids = path.ids();
        if ids.len() != 2 {
            return Err(ModelError::NotAllowed(*path));
        }
        let (object, instance) = (ids[0], ids[1]);
        let def = self.object_def(object).ok_or_else(|| not_found(*path))?;
        let multiple = def.multiple;
        self.base(object, instance)
            .ok_or_else(|| not_found(*path))?;
        if !multiple {
            return Err(ModelError::NotAllowed(*path));
        }
        self.remove_instance(object, instance);
        Ok(())
    }

    /// Removes an instance whatever its object allows (a Bootstrap-Delete may remove the
    /// instance of a single-instance object); nothing happens when it does not exist.
    pub fn remove_instance(&mut self, object: u16, instance: u16) {
        if self.base(object, instance).is_none() {
            return;
        }
        let in_template = self
            .template
            .object(object)
            .is_some_and(|o| o.instance(instance).is_some());
        let diff = self.diff.get_or_insert_default();
        diff.clear_instance(object, instance);
        diff.set_instance(object, instance, (in_template).then_some(false));
        self.tidy();
    }

    /// Paths that exist at or under `path` for Discover: the object or instance itself, then its
    /// instances and resources; multi-instance resources come with their instance count (`dim`).
    pub fn discover(&self, path: &Path) -> Result<Vec<(Path, Option<u16>)>, ModelError> {
        let ids = path.ids();
        let Some(&object) = ids.first() else {
            return Err(ModelError::NotAllowed(*path));
        };
        let def = self.object_def(object).ok_or_else(|| not_found(*path))?;
        let mut out = Vec::new();
        let instances = match ids.get(1) {
            None => {
                out.push((*path, None));
                self.instances(object)
            }
            Some(&i) => vec![i],
        };
        for instance in instances {
            let base = self
                .base(object, instance)
                .ok_or_else(|| not_found(*path))?;
            let resources = self.resource_ids(object, instance, base);
            let wanted: Vec<u16> = match ids.get(2) {
                None => {
                    out.push((Path::instance(object, instance), None));
                    resources
                }
                Some(r) if ids.len() == 3 && resources.contains(r) => vec![*r],
                Some(_) if ids.len() == 4 => return Err(ModelError::NotAllowed(*path)),
                Some(_) => return Err(not_found(*path)),
            };
            for r in wanted {
                let multiple = def.resource(r).is_some_and(|d| d.multiple);
                let dim = multiple.then(|| {
                    let count = self.instance_ids_of([object, instance, r], base).len();
                    u16::try_from(count).unwrap_or(u16::MAX)
                });
                out.push((Path::resource(object, instance, r), dim));
            }
        }
        Ok(out)
    }

    /// Gives back spare capacity (after a burst of writes such as a bootstrap).
    pub fn shrink_to_fit(&mut self) {
        if let Some(diff) = self.diff.as_mut() {
            diff.shrink_to_fit();
        }
    }

    /// Resets written values and instances to the template (Factory Reset).
    pub fn factory_reset(&mut self) {
        self.diff = None;
    }

    /// Bytes this device holds beyond its template: what a device really costs.
    pub fn heap_bytes(&self) -> usize {
        self.diff.as_ref().map_or(0, |d| d.heap_bytes())
    }

    /// Drops the diff when nothing is left in it, so the device owns no heap again.
    fn tidy(&mut self) {
        if self.diff.as_ref().is_some_and(|d| d.is_empty()) {
            self.diff = None;
        }
    }
}

impl Schema for Device {
    fn resource(&self, object: u16, resource: u16) -> Option<ResourceSpec> {
        self.template.resource(object, resource)
    }
}

#[cfg(test)]
mod tests;
