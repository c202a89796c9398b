//! Resource value generators.
//!
//! A generated value is a pure function of (device seed, path, sample index): no RNG object lives
//! in a device. Random numbers come from hashing those inputs with splitmix64, so a run repeats
//! exactly with the same seeds, and two reads inside one sample interval agree. Only the random
//! walk keeps a small cache ([`WalkState`]) so that a read costs a few steps, not a replay.

use super::{Path, ResourceType, Value};
use crate::clock::Instant;

/// Default time between generated value changes.
pub const DEFAULT_SAMPLE_US: u64 = 1_000_000;

/// A random walk restarts from a hashed anchor every this many steps, so its value stays a pure
/// function of the step index while catching up costs at most this many hashes.
const WALK_BLOCK: u64 = 1 << 16;

/// How a resource gets its value. Intervals (`every_us`) are in µs, `None` meaning the device
/// template's sample interval; an interval of 0 holds the first value forever (a per-device random
/// constant, for `uniform` and `walk`).
#[derive(Clone, Debug, PartialEq)]
pub enum Generator {
    Constant(Value),
    /// `start + step * floor(t / every)`.
    Counter {
        start: f64,
        step: f64,
        every_us: Option<u64>,
    },
    Uniform {
        min: f64,
        max: f64,
        every_us: Option<u64>,
    },
    /// Moves by at most `step` per interval, reflected into `[min, max]`.
    Walk {
        min: f64,
        max: f64,
        step: f64,
        every_us: Option<u64>,
    },
    /// `offset + amplitude * sin(2π t / period)`, with t sampled every `every_us` (0 = exact).
    Sine {
        period_us: u64,
        amplitude: f64,
        offset: f64,
        every_us: Option<u64>,
    },
    Cycle {
        values: Vec<Value>,
        every_us: Option<u64>,
    },
    /// The device's current Unix time.
    Now,
}

/// Cached position of one random walk: the step index and the value there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WalkState {
    pub step: u64,
    pub value: f64,
}

/// What a generator needs to know about the device and the moment.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub seed: u64,
    pub path: Path,
    pub now: Instant,
    /// Unix seconds at `Instant::ZERO`.
    pub unix_origin: i64,
    /// The interval for generators that do not set their own (µs).
    pub sample_us: u64,
}

impl Generator {
    /// True for generators that use a [`WalkState`].
    pub fn has_state(&self) -> bool {
        matches!(self, Generator::Walk { .. })
    }

    /// Refuses generators that cannot produce a value of `kind` or whose parameters make no sense.
    pub fn check(&self, kind: ResourceType) -> Result<(), String> {
        let numeric = matches!(
            kind,
            ResourceType::Integer
                | ResourceType::UnsignedInteger
                | ResourceType::Float
                | ResourceType::Time
                | ResourceType::Boolean
        );
        let finite = |name: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be a finite number"))
            }
        };
        match self {
            _ if kind == ResourceType::None => Err("an executable resource has no value".into()),
            Generator::Constant(v) => same_kind(v, kind),
            Generator::Cycle { values, .. } => {
                if values.is_empty() {
                    return Err("cycle needs at least one value".into());
                }
                values.iter().try_for_each(|v| same_kind(v, kind))
            }
            Generator::Now => match kind {
                ResourceType::Time
                | ResourceType::Integer
                | ResourceType::UnsignedInteger
                | ResourceType::Float => Ok(()),
                _ => Err(format!("`now` cannot produce a {kind:?} value")),
            },
            _ if !numeric => Err(format!(
                "a numeric generator cannot produce a {kind:?} value"
            )),
            Generator::Counter { start, step, .. } => {
                finite("start", *start)?;
                finite("step", *step)
            }
            Generator::Uniform { min, max, .. } => {
                finite("min", *min)?;
                finite("max", *max)?;
                ordered(*min, *max)
            }
            Generator::Walk { min, max, step, .. } => {
                finite("min", *min)?;
                finite("max", *max)?;
                finite("step", *step)?;
                ordered(*min, *max)?;
                if *step < 0.0 {
                    return Err(format!("step must not be negative (got {step})"));
                }
                Ok(())
            }
            Generator::Sine {
                period_us,
                amplitude,
                offset,
                ..
            } => {
                finite("amplitude", *amplitude)?;
                finite("offset", *offset)?;
                if *period_us == 0 {
                    return Err("period must be greater than 0".into());
                }
                Ok(())
            }
        }
    }

    /// The value at `ctx.now` as a `kind`. `walk` is this resource's walk cache (ignored by the
    /// other generators); the caller stores it back.
    pub fn value(&self, kind: ResourceType, ctx: &Context, walk: &mut Option<WalkState>) -> Value {
        let now = ctx.now.as_micros();
        let every = |e: &Option<u64>| e.unwrap_or(ctx.sample_us);
        let x = match self {
            Generator::Constant(v) => return v.clone(),
            Generator::Cycle { values, every_us } => {
                let len = values.len().max(1) as u64;
                let index = (step_index(now, every(every_us)) % len) as usize;
                return values.get(index).cloned().unwrap_or(Value::Integer(0));
            }
            Generator::Now => (ctx.unix_origin as f64) + (now / 1_000_000) as f64,
            Generator::Counter {
                start,
                step,
                every_us,
            } => start + step * step_index(now, every(every_us)) as f64,
            Generator::Uniform { min, max, every_us } => {
                min + (max - min) * unit(ctx, 0, step_index(now, every(every_us)))
            }
            Generator::Walk {
                min,
                max,
                step,
                every_us,
            } => {
                let state = walk_to(
                    ctx,
                    *min,
                    *max,
                    *step,
                    step_index(now, every(every_us)),
                    *walk,
                );
                *walk = Some(state);
                state.value
            }
            Generator::Sine {
                period_us,
                amplitude,
                offset,
                every_us,
            } => {
                let every = every(every_us);
                let t = if every == 0 {
                    now
                } else {
                    step_index(now, every) * every
                };
                let phase = (t % period_us) as f64 / *period_us as f64;
                offset + amplitude * (std::f64::consts::TAU * phase).sin()
            }
        };
        number_as(kind, x)
    }
}

fn same_kind(v: &Value, kind: ResourceType) -> Result<(), String> {
    if v.kind() == kind {
        Ok(())
    } else {
        Err(format!("value {v:?} is not a {kind:?}"))
    }
}

fn ordered(min: f64, max: f64) -> Result<(), String> {
    if min <= max {
        Ok(())
    } else {
        Err(format!("min ({min}) is greater than max ({max})"))
    }
}

/// Converts a generated number to the resource type.
pub fn number_as(kind: ResourceType, x: f64) -> Value {
    match kind {
        ResourceType::Float => Value::Float(x),
        ResourceType::UnsignedInteger => Value::UnsignedInteger(x.round().max(0.0) as u64),
        ResourceType::Time => Value::Time(x.round() as i64),
        ResourceType::Boolean => Value::Boolean(x >= 0.5),
        ResourceType::String | ResourceType::Corelnk => Value::String(format!("{x}")),
        _ => Value::Integer(x.round() as i64),
    }
}

fn step_index(now_us: u64, every_us: u64) -> u64 {
    now_us.checked_div(every_us).unwrap_or(0)
}

/// splitmix64's finaliser: a cheap, well-mixed 64-bit hash.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn path_key(path: &Path) -> u64 {
    let mut key = path.len() as u64;
    for id in path.ids() {
        key = (key << 16) ^ u64::from(*id);
    }
    key
}

/// A number in [0, 1) from (seed, path, salt, step).
fn unit(ctx: &Context, salt: u64, step: u64) -> f64 {
    let h = splitmix64(splitmix64(splitmix64(ctx.seed ^ path_key(&ctx.path)) ^ salt) ^ step);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Advances a walk to step `k`, from the cache when it lies in the same block, else from the
/// block's anchor (a hashed point in the range).
fn walk_to(
    ctx: &Context,
    min: f64,
    max: f64,
    step: f64,
    k: u64,
    cache: Option<WalkState>,
) -> WalkState {
    let anchor = k - k % WALK_BLOCK;
    let mut state = match cache {
        Some(s) if s.step <= k && s.step >= anchor => s,
        _ => WalkState {
            step: anchor,
            value: min + (max - min) * unit(ctx, 1, anchor),
        },
    };
    while state.step < k {
        state.step += 1;
        let mut v = state.value + step * (2.0 * unit(ctx, 2, state.step) - 1.0);
        if v > max {
            v = 2.0 * max - v;
        }
        if v < min {
            v = 2.0 * min - v;
        }
        state.value = v.clamp(min, max);
    }
    state
}

#[cfg(test)]
mod tests;
