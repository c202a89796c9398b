//! The modules of `src/` form a graph without cycles: no module imports one that imports it back,
//! between top-level modules and between the children of one module; `src/lib.rs`'s module map
//! lists them in that order. Read from the source text:
//! every `crate::` path (grouped `use crate::{a, b::c}` too) outside test code is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Module path of a source file below `src/` (`src/a/b.rs` -> `["a", "b"]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of `source` without comments and without its inline `#[cfg(test)] mod tests { .. }`.
fn production_code(source: &str) -> String {
    let code = match source.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &source[..at],
        None => source,
    };
    code.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths (`["a", "b"]`) that `code`, in module `module`, names through `crate::`,
/// `super::` or `self::`, resolved from the crate root.
fn crate_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let boundary = at == 0 || !code[..at].ends_with(|c: char| is_ident(c) || c == ':');
        let base: Option<(Vec<String>, &str)> = if !boundary {
            None
        } else if let Some(after) = rest.strip_prefix("crate::") {
            Some((Vec::new(), after))
        } else if rest.starts_with("super::") || rest.starts_with("self::") {
            let mut after = rest;
            let mut base = module.to_vec();
            if let Some(tail) = after.strip_prefix("self::") {
                after = tail;
            }
            while let Some(tail) = after.strip_prefix("super::") {
                base.pop();
                after = tail;
            }
            Some((base, after))
        } else {
            None
        };
        let Some((base, after)) = base else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        at = code.len() - after.len();
        let joined = |tail: Vec<String>| base.iter().cloned().chain(tail).collect::<Vec<_>>();
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            paths.extend(
                top_level_items(&group[..end])
                    .iter()
                    .map(|i| joined(segments(i))),
            );
        } else {
            paths.push(joined(segments(after)));
        }
    }
    paths
}

/// The comma-separated items of a `{...}` group, nested groups kept whole.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

/// `a::b::{c, d}` -> `["a", "b"]`; stops at the first thing that is not `ident::`.
fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = path.trim_start();
    loop {
        let end = rest.find(|c| !is_ident(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_string());
        match rest[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    out
}

/// Edges between modules `depth` levels deep: `a -> b` when code in `a` (or below it) names
/// `crate::b`. Edges between a module and its own ancestors are left out (a child using its
/// parent's items is not an import cycle).
fn graph(depth: usize) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        let is_test = module.iter().any(|m| m == "tests" || m.ends_with("_tests"));
        if is_test || matches!(module[0].as_str(), "lib" | "main") {
            continue;
        }
        let from = module[..module.len().min(depth)].join("::");
        let code = production_code(&fs::read_to_string(&file).unwrap());
        for path in crate_paths(&code, &module) {
            if path.is_empty() {
                continue;
            }
            let to = path[..path.len().min(depth)].join("::");
            let related = to == from
                || from.starts_with(&format!("{to}::"))
                || to.starts_with(&format!("{from}::"));
            if !related {
                let shown = file.strip_prefix(&src).unwrap().display().to_string();
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(shown);
            }
        }
    }
    edges
}

/// A cycle through `start`, if any: the modules in order, `start` first.
fn cycle_from(
    start: &str,
    edges: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in edges.get(&node).into_iter().flat_map(BTreeMap::keys) {
            if next == start {
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

fn cycles(depth: usize) -> Vec<String> {
    let edges = graph(depth);
    let mut found = Vec::new();
    for start in edges.keys() {
        if let Some(cycle) = cycle_from(start, &edges) {
            let steps: Vec<String> = cycle
                .iter()
                .zip(cycle.iter().cycle().skip(1))
                .map(|(a, b)| {
                    let files: Vec<_> = edges[a][b].iter().take(2).cloned().collect();
                    format!("{a} -> {b} ({})", files.join(", "))
                })
                .collect();
            found.push(steps.join("; "));
        }
    }
    found
}

#[test]
fn top_level_modules_import_no_module_that_imports_them_back() {
    let found = cycles(1);
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn sibling_modules_import_no_module_that_imports_them_back() {
    let found = cycles(2);
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

/// The top-level modules in the order `src/lib.rs`'s module map lists them (`//! - [`name`]`).
fn module_map() -> Vec<String> {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.strip_prefix("//! - [`"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn the_module_map_lists_every_module_below_those_it_uses() {
    let map = module_map();
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: Vec<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect();
    let mut listed = map.clone();
    listed.sort();
    assert_eq!(
        listed, declared,
        "src/lib.rs's module map and its `pub mod`s differ"
    );
    let position = |m: &str| map.iter().position(|n| n == m);
    let mut upward = Vec::new();
    for (from, targets) in graph(1) {
        for (to, files) in targets {
            if let (Some(a), Some(b)) = (position(&from), position(&to))
                && b > a
            {
                upward.push(format!(
                    "{from} uses {to} ({})",
                    files.iter().next().unwrap()
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "the module map lists these the wrong way round:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_nested_imports() {
    let code = "use crate::{client::{Client, Event}, model::Path};\nlet x = crate::fleet::parse(1);\n\
                use super::super::coap::Message;\nuse super::{span::At, raw};";
    let module = [
        "fleet".to_string(),
        "build".to_string(),
        "inner".to_string(),
    ];
    let names = |p: &[&str]| p.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        crate_paths(code, &module),
        vec![
            names(&["client"]),
            names(&["model", "Path"]),
            names(&["fleet", "parse"]),
            names(&["fleet", "coap", "Message"]),
            names(&["fleet", "build", "span", "At"]),
            names(&["fleet", "build", "raw"]),
        ]
    );
    assert_eq!(
        production_code("a // crate::x\n#[cfg(test)]\nmod tests {\nuse crate::y;\n}"),
        "a "
    );
}

#[test]
fn a_cycle_is_found() {
    let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        edges
            .entry(a.into())
            .or_default()
            .entry(b.into())
            .or_default()
            .insert("f.rs".into());
    }
    assert_eq!(
        cycle_from("a", &edges),
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
    assert_eq!(cycle_from("d", &edges), None);
}
