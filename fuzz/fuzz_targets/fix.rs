//! Any text through `lint --fix --unsafe-fixes` in memory: every fix the
//! engine offers is written into the text and re-parsed; the result must
//! never be worse than the input (a finding the fix emitter made).
#![no_main]

use std::sync::LazyLock;

use infergate::engine::{ClusterFacts, Engine};
use infergate::fix::{self, FixOptions};
use infergate::policy::Policy;
use infergate::input::source::SourceFile;
use libfuzzer_sys::fuzz_target;

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new(Policy::built_in().expect("the built-in policy loads")));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = SourceFile::new("fuzz.yaml", text.to_string());
    let _ = fix::fix_sources(
        &ENGINE,
        vec![source],
        &ClusterFacts::default(),
        FixOptions { unsafe_fixes: true },
    );
});
