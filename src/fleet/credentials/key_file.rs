//! Key files: CSV, one device a line, `endpoint,identity,key_hex` (what `credentials --format
//! csv` writes, header line included, so an export can be fed back). Blank lines and lines
//! starting with `#` are skipped; fields are not quoted. Errors name the file and line and
//! never quote a key.

use std::collections::HashMap;
use std::path::Path as FsPath;

use super::super::security::Secret;
use super::super::span::invalid;
use super::super::{Fleet, FleetError};

pub(super) type KeyMap = HashMap<String, (String, Secret)>;

/// Reads a key file and checks it has every client of `fleet` (it may have more).
pub(super) fn load(path: &FsPath, fleet: &Fleet) -> Result<KeyMap, FleetError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| FleetError::Io {
        file: file.clone(),
        source,
    })?;
    let keys = parse(&text, &file)?;
    let mut missing = (0..fleet.clients)
        .map(|i| fleet.naming.endpoint(i))
        .filter(|e| !keys.contains_key(e));
    if let Some(first) = missing.next() {
        let count = 1 + missing.count();
        return Err(invalid(
            &file,
            0,
            "endpoint",
            format!(
                "no key for {count} of the fleet's {} clients (the first: {first})",
                fleet.clients
            ),
        ));
    }
    Ok(keys)
}

pub(super) fn parse(text: &str, file: &str) -> Result<KeyMap, FleetError> {
    let mut keys = KeyMap::new();
    let mut lines_of: HashMap<String, usize> = HashMap::new();
    let mut identities: HashMap<String, usize> = HashMap::new();
    let mut first = true;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let header = first && matches!(line, "endpoint,identity,key" | "endpoint,identity,key_hex");
        first = false;
        if header {
            continue;
        }
        let err = |field: &str, message: String| invalid(file, number, field, message);
        if line.contains('"') {
            return Err(err("endpoint", "quoted fields are not supported".into()));
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [endpoint, identity, key] = fields[..] else {
            return Err(err(
                "endpoint",
                format!(
                    "expected 3 fields endpoint,identity,key_hex, found {}",
                    fields.len()
                ),
            ));
        };
        if endpoint.is_empty() {
            return Err(err("endpoint", "empty".into()));
        }
        if identity.is_empty() {
            return Err(err("identity", "empty".into()));
        }
        let key = Secret::from_hex(key).map_err(|e| err("key", e))?;
        if let Some(before) = lines_of.insert(endpoint.to_string(), number) {
            return Err(err(
                "endpoint",
                format!("{endpoint:?} is also on line {before}"),
            ));
        }
        // The server finds a device's key by identity: two devices cannot share one.
        if let Some(before) = identities.insert(identity.to_string(), number) {
            return Err(err(
                "identity",
                format!("{identity:?} is also on line {before}"),
            ));
        }
        keys.insert(endpoint.to_string(), (identity.to_string(), key));
    }
    Ok(keys)
}
