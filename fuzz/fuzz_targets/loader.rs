//! Any text through the loader and every rule, as `infergate lint -` does:
//! no panic, no overflow, whatever the YAML.
#![no_main]

use std::sync::LazyLock;

use infergate::engine::{ClusterFacts, Engine};
use infergate::policy::Policy;
use infergate::input::source::SourceFile;
use libfuzzer_sys::fuzz_target;

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new(Policy::built_in().expect("the built-in policy loads")));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = infergate::input::loader::parse_source(SourceFile::new("fuzz.yaml", text.to_string()));
    let _ = ENGINE.run(&loaded, &ClusterFacts::default());
});
