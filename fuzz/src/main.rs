//! One libFuzzer binary for every target of `lwm2m_swarm::fuzzing`; `LWM2M_FUZZ_TARGET` picks
//! which (libFuzzer owns the command line). `LWM2M_FUZZ_TARGET=list` prints the names;
//! `LWM2M_FUZZ_TARGET=seeds LWM2M_FUZZ_CORPUS=DIR` writes the library's seeds to DIR/TARGET/.

#![no_main]

use std::sync::OnceLock;

use lwm2m_swarm::fuzzing::{TARGETS, Target, target};

static TARGET: OnceLock<&'static Target> = OnceLock::new();

libfuzzer_sys::fuzz_target!(
    init: {
        let name = std::env::var("LWM2M_FUZZ_TARGET").unwrap_or_default();
        if name == "list" {
            for t in TARGETS {
                println!("{}", t.name);
            }
            std::process::exit(0);
        }
        if name == "seeds" {
            write_seeds();
            std::process::exit(0);
        }
        let Some(found) = target(&name) else {
            let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
            eprintln!("LWM2M_FUZZ_TARGET={name:?} is not a target; targets: {}", names.join(", "));
            std::process::exit(2);
        };
        TARGET.set(found).ok();
    },
    |data: &[u8]| (TARGET.get().expect("set in init").run)(data)
);

fn write_seeds() {
    let corpus =
        std::env::var("LWM2M_FUZZ_CORPUS").expect("LWM2M_FUZZ_CORPUS names the corpus directory");
    let seeds = lwm2m_swarm::fuzzing::seeds();
    for (i, (target, input)) in seeds.iter().enumerate() {
        let dir = std::path::Path::new(&corpus).join(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory can be made");
        std::fs::write(dir.join(format!("seed-{i:03}")), input).expect("a seed can be written");
    }
    println!("{} seeds written to {corpus}", seeds.len());
}
