//! Any request body to /validate and /mutate, as the server handles it:
//! parsed (or a 400), reviewed, and answered.
#![no_main]

use std::sync::LazyLock;

use infergate::engine::Engine;
use infergate::policy::Policy;
use infergate::webhook::review::{self, ClusterContext, Mode, Review, Scope};
use libfuzzer_sys::fuzz_target;

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new(Policy::built_in().expect("the built-in policy loads")));

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = Review::parse(data) else {
        return;
    };
    let scope = Scope {
        excluded_namespaces: vec!["kube-system".to_string()],
    };
    for mode in [Mode::Validate, Mode::Mutate] {
        let decision = review::decide(
            &ENGINE,
            &scope,
            &parsed,
            mode,
            None,
            &ClusterContext::default(),
        );
        let _ = review::response(&parsed.request.uid, &decision);
    }
});
