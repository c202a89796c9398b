//! Where in a TOML file an error is: the line and the field a user can fix. Shared by the
//! object templates and the fleet files, which wrap it in their own error types.

use std::fmt;

use crate::plain;

/// A mistake in a TOML file, located for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Located {
    pub file: String,
    /// 1-based; 0 when the mistake is about the file as a whole.
    pub line: usize,
    /// Empty for a syntax error: the file is not TOML there, so there is no field yet.
    pub field: String,
    pub message: String,
    /// For a syntax error: the 1-based column, and the line as written (shown with a caret).
    pub column: usize,
    pub source_line: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )?;
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            // The caret under the column, counting characters as the terminal shows them.
            let before: String = self
                .source_line
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n {number} | {}\n {pad} | {before}^", self.source_line)
        } else {
            write!(
                f,
                "{}:{}: field `{}`: {}",
                self.file, self.line, self.field, self.message
            )
        }
    }
}

impl Located {
    pub fn new(file: &str, line: usize, field: &str, message: impl Into<String>) -> Self {
        Located {
            file: file.to_string(),
            line,
            field: field.to_string(),
            message: message.into(),
            column: 0,
            source_line: String::new(),
        }
    }

    /// Locates a toml/serde error in `text`, the contents of `file`: a syntax error at its line
    /// and column, with the line and a caret; a field error at the field, in plain words.
    pub fn from_toml(file: &str, text: &str, e: &toml::de::Error) -> Self {
        if text.parse::<toml::Table>().is_err() {
            return syntax_error(file, text, e);
        }
        let (line, field, message) = locate(text, e);
        Located::new(file, line, &field, plain_message(&message))
    }
}

fn syntax_error(file: &str, text: &str, e: &toml::de::Error) -> Located {
    let offset = e.span().map_or(0, |s| s.start).min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let source_line = text[line_start..].lines().next().unwrap_or("").to_string();
    let column = text[line_start..offset].chars().count() + 1;
    let what: Vec<&str> = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(plain_syntax)
        .collect();
    Located {
        file: file.to_string(),
        line: line_of(text, offset),
        field: String::new(),
        message: format!("not valid TOML: {}", what.join("; ")),
        column,
        source_line,
    }
}

/// The TOML parser's words, where Rust's show through, in the user's.
fn plain_syntax(line: &str) -> &str {
    match line {
        "number too large to fit in target type" => {
            "a number too large: TOML's whole numbers go up to 9,223,372,036,854,775,807"
        }
        "number too small to fit in target type" => {
            "a number too small: TOML's whole numbers go down to -9,223,372,036,854,775,808"
        }
        _ => line,
    }
}

/// serde's message in words a user knows: no Rust type names, and for a misspelt field or
/// value the name probably meant.
fn plain_message(message: &str) -> String {
    for (prefix, what) in [("unknown field `", "field"), ("unknown variant `", "value")] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (word, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let guess = plain::did_you_mean(word, known.iter().copied())
                .map(|g| format!(": {g}"))
                .unwrap_or_default();
            let list = if known.is_empty() {
                String::new()
            } else {
                format!(" (known: {})", known.join(", "))
            };
            return format!("unknown {what} {word:?}{guess}{list}");
        }
    }
    if message == "wanted string or table" {
        // toml's words for an enum given a number or a list.
        return "expected one of this field's names, in quotes".to_string();
    }
    if let Some(name) = message.strip_prefix("missing field `") {
        let name = name.trim_end_matches('`');
        return format!("missing: this table needs `{name}`");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            let expected = plain::type_name(expected).map_or(expected, |words| words);
            let found = found_in_words(found);
            let hint = if expected == "text in quotes" && found.starts_with("the number") {
                " (a duration is text too, with a unit: \"5m\")"
            } else {
                ""
            };
            return format!("expected {expected}, found {found}{hint}");
        }
    }
    message.to_string()
}

/// What serde found (an integer, a string...) in words: "the number 5", "the text \"a\"".
fn found_in_words(found: &str) -> String {
    let ticked = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .map(|rest| rest.trim_matches('`').to_string())
    };
    if let Some(n) = ticked("integer ").or_else(|| ticked("floating point ")) {
        format!("the number {n}")
    } else if let Some(b) = ticked("boolean ") {
        b
    } else if let Some(text) = found.strip_prefix("string ") {
        format!("the text {text}")
    } else if found == "sequence" {
        "a list".to_string()
    } else if found == "map" {
        "a table".to_string()
    } else {
        found.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read by serde only
    struct Load {
        clients: u64,
        hold: Option<String>,
        behaviour: Option<Behaviour>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Behaviour {
        AlwaysOn,
        Sleepy,
    }

    fn error(text: &str) -> Located {
        let e = toml::from_str::<Load>(text).unwrap_err();
        Located::from_toml("f.toml", text, &e)
    }

    #[test]
    fn a_syntax_error_shows_the_line_and_a_caret_under_the_column() {
        let e = error("clients = 1\nhold = \"5m\n");
        assert_eq!((e.line, e.column, e.field.as_str()), (2, 11, ""));
        assert_eq!(
            e.to_string(),
            "f.toml:2:11: not valid TOML: invalid basic string\n 2 | hold = \"5m\n   |           ^"
        );
        let header = error("[load\nclients = 1\n");
        assert_eq!(header.line, 1, "{header}");
        assert!(header.to_string().contains(" 1 | [load\n"), "{header}");
    }

    #[test]
    fn field_errors_are_in_words_without_rust_types() {
        let negative = error("clients = -3\n");
        assert_eq!((negative.line, negative.field.as_str()), (1, "clients"));
        assert_eq!(
            negative.message,
            "expected a whole number (0 or more), found the number -3"
        );
        let text = error("clients = \"ten\"\n");
        assert_eq!(
            text.message,
            "expected a whole number (0 or more), found the text \"ten\""
        );
        let unquoted = error("clients = 1\nhold = 5\n");
        assert_eq!((unquoted.line, unquoted.field.as_str()), (2, "hold"));
        assert!(
            unquoted
                .message
                .contains("a duration is text too, with a unit: \"5m\""),
            "{unquoted}"
        );
        let huge = error("clients = 99999999999999999999\n");
        assert_eq!(huge.line, 1, "{huge}");
        assert!(
            huge.message.ends_with(
                "a number too large: TOML's whole numbers go up to 9,223,372,036,854,775,807"
            ),
            "{huge}"
        );
        assert!(!huge.message.contains("target type"), "{huge}");
        let missing = error("hold = \"5m\"\n");
        assert_eq!(missing.message, "missing: this table needs `clients`");
        for e in [negative, text, unquoted, missing] {
            for rust in ["u64", "string", "18446744073709551615"] {
                assert!(!e.message.contains(rust), "{e}");
            }
        }
    }

    #[test]
    fn a_misspelt_field_or_value_gets_a_suggestion() {
        let field = error("clients = 1\nhodl = \"5m\"\n");
        assert_eq!((field.line, field.field.as_str()), (2, "hodl"));
        assert_eq!(
            field.message,
            "unknown field \"hodl\": did you mean \"hold\"? (known: clients, hold, behaviour)"
        );
        let value = error("clients = 1\nbehaviour = \"alwayson\"\n");
        assert_eq!(value.line, 2, "{value}");
        assert!(
            value
                .message
                .starts_with("unknown value \"alwayson\": did you mean \"always-on\"?"),
            "{value}"
        );
        let number = error("clients = 1\nbehaviour = 3\n");
        assert_eq!(
            (number.line, number.message.as_str()),
            (2, "expected one of this field's names, in quotes")
        );
        let far = error("clients = 1\ncolour = 1\n");
        assert!(!far.message.contains("did you mean"), "{far}");
    }
}
