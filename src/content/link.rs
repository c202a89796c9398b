//! CoRE link-format (RFC 6690), as LWM2M uses it for Register payloads and Discover answers.

/// One link: `</3/0>;ver=1.1;dim=2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    /// Attributes in order; a `None` value is a bare flag.
    pub attributes: Vec<(String, Option<String>)>,
}

/// Formats links separated by commas.
pub fn format_links(links: &[Link]) -> String {
    let _ = links;
    todo!("content::link::format_links")
}

/// Parses a link-format payload; quoted values may contain commas and semicolons.
pub fn parse_links(text: &str) -> Result<Vec<Link>, super::ContentError> {
    let _ = text;
    todo!("content::link::parse_links")
}
