//! The documentation holds together: every relative link in README.md and docs/*.md points at a
//! file that exists, and every `#anchor` at a heading of the linked Markdown file (GitHub's
//! heading slugs). README.md stays a door, not a manual: at most 250 lines.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

const README_MAX_LINES: usize = 250;

/// A link target as written, and the 1-based line it is on.
#[derive(Debug, PartialEq)]
struct Link {
    line: usize,
    target: String,
}

/// Lines outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |c| trimmed.chars().take_while(|x| *x == c).count());
        match (fence, marker) {
            (None, Some(c)) if run >= 3 => fence = Some((c, run)),
            (Some((c, n)), Some(m)) if m == c && run >= n && trimmed[run..].trim().is_empty() => {
                fence = None;
            }
            (None, _) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// The line without its inline code spans (`` `[not](a link)` ``).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let run = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + run..];
        let closer = "`".repeat(run);
        if let Some(end) = after.find(&closer) {
            rest = &after[end + run..];
        } else {
            // An unclosed backtick is literal text.
            out.push_str(&rest[start..start + run]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Inline links and images (`[text](target "title")`) and reference definitions
/// (`[name]: target`), outside code.
fn links(text: &str) -> Vec<Link> {
    let mut found = Vec::new();
    for (line_no, line) in prose_lines(text) {
        let line = without_code_spans(line);
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('[')
            && let Some((_, definition)) = rest.split_once("]:")
            && let Some(target) = definition.split_whitespace().next()
        {
            found.push(Link {
                line: line_no,
                target: target.trim_matches(['<', '>']).to_string(),
            });
            continue;
        }
        let mut rest = line.as_str();
        while let Some(open) = rest.find("](") {
            let after = &rest[open + 2..];
            let mut depth = 1;
            let end = after.char_indices().find_map(|(i, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(i)
            });
            let Some(end) = end else { break };
            let inside = after[..end].trim();
            let target = match inside.strip_prefix('<') {
                Some(angled) => angled.split('>').next().unwrap_or(""),
                None => inside.split_whitespace().next().unwrap_or(""),
            };
            found.push(Link {
                line: line_no,
                target: target.to_string(),
            });
            rest = &after[end + 1..];
        }
    }
    found
}

/// GitHub's anchor for a heading: its rendered text lowercased, spaces as hyphens, everything but
/// letters, digits, `-` and `_` dropped.
fn slug(heading: &str) -> String {
    // Rendered text: a link shows its text, code spans and emphasis lose their markers.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let link = after
            .split_once("](")
            .and_then(|(label, tail)| tail.find(')').map(|close| (label, &tail[close + 1..])));
        if let Some((label, tail)) = link {
            text.push_str(label);
            rest = tail;
        } else {
            text.push('[');
            rest = after;
        }
    }
    text.push_str(rest);
    text.chars()
        .filter(|c| *c != '`' && *c != '*')
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's ATX headings; a repeated slug gets `-1`, `-2`, ... as on
/// GitHub.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose_lines(text) {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let hashes = line.trim_start().chars().take_while(|c| *c == '#').count();
        let body = &line.trim_start()[hashes..];
        if indent > 3 || !(1..=6).contains(&hashes) || !(body.is_empty() || body.starts_with(' ')) {
            continue;
        }
        let title = body.trim().trim_end_matches('#').trim_end();
        let base = slug(title);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

fn is_external(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: cannot read: {e}", path.display()))
}

/// Every broken relative link of `files`, as `file:line -> target (why)`; paths are shown
/// relative to `root`.
fn broken_links(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let show = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let mut broken = Vec::new();
    for file in files {
        let text = read(file);
        for link in links(&text) {
            if link.target.is_empty() || is_external(&link.target) {
                continue;
            }
            let (path, anchor) = match link.target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (link.target.as_str(), None),
            };
            let at = format!("{}:{} -> {}", show(file), link.line, link.target);
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap_or(root).join(path)
            };
            if !target.exists() {
                broken.push(format!("{at} (no such file: {})", show(&target)));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().is_none_or(|e| e != "md") {
                continue;
            }
            if !anchors(&read(&target)).contains(anchor) {
                broken.push(format!(
                    "{at} (no heading with anchor #{anchor} in {})",
                    show(&target)
                ));
            }
        }
    }
    broken
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, sorted.
fn documentation(root: &Path) -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("docs/ is readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root.join("README.md"));
    docs
}

#[test]
fn every_relative_link_in_the_documentation_resolves() {
    let root = root();
    let files = documentation(&root);
    assert!(files.len() > 1, "no docs/*.md found");
    let broken = broken_links(&root, &files);
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn the_readme_is_short() {
    let lines = read(&root().join("README.md")).lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move details into docs/"
    );
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Known limits"), "known-limits");
    assert_eq!(slug("`[security]`"), "security");
    assert_eq!(slug("`--json PATH`"), "--json-path");
    assert_eq!(slug("`report FILE...`"), "report-file");
    assert_eq!(
        slug("PSK with AES-128-GCM (OpenSSL)"),
        "psk-with-aes-128-gcm-openssl"
    );
    assert_eq!(slug("See [the guide](guide.md) now"), "see-the-guide-now");
    assert_eq!(slug("key_file and **bold**"), "key_file-and-bold");
    let repeated = anchors("# Title\n## Setup\n## Setup\n```\n# not a heading\n```\n");
    let expected: HashSet<String> = ["title", "setup", "setup-1"].map(String::from).into();
    assert_eq!(repeated, expected);
}

#[test]
fn links_in_code_are_not_links() {
    let text = "[a](one.md) and `[b](two.md)`\n```\n[c](three.md)\n```\n[d]: four.md \"T\"\n\
                ![e](img/five.svg) [f](<six seven.md>) [g](eight.md \"title\")\n";
    let found: Vec<(usize, String)> = links(text)
        .into_iter()
        .map(|l| (l.line, l.target))
        .collect();
    let expected: Vec<(usize, String)> = [
        (1, "one.md"),
        (5, "four.md"),
        (6, "img/five.svg"),
        (6, "six seven.md"),
        (6, "eight.md"),
    ]
    .into_iter()
    .map(|(n, t)| (n, t.to_string()))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn broken_files_and_anchors_are_reported_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-docs-links-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(
        dir.join("README.md"),
        "# Top\n\n[ok](docs/a.md#part-one) [self](#top) [web](https://example.com/x.md)\n\
         [gone](docs/missing.md)\n[bad anchor](docs/a.md#part-two)\n[bad self](#nowhere)\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("docs/a.md"),
        "# A\n\n## Part one\n\n[back](../README.md#top)\n",
    )
    .unwrap();
    let files = vec![dir.join("README.md"), dir.join("docs/a.md")];
    let broken = broken_links(&dir, &files);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        broken,
        vec![
            "README.md:4 -> docs/missing.md (no such file: docs/missing.md)",
            "README.md:5 -> docs/a.md#part-two (no heading with anchor #part-two in docs/a.md)",
            "README.md:6 -> #nowhere (no heading with anchor #nowhere in README.md)",
        ]
    );
}
