//! Lint throughput on a directory of thousands of manifests: the corpus of
//! ../shared/corpus copied N times (default 20) into a temporary directory.
//! Prints files, objects and seconds for load + rules, best of 5 runs.
//!
//! cargo bench --bench lint_throughput [-- COPIES]

use std::path::{Path, PathBuf};
use std::time::Instant;

use infergate::engine::{ClusterFacts, Engine};
use infergate::input::loader::{self, Input};
use infergate::policy::Policy;

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(to)?;
    let mut copied = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copied += copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            copied += 1;
        }
    }
    Ok(copied)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let copies: usize = std::env::args()
        .skip(1)
        .find_map(|argument| argument.parse().ok())
        .unwrap_or(20);
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let scratch = tempfile::tempdir()?;
    for copy in 0..copies {
        copy_tree(&corpus, &scratch.path().join(format!("copy-{copy}")))?;
    }
    let engine = Engine::new(Policy::built_in()?);
    let inputs = [Input::File(scratch.path().to_path_buf())];
    let mut best = f64::INFINITY;
    let mut best_load = f64::INFINITY;
    let mut files = 0;
    let mut objects = 0;
    let mut findings = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let loaded = loader::load(&inputs)?;
        best_load = best_load.min(started.elapsed().as_secs_f64());
        let outcome = engine.run(&loaded, &ClusterFacts::default());
        best = best.min(started.elapsed().as_secs_f64());
        files = outcome.summary.files;
        objects = outcome.summary.objects;
        findings = outcome.findings.len();
    }
    println!(
        "lint_throughput: {files} files, {objects} objects, {findings} findings in {best:.3} s (best of 5; reading and parsing {best_load:.3} s) = {:.0} files/s, {:.0} objects/s on {} threads",
        files as f64 / best,
        objects as f64 / best,
        rayon::current_num_threads()
    );
    Ok(())
}
