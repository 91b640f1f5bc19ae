//! Any text as a `--policy` file: a policy or a clear error, never a panic.
#![no_main]

use infergate::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Policy::with_overrides("fuzz-policy.yaml", text);
});
