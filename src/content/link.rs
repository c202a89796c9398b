//! `application/link-format` (RFC 6690), as LWM2M uses it for Register payloads and Discover answers.

use super::ContentError;

/// One link: `</3/0>;ver=1.1;dim=2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    /// Attributes in order; a `None` value is a bare flag.
    pub attributes: Vec<(String, Option<String>)>,
}

/// Attributes RFC 6690 writes as quoted strings (`rt="oma.lwm2m"`), and LWM2M's `uri` (a
/// Bootstrap-Discover's server URI).
const QUOTED: [&str; 5] = ["rt", "if", "title", "anchor", "uri"];

/// RFC 6690 `ptokenchar`: what an unquoted value may hold.
fn is_ptoken_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'()*+-./:<=>?@[]^_`{|}~".contains(c)
}

/// Formats links separated by commas.
pub fn format_links(links: &[Link]) -> String {
    let mut out = String::new();
    for (i, link) in links.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('<');
        out.push_str(&link.target);
        out.push('>');
        for (key, value) in &link.attributes {
            out.push(';');
            out.push_str(key);
            let Some(value) = value else { continue };
            out.push('=');
            if QUOTED.contains(&key.as_str())
                || value.is_empty()
                || !value.chars().all(is_ptoken_char)
            {
                out.push('"');
                for c in value.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            } else {
                out.push_str(value);
            }
        }
    }
    out
}

/// A cursor over link-format text.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn error(&self, what: &str) -> ContentError {
        ContentError::Malformed(format!("link-format: {what} at byte {}", self.pos))
    }

    /// Text up to (not including) the first of `stops`.
    fn until(&mut self, stops: &[char]) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(|c| !stops.contains(&c)) {
            self.bump();
        }
        &self.text[start..self.pos]
    }

    fn quoted(&mut self) -> Result<String, ContentError> {
        let mut value = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(value),
                Some('\\') => value.push(
                    self.bump()
                        .ok_or_else(|| self.error("unterminated quote"))?,
                ),
                Some(c) => value.push(c),
                None => return Err(self.error("unterminated quote")),
            }
        }
    }

    fn link(&mut self) -> Result<Link, ContentError> {
        self.skip_space();
        if self.bump() != Some('<') {
            return Err(self.error("expected '<'"));
        }
        let target = self.until(&['>']).to_string();
        if self.bump() != Some('>') {
            return Err(self.error("expected '>'"));
        }
        let mut attributes = Vec::new();
        self.skip_space();
        while self.peek() == Some(';') {
            self.bump();
            let key = self.until(&['=', ';', ',']).trim().to_string();
            if key.is_empty() {
                return Err(self.error("empty attribute name"));
            }
            let value = if self.peek() == Some('=') {
                self.bump();
                self.skip_space();
                if self.peek() == Some('"') {
                    self.bump();
                    Some(self.quoted()?)
                } else {
                    Some(self.until(&[';', ',']).trim_end().to_string())
                }
            } else {
                None
            };
            attributes.push((key, value));
            self.skip_space();
        }
        Ok(Link { target, attributes })
    }
}

/// Parses a link-format payload; quoted values may contain commas and semicolons.
pub fn parse_links(text: &str) -> Result<Vec<Link>, ContentError> {
    let mut cursor = Cursor { text, pos: 0 };
    let mut links = Vec::new();
    cursor.skip_space();
    if cursor.peek().is_none() {
        return Ok(links);
    }
    loop {
        links.push(cursor.link()?);
        match cursor.bump() {
            None => return Ok(links),
            Some(',') => {}
            Some(_) => return Err(cursor.error("expected ',' between links")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(target: &str, attributes: &[(&str, Option<&str>)]) -> Link {
        Link {
            target: target.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn register_payload_round_trips() {
        let text = r#"</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>;ver=1.1,</3/0/6>;dim=2"#;
        let links = vec![
            link("/", &[("rt", Some("oma.lwm2m")), ("ct", Some("110"))]),
            link("/1/0", &[]),
            link("/3/0", &[("ver", Some("1.1"))]),
            link("/3/0/6", &[("dim", Some("2"))]),
        ];
        assert_eq!(parse_links(text).unwrap(), links);
        assert_eq!(format_links(&links), text);
    }

    #[test]
    fn quoted_values_flags_and_spaces() {
        let text = "</a>;title=\"x, y; \\\"z\\\"\";obs, </b> ;ct=\"110 112\"";
        let links = parse_links(text).unwrap();
        assert_eq!(
            links[0],
            link("/a", &[("title", Some("x, y; \"z\"")), ("obs", None)])
        );
        assert_eq!(links[1], link("/b", &[("ct", Some("110 112"))]));
        assert_eq!(parse_links(&format_links(&links)).unwrap(), links);
        assert_eq!(format_links(&links[1..]), r#"</b>;ct="110 112""#);
        assert_eq!(parse_links("").unwrap(), []);
    }

    #[test]
    fn malformed_links() {
        for text in [
            "/3/0",
            "</3/0",
            "</3/0>;",
            "</3/0>;t=\"x",
            "</3/0>x",
            "</3/0>,",
            "</a>;=1",
        ] {
            assert!(parse_links(text).is_err(), "{text}");
        }
    }
}
