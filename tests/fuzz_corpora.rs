//! Replays every committed fuzz input through the bodies the fuzzer ran (`lwm2m_swarm::fuzzing`),
//! without libFuzzer: `fuzz/corpus/TARGET/*` (what fuzzing found worth keeping) and
//! `fuzz/regressions/TARGET/*` (inputs that once crashed). A panic is a regression.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use lwm2m_swarm::fuzzing::{TARGETS, Target, seeds};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs each input of `files` through `target`, naming the input that panics.
fn replay(target: &Target, files: &[PathBuf]) {
    for file in files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| (target.run)(&data));
        assert!(
            outcome.is_ok(),
            "fuzz target {} panics on {}",
            target.name,
            file.display()
        );
    }
}

#[test]
fn every_target_replays_its_corpus_and_regressions() {
    let mut empty = Vec::new();
    for target in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(target.name));
        let regressions = inputs(&fuzz_dir().join("regressions").join(target.name));
        if corpus.is_empty() {
            empty.push(target.name);
        }
        replay(target, &corpus);
        replay(target, &regressions);
        // Straight to stderr: libtest would swallow a println! of a passing test.
        writeln!(
            std::io::stderr(),
            "fuzz target {}: replayed {} corpus inputs, {} regressions",
            target.name,
            corpus.len(),
            regressions.len()
        )
        .unwrap();
    }
    assert!(
        empty.is_empty(),
        "no corpus in fuzz/corpus/ for: {} (scripts/fuzz TARGET SECONDS makes one)",
        empty.join(", ")
    );
}

#[test]
fn the_library_seeds_replay() {
    for (name, input) in seeds() {
        let target = TARGETS
            .iter()
            .find(|t| t.name == name)
            .expect("a seed names a target");
        (target.run)(&input);
    }
}

#[test]
fn every_corpus_directory_names_a_target() {
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(fuzz_dir().join(dir)) else {
            continue;
        };
        for entry in entries {
            let name = entry.expect("a readable directory entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                TARGETS.iter().any(|t| t.name == name),
                "fuzz/{dir}/{name} is no target of lwm2m_swarm::fuzzing"
            );
        }
    }
}
