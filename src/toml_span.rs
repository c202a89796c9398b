//! Where in a TOML file an error is: the line and the field a user can fix. Shared by the
//! object templates and the fleet files, which wrap it in their own error types.

/// A mistake in a TOML file, located for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: field `{field}`: {message}")]
pub struct Located {
    pub file: String,
    /// 1-based; 0 when the mistake is about the file as a whole.
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl Located {
    pub fn new(file: &str, line: usize, field: &str, message: impl Into<String>) -> Self {
        Located {
            file: file.to_string(),
            line,
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Locates a toml/serde error in `text`, the contents of `file`.
    pub fn from_toml(file: &str, text: &str, e: &toml::de::Error) -> Self {
        let (line, field, message) = locate(text, e);
        Located::new(file, line, &field, message)
    }
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// Line (0 when unknown), field and message of a toml/serde error. The field comes from the
/// message (``unknown field `x` ``), from the key whose value an inline-table error quotes, or
/// from the `key =` just before the error's span.
fn locate(text: &str, e: &toml::de::Error) -> (usize, String, String) {
    let message = e.message().trim().to_string();
    let ticked = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))
        .and_then(|rest| rest.split('`').next());
    let Some(span) = e.span() else {
        return (0, ticked.unwrap_or("?").to_string(), message);
    };
    let field = ticked
        .map(str::to_string)
        .or_else(|| key_inside(text, span.clone(), &message))
        .unwrap_or_else(|| key_before(text, span.start));
    (line_of(text, span.start), field, message)
}

/// For an error spanning an inline table (serde buffers internally tagged enums, so the span is
/// the whole table), the key whose value the message quotes: `min` in `{ min = "dry" }`.
fn key_inside(text: &str, span: std::ops::Range<usize>, message: &str) -> Option<String> {
    let inner = text.get(span.clone())?;
    if !inner.starts_with('{') {
        return None;
    }
    let rest = message.split_once(": ")?.1;
    let token = match rest.split_once('"') {
        Some((_, quoted)) => format!("\"{}\"", quoted.split('"').next()?),
        None => rest.split('`').nth(1)?.to_string(),
    };
    let at = inner.find(&format!("= {token}"))?;
    Some(key_before(text, span.start + at + 1))
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
