//! Turning toml errors into the file, line and field a user can fix.

use super::format::invalid;
use super::set::TemplateError;

pub(super) use crate::toml_span::line_of;

pub(super) fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> TemplateError {
    let (line, field, message) = crate::toml_span::locate(text, e);
    invalid(file, line, &field, message)
}
