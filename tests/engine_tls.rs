//! TLS to the engine: a private Docker engine listening on loopback with `--tlsverify` and
//! certificates this test makes. The exporter verifies the engine, shows its own client
//! certificate, and never falls back to plain text.

mod common;

use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::private_engine::PrivateEngine;
use common::{eventually, Exporter};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

/// A CA and the certificates it signed, written as a Docker client directory and the
/// engine's files.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Makes a CA, a server certificate for 127.0.0.1 and a client certificate, under `dir`.
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("pki directory");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let sign = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, stem: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).expect("signed certificate");
            std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{stem}-key.pem")), key.serialize_pem()).unwrap();
        };
        let server_names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        sign(server_names, ExtendedKeyUsagePurpose::ServerAuth, "server");
        sign(vec!["client".to_owned()], ExtendedKeyUsagePurpose::ClientAuth, "client");
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();

        // The Docker client's layout: ca.pem, cert.pem, key.pem.
        let client = dir.join("client");
        std::fs::create_dir_all(&client).unwrap();
        std::fs::copy(dir.join("ca.pem"), client.join("ca.pem")).unwrap();
        std::fs::copy(dir.join("client.pem"), client.join("cert.pem")).unwrap();
        std::fs::copy(dir.join("client-key.pem"), client.join("key.pem")).unwrap();
        Pki { dir: dir.to_owned() }
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn client_dir(&self) -> String {
        self.file("client")
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().unwrap().port()
}

fn scan_success(exporter: &Exporter) -> Result<f64, String> {
    exporter.scrape().value("docker_image_exporter_scan_success", &[])
}

/// Relays plain TCP on a loopback port to the engine's unix socket: the real engine,
/// without TLS.
fn plain_relay(socket: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(engine) = UnixStream::connect(&socket) else { continue };
            let (mut from_client, mut to_engine) =
                (client.try_clone().unwrap(), engine.try_clone().unwrap());
            let (mut from_engine, mut to_client) = (engine, client);
            std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_engine));
            std::thread::spawn(move || std::io::copy(&mut from_engine, &mut to_client));
        }
    });
    port
}

#[test]
fn tls_to_the_engine_is_verified_and_never_plain() {
    // Apart from the engine's own state directory, which the engine's drop removes.
    let scratch = std::env::temp_dir().join(format!("die-tlspki-{}", std::process::id()));
    let pki = Pki::new(&scratch.join("pki"));
    let port = free_port();
    let tcp_host = format!("tcp://127.0.0.1:{port}");
    let dockerd_args = format!(
        "--host {tcp_host} --tlsverify --tlscacert {} --tlscert {} --tlskey {}",
        pki.file("ca.pem"),
        pki.file("server.pem"),
        pki.file("server-key.pem"),
    );
    let engine = PrivateEngine::new("docker20", "tls").with_env("DIE_DOCKERD_ARGS", &dockerd_args);
    engine.start();
    let image = engine.populate();

    // Verified TLS with the client certificate: scans succeed.
    let client_dir = pki.client_dir();
    let tls_args = ["--docker.tls-verify", "--docker.cert-path", client_dir.as_str()];
    let exporter = Exporter::start(
        &[&["--docker.host", tcp_host.as_str(), "--scan.interval", "300ms"][..], &tls_args]
            .concat(),
    );
    eventually(Duration::from_secs(20), || {
        let exposition = exporter.scrape();
        let created = exposition
            .value("docker_image_containers", &[("image_id", &image), ("state", "created")])?;
        (created == 1.0).then_some(()).ok_or(format!("created {created}"))
    });
    drop(exporter);

    // The same port without TLS: the engine turns plain HTTP away.
    let plain = Exporter::start(&["--docker.host", &tcp_host, "--scan.interval", "300ms"]);
    eventually(Duration::from_secs(10), || match scan_success(&plain)? {
        0.0 => Ok(()),
        other => Err(format!("scan_success {other}")),
    });
    drop(plain);

    // An engine the CA did not sign (another CA's directory): refused, never scanned.
    let stranger = Pki::new(&scratch.join("stranger"));
    let stranger_dir = stranger.client_dir();
    let unverified = Exporter::start(&[
        "--docker.host",
        &tcp_host,
        "--scan.interval",
        "300ms",
        "--docker.tls-verify",
        "--docker.cert-path",
        &stranger_dir,
    ]);
    eventually(Duration::from_secs(10), || match scan_success(&unverified)? {
        0.0 => Ok(()),
        other => Err(format!("scan_success {other}")),
    });
    let said_why = unverified.logs().iter().any(|l| l.contains("certificate"));
    assert!(said_why, "no log names the certificate problem: {:#?}", unverified.logs());
    drop(unverified);

    // TLS asked for, and the port speaks plain HTTP (the real engine through a relay): the
    // exporter fails rather than sending anything in the clear.
    let relay = format!("tcp://127.0.0.1:{}", plain_relay(engine.socket()));
    let no_fallback = Exporter::start(
        &[&["--docker.host", relay.as_str(), "--scan.interval", "300ms"][..], &tls_args].concat(),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(scan_success(&no_fallback), Ok(0.0));
    let successes = no_fallback
        .scrape()
        .value("docker_image_exporter_scans_total", &[("result", "success")])
        .unwrap();
    assert_eq!(successes, 0.0, "a scan succeeded over plain text");
    drop(no_fallback);

    let _ = std::fs::remove_dir_all(&scratch);
}
