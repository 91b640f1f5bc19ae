//! Peak memory and time of `infergate lint --format json` on one large
//! manifest of Deployment + HPA + PodMonitoring bundles (one HPA in five
//! with an invalid target, 37 namespaces), at several sizes, so that the
//! ratio to the input and its growth can be read off.
//!
//! cargo bench --bench memory [-- MEGABYTES]   (default: 12, 25 and 50)
//!
//! Peak RSS is the kernel's high-water mark (VmHWM) of the child,
//! sampled every 2 ms until it exits.

use std::io::Write;
use std::path::Path;

#[path = "support/mod.rs"]
mod support;
use support::{bundle, measure};

fn write_manifest(path: &Path, bytes: usize) -> std::io::Result<(usize, usize)> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (mut written, mut bundles) = (0, 0);
    while written < bytes {
        let text = bundle(bundles);
        file.write_all(text.as_bytes())?;
        written += text.len();
        bundles += 1;
    }
    file.flush()?;
    Ok((written, bundles))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes = support::sizes_from_arguments(vec![12, 25, 50]);
    let scratch = tempfile::tempdir()?;
    for megabytes in sizes {
        // lint refuses a file past its 64 MiB limit (a skipped-input
        // finding), which would measure nothing: lint_scaling measures
        // large inputs as many files.
        if megabytes * 1_000_000 > 64 * 1024 * 1024 {
            println!("memory: {megabytes} MB in one file is past lint's 64 MiB file limit; see lint_scaling for larger inputs");
            continue;
        }
        let path = scratch.path().join(format!("bundles-{megabytes}.yaml"));
        let (bytes, bundles) = write_manifest(&path, megabytes * 1_000_000)?;
        let (peak, seconds) = measure(&path)?;
        println!(
            "memory: {:.1} MB input ({bundles} bundles, {} objects): peak RSS {:.0} MB = {:.1}x the input, {seconds:.2} s",
            bytes as f64 / 1e6,
            bundles * 3,
            peak as f64 / 1e6,
            peak as f64 / bytes as f64
        );
    }
    // Real manifests, which are less dense than the bundles above (block
    // style, comments, long strings): the reviewed corpus copied 40 times.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if corpus.is_dir() {
        let copies = scratch.path().join("corpus");
        let mut bytes = 0;
        for copy in 0..40 {
            bytes += copy_yaml(&corpus, &copies.join(format!("copy-{copy}")))?;
        }
        let (peak, seconds) = measure(&copies)?;
        println!(
            "memory: the corpus copied 40 times, {:.1} MB of YAML: peak RSS {:.0} MB = {:.1}x the input, {seconds:.2} s",
            bytes as f64 / 1e6,
            peak as f64 / 1e6,
            peak as f64 / bytes as f64
        );
    }
    Ok(())
}

/// Copy the YAML files under `from` to `to`; returns their bytes.
fn copy_yaml(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            bytes += copy_yaml(&path, &target)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml")
        {
            bytes += std::fs::copy(&path, &target)?;
        }
    }
    Ok(bytes)
}
