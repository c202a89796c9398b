use super::Path;

/// The LWM2M data types of a resource (DDF `Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// One value at a resource or resource-instance path: the unit every content format encodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub path: Path,
    pub value: Value,
}
