//! From parsed TOML values to typed constants and generators, checked against the resource.

use super::format::{ParsedValue, RawGenerator, invalid};
use super::set::TemplateError;
use super::{Source, check_source};
use crate::model::{Generator, ResourceDef, ResourceType, Value};

/// The source a `value` or `generator` gives, checked against the resource; `None` when neither
/// is given.
pub(super) fn source(
    file: &str,
    line: usize,
    def: &ResourceDef,
    parsed: &ParsedValue,
) -> Result<Option<Source>, TemplateError> {
    let count = parsed.instances.map_or(1, |(n, _)| n);
    let source = match (&parsed.value, &parsed.generator) {
        (Some(_), Some((_, line))) => {
            return Err(invalid(
                file,
                *line,
                "generator",
                "give `value` or `generator`, not both",
            ));
        }
        (None, None) if def.kind == ResourceType::None => Source::Execute,
        (None, None) => return Ok(None),
        (Some((value, line)), None) => {
            let convert = |v: &toml::Value| {
                constant(def.kind, v).map_err(|m| invalid(file, *line, "value", m))
            };
            match value {
                toml::Value::Array(items) if def.multiple => Source::Multi(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| Ok((i as u16, Generator::Constant(convert(v)?))))
                        .collect::<Result<_, TemplateError>>()?,
                ),
                v if def.multiple => Source::Multi(vec![(0, Generator::Constant(convert(v)?))]),
                v => Source::Single(Generator::Constant(convert(v)?)),
            }
        }
        (None, Some((raw, line))) => {
            let g = generator(def.kind, raw).map_err(|m| invalid(file, *line, "generator", m))?;
            if def.multiple {
                Source::Multi((0..count).map(|i| (i, g.clone())).collect())
            } else {
                Source::Single(g)
            }
        }
    };
    check_source(def, &source).map_err(|m| invalid(file, line, "value", m))?;
    Ok(Some(source))
}

/// The source a `value` or a `generator` table given outside a template file (a fleet file's
/// per-population overrides) sets on a resource, checked against its definition.
pub fn source_from_toml(
    def: &ResourceDef,
    value: Option<&toml::Value>,
    generator: Option<&toml::Value>,
) -> Result<Source, String> {
    use serde::Deserialize;
    let generator = generator
        .map(|g| RawGenerator::deserialize(g.clone()).map_err(|e| e.message().trim().to_string()))
        .transpose()?;
    let parsed = ParsedValue {
        value: value.map(|v| (v.clone(), 0)),
        generator: generator.map(|g| (g, 0)),
        instances: None,
    };
    match source("", 0, def, &parsed) {
        Ok(Some(source)) => Ok(source),
        Ok(None) => Err("give `value` or `generator`".to_string()),
        Err(TemplateError::Invalid(located)) => Err(located.message),
        Err(e) => Err(e.to_string()),
    }
}

pub(super) fn generator(kind: ResourceType, raw: &RawGenerator) -> Result<Generator, String> {
    let every = |e: Option<f64>| match e {
        None => Ok(None),
        Some(s) => seconds(s)
            .map(Some)
            .ok_or_else(|| format!("every_s must be a number of seconds >= 0 (got {s})")),
    };
    let g = match raw {
        RawGenerator::Counter {
            start,
            step,
            every_s,
        } => Generator::Counter {
            start: *start,
            step: *step,
            every_us: every(*every_s)?,
        },
        RawGenerator::Uniform { min, max, every_s } => Generator::Uniform {
            min: *min,
            max: *max,
            every_us: every(*every_s)?,
        },
        RawGenerator::Walk {
            min,
            max,
            step,
            every_s,
        } => Generator::Walk {
            min: *min,
            max: *max,
            step: *step,
            every_us: every(*every_s)?,
        },
        RawGenerator::Sine {
            period_s,
            amplitude,
            offset,
            every_s,
        } => Generator::Sine {
            period_us: seconds(*period_s)
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("period_s must be a positive number (got {period_s})"))?,
            amplitude: *amplitude,
            offset: *offset,
            every_us: every(*every_s)?,
        },
        RawGenerator::Cycle { values, every_s } => Generator::Cycle {
            values: values
                .iter()
                .map(|v| constant(kind, v))
                .collect::<Result<_, _>>()?,
            every_us: every(*every_s)?,
        },
        RawGenerator::Now => Generator::Now,
    };
    g.check(kind)?;
    Ok(g)
}

/// A TOML value as a constant of `kind`. Opaque takes a string's bytes; Objlnk takes `"3:0"`.
pub(super) fn constant(kind: ResourceType, v: &toml::Value) -> Result<Value, String> {
    use toml::Value as T;
    Ok(match (kind, v) {
        (ResourceType::String, T::String(s)) => Value::String(s.clone()),
        (ResourceType::Corelnk, T::String(s)) => Value::Corelnk(s.clone()),
        (ResourceType::Opaque, T::String(s)) => Value::Opaque(s.as_bytes().to_vec()),
        (ResourceType::Integer, T::Integer(i)) => Value::Integer(*i),
        (ResourceType::UnsignedInteger, T::Integer(i)) if *i >= 0 => {
            Value::UnsignedInteger(i.unsigned_abs())
        }
        (ResourceType::Time, T::Integer(i)) => Value::Time(*i),
        (ResourceType::Float, T::Float(f)) => Value::Float(*f),
        (ResourceType::Float, T::Integer(i)) => Value::Float(*i as f64),
        (ResourceType::Boolean, T::Boolean(b)) => Value::Boolean(*b),
        (ResourceType::Objlnk, T::String(s)) => {
            let link = s
                .split_once(':')
                .and_then(|(o, i)| Some((o.parse().ok()?, i.parse().ok()?)));
            let (o, i) = link.ok_or_else(|| format!("{s:?} is not an object link like \"3:0\""))?;
            Value::Objlnk(o, i)
        }
        _ => return Err(format!("{v} is not a valid {kind:?} value")),
    })
}

/// Seconds as whole µs, if finite and not negative.
pub(super) fn seconds(s: f64) -> Option<u64> {
    (0.0..1e12).contains(&s).then(|| (s * 1e6).round() as u64)
}

pub(super) fn parse_id(file: &str, line: usize, key: &str) -> Result<u16, TemplateError> {
    key.parse::<u16>()
        .ok()
        .filter(|id| *id != u16::MAX)
        .ok_or_else(|| invalid(file, line, key, "expected a numeric id from 0 to 65534"))
}
