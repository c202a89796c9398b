//! Gives `--version` the commit the binary was built from and the cargo features it has:
//! `LWM2M_SWARM_COMMIT` (a short hash, `-dirty` when tracked files had changes; `unknown` outside
//! a git checkout of this crate, e.g. from a crates.io tarball or without `git`) and
//! `LWM2M_SWARM_FEATURES` (the enabled features, comma-separated; `none`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let commit = commit(&manifest_dir).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=LWM2M_SWARM_COMMIT={commit}");
    println!("cargo:rustc-env=LWM2M_SWARM_FEATURES={}", features());
    println!("cargo:rerun-if-changed=build.rs");
}

/// `git`'s answer, run in `dir`, trimmed; `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn commit(dir: &Path) -> Option<String> {
    // This crate's own checkout only: not a repository the sources happen to sit in.
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    // Build again when HEAD moves (a checkout, a commit) or the index changes; worktrees keep
    // these files outside `.git/`, so git names them.
    let mut watched = vec![
        "HEAD".to_string(),
        "index".to_string(),
        "packed-refs".to_string(),
    ];
    watched.extend(git(dir, &["symbolic-ref", "-q", "HEAD"]));
    // Files that exist only: cargo runs this script on every build for a missing one.
    for name in watched {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            let path = dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    // An edited source changes the binary, and maybe the tree's state.
    println!("cargo:rerun-if-changed=src");
    let hash = git(dir, &["rev-parse", "--short=10", "HEAD"])?;
    let dirty = git(dir, &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|changes| !changes.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// The features cargo enabled, as `Cargo.toml` spells them.
fn features() -> String {
    let mut names: Vec<String> = std::env::vars()
        .filter_map(|(key, _)| {
            let name = key.strip_prefix("CARGO_FEATURE_")?;
            Some(name.to_lowercase().replace('_', "-"))
        })
        .collect();
    names.sort();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(",")
    }
}
