//! The README shows `--help` verbatim; this keeps it from going stale.

use std::process::Command;

#[test]
fn the_readme_shows_the_current_help() {
    let output = Command::new(env!("CARGO_BIN_EXE_docker-image-exporter"))
        .arg("--help")
        // Help text lists the current value of each environment twin; show none.
        .env_clear()
        .output()
        .expect("run --help");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("utf-8 help");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    assert!(
        readme.contains(help.trim_end()),
        "README.md's usage section differs from --help; paste this:\n{help}"
    );
}
