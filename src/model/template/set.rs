//! A directory of templates: object files, device files and DDF XML, joined into device
//! templates ready to share.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use super::format::{TemplateFile, from_toml};
use super::{DeviceTemplate, ObjectTemplate};
use crate::model::ddf::{DdfError, load_ddf};
use crate::toml_span::Located;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    Invalid(#[from] Located),
    #[error("{file}: cannot read: {}", crate::plain::io_error(source))]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ddf(#[from] DdfError),
    #[error("{file}: {message}")]
    Conflict { file: String, message: String },
}

/// Every object and device template of a directory.
#[derive(Debug, Default)]
pub struct TemplateSet {
    objects: BTreeMap<u16, ObjectTemplate>,
    devices: BTreeMap<String, Arc<DeviceTemplate>>,
}

impl TemplateSet {
    /// Loads `*.toml` and `*.xml` (DDF) files of `dir`. A device's `ddf = "..."` is read
    /// relative to `dir`. TOML object definitions win over XML ones for the same id.
    pub fn load_dir(dir: &FsPath) -> Result<TemplateSet, TemplateError> {
        let read_dir = |source| TemplateError::Io {
            file: dir.display().to_string(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(read_dir)?;
        paths.sort();
        let mut files = Vec::new();
        let mut ddf = BTreeMap::new();
        for path in paths {
            match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| TemplateError::Io {
                            file: path.display().to_string(),
                            source,
                        })?;
                    files.push((path.display().to_string(), text));
                }
                Some("xml") => {
                    for def in load_ddf(&path)? {
                        ddf.entry(def.id).or_insert(def);
                    }
                }
                _ => {}
            }
        }
        let mut set = TemplateSet::default();
        for (id, def) in ddf {
            set.objects
                .insert(id, ObjectTemplate::from_def(Arc::new(def)));
        }
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        set.add_files(&files, Some(dir))?;
        Ok(set)
    }

    /// Adds template files given as (name, text): objects first, then devices. `ddf_dir` is where
    /// a device's `ddf = "..."` files are read from (`None`: such devices are refused).
    pub fn add_files(
        &mut self,
        files: &[(&str, &str)],
        ddf_dir: Option<&FsPath>,
    ) -> Result<(), TemplateError> {
        let mut devices = Vec::new();
        for (name, text) in files {
            match from_toml(text, name)? {
                TemplateFile::Object(object) => self.add_object(object, name)?,
                TemplateFile::Device(device) => devices.push(device),
            }
        }
        for device in devices {
            let template = device.build(&mut |id, ddf| self.resolve(id, ddf, ddf_dir))?;
            if self.devices.contains_key(&template.name) {
                return Err(TemplateError::Conflict {
                    file: device.file().to_string(),
                    message: format!("device template {:?} is defined twice", template.name),
                });
            }
            self.devices
                .insert(template.name.clone(), Arc::new(template));
        }
        Ok(())
    }

    /// Adds an object template, replacing one from DDF with the same id.
    fn add_object(&mut self, object: ObjectTemplate, file: &str) -> Result<(), TemplateError> {
        let id = object.def.id;
        if let Some(old) = self.objects.get(&id)
            && *old != ObjectTemplate::from_def(Arc::clone(&old.def))
        {
            return Err(TemplateError::Conflict {
                file: file.to_string(),
                message: format!("object {id} is defined twice"),
            });
        }
        self.objects.insert(id, object);
        Ok(())
    }

    fn resolve(
        &self,
        id: u16,
        ddf: Option<&str>,
        dir: Option<&FsPath>,
    ) -> Result<ObjectTemplate, String> {
        let Some(file) = ddf else {
            return self
                .objects
                .get(&id)
                .cloned()
                .ok_or_else(|| format!("no template defines object {id}"));
        };
        let dir = dir.ok_or("DDF files cannot be read here")?;
        let defs = load_ddf(&dir.join(file)).map_err(|e| e.to_string())?;
        let def = defs
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| format!("{file} does not define object {id}"))?;
        Ok(ObjectTemplate::from_def(Arc::new(def)))
    }

    pub fn device(&self, name: &str) -> Option<Arc<DeviceTemplate>> {
        self.devices.get(name).cloned()
    }

    pub fn device_names(&self) -> impl Iterator<Item = &str> {
        self.devices.keys().map(String::as_str)
    }

    pub fn object(&self, id: u16) -> Option<&ObjectTemplate> {
        self.objects.get(&id)
    }
}
