use super::Path;

/// The LWM2M data types of a resource (DDF `Type`; `snake_case` in our TOML templates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    String,
    Integer,
    UnsignedInteger,
    Float,
    Boolean,
    Opaque,
    Time,
    Objlnk,
    Corelnk,
    /// Executable resources carry no value.
    #[default]
    None,
}

/// A resource value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    UnsignedInteger(u64),
    Float(f64),
    Boolean(bool),
    Opaque(Vec<u8>),
    /// Unix seconds.
    Time(i64),
    Objlnk(u16, u16),
    Corelnk(String),
}

impl Value {
    pub fn kind(&self) -> ResourceType {
        match self {
            Value::String(_) => ResourceType::String,
            Value::Integer(_) => ResourceType::Integer,
            Value::UnsignedInteger(_) => ResourceType::UnsignedInteger,
            Value::Float(_) => ResourceType::Float,
            Value::Boolean(_) => ResourceType::Boolean,
            Value::Opaque(_) => ResourceType::Opaque,
            Value::Time(_) => ResourceType::Time,
            Value::Objlnk(..) => ResourceType::Objlnk,
            Value::Corelnk(_) => ResourceType::Corelnk,
        }
    }

    /// The value as a number, for the gt/lt/st notification attributes.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Integer(v) | Value::Time(v) => Some(v as f64),
            Value::UnsignedInteger(v) => Some(v as f64),
            Value::Float(v) => Some(v),
            Value::Boolean(v) => Some(f64::from(u8::from(v))),
            _ => None,
        }
    }
}

// Floats hash by their bits, with -0.0 as 0.0 so that equal values hash alike.
impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::String(s) | Value::Corelnk(s) => s.hash(state),
            Value::Integer(v) | Value::Time(v) => v.hash(state),
            Value::UnsignedInteger(v) => v.hash(state),
            Value::Float(v) => (if *v == 0.0 { 0.0 } else { *v }).to_bits().hash(state),
            Value::Boolean(v) => v.hash(state),
            Value::Opaque(v) => v.hash(state),
            Value::Objlnk(object, instance) => (object, instance).hash(state),
        }
    }
}

/// One value at a resource or resource-instance path: the unit every content format encodes.
#[derive(Clone, Debug, PartialEq, Hash)]
pub struct Record {
    pub path: Path,
    pub value: Value,
}
