//! The shipped object templates (`object-templates/`), loaded once per test binary, and a
//! device made from the environment-sensor template.

#![allow(dead_code)]

use std::sync::OnceLock;

use lwm2m_swarm::model::{Device, TemplateSet};

/// The shipped templates.
pub fn templates() -> &'static TemplateSet {
    static TEMPLATES: OnceLock<TemplateSet> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
        TemplateSet::load_dir(std::path::Path::new(dir)).expect("shipped templates load")
    })
}

/// An environment sensor whose generated values follow `seed`.
pub fn device(seed: u64) -> Device {
    let template = templates()
        .device("environment-sensor")
        .expect("shipped template");
    Device::new(template, seed, 1_700_000_000)
}
