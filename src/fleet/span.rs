//! Turning toml errors and spans into the file, line and field a user can fix.

use std::ops::Range;

use super::FleetError;
use crate::toml_span::Located;

pub(super) use crate::toml_span::line_of;

pub(super) fn invalid(
    file: &str,
    line: usize,
    field: &str,
    message: impl Into<String>,
) -> FleetError {
    FleetError::Invalid(Located::new(file, line, field, message))
}

pub(super) fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> FleetError {
    let mut located = Located::from_toml(file, text, e);
    // serde knows the type (0 or more), the fleet knows these counts start at 1.
    if COUNTS.contains(&located.field.as_str())
        && let Some(found) = located.message.strip_prefix(ANY_WHOLE)
    {
        located.message = format!("{AT_LEAST_ONE}{found}");
    }
    FleetError::Invalid(located)
}

/// Fields that count clients: 0 is refused as well as a negative number.
const COUNTS: [&str; 2] = ["clients", "count"];
const ANY_WHOLE: &str = "expected a whole number (0 or more)";
pub(super) const AT_LEAST_ONE: &str = "expected a whole number of at least 1";

/// Errors for fields of one table, located by the table's span.
pub(super) struct At<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub span: Range<usize>,
}

impl At<'_> {
    /// An error on `field` of this table, at the line where the field is written (or the
    /// table's first line when it is not written, e.g. a missing value).
    pub fn err(&self, field: &str, message: impl Into<String>) -> FleetError {
        invalid(self.file, self.key_line(field), field, message)
    }

    /// An error at the line of `key`, shown as `field` (e.g. `derive.master` for `master`).
    pub fn err_as(&self, key: &str, field: &str, message: impl Into<String>) -> FleetError {
        invalid(self.file, self.key_line(key), field, message)
    }

    pub fn line(&self) -> usize {
        line_of(self.text, self.span.start)
    }

    /// The line where `key` is written in this table (the table's first line when it is not).
    pub fn key_line(&self, key: &str) -> usize {
        let region = self.region();
        let body = self.text.get(region.clone()).unwrap_or("");
        let mut from = 0;
        while let Some(pos) = body[from..].find(key) {
            let at = from + pos;
            let before = body[..at].chars().next_back();
            let after = body[at + key.len()..].trim_start_matches([' ', '\t', '"']);
            let boundary = before.is_none_or(|c| c.is_whitespace() || "{,\"".contains(c));
            if boundary && after.starts_with('=') {
                return line_of(self.text, region.start + at);
            }
            from = at + key.len();
        }
        self.line()
    }

    /// An inline table is its span; a `[table]` runs from its header to the next header.
    fn region(&self) -> Range<usize> {
        let start = self.span.start.min(self.text.len());
        if self.text[start..].starts_with('{') {
            return start..self.span.end.min(self.text.len());
        }
        let body_start = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let end = self.text[body_start..]
            .find("\n[")
            .map_or(self.text.len(), |i| body_start + i);
        start.max(self.span.start)..end.max(self.span.end.min(self.text.len()))
    }
}
