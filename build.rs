//! Records the git commit infergate is built from and the Kubernetes
//! versions of its embedded schemas, for `infergate version`.
//! A build outside a git checkout (a source tarball, a container build
//! without .git) can set INFERGATE_COMMIT; otherwise it says "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=INFERGATE_COMMIT");
    // A commit moves HEAD's branch ref; a checkout changes HEAD itself.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("INFERGATE_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|output| output.status.success())
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=INFERGATE_COMMIT={commit}");
    // The Kubernetes versions whose schemas are embedded (src/schema.rs
    // includes these files), for the version text.
    println!("cargo:rerun-if-changed=rules/schemas");
    let mut versions: Vec<(u32, u32)> = std::fs::read_dir("rules/schemas")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix("kubernetes-v")?.strip_suffix(".json")?;
            let (major, minor) = version.split_once('.')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        })
        .collect();
    versions.sort_unstable();
    let versions: Vec<String> = versions
        .iter()
        .map(|(major, minor)| format!("{major}.{minor}"))
        .collect();
    println!("cargo:rustc-env=INFERGATE_SCHEMAS={}", versions.join(", "));
}
