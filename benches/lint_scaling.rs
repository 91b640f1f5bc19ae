//! How `infergate lint` scales with the input, against a bare parse of the
//! same files measured in the same run.
//!
//! cargo bench --bench lint_scaling [-- FILES...]   (default: 1000 2000 4000 10000)
//!
//! Each size is a directory of FILES bundle files (a Deployment, its HPA
//! and its PodMonitoring, one in five with a RULES.md mistake, 37
//! namespaces), so every cross-object rule has work on every object. For
//! each size it prints infergate's wall time (`lint --format json DIR`, the
//! binary as users run it), files/s, objects/s, MB/s and peak RSS; the
//! bare parse (the same files read and parsed into saphyr's `MarkedYaml`
//! on every core, nothing else); and their ratio. The last lines give the
//! growth of time and memory per doubling of the input. First it times one
//! small file linted cold.
//!
//! Each size is measured in two layouts: unique names (every bundle its
//! own application) and repeated names (`env-NNN/` directories of 100
//! bundles with a kustomization each, the same 100 applications in every
//! environment, as `clusters/*/app` repositories have them): lookups by
//! name must stay within an environment, or the repeated layout grows
//! quadratically.
//!
//! INFERGATE_BENCH_KEEP=DIR keeps the generated files in DIR.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use saphyr::{LoadableYamlNode, MarkedYaml};

#[path = "support/mod.rs"]
mod support;
use support::bundle;

struct Row {
    files: usize,
    bytes: u64,
    seconds: f64,
    peak: u64,
    bare: f64,
}

/// Best of three of `lint --format json DIR` and of the bare parse: wall
/// and CPU seconds each, and infergate's peak RSS.
struct Measured {
    seconds: f64,
    cpu: f64,
    peak: u64,
    bare: f64,
    bare_cpu: f64,
}

fn best_of_three(directory: &Path) -> Result<Measured, Box<dyn std::error::Error>> {
    let mut best = Measured {
        seconds: f64::MAX,
        cpu: f64::MAX,
        peak: 0,
        bare: f64::MAX,
        bare_cpu: f64::MAX,
    };
    for _ in 0..3 {
        let (cpu_before, _) = support::cpu_seconds();
        best.bare = best.bare.min(bare_parse(directory)?);
        let (cpu_after, _) = support::cpu_seconds();
        best.bare_cpu = best.bare_cpu.min(cpu_after - cpu_before);
        let run = support::measure_with_cpu(&[
            "lint",
            "--format",
            "json",
            &directory.display().to_string(),
        ])?;
        best.seconds = best.seconds.min(run.seconds);
        best.cpu = best.cpu.min(run.cpu);
        best.peak = best.peak.max(run.peak);
    }
    Ok(best)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    cold_small_file()?;
    let sizes = support::sizes_from_arguments(vec![1000, 2000, 4000, 10000]);
    // INFERGATE_BENCH_KEEP=DIR keeps the generated bundles there, to
    // profile a run by hand.
    let kept = std::env::var_os("INFERGATE_BENCH_KEEP").map(PathBuf::from);
    let scratch = tempfile::tempdir()?;
    let root = kept.as_deref().unwrap_or(scratch.path());
    for layout in [Layout::Unique, Layout::Repeated] {
        let mut rows = Vec::new();
        for &files in &sizes {
            let directory = root.join(format!("bundles-{}-{files}", layout.name()));
            let bytes = match layout {
                Layout::Unique => write_bundles(&directory, files)?,
                Layout::Repeated => write_environments(&directory, files)?,
            };
            // Warm the page cache for both, then take the best of three.
            let Measured {
                seconds,
                cpu,
                peak,
                bare,
                bare_cpu,
            } = best_of_three(&directory)?;
            let objects = files * 3;
            println!(
                "lint_scaling ({} names): {files} files, {objects} objects, {:.1} MB: infergate {seconds:.2} s ({:.0} files/s, {:.0} objects/s, {:.1} MB/s), peak RSS {:.0} MB ({:.1}x the input); bare parse {bare:.3} s; ratio {:.1}x; CPU {cpu:.2} s vs {bare_cpu:.2} s, ratio {:.1}x",
                layout.name(),
                bytes as f64 / 1e6,
                files as f64 / seconds,
                objects as f64 / seconds,
                bytes as f64 / 1e6 / seconds,
                peak as f64 / 1e6,
                peak as f64 / bytes as f64,
                seconds / bare,
                cpu / bare_cpu.max(0.01)
            );
            rows.push(Row {
                files,
                bytes,
                seconds,
                peak,
                bare,
            });
        }
        for pair in rows.windows(2) {
            let (small, large) = (&pair[0], &pair[1]);
            let growth = large.files as f64 / small.files as f64;
            println!(
                "lint_scaling ({} names): {} -> {} files (x{growth:.1} input, x{:.2} bytes): time x{:.2}, peak RSS x{:.2}, bare parse x{:.2}",
                layout.name(),
                small.files,
                large.files,
                large.bytes as f64 / small.bytes as f64,
                large.seconds / small.seconds,
                large.peak as f64 / small.peak as f64,
                large.bare / small.bare
            );
        }
    }
    if let Some(&files) = sizes.last() {
        fix_against_lint(root, files)?;
        kubeconform_beside(&root.join(format!("bundles-unique-{files}")))?;
    }
    Ok(())
}

/// `lint --fix` on a copy of the largest unique-names set (one bundle in
/// five has a fixable mistake), then `--fix` again with nothing left to
/// fix, each against a plain lint of the same files: wall and CPU.
fn fix_against_lint(root: &Path, files: usize) -> Result<(), Box<dyn std::error::Error>> {
    let source = root.join(format!("bundles-unique-{files}"));
    let copy = root.join(format!("bundles-fix-{files}"));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy)?;
    for entry in std::fs::read_dir(&source)? {
        let entry = entry?;
        std::fs::copy(entry.path(), copy.join(entry.file_name()))?;
    }
    let path = copy.display().to_string();
    let lint = support::measure_with_cpu(&["lint", "--format", "json", &path])?;
    let fix = support::measure_with_cpu(&["lint", "--fix", "--format", "json", &path])?;
    let again = support::measure_with_cpu(&["lint", "--fix", "--format", "json", &path])?;
    let fixed_lint = support::measure_with_cpu(&["lint", "--format", "json", &path])?;
    println!(
        "lint_scaling (--fix): {files} files: lint {:.2} s ({:.2} s CPU); --fix {:.2} s ({:.2} s CPU), {:.1}x a lint; in user space {:.1}x (the rest is the kernel creating, syncing and renaming the written files); a second, no-op --fix {:.2} s ({:.2} s CPU), {:.1}x a lint of the fixed files ({:.2} s)",
        lint.seconds,
        lint.cpu,
        fix.seconds,
        fix.cpu,
        fix.cpu / lint.cpu.max(0.01),
        fix.user / lint.user.max(0.01),
        again.seconds,
        again.cpu,
        again.cpu / fixed_lint.cpu.max(0.01),
        fixed_lint.seconds
    );
    Ok(())
}

/// kubeconform (`-strict`, 4 workers) on the same files when it is on
/// PATH (`go install github.com/yannh/kubeconform/cmd/kubeconform@latest`;
/// it fetches its schemas, so it needs the network or
/// `-schema-location`): its CPU beside infergate's.
fn kubeconform_beside(directory: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|folder| folder.join("kubeconform").is_file())
    });
    if !found {
        println!("lint_scaling: kubeconform is not on PATH; no comparison");
        return Ok(());
    }
    let (_, before) = support::cpu_seconds();
    let started = Instant::now();
    let status = std::process::Command::new("kubeconform")
        .args(["-strict", "-ignore-missing-schemas", "-n", "4", "-summary"])
        .arg(directory)
        .stdout(std::process::Stdio::null())
        .status()?;
    let seconds = started.elapsed().as_secs_f64();
    let (_, after) = support::cpu_seconds();
    println!(
        "lint_scaling: kubeconform on {}: {seconds:.2} s, {:.2} s CPU (exit {status})",
        directory.display(),
        after - before
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum Layout {
    Unique,
    Repeated,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Unique => "unique",
            Layout::Repeated => "repeated",
        }
    }
}

/// Bundles per environment of the repeated layout.
const PER_ENVIRONMENT: usize = 100;

/// `files` bundle files as environments of [`PER_ENVIRONMENT`] (the same
/// bundles, so the same names, in each), each with a kustomization.
fn write_environments(directory: &Path, files: usize) -> std::io::Result<u64> {
    let mut bytes = 0;
    for environment in 0..files.div_ceil(PER_ENVIRONMENT) {
        let folder = directory.join(format!("env-{environment:03}"));
        std::fs::create_dir_all(&folder)?;
        let count = PER_ENVIRONMENT.min(files - environment * PER_ENVIRONMENT);
        let mut resources = String::from("resources:\n");
        for index in 0..count {
            let text = bundle(index);
            bytes += text.len() as u64;
            let name = format!("bundle-{index:05}.yaml");
            resources.push_str(&format!("  - {name}\n"));
            std::fs::write(folder.join(name), text)?;
        }
        std::fs::write(folder.join("kustomization.yaml"), resources)?;
    }
    Ok(bytes)
}

/// Write `files` bundle files under `directory`; returns their bytes.
fn write_bundles(directory: &Path, files: usize) -> std::io::Result<u64> {
    std::fs::create_dir_all(directory)?;
    let mut bytes = 0;
    for index in 0..files {
        let text = bundle(index);
        bytes += text.len() as u64;
        std::fs::write(directory.join(format!("bundle-{index:05}.yaml")), text)?;
    }
    Ok(bytes)
}

/// Seconds to list, read and parse every file of `directory` into
/// `MarkedYaml` on every core, as the loader's first step does.
fn bare_parse(directory: &Path) -> std::io::Result<f64> {
    let started = Instant::now();
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut folders = vec![directory.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder)?.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path
                .file_name()
                .is_some_and(|name| name != "kustomization.yaml")
            {
                paths.push(path);
            }
        }
    }
    paths.sort();
    let nodes: usize = paths
        .par_iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            MarkedYaml::load_from_str(&text)
                .map(|documents| documents.len())
                .unwrap_or(0)
        })
        .sum();
    assert!(nodes >= paths.len(), "the bundles parse");
    Ok(started.elapsed().as_secs_f64())
}

/// A small file linted cold, 30 times (one process each: policy, schemas
/// and rules start from nothing), beside a process that only prints its
/// version, so the start-up cost infergate adds is visible.
fn cold_small_file() -> std::io::Result<()> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/rules/metric-name-lowercase/quiet.yaml");
    let time = |arguments: &[&std::ffi::OsStr]| -> std::io::Result<(f64, f64)> {
        let mut runs = Vec::new();
        for _ in 0..30 {
            let started = Instant::now();
            std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
                .args(arguments)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()?;
            runs.push(started.elapsed().as_secs_f64() * 1e3);
        }
        runs.sort_by(f64::total_cmp);
        Ok((runs[runs.len() / 2], runs[0]))
    };
    let (lint_median, lint_best) = time(&[
        "lint".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        file.as_os_str(),
    ])?;
    let (version_median, version_best) = time(&["version".as_ref()])?;
    println!(
        "lint_scaling: one small file cold: median {lint_median:.1} ms (best {lint_best:.1}); `infergate version`: median {version_median:.1} ms (best {version_best:.1})"
    );
    Ok(())
}
