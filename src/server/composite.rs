//! The LWM2M 1.1 composite operations the server sends as load: Read-Composite and
//! Observe-Composite (FETCH to the root naming paths), Write-Composite (iPATCH to the root with
//! values), all in `SenML` CBOR. Only 1.1+ registrations get them.

use std::time::Duration;

use coap_lite::RequestType;

use super::{Op, Server};
use crate::content::{self, ContentFormat};
use crate::model::{Path, Record, Untyped, Value};

/// What composite requests carry, and the answers are asked in (no Accept: the same).
pub(super) const FORMAT: ContentFormat = ContentFormat::SenmlCbor;

impl Op {
    pub(super) fn is_composite(self) -> bool {
        matches!(
            self,
            Op::ReadComposite | Op::ObserveComposite | Op::WriteComposite
        )
    }
}

impl Server {
    /// The period of a periodic composite load, when configured.
    pub(super) fn load_period(&self, op: Op) -> Option<Duration> {
        match op {
            Op::ReadComposite => self.config.read_composite.as_ref().map(|r| r.every),
            Op::WriteComposite => self.config.write_composite.as_ref().map(|w| w.every),
            _ => None,
        }
    }

    /// The method and payload of a composite request.
    pub(super) fn composite_request(&self, op: Op) -> (RequestType, Vec<u8>) {
        let names = |paths: &[Path]| content::encode_names(FORMAT, paths).unwrap_or_default();
        match op {
            Op::WriteComposite => {
                let records: Vec<Record> = self
                    .config
                    .write_composite
                    .iter()
                    .flat_map(|w| &w.values)
                    .map(|(path, text)| Record {
                        path: *path,
                        value: typed(text),
                    })
                    .collect();
                let payload =
                    content::encode(FORMAT, &Path::ROOT, &records, &Untyped).unwrap_or_default();
                (RequestType::IPatch, payload)
            }
            Op::ObserveComposite => {
                let paths = self.config.observe_composite.as_deref().unwrap_or_default();
                (RequestType::Fetch, names(paths))
            }
            _ => {
                let paths = self.config.read_composite.as_ref().map(|r| &r.paths[..]);
                (RequestType::Fetch, names(paths.unwrap_or_default()))
            }
        }
    }
}

/// A value as its text reads: an integer, a finite float, a boolean, or else a string.
pub(super) fn typed(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::Integer(i);
    }
    if let Some(f) = text.parse::<f64>().ok().filter(|f| f.is_finite()) {
        return Value::Float(f);
    }
    match text {
        "true" => Value::Boolean(true),
        "false" => Value::Boolean(false),
        _ => Value::String(text.to_string()),
    }
}
