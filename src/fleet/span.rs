//! Turning toml errors and spans into the file, line and field a user can fix.

use std::ops::Range;

use super::FleetError;

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

pub(super) fn invalid(
    file: &str,
    line: usize,
    field: &str,
    message: impl Into<String>,
) -> FleetError {
    FleetError::Invalid {
        file: file.to_string(),
        line,
        field: field.to_string(),
        message: message.into(),
    }
}

/// Maps a toml/serde error to file, line and field. The field comes from the message
/// (``unknown field `x` ``) or else from the `key =` just before the error's span.
pub(super) fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> FleetError {
    let message = e.message().trim().to_string();
    let ticked = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))
        .and_then(|rest| rest.split('`').next());
    let Some(span) = e.span() else {
        let field = ticked.unwrap_or("?").to_string();
        return invalid(file, 0, &field, message);
    };
    let field = ticked.map_or_else(|| key_before(text, span.start), str::to_string);
    invalid(file, line_of(text, span.start), &field, message)
}

fn key_before(text: &str, offset: usize) -> String {
    let start = text
        .get(..offset)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let prefix = text.get(start..offset).unwrap_or("");
    match prefix.rfind('=') {
        Some(eq) => prefix[..eq]
            .trim_end()
            .rsplit([' ', '{', ',', '\t'])
            .next()
            .unwrap_or("")
            .trim_matches('"')
            .to_string(),
        None => text
            .get(start..)
            .and_then(|l| l.lines().next())
            .unwrap_or("")
            .trim()
            .to_string(),
    }
}

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

    pub fn line(&self) -> usize {
        line_of(self.text, self.span.start)
    }

    fn key_line(&self, key: &str) -> usize {
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
