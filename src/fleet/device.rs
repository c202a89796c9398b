//! A population's device template: the named template with the population's value overrides.

use std::sync::Arc;

use super::span::invalid;
use super::{FleetError, Group};
use crate::model::{DeviceTemplate, TemplateSet, source_from_toml};

/// The group's template with its value overrides applied.
pub(super) fn device(
    file: &str,
    group: &Group,
    templates: &TemplateSet,
) -> Result<Arc<DeviceTemplate>, FleetError> {
    let base = templates.device(&group.template).ok_or_else(|| {
        let known: Vec<&str> = templates.device_names().collect();
        invalid(
            file,
            group.template_line,
            "template",
            format!(
                "no device template {:?} (known: {})",
                group.template,
                known.join(", ")
            ),
        )
    })?;
    super::send::check_paths(file, group.send_line, group, &base)?;
    if group.values.is_empty() {
        return Ok(base);
    }
    let mut device = (*base).clone();
    for v in &group.values {
        let field = v.path.to_string();
        let err = |m: String| invalid(file, v.line, &field, m);
        let ids = v.path.ids();
        let (o, i, r) = (ids[0], ids[1], ids[2]);
        let object = device
            .object(o)
            .ok_or_else(|| err(format!("template {:?} has no object {o}", group.template)))?;
        if object.instance(i).is_none() {
            return Err(err(format!(
                "template {:?} has no instance /{o}/{i}",
                group.template
            )));
        }
        let def = object
            .def
            .resource(r)
            .ok_or_else(|| err(format!("object {o} has no resource {r}")))?;
        let source = source_from_toml(def, v.value.as_ref(), v.generator.as_ref()).map_err(err)?;
        device.set(o, Some(i), r, source).map_err(err)?;
    }
    Ok(Arc::new(device))
}
