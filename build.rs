//! Records the git commit infergate is built from, for `infergate version`.
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
}
