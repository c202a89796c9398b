//! Words for users: the name they probably meant, and Rust's type names in plain words.

/// The name of `known` closest to `word`, when it is close enough to be a slip of the keyboard
/// (a letter or two off, case ignored).
pub fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    let allowed = 1 + word.chars().count() / 4;
    known
        .into_iter()
        .map(|name| {
            (
                strsim::damerau_levenshtein(&word, &name.to_lowercase()),
                name,
            )
        })
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// `did you mean "register"?` when `word` looks like a slip for one of `known`.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(word, known).map(|name| format!("did you mean {name:?}?"))
}

/// Why `value` is not a share (a fraction from 0 to 1; more than 0 unless `zero_allowed`), with
/// the share probably meant when it reads as a percentage: `60` is "did you mean 0.6?".
pub fn not_a_share(value: f64, zero_allowed: bool) -> String {
    let range = if zero_allowed {
        "a share from 0 to 1"
    } else {
        "a share between 0 and 1 (more than 0)"
    };
    if (2.0..=100.0).contains(&value) {
        let meant = value / 100.0;
        format!("{value} is not {range}: did you mean {meant} ({value}%)?")
    } else {
        format!("{value} is not {range} (0.25 is 25%)")
    }
}

/// An I/O error without the OS's number: "no such file", not "No such file or directory
/// (os error 2)".
pub fn io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "no such file".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::IsADirectory => "a directory, not a file".to_string(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error ") {
                Some(at) if text.ends_with(')') => text[..at].to_string(),
                _ => text,
            }
        }
    }
}

/// What a Rust type name expects, in words: `u64` is "a whole number".
pub fn type_name(rust: &str) -> Option<&'static str> {
    if rust.starts_with("struct ") {
        return Some("a table");
    }
    if rust.contains("enum ") {
        return Some("one of the names this field takes");
    }
    Some(match rust {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "u128" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a string" | "string" | "a borrowed string" => "text in quotes",
        "a boolean" | "bool" => "true or false",
        "a sequence" => "a list, like [ ... ]",
        "a map" => "a table, like { key = value }",
        "a character" | "char" => "one character in quotes",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slip_of_a_letter_or_two_finds_the_name() {
        let kinds = ["register", "update", "deregister", "notify", "send"];
        assert_eq!(closest("regster", kinds), Some("register"));
        assert_eq!(closest("Notfy", kinds), Some("notify"));
        assert_eq!(closest("udpate", kinds), Some("update"));
        assert_eq!(
            did_you_mean("regster", kinds).as_deref(),
            Some("did you mean \"register\"?")
        );
        // Nothing alike: no guess.
        assert_eq!(closest("bootstrapping", kinds), None);
        assert_eq!(closest("xy", kinds), None);
    }

    #[test]
    fn a_percentage_given_as_a_share_is_read_back() {
        assert_eq!(
            not_a_share(60.0, false),
            "60 is not a share between 0 and 1 (more than 0): did you mean 0.6 (60%)?"
        );
        assert_eq!(
            not_a_share(-1.0, true),
            "-1 is not a share from 0 to 1 (0.25 is 25%)"
        );
        assert!(!not_a_share(0.0, false).contains("did you mean"));
    }

    #[test]
    fn io_errors_lose_the_os_number() {
        let os = |code| io_error(&std::io::Error::from_raw_os_error(code));
        assert_eq!(os(2), "no such file");
        assert_eq!(os(13), "permission denied");
        assert_eq!(os(21), "a directory, not a file");
        // ENOSPC: the OS's words, without "(os error 28)".
        assert_eq!(os(28), "No space left on device");
        let ours = std::io::Error::other("bad header");
        assert_eq!(io_error(&ours), "bad header");
    }

    #[test]
    fn rust_types_read_as_words() {
        assert_eq!(type_name("u64"), Some("a whole number (0 or more)"));
        assert_eq!(type_name("u16"), Some("a whole number from 0 to 65535"));
        assert_eq!(type_name("f64"), Some("a number"));
        assert_eq!(type_name("a string"), Some("text in quotes"));
        assert_eq!(type_name("struct RawLoad"), Some("a table"));
        assert_eq!(type_name("hourly"), None);
    }
}
