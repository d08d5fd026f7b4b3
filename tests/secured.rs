//! The binary with `--web.config.file`: TLS and basic authentication on the telemetry path,
//! checked with curl as a scraper would, and a certificate replaced on disk while it runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{eventually, Exporter};
use rcgen::{CertificateParams, KeyPair};

/// Writes a self-signed certificate for 127.0.0.1 as `server.crt` and `server.key`, and the
/// same certificate as `trust-<generation>.pem` for the client to trust.
fn certificate(dir: &Path, generation: u32) -> PathBuf {
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    // Written beside, then renamed into place, as certificate tools do.
    std::fs::write(dir.join("next.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("next.crt"), cert.pem()).unwrap();
    std::fs::rename(dir.join("next.key"), dir.join("server.key")).unwrap();
    std::fs::rename(dir.join("next.crt"), dir.join("server.crt")).unwrap();
    let trust = dir.join(format!("trust-{generation}.pem"));
    std::fs::write(&trust, cert.pem()).unwrap();
    trust
}

/// `curl`'s HTTP status for `url` (0 when no HTTP answer came), with extra arguments.
fn curl_status(url: &str, args: &[&str]) -> u32 {
    let output = Command::new("curl")
        .args(["--silent", "--output", "/dev/null", "--write-out", "%{http_code}"])
        .args(["--max-time", "5"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed");
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(0)
}

#[test]
fn tls_and_basic_auth_guard_the_endpoint() {
    let dir = std::env::temp_dir().join(format!("die-secured-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first_trust = certificate(&dir, 1);
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    let config = dir.join("web.yml");
    let yaml = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
         basic_auth_users:\n  prometheus: {hash}\n"
    );
    std::fs::write(&config, yaml).unwrap();

    let engine = format!("unix://{}/absent.sock", dir.display());
    let config = config.display().to_string();
    let exporter = Exporter::start(&["--docker.host", &engine, "--web.config.file", &config]);
    let url = format!("https://{}/metrics", exporter.address);
    let trust = first_trust.display().to_string();

    assert_eq!(curl_status(&url, &["--cacert", &trust]), 401, "no credentials");
    assert_eq!(curl_status(&url, &["--cacert", &trust, "--user", "prometheus:wrong"]), 401);
    assert_eq!(curl_status(&url, &["--cacert", &trust, "--user", "nobody:s3cret"]), 401);
    assert_eq!(curl_status(&url, &["--cacert", &trust, "--user", "prometheus:s3cret"]), 200);

    // Plain HTTP to the TLS port gets no HTTP answer, let alone data.
    let plain = format!("http://{}/metrics", exporter.address);
    assert_eq!(curl_status(&plain, &["--user", "prometheus:s3cret"]), 0);

    // A new certificate on disk is served to new connections without a restart.
    let second_trust = certificate(&dir, 2).display().to_string();
    eventually(Duration::from_secs(10), || {
        match curl_status(&url, &["--cacert", &second_trust, "--user", "prometheus:s3cret"]) {
            200 => Ok(()),
            other => Err(format!("status {other} with the new certificate")),
        }
    });
    assert_eq!(curl_status(&url, &["--cacert", &trust, "--user", "prometheus:s3cret"]), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_web_config_file_names_the_flag_and_the_key() {
    let dir = std::env::temp_dir().join(format!("die-badweb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("web.yml");
    std::fs::write(&config, "basic_auth_users:\n  alice: not-a-bcrypt-hash\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_docker-image-exporter"))
        .args(["--web.config.file", &config.display().to_string()])
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--web.config.file") && stderr.contains("alice"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
