//! Write, Create and provisioning: checked first, then applied to the diff.

use std::sync::Arc;

use super::store::Written;
use super::{Device, ModelError, WriteMode, bad, base_in, not_found};
use crate::model::template::{ResourceTemplate, Source, find_resource};
use crate::model::{ObjectDef, Path, Record, ResourceType, Value};

/// Who is writing: the server (W permission needed), a Create, the fleet's provisioning, or a
/// bootstrap server (any resource with a value, instances created as needed).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    Server,
    Create,
    Provision,
    Bootstrap,
}

/// One checked value to store.
struct Planned {
    resource: u16,
    ri: Option<u16>,
    value: Value,
}

impl Device {
    /// Writes decoded records to `path` (`/o/i`, `/o/i/r` or `/o/i/r/ri`), checking types,
    /// writability and existence. Nothing changes when a record is refused.
    pub fn write(
        &mut self,
        path: &Path,
        records: Vec<Record>,
        mode: WriteMode,
    ) -> Result<(), ModelError> {
        self.write_as(path, records, mode, Writer::Server)
    }

    /// A Write-Composite: each record replaces the value at its own path. All or nothing: when
    /// one record is refused, none is kept.
    pub fn write_composite(&mut self, records: Vec<Record>) -> Result<(), ModelError> {
        let before = self.diff.clone();
        for record in records {
            let path = record.path;
            if let Err(error) =
                self.write_as(&path, vec![record], WriteMode::Replace, Writer::Server)
            {
                self.diff = before;
                return Err(error);
            }
        }
        Ok(())
    }

    /// A Bootstrap-Write (PUT) to `/o`, `/o/i` or `/o/i/r`: permissions do not apply, and an
    /// instance that does not exist is created (from the object's prototype) first. Nothing
    /// changes when a record is refused.
    pub fn bootstrap_write(&mut self, path: &Path, records: &[Record]) -> Result<(), ModelError> {
        let ids = path.ids();
        let Some(&o) = ids.first() else {
            return Err(ModelError::NotAllowed(*path));
        };
        let template = Arc::clone(&self.template);
        let obj = template.object(o).ok_or_else(|| not_found(*path))?;
        let mut instances: Vec<u16> = match ids.get(1) {
            Some(&i) => vec![i],
            None => records
                .iter()
                .filter_map(|r| r.path.instance_id())
                .collect(),
        };
        instances.sort_unstable();
        instances.dedup();
        // Checked whole before anything is stored.
        plan(&obj.def, path, records.to_vec(), Writer::Bootstrap)?;
        let before = self.diff.clone();
        for i in instances {
            // A new instance is created as by a Create: what is not written comes from the
            // prototype. An existing one is replaced.
            let mut mode = WriteMode::Replace;
            if self.base(o, i).is_none() {
                if !obj.def.multiple && !self.instances(o).is_empty() {
                    self.diff = before;
                    return Err(ModelError::NotAllowed(Path::instance(o, i)));
                }
                let diff = self.diff.get_or_insert_default();
                diff.clear_instance(o, i);
                diff.set_instance(o, i, Some(true));
                mode = WriteMode::Update;
            }
            let target = if ids.len() == 1 {
                Path::instance(o, i)
            } else {
                *path
            };
            let mine = records
                .iter()
                .filter(|r| r.path.instance_id() == Some(i))
                .cloned()
                .collect();
            if let Err(e) = self.write_as(&target, mine, mode, Writer::Bootstrap) {
                self.diff = before;
                return Err(e);
            }
        }
        Ok(())
    }

    fn write_as(
        &mut self,
        path: &Path,
        records: Vec<Record>,
        mode: WriteMode,
        writer: Writer,
    ) -> Result<(), ModelError> {
        let ids = path.ids();
        if ids.len() < 2 {
            return Err(ModelError::NotAllowed(*path));
        }
        let (o, i) = (ids[0], ids[1]);
        let template = Arc::clone(&self.template);
        let obj = template.object(o).ok_or_else(|| not_found(*path))?;
        let base =
            base_in(&template, self.diff.as_deref(), o, i).ok_or_else(|| not_found(*path))?;
        if let Some(&r) = ids.get(2) {
            let def = obj.def.resource(r).ok_or_else(|| not_found(*path))?;
            if writer == Writer::Server && !def.operations.write {
                return Err(ModelError::NotAllowed(*path));
            }
            if ids.len() == 4 && !def.multiple {
                return Err(not_found(*path));
            }
        }
        let plan = plan(&obj.def, path, records, writer)?;
        if mode == WriteMode::Replace && ids.len() == 2 {
            // PUT on an instance replaces it: optional writable resources not listed go away.
            for r in self.resource_ids(o, i, base) {
                let drop = obj.def.resource(r).is_some_and(|d| {
                    (d.operations.write || writer == Writer::Bootstrap)
                        && d.kind != ResourceType::None
                        && !d.mandatory
                        && !plan.iter().any(|p| p.resource == r)
                });
                if drop {
                    self.diff
                        .get_or_insert_default()
                        .set_written([o, i, r], Written::Absent);
                }
            }
        }
        if mode == WriteMode::Replace && ids.len() == 3 && plan.is_empty() {
            let empty = if obj.def.resource(ids[2]).is_some_and(|d| d.multiple) {
                Written::Multi(Vec::new())
            } else {
                return Err(bad(format!("no value for {path}")));
            };
            self.diff
                .get_or_insert_default()
                .set_written([o, i, ids[2]], empty);
        }
        let replace_lists = mode == WriteMode::Replace && ids.len() <= 3;
        self.apply(o, i, base, &obj.def, plan, replace_lists);
        Ok(())
    }

    /// Creates an instance of `object` (id chosen when `instance` is `None`) from records whose
    /// instance id is ignored. Returns the new instance id. Resources not given start from the
    /// object's template; a mandatory writable resource the template lacks must be given.
    pub fn create(
        &mut self,
        object: u16,
        instance: Option<u16>,
        records: Vec<Record>,
    ) -> Result<u16, ModelError> {
        let template = Arc::clone(&self.template);
        let obj = template
            .object(object)
            .ok_or_else(|| not_found(Path::object(object)))?;
        let existing = self.instances(object);
        if !obj.def.multiple && !existing.is_empty() {
            return Err(ModelError::NotAllowed(Path::object(object)));
        }
        let id = match instance {
            Some(u16::MAX) => return Err(bad("instance id 65535 is reserved")),
            Some(id) if existing.binary_search(&id).is_ok() => {
                return Err(bad(format!("/{object}/{id} already exists")));
            }
            Some(id) => id,
            None => (0..u16::MAX)
                .find(|id| existing.binary_search(id).is_err())
                .ok_or_else(|| bad("no free instance id"))?,
        };
        let plan = plan(&obj.def, &Path::object(object), records, Writer::Create)?;
        let missing = obj.def.resources.iter().find(|d| {
            d.mandatory
                && d.operations.write
                && find_resource(&obj.prototype, d.id).is_none()
                && !plan.iter().any(|p| p.resource == d.id)
        });
        if let Some(d) = missing {
            return Err(bad(format!(
                "mandatory resource {} ({}) is missing",
                d.id, d.name
            )));
        }
        let diff = self.diff.get_or_insert_default();
        diff.clear_instance(object, id);
        diff.set_instance(object, id, Some(true));
        self.apply(object, id, &obj.prototype, &obj.def, plan, true);
        Ok(id)
    }

    /// Sets a value whatever the resource's operations say (fleet settings such as the server
    /// URI `/0/0/0`, lifetime `/1/0/1`, binding `/1/0/7`, or state the client drives such as
    /// `/5/0/3`). The instance must exist: nothing is created.
    pub fn provision(&mut self, record: Record) -> Result<(), ModelError> {
        let path = record.path;
        let ids = path.ids();
        if ids.len() < 3 {
            return Err(bad(format!(
                "provisioning needs a resource path, not {path}"
            )));
        }
        let (o, i) = (ids[0], ids[1]);
        let template = Arc::clone(&self.template);
        let obj = template.object(o).ok_or_else(|| not_found(path))?;
        let base = base_in(&template, self.diff.as_deref(), o, i).ok_or_else(|| not_found(path))?;
        let plan = plan(
            &obj.def,
            &Path::instance(o, i),
            vec![record],
            Writer::Provision,
        )?;
        self.apply(o, i, base, &obj.def, plan, false);
        Ok(())
    }

    /// Stores checked values. `replace_lists`: a listed multi-instance resource keeps only the
    /// listed instances.
    fn apply(
        &mut self,
        o: u16,
        i: u16,
        base: &[ResourceTemplate],
        def: &ObjectDef,
        plan: Vec<Planned>,
        replace_lists: bool,
    ) {
        let mut resources: Vec<u16> = plan.iter().map(|p| p.resource).collect();
        resources.sort_unstable();
        resources.dedup();
        let mut plan: Vec<Option<Planned>> = plan.into_iter().map(Some).collect();
        for r in resources {
            let multiple = def.resource(r).is_some_and(|d| d.multiple);
            let items = plan
                .iter_mut()
                .filter(|p| p.as_ref().is_some_and(|p| p.resource == r))
                .filter_map(Option::take);
            let written = if multiple {
                let mut list = if replace_lists {
                    Vec::new()
                } else {
                    self.current_list([o, i, r], base)
                };
                for item in items {
                    let ri = item.ri.unwrap_or(0);
                    match list.binary_search_by_key(&ri, |(id, _)| *id) {
                        Ok(at) => list[at].1 = Some(item.value),
                        Err(at) => list.insert(at, (ri, Some(item.value))),
                    }
                }
                Written::Multi(list)
            } else {
                match items.last() {
                    Some(item) => Written::Single(item.value),
                    None => continue,
                }
            };
            self.diff
                .get_or_insert_default()
                .set_written([o, i, r], written);
        }
    }

    /// A multi-instance resource's instances as a written list (template ones as `None`).
    fn current_list(&self, key: [u16; 3], base: &[ResourceTemplate]) -> Vec<(u16, Option<Value>)> {
        match self.written(key[0], key[1], key[2]) {
            Some(Written::Multi(list)) => list.clone(),
            Some(_) => Vec::new(),
            None => match find_resource(base, key[2]).map(|r| &r.source) {
                Some(Source::Multi(gens)) => gens.iter().map(|(id, _)| (*id, None)).collect(),
                _ => Vec::new(),
            },
        }
    }
}

/// Checks records against the object definition. For a Create the records' instance id is
/// ignored; otherwise every record must lie under `target`.
fn plan(
    def: &ObjectDef,
    target: &Path,
    records: Vec<Record>,
    writer: Writer,
) -> Result<Vec<Planned>, ModelError> {
    records
        .into_iter()
        .map(|rec| {
            let p = rec.path;
            let ids = p.ids();
            let inside = match writer {
                Writer::Create => ids.first() == Some(&def.id),
                _ => p.starts_with(target),
            };
            if !inside || ids.len() < 3 {
                return Err(bad(format!("record {p} does not belong under {target}")));
            }
            let Some(res) = def.resource(ids[2]) else {
                return Err(match writer {
                    Writer::Create => bad(format!("object {} has no resource {}", def.id, ids[2])),
                    _ => not_found(p),
                });
            };
            if res.kind == ResourceType::None {
                return Err(match writer {
                    Writer::Server => ModelError::NotAllowed(p),
                    _ => bad(format!("{p} is executable and holds no value")),
                });
            }
            if writer == Writer::Server && !res.operations.write {
                return Err(ModelError::NotAllowed(p));
            }
            if res.multiple != (ids.len() == 4) {
                let message = if res.multiple {
                    format!("{p} is multi-instance: values need resource instance ids")
                } else {
                    format!("{p} is single-instance")
                };
                return Err(bad(message));
            }
            let value = coerce(rec.value, res.kind)
                .ok_or_else(|| bad(format!("value for {p} is not a {:?}", res.kind)))?;
            Ok(Planned {
                resource: ids[2],
                ri: ids.get(3).copied(),
                value,
            })
        })
        .collect()
}

/// A decoded value as the resource's type: numbers convert when exact, strings and core links
/// swap; anything else must already match.
fn coerce(value: Value, kind: ResourceType) -> Option<Value> {
    if value.kind() == kind {
        return Some(value);
    }
    let int = match &value {
        Value::Integer(v) | Value::Time(v) => Some(i128::from(*v)),
        Value::UnsignedInteger(v) => Some(i128::from(*v)),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(*f as i128),
        _ => None,
    };
    Some(match (kind, value) {
        (ResourceType::Integer, _) => Value::Integer(i64::try_from(int?).ok()?),
        (ResourceType::Time, _) => Value::Time(i64::try_from(int?).ok()?),
        (ResourceType::UnsignedInteger, _) => Value::UnsignedInteger(u64::try_from(int?).ok()?),
        (ResourceType::Float, v) => Value::Float(v.as_f64().filter(|_| int.is_some())?),
        (ResourceType::String, Value::Corelnk(s)) => Value::String(s),
        (ResourceType::Corelnk, Value::String(s)) => Value::Corelnk(s),
        _ => return None,
    })
}
