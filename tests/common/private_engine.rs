//! A container engine of a test's own, started by the project's engine script on its own
//! socket, data root and processes, so that the test can stop and restart it.

use std::path::PathBuf;
use std::process::Command;

pub struct PrivateEngine {
    /// One of the engines `tests/engines/engine.sh` knows.
    engine: &'static str,
    state: PathBuf,
    /// Environment for the engine's processes.
    env: Vec<(String, String)>,
}

impl PrivateEngine {
    pub fn new(engine: &'static str, name: &str) -> PrivateEngine {
        // Short: unix socket paths under it must stay within 107 bytes.
        let state = std::env::temp_dir().join(format!("die-{name}-{}", std::process::id()));
        PrivateEngine { engine, state, env: Vec::new() }
    }

    /// Sets an environment variable for the engine when it starts.
    pub fn with_env(mut self, name: &str, value: &str) -> PrivateEngine {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    fn script(&self, action: &str) -> bool {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/engines/engine.sh");
        // The unpacked trixie packages of the test run's own state root, not a new download.
        let shared = std::env::var("DIE_STATE_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.state").to_owned());
        Command::new(script)
            .args([self.engine, action])
            .env("DIE_STATE_DIR", &self.state)
            .env("DIE_TRIXIE_DIR", format!("{shared}/trixie"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .status()
            .is_ok_and(|status| status.success())
    }

    pub fn start(&self) {
        assert!(self.script("start"), "engine.sh {} start failed", self.engine);
    }

    pub fn stop(&self) {
        assert!(self.script("stop"), "engine.sh {} stop failed", self.engine);
    }

    pub fn socket(&self) -> String {
        format!("{}/engines/{}/engine.sock", self.state.display(), self.engine)
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket())
    }

    /// Runs `docker` against this engine; panics unless it succeeds.
    pub fn docker(&self, args: &[&str]) -> String {
        let output = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .output()
            .expect("run docker");
        assert!(output.status.success(), "docker {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Builds the base image and one created container of it; returns the image ID.
    pub fn populate(&self) -> String {
        let image_script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/engines/test-image.sh");
        let built = Command::new(image_script).env("DOCKER_HOST", self.host()).status();
        assert!(built.expect("run test-image.sh").success(), "test-image.sh failed");
        self.docker(&["create", "--pull", "never", "--network", "none", "die-test/busybox:base"]);
        self.docker(&["image", "inspect", "--format", "{{.Id}}", "die-test/busybox:base"])
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        self.script("purge");
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
