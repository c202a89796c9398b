//! The `object-templates/*.toml` format: serde structures (strict: unknown fields are errors) and
//! their conversion to templates, with errors that name the file, line and field.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::convert::{parse_id, seconds, source};
use super::set::TemplateError;
use super::{DeviceTemplate, ObjectTemplate, ResourceTemplate, default_source};
use crate::model::generator::DEFAULT_SAMPLE_US;
use crate::model::{ObjectDef, Operations, ResourceDef, ResourceType};
use crate::toml_span::{Located, line_of};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    object: Option<Spanned<RawObject>>,
    #[serde(default)]
    resources: BTreeMap<String, Spanned<RawResource>>,
    device: Option<Spanned<RawDevice>>,
    #[serde(default)]
    objects: Vec<Spanned<RawUse>>,
}

fn version_1_0() -> String {
    "1.0".into()
}
fn one() -> u16 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObject {
    id: u16,
    name: String,
    #[serde(default = "version_1_0")]
    version: String,
    #[serde(default)]
    multiple: bool,
    #[serde(default)]
    mandatory: bool,
    #[serde(default = "one")]
    default_instances: u16,
}

#[derive(Deserialize, Default, Clone, Copy)]
pub(super) enum RawOps {
    R,
    W,
    RW,
    E,
    #[default]
    #[serde(rename = "")]
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResource {
    name: String,
    #[serde(default)]
    operations: RawOps,
    #[serde(rename = "type", default)]
    kind: ResourceType,
    #[serde(default)]
    multiple: bool,
    #[serde(default)]
    mandatory: bool,
    units: Option<String>,
    range: Option<String>,
    value: Option<Spanned<toml::Value>>,
    generator: Option<Spanned<RawGenerator>>,
    instances: Option<Spanned<u16>>,
}

/// How a resource gets its value: a constant (a list for a multi-instance resource) or a
/// generator (copied into `instances` resource instances).
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawValue {
    value: Option<Spanned<toml::Value>>,
    generator: Option<Spanned<RawGenerator>>,
    instances: Option<Spanned<u16>>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum RawGenerator {
    Counter {
        #[serde(default)]
        start: f64,
        #[serde(default = "one_f")]
        step: f64,
        every_s: Option<f64>,
    },
    Uniform {
        min: f64,
        max: f64,
        every_s: Option<f64>,
    },
    Walk {
        min: f64,
        max: f64,
        step: f64,
        every_s: Option<f64>,
    },
    Sine {
        period_s: f64,
        amplitude: f64,
        #[serde(default)]
        offset: f64,
        every_s: Option<f64>,
    },
    Cycle {
        values: Vec<toml::Value>,
        every_s: Option<f64>,
    },
    Now,
}

fn one_f() -> f64 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevice {
    name: String,
    #[serde(default)]
    description: String,
    sample_interval_s: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUse {
    id: Spanned<u16>,
    /// A DDF XML file (relative to the template directory) defining the object.
    ddf: Option<String>,
    count: Option<u16>,
    ids: Option<Vec<u16>>,
    /// Overrides for every instance (and instances created later), by resource id.
    #[serde(default)]
    resources: BTreeMap<String, Spanned<RawValue>>,
    /// Overrides for one instance: instance id -> resource id -> value.
    #[serde(default)]
    instance: BTreeMap<String, Spanned<BTreeMap<String, Spanned<RawValue>>>>,
}

/// One parsed template file.
#[derive(Debug)]
pub enum TemplateFile {
    Object(ObjectTemplate),
    Device(DeviceSpec),
}

/// A device file, parsed but not yet joined to its object definitions.
#[derive(Debug)]
pub struct DeviceSpec {
    pub name: String,
    file: String,
    description: String,
    sample_interval_us: u64,
    objects: Vec<ObjectUse>,
}

#[derive(Debug)]
struct ObjectUse {
    id: u16,
    line: usize,
    ddf: Option<String>,
    ids: Option<Vec<u16>>,
    overrides: Vec<Override>,
}

#[derive(Debug)]
struct Override {
    instance: Option<u16>,
    resource: u16,
    line: usize,
    value: ParsedValue,
}

/// A `RawValue` with spans turned into lines, kept until the resource type is known.
#[derive(Debug, Default)]
pub(super) struct ParsedValue {
    pub(super) value: Option<(toml::Value, usize)>,
    pub(super) generator: Option<(RawGenerator, usize)>,
    pub(super) instances: Option<(u16, usize)>,
}

/// Where errors point.
struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }
    fn parsed(&self, raw: &RawValue) -> ParsedValue {
        ParsedValue {
            value: raw
                .value
                .as_ref()
                .map(|v| (v.get_ref().clone(), self.line(v.span().start))),
            generator: raw
                .generator
                .as_ref()
                .map(|g| (g.get_ref().clone(), self.line(g.span().start))),
            instances: raw
                .instances
                .as_ref()
                .map(|n| (*n.get_ref(), self.line(n.span().start))),
        }
    }
}

pub(super) fn invalid(
    file: &str,
    line: usize,
    field: &str,
    message: impl Into<String>,
) -> TemplateError {
    TemplateError::Invalid(Located::new(file, line, field, message))
}

/// Parses one template file; `name` (usually the file name) is used in errors.
pub fn from_toml(text: &str, name: &str) -> Result<TemplateFile, TemplateError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| Located::from_toml(name, text, &e))?;
    let ctx = Ctx { file: name, text };
    match (raw.object, raw.device) {
        (Some(object), None) => {
            if let Some(first) = raw.objects.first() {
                let line = ctx.line(first.span().start);
                return Err(invalid(name, line, "objects", "belongs in a [device] file"));
            }
            object_file(&ctx, object, &raw.resources).map(TemplateFile::Object)
        }
        (None, Some(device)) => {
            if let Some((key, res)) = raw.resources.iter().next() {
                let line = ctx.line(res.span().start);
                let field = format!("resources.{key}");
                return Err(invalid(name, line, &field, "belongs in an [object] file"));
            }
            device_file(&ctx, &device, raw.objects).map(TemplateFile::Device)
        }
        (Some(_), Some(device)) => {
            let line = ctx.line(device.span().start);
            Err(invalid(
                name,
                line,
                "device",
                "a file holds an [object] or a [device], not both",
            ))
        }
        (None, None) => Err(invalid(
            name,
            1,
            "object",
            "a template file needs [object] or [device]",
        )),
    }
}

fn object_file(
    ctx: &Ctx,
    object: Spanned<RawObject>,
    resources: &BTreeMap<String, Spanned<RawResource>>,
) -> Result<ObjectTemplate, TemplateError> {
    let mut defs = Vec::new();
    let mut values = Vec::new();
    for (key, res) in resources {
        let line = ctx.line(res.span().start);
        let id = parse_id(ctx.file, line, key)?;
        let raw = res.get_ref();
        let (read, write, execute) = match raw.operations {
            RawOps::R => (true, false, false),
            RawOps::W => (false, true, false),
            RawOps::RW => (true, true, false),
            RawOps::E => (false, false, true),
            RawOps::None => (false, false, false),
        };
        let kind = raw.kind;
        if (kind == ResourceType::None) != execute {
            let message = "executable resources (operations = \"E\") and only they have no type";
            return Err(invalid(ctx.file, line, "type", message));
        }
        defs.push(ResourceDef {
            id,
            name: raw.name.clone(),
            operations: Operations {
                read,
                write,
                execute,
            },
            multiple: raw.multiple,
            mandatory: raw.mandatory,
            kind,
            units: raw.units.clone(),
            range: raw.range.clone(),
        });
        let value = RawValue {
            value: raw.value.clone(),
            generator: raw.generator.clone(),
            instances: raw.instances.clone(),
        };
        values.push((line, ctx.parsed(&value)));
    }
    let mut present = Vec::new();
    for (def, (line, value)) in defs.iter().zip(values) {
        let source = source(ctx.file, line, def, &value)?.unwrap_or_else(|| default_source(def));
        present.push(ResourceTemplate { id: def.id, source });
    }
    let o = object.into_inner();
    let mut def = ObjectDef {
        id: o.id,
        name: o.name,
        version: o.version,
        multiple: o.multiple,
        mandatory: o.mandatory,
        resources: defs,
    };
    def.resources.sort_by_key(|r| r.id);
    present.sort_by_key(|r| r.id);
    Ok(ObjectTemplate {
        def: Arc::new(def),
        resources: present,
        default_count: o.default_instances,
    })
}

fn device_file(
    ctx: &Ctx,
    device: &Spanned<RawDevice>,
    uses: Vec<Spanned<RawUse>>,
) -> Result<DeviceSpec, TemplateError> {
    let raw = device.get_ref();
    let sample_interval_us = match &raw.sample_interval_s {
        None => DEFAULT_SAMPLE_US,
        Some(s) => match seconds(*s.get_ref()) {
            Some(us) if us > 0 => us,
            _ => {
                let line = ctx.line(s.span().start);
                let message = "must be a positive number of seconds";
                return Err(invalid(ctx.file, line, "sample_interval_s", message));
            }
        },
    };
    let mut objects = Vec::new();
    for spanned in uses {
        let line = ctx.line(spanned.span().start);
        let raw = spanned.into_inner();
        let ids = match (raw.count, raw.ids) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    ctx.file,
                    line,
                    "ids",
                    "give `count` or `ids`, not both",
                ));
            }
            (Some(count), None) => Some((0..count).collect()),
            (None, ids) => ids,
        };
        let mut overrides = Vec::new();
        for (key, value) in &raw.resources {
            let line = ctx.line(value.span().start);
            let resource = parse_id(ctx.file, line, key)?;
            let value = ctx.parsed(value.get_ref());
            overrides.push(Override {
                instance: None,
                resource,
                line,
                value,
            });
        }
        for (inst_key, table) in &raw.instance {
            let line = ctx.line(table.span().start);
            let instance = Some(parse_id(ctx.file, line, inst_key)?);
            for (key, value) in table.get_ref() {
                let line = ctx.line(value.span().start);
                let resource = parse_id(ctx.file, line, key)?;
                let value = ctx.parsed(value.get_ref());
                overrides.push(Override {
                    instance,
                    resource,
                    line,
                    value,
                });
            }
        }
        objects.push(ObjectUse {
            id: *raw.id.get_ref(),
            line: ctx.line(raw.id.span().start),
            ddf: raw.ddf,
            ids,
            overrides,
        });
    }
    Ok(DeviceSpec {
        name: raw.name.clone(),
        file: ctx.file.to_string(),
        description: raw.description.clone(),
        sample_interval_us,
        objects,
    })
}

/// Finds the object template for an id and an optional DDF file name.
pub type Resolver<'a> = dyn FnMut(u16, Option<&str>) -> Result<ObjectTemplate, String> + 'a;

impl DeviceSpec {
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Joins the device to its objects; `resolve(id, ddf)` finds an object definition.
    pub fn build(&self, resolve: &mut Resolver<'_>) -> Result<DeviceTemplate, TemplateError> {
        let file = self.file.as_str();
        let mut template = DeviceTemplate::new(self.name.clone());
        template.description.clone_from(&self.description);
        template.sample_interval_us = self.sample_interval_us;
        for used in &self.objects {
            let object = resolve(used.id, used.ddf.as_deref())
                .map_err(|message| invalid(file, used.line, "id", message))?;
            if template.object(used.id).is_some() {
                return Err(invalid(file, used.line, "id", "object listed twice"));
            }
            let ids = used
                .ids
                .clone()
                .unwrap_or_else(|| (0..object.default_count).collect());
            if !object.def.multiple && ids.len() > 1 {
                let message = format!("object {} is single-instance", used.id);
                return Err(invalid(file, used.line, "count", message));
            }
            template = template.with_object(&object, &ids);
            for o in &used.overrides {
                let field = format!("{}", o.resource);
                let def = object.def.resource(o.resource).ok_or_else(|| {
                    let message = format!("object {} has no resource {}", used.id, o.resource);
                    invalid(file, o.line, &field, message)
                })?;
                let Some(source) = source(file, o.line, def, &o.value)? else {
                    return Err(invalid(file, o.line, &field, "give `value` or `generator`"));
                };
                template
                    .set(used.id, o.instance, o.resource, source)
                    .map_err(|message| invalid(file, o.line, &field, message))?;
            }
        }
        Ok(template)
    }
}
