//! The object tree of one simulated device: its template (shared by every device made from it)
//! plus only what differs (written values, created and deleted instances, generator state).

use std::sync::Arc;

use super::{DeviceTemplate, ObjectDef, Path, Record, ResourceDef};
use crate::clock::Instant;

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

/// One device's object tree.
#[derive(Debug)]
pub struct Device {}

impl Device {
    /// `seed` makes generated values repeat exactly; `unix_origin` is the Unix time (seconds) at
    /// `Instant::ZERO`, for time-valued resources.
    pub fn new(template: Arc<DeviceTemplate>, seed: u64, unix_origin: i64) -> Self {
        let _ = (template, seed, unix_origin);
        todo!()
    }

    /// The object definition for `object`, if the device has that object.
    pub fn object_def(&self, object: u16) -> Option<&ObjectDef> {
        let _ = object;
        todo!()
    }

    /// The definition of a resource of an object the device has.
    pub fn resource_def(&self, object: u16, resource: u16) -> Option<&ResourceDef> {
        let _ = (object, resource);
        todo!()
    }

    /// Objects (with versions) and existing instances, in id order, for the Register payload.
    /// Objects without instances appear as an object path alone. Security (0) is left out.
    pub fn registration_paths(&self) -> Vec<(Path, Option<&str>)> {
        todo!()
    }

    /// Reads every readable value at or under `path` (`/o`, `/o/i`, `/o/i/r` or `/o/i/r/ri`).
    /// Errors: `NotFound`, or `NotAllowed` for a resource that is not readable.
    pub fn read(&mut self, path: &Path, now: Instant) -> Result<Vec<Record>, ModelError> {
        let _ = (path, now);
        todo!()
    }

    /// Writes decoded records to `path`, checking types, writability and existence.
    pub fn write(
        &mut self,
        path: &Path,
        records: Vec<Record>,
        mode: WriteMode,
    ) -> Result<(), ModelError> {
        let _ = (path, records, mode);
        todo!()
    }

    /// Checks that `path` is an executable resource of an existing instance.
    pub fn check_execute(&self, path: &Path) -> Result<(), ModelError> {
        let _ = path;
        todo!()
    }

    /// Creates an instance of `object` (id chosen when `instance` is `None`) from records whose
    /// instance id is ignored. Returns the new instance id.
    pub fn create(
        &mut self,
        object: u16,
        instance: Option<u16>,
        records: Vec<Record>,
    ) -> Result<u16, ModelError> {
        let _ = (object, instance, records);
        todo!()
    }

    /// Deletes an instance (`/o/i`).
    pub fn delete(&mut self, path: &Path) -> Result<(), ModelError> {
        let _ = path;
        todo!()
    }

    /// Paths that exist at or under `path` for Discover: the object or instance itself, then its
    /// instances and resources; multi-instance resources come with their instance count (`dim`).
    pub fn discover(&self, path: &Path) -> Result<Vec<(Path, Option<u16>)>, ModelError> {
        let _ = path;
        todo!()
    }

    /// Resets written values and instances to the template (Factory Reset).
    pub fn factory_reset(&mut self) {
        todo!()
    }

    /// Bytes this device holds beyond its template: what a device really costs.
    pub fn heap_bytes(&self) -> usize {
        todo!()
    }
}
