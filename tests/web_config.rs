//! The web config file against real TLS connections on loopback, with certificates made here.
//!
//! Each test writes its own files into a scratch directory, serves a one-line greeting through
//! the configured acceptor on a port of 127.0.0.1 the system picks, and connects with a rustls
//! client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use docker_image_exporter::web_config::{WebConfig, WebConfigError};
use hyper::header::HeaderValue;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// What the test server writes to every client that completes a handshake.
const GREETING: &[u8] = b"hello\n";

/// Longer than the certificate files' check interval, so the next handshake looks at them.
const PAST_RELOAD_CHECK: Duration = Duration::from_millis(1100);

/// How long any one connection of a test may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A directory of its own, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("die-web-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("scratch directory");
        Scratch(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a file the way certificate renewals do: a new file renamed over the old one.
    fn write(&self, name: &str, contents: &str) {
        let staged = self.path(&format!("{name}.new"));
        std::fs::write(&staged, contents).expect("write staged file");
        std::fs::rename(&staged, self.path(name)).expect("rename staged file");
    }

    fn load(&self, config: &str) -> Result<WebConfig, WebConfigError> {
        self.write("web.yml", config);
        WebConfig::load(&self.path("web.yml"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate authority that signs leaf certificates.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A leaf certificate in PEM, with its key in PKCS#8 PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Authority { issuer: Issuer::new(params, key), pem }
    }

    fn server(&self) -> Leaf {
        let sans = vec![
            SanType::DnsName("localhost".try_into().expect("DNS name")),
            SanType::IpAddress("127.0.0.1".parse().expect("address")),
        ];
        self.leaf(sans, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self, name: &str) -> Leaf {
        let sans = vec![SanType::DnsName(name.try_into().expect("DNS name"))];
        self.leaf(sans, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, sans: Vec<SanType>, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf certificate");
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        let der = CertificateDer::from_pem_slice(self.pem.as_bytes()).expect("CA PEM");
        roots.add(der).expect("CA as a root");
        roots
    }
}

/// Writes `server.crt` and `server.key`.
fn install(scratch: &Scratch, leaf: &Leaf) {
    scratch.write("server.crt", &leaf.cert);
    scratch.write("server.key", &leaf.key);
}

const TLS_CONFIG: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

/// Serves [`GREETING`] over TLS to every client that completes a handshake, until dropped.
struct Server {
    address: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(acceptor: TlsAcceptor) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        let _ = tls.write_all(GREETING).await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        Server { address, task }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client that trusts `authority`, presenting `identity` if given.
fn client(authority: &Authority, identity: Option<&Leaf>) -> TlsConnector {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("client versions")
        .with_root_certificates(authority.roots());
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let chain = vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).expect("PEM")];
            let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key PEM");
            builder.with_client_auth_cert(chain, key).expect("client identity")
        }
    };
    // A resumed session sends no certificate: every connection here is a full handshake.
    config.resumption = Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

/// Connects, and returns the server's certificate if the greeting arrived.
async fn greet(server: &Server, connector: &TlsConnector) -> Option<CertificateDer<'static>> {
    let attempt = async {
        let stream = TcpStream::connect(server.address).await.ok()?;
        let name = ServerName::try_from("localhost").ok()?;
        let mut tls = connector.connect(name, stream).await.ok()?;
        let certificate = tls.get_ref().1.peer_certificates()?.first()?.clone().into_owned();
        let mut received = Vec::new();
        tls.read_to_end(&mut received).await.ok()?;
        (received == GREETING).then_some(certificate)
    };
    tokio::time::timeout(CONNECTION_TIMEOUT, attempt).await.ok().flatten()
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM")
}

#[test]
fn load_errors_name_the_key_and_the_file() {
    let scratch = Scratch::new("errors");
    let leaf = Authority::new("errors CA").server();
    install(&scratch, &leaf);
    let cases = [
        ("tls_server_config:\n  cert_fil: server.crt\n", "cert_fil"),
        ("tls_server_config:\n  cert_file: gone.crt\n  key_file: server.key\n", "cert_file"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n", "key_file"),
        (&format!("{TLS_CONFIG}  min_version: TLS10\n"), "tls_server_config.min_version"),
        (
            &format!("{TLS_CONFIG}  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n"),
            "cipher_suites",
        ),
        (&format!("{TLS_CONFIG}  curve_preferences: [CurveP521]\n"), "curve_preferences"),
        (&format!("{TLS_CONFIG}  client_auth_type: RequireAndVerifyClientCert\n"), "client_auth"),
        ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice"),
    ];
    for (config, key) in cases {
        let error = scratch.load(config).expect_err(config).to_string();
        assert!(error.contains(key), "{config}: {error}");
        assert!(error.contains("web.yml"), "{config}: {error}");
    }

    let missing = WebConfig::load(&scratch.path("absent.yml")).expect_err("no file");
    assert!(matches!(missing, WebConfigError::Read { .. }), "{missing}");
    assert!(missing.to_string().contains("absent.yml"), "{missing}");
}

#[test]
fn inline_certificates_and_every_option_load() {
    let scratch = Scratch::new("options");
    let authority = Authority::new("options CA");
    let leaf = authority.server();
    let indent = |pem: &str| pem.lines().map(|line| format!("    {line}\n")).collect::<String>();
    let config = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}  client_ca: |\n{}  \
         client_auth_type: VerifyClientCertIfGiven\n  min_version: TLS12\n  \
         max_version: TLS13\n  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  \
         prefer_server_cipher_suites: false\n  curve_preferences: [X25519, CurveP256]\n\
         http_server_config:\n  http2: false\n  headers:\n    X-Content-Type-Options: nosniff\n\
         rate_limit:\n  interval: 100ms\n  burst: 10\n",
        indent(&leaf.cert),
        indent(&leaf.key),
        indent(&authority.pem),
    );
    let config = scratch.load(&config).unwrap_or_else(|error| panic!("{error}"));
    assert!(config.tls_acceptor().is_some());
    assert_eq!(config.extra_headers().len(), 1);
}

#[tokio::test]
async fn a_tls_handshake_gets_the_answer() {
    let scratch = Scratch::new("handshake");
    let authority = Authority::new("handshake CA");
    let leaf = authority.server();
    install(&scratch, &leaf);
    let config = scratch.load(TLS_CONFIG).expect("loads");
    let server = Server::start(config.tls_acceptor().expect("TLS configured")).await;

    let served = greet(&server, &client(&authority, None)).await.expect("greeting over TLS");
    assert_eq!(served, der(&leaf.cert));
    // A client that trusts another CA does not get through.
    assert!(greet(&server, &client(&Authority::new("stranger"), None)).await.is_none());
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_answer() {
    let scratch = Scratch::new("plain");
    let authority = Authority::new("plain CA");
    install(&scratch, &authority.server());
    let config = scratch.load(TLS_CONFIG).expect("loads");
    let server = Server::start(config.tls_acceptor().expect("TLS configured")).await;

    let exchange = async {
        let mut stream = TcpStream::connect(server.address).await.expect("connect");
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("send");
        let mut received = Vec::new();
        // A reset is as good an answer as a close.
        let _ = stream.read_to_end(&mut received).await;
        received
    };
    let received = tokio::time::timeout(CONNECTION_TIMEOUT, exchange).await.expect("closed");
    // At most a TLS alert record (content type 21), never HTTP and never the greeting.
    assert!(received.is_empty() || received[0] == 21, "{received:?}");
    assert!(!received.windows(GREETING.len()).any(|window| window == GREETING));
}

#[tokio::test]
async fn a_replaced_certificate_is_served_on_the_next_connection() {
    let scratch = Scratch::new("reload");
    let authority = Authority::new("reload CA");
    let first = authority.server();
    install(&scratch, &first);
    let config = scratch.load(TLS_CONFIG).expect("loads");
    let server = Server::start(config.tls_acceptor().expect("TLS configured")).await;
    let connector = client(&authority, None);
    assert_eq!(greet(&server, &connector).await, Some(der(&first.cert)));

    // The renewed pair is served once the files have been looked at again.
    let second = authority.server();
    install(&scratch, &second);
    tokio::time::sleep(PAST_RELOAD_CHECK).await;
    assert_eq!(greet(&server, &connector).await, Some(der(&second.cert)));

    // A broken replacement leaves the last good pair in service.
    scratch.write("server.crt", "not a certificate\n");
    tokio::time::sleep(PAST_RELOAD_CHECK).await;
    assert_eq!(greet(&server, &connector).await, Some(der(&second.cert)));
    assert_eq!(greet(&server, &connector).await, Some(der(&second.cert)));

    // And a good one after it is picked up again.
    install(&scratch, &first);
    tokio::time::sleep(PAST_RELOAD_CHECK).await;
    assert_eq!(greet(&server, &connector).await, Some(der(&first.cert)));
}

#[tokio::test]
async fn min_version_turns_older_clients_away() {
    let scratch = Scratch::new("versions");
    let authority = Authority::new("versions CA");
    install(&scratch, &authority.server());
    let config = scratch.load(&format!("{TLS_CONFIG}  min_version: TLS13\n")).expect("loads");
    let server = Server::start(config.tls_acceptor().expect("TLS configured")).await;

    assert!(greet(&server, &client(&authority, None)).await.is_some());
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut tls12_only = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&tokio_rustls::rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_root_certificates(authority.roots())
        .with_no_client_auth();
    tls12_only.resumption = Resumption::disabled();
    assert!(greet(&server, &TlsConnector::from(Arc::new(tls12_only))).await.is_none());
}

#[tokio::test]
async fn a_required_client_certificate_is_verified() {
    let scratch = Scratch::new("client-auth");
    let authority = Authority::new("server CA");
    let clients = Authority::new("client CA");
    install(&scratch, &authority.server());
    scratch.write("clients.crt", &clients.pem);
    let config = format!(
        "{TLS_CONFIG}  client_auth_type: RequireAndVerifyClientCert\n  \
         client_ca_file: clients.crt\n"
    );
    let config = scratch.load(&config).expect("loads");
    let server = Server::start(config.tls_acceptor().expect("TLS configured")).await;

    let scraper = clients.client("scraper.test");
    assert!(greet(&server, &client(&authority, Some(&scraper))).await.is_some());
    assert!(greet(&server, &client(&authority, None)).await.is_none(), "no certificate");
    let impostor = Authority::new("client CA").client("scraper.test");
    assert!(greet(&server, &client(&authority, Some(&impostor))).await.is_none(), "other CA");
}

#[tokio::test]
async fn client_allowed_sans_narrow_the_verified_clients() {
    let scratch = Scratch::new("sans");
    let authority = Authority::new("server CA");
    let clients = Authority::new("client CA");
    install(&scratch, &authority.server());
    scratch.write("clients.crt", &clients.pem);
    let config = format!(
        "{TLS_CONFIG}  client_auth_type: RequireAndVerifyClientCert\n  \
         client_ca_file: clients.crt\n  client_allowed_sans: [prometheus.test]\n"
    );
    let config = scratch.load(&config).expect("loads");
    let server = Server::start(config.tls_acceptor().expect("TLS configured")).await;

    let allowed = clients.client("prometheus.test");
    assert!(greet(&server, &client(&authority, Some(&allowed))).await.is_some());
    let other = clients.client("someone-else.test");
    assert!(greet(&server, &client(&authority, Some(&other))).await.is_none());
}

#[tokio::test]
async fn any_client_certificate_passes_require_any() {
    let scratch = Scratch::new("any-client");
    let authority = Authority::new("server CA");
    install(&scratch, &authority.server());
    let config = format!("{TLS_CONFIG}  client_auth_type: RequireAnyClientCert\n");
    let config = scratch.load(&config).expect("loads");
    let server = Server::start(config.tls_acceptor().expect("TLS configured")).await;

    let unknown = Authority::new("nobody's CA").client("anyone.test");
    assert!(greet(&server, &client(&authority, Some(&unknown))).await.is_some());
    assert!(greet(&server, &client(&authority, None)).await.is_none());
}

/// PKCS#1 RSA and SEC1 EC keys, which rcgen does not write, made with the openssl command.
#[tokio::test]
async fn rsa_and_ec_keys_in_their_traditional_forms_load() {
    let scratch = Scratch::new("key-forms");
    let key_forms = [
        ("rsa", &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..]),
        ("ec", &["ecparam", "-name", "prime256v1", "-genkey", "-noout"][..]),
    ];
    // OpenSSL's own configuration would make a CA certificate, which rustls refuses to serve.
    let leaf_config = scratch.path("leaf.cnf");
    scratch.write("leaf.cnf", LEAF_REQUEST);
    for (name, generate) in key_forms {
        let key = scratch.path(&format!("{name}.key"));
        openssl(generate, &["-out"], &key);
        if name == "rsa" {
            // OpenSSL 3 writes PKCS#8; -traditional turns it into PKCS#1.
            openssl(&["rsa", "-in", path_str(&key), "-traditional"], &["-out"], &key);
        }
        let cert = scratch.path(&format!("{name}.crt"));
        let request = ["req", "-x509", "-config", path_str(&leaf_config), "-key", path_str(&key)];
        openssl(&request, &["-out"], &cert);

        let key_pem = std::fs::read_to_string(&key).expect("key file");
        let label = if name == "rsa" { "RSA PRIVATE KEY" } else { "EC PRIVATE KEY" };
        assert!(key_pem.contains(label), "{name}: {key_pem}");

        let config =
            format!("tls_server_config:\n  cert_file: {name}.crt\n  key_file: {name}.key\n");
        let config = scratch.load(&config).unwrap_or_else(|error| panic!("{name}: {error}"));
        let server = Server::start(config.tls_acceptor().expect("TLS configured")).await;
        let cert_pem = std::fs::read_to_string(&cert).expect("certificate file");
        let trusting = client_trusting(&cert_pem);
        assert!(greet(&server, &trusting).await.is_some(), "{name}");
    }
}

/// An `openssl req` configuration for a self-signed server certificate for localhost.
const LEAF_REQUEST: &str = "[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = leaf\n\
                            [dn]\nCN = localhost\n\
                            [leaf]\nbasicConstraints = critical, CA:FALSE\n\
                            subjectAltName = DNS:localhost\nextendedKeyUsage = serverAuth\n";

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Runs `openssl` with `args`, then `tail` and `output`.
fn openssl(args: &[&str], tail: &[&str], output: &Path) {
    let staged = output.with_extension("tmp");
    let run = Command::new("openssl")
        .args(args)
        .args(tail)
        .arg(&staged)
        .output()
        .expect("the openssl command runs (Debian package openssl)");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "openssl {args:?} failed: {stderr}");
    std::fs::rename(&staged, output).expect("rename openssl output");
}

/// A client that trusts one self-signed certificate.
fn client_trusting(cert_pem: &str) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(der(cert_pem)).expect("self-signed root");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("client versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

fn basic(user: &str, password: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).expect("header value")
}

#[test]
fn basic_auth_passes_only_the_right_password() {
    let scratch = Scratch::new("basic-auth");
    // Cost 4, bcrypt's lowest, keeps the test fast; the toolkit suggests 10.
    let hash = bcrypt::hash("correct horse", 4).expect("hash");
    let config = scratch.load(&format!("basic_auth_users:\n  alice: '{hash}'\n")).expect("loads");
    assert!(config.requires_authorization());
    assert!(config.tls_acceptor().is_none());

    assert!(config.authorize(Some(&basic("alice", "correct horse"))));
    assert!(!config.authorize(Some(&basic("alice", "battery staple"))));
    assert!(!config.authorize(Some(&basic("mallory", "correct horse"))));
    assert!(!config.authorize(None));
    // Answered from the cache the second time, with the same verdict.
    assert!(config.authorize(Some(&basic("alice", "correct horse"))));
}

#[test]
fn without_users_every_request_is_authorized() {
    let scratch = Scratch::new("no-users");
    let config = scratch.load("basic_auth_users: {}\n").expect("loads");
    assert!(!config.requires_authorization());
    assert!(config.authorize(None));
}
