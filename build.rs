//! Records the commit and compiler that built the binary, for the build-info metric.

use std::process::Command;

fn main() {
    let revision = command_output("git", &["rev-parse", "--short=12", "HEAD"]);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = command_output(&rustc, &["--version"]);
    println!("cargo:rustc-env=BUILD_REVISION={}", revision.as_deref().unwrap_or("unknown"));
    println!(
        "cargo:rustc-env=BUILD_RUSTC_VERSION={}",
        rustc_version.as_deref().unwrap_or("unknown")
    );
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs");
}

/// The first line a command prints, or `None` if it cannot run or fails.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    text.lines().next().map(|line| line.trim().to_owned()).filter(|line| !line.is_empty())
}
