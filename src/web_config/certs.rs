//! The server's certificate and key: PEM loading, and reloading when their files change.
//!
//! PEM is parsed with `rustls-pki-types` (reached through rustls), which reads certificate
//! chains and PKCS#8, PKCS#1 RSA and SEC1 EC keys alike. `rustls-pemfile` did the same but is
//! no longer maintained: its authors moved the code into `rustls-pki-types`.
//!
//! Certificates get renewed in place (certbot, cert-manager, a cron job), and Go exporters pick
//! the new ones up on the next connection. [`ReloadingResolver`] does too: on a handshake, at
//! most once per [`RELOAD_CHECK_INTERVAL`], it compares the files' metadata with what it
//! loaded, and reads them again only when that changed.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{Error as TlsError, InconsistentKeys};

use super::Problem;

/// How often, at most, handshakes look at the certificate files' metadata.
pub(super) const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Where one PEM item comes from, with the key of the file that says so.
pub(super) enum PemSource {
    File { key: &'static str, path: PathBuf },
    Inline { key: &'static str, text: String },
}

impl PemSource {
    /// The dotted key of the file that names this item, for error messages.
    pub(super) fn key_path(&self) -> String {
        let (PemSource::File { key, .. } | PemSource::Inline { key, .. }) = self;
        format!("tls_server_config.{key}")
    }

    fn read(&self) -> Result<Vec<u8>, Problem> {
        match self {
            PemSource::File { path, .. } => std::fs::read(path).map_err(|error| {
                Problem::new(self.key_path(), format!("cannot read {}: {error}", path.display()))
            }),
            PemSource::Inline { text, .. } => Ok(text.clone().into_bytes()),
        }
    }

    /// What identifies this version of the file; `None` for inline text, which never changes.
    fn fingerprint(&self) -> Option<Fingerprint> {
        match self {
            PemSource::File { path, .. } => Some(Fingerprint::of(path)),
            PemSource::Inline { .. } => None,
        }
    }
}

/// Names the item in messages: the file's path, or the inline key.
impl fmt::Display for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File { path, .. } => write!(f, "{}", path.display()),
            PemSource::Inline { key, .. } => write!(f, "the inline {key}"),
        }
    }
}

/// Every certificate of a PEM item, in order; at least one.
pub(super) fn certificates(source: &PemSource) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let text = source.read()?;
    let certificates = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|error| Problem::new(source.key_path(), format!("{source}: {error}")))?;
    if certificates.is_empty() {
        let message = format!("{source} holds no PEM certificate");
        return Err(Problem::new(source.key_path(), message));
    }
    Ok(certificates)
}

/// The first private key of a PEM item.
fn private_key(source: &PemSource) -> Result<PrivateKeyDer<'static>, Problem> {
    let text = source.read()?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|error| {
        let message = match error {
            pem::Error::NoItemsFound => {
                format!("{source} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)")
            }
            error => format!("{source}: {error}"),
        };
        Problem::new(source.key_path(), message)
    })
}

/// The certificate chain with its key, checked to belong together.
fn certified_key(
    cert: &PemSource,
    key: &PemSource,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, Problem> {
    let chain = certificates(cert)?;
    let private_key = private_key(key)?;
    CertifiedKey::from_der(chain, private_key, provider).map_err(|error| {
        let message = match error {
            TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
                format!("the key in {key} is not the key of the certificate in {cert}")
            }
            error => format!("{key}: {error}"),
        };
        Problem::new(key.key_path(), message)
    })
}

/// What changes when a file is rewritten or replaced: size, times, and the inode that a
/// rename-into-place swaps. A stat that fails is kept as its error kind, so that a file
/// that disappears counts as a change, and one that stays missing does not count again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fingerprint {
    Present { len: u64, modified: Option<SystemTime>, changed: (i64, i64), inode: (u64, u64) },
    Missing(std::io::ErrorKind),
}

impl Fingerprint {
    fn of(path: &std::path::Path) -> Fingerprint {
        match std::fs::metadata(path) {
            Ok(metadata) => Fingerprint::Present {
                len: metadata.len(),
                modified: metadata.modified().ok(),
                changed: (metadata.ctime(), metadata.ctime_nsec()),
                inode: (metadata.dev(), metadata.ino()),
            },
            Err(error) => Fingerprint::Missing(error.kind()),
        }
    }
}

/// The fingerprints of the certificate and key files, together.
type Fingerprints = (Option<Fingerprint>, Option<Fingerprint>);

/// Serves the certificate of `cert_file` and `key_file`, reloading them when they change.
pub(super) struct ReloadingResolver {
    cert: PemSource,
    key: PemSource,
    provider: Arc<CryptoProvider>,
    check_interval: Duration,
    state: Mutex<State>,
}

struct State {
    current: Arc<CertifiedKey>,
    /// The files as they were when `current` was read from them.
    loaded: Fingerprints,
    /// The files as they were when reading them last failed, so the failure is logged once.
    failed: Option<Fingerprints>,
    last_check: Instant,
}

/// What one look at the files found; returned for the tests' sake.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Check {
    NotDue,
    Unchanged,
    Reloaded,
    /// The files changed but cannot be used; `first` is whether this is news.
    Failed {
        first: bool,
    },
}

impl ReloadingResolver {
    /// Loads the certificate once; failing here stops the exporter at start.
    pub(super) fn new(
        cert: PemSource,
        key: PemSource,
        provider: Arc<CryptoProvider>,
    ) -> Result<ReloadingResolver, Problem> {
        // Fingerprint first: a change while reading shows as a change at the next check.
        let loaded = (cert.fingerprint(), key.fingerprint());
        let current = Arc::new(certified_key(&cert, &key, &provider)?);
        let state = State { current, loaded, failed: None, last_check: Instant::now() };
        Ok(ReloadingResolver {
            cert,
            key,
            provider,
            check_interval: RELOAD_CHECK_INTERVAL,
            state: Mutex::new(state),
        })
    }

    /// Looks at the files when a check is due, and reloads them if they changed.
    pub(super) fn check(&self, now: Instant) -> Check {
        // A panic elsewhere while holding the lock leaves a state that is still whole.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(state.last_check) < self.check_interval {
            return Check::NotDue;
        }
        state.last_check = now;

        let seen = (self.cert.fingerprint(), self.key.fingerprint());
        if seen == state.loaded {
            state.failed = None;
            return Check::Unchanged;
        }
        if state.failed.as_ref() == Some(&seen) {
            return Check::Failed { first: false };
        }

        // The files changed: read them again, keeping the old certificate if they are broken
        // (a renewal caught half-written, a key not yet replaced beside its certificate).
        match certified_key(&self.cert, &self.key, &self.provider) {
            Ok(certified) => {
                state.current = Arc::new(certified);
                state.loaded = seen;
                state.failed = None;
                tracing::info!(cert = %self.cert, key = %self.key, "reloaded the TLS certificate");
                Check::Reloaded
            }
            Err(problem) => {
                state.failed = Some(seen);
                tracing::warn!(
                    setting = %problem.key,
                    error = %problem.message,
                    "the replaced TLS certificate cannot be used; serving the previous one"
                );
                Check::Failed { first: true }
            }
        }
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).current.clone()
    }
}

impl ResolvesServerCert for ReloadingResolver {
    /// Runs inside the handshake, on the runtime's thread: the check is two `stat` calls at
    /// most once a second, and the files are read only when those show a change.
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.check(Instant::now());
        Some(self.current())
    }
}

/// Names the files only: the key itself must never be printed.
impl fmt::Debug for ReloadingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cert = self.cert.to_string();
        let key = self.key.to_string();
        f.debug_struct("ReloadingResolver").field("cert", &cert).field("key", &key).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own under the system's temporary one, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let path =
                std::env::temp_dir().join(format!("die-certs-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("scratch directory");
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key pair");
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("self-signed certificate");
        (cert.pem(), key.serialize_pem())
    }

    fn sources(scratch: &Scratch) -> (PemSource, PemSource) {
        let cert = PemSource::File { key: "cert_file", path: scratch.0.join("server.crt") };
        let key = PemSource::File { key: "key_file", path: scratch.0.join("server.key") };
        (cert, key)
    }

    /// Replaces a file the way renewals do, by renaming a new one over it: that changes its
    /// inode, where a rewrite in place within one clock tick might change nothing visible.
    fn replace(scratch: &Scratch, name: &str, contents: &str) {
        let staged = scratch.0.join(format!("{name}.new"));
        std::fs::write(&staged, contents).expect("write staged file");
        std::fs::rename(&staged, scratch.0.join(name)).expect("rename staged file");
    }

    fn write(scratch: &Scratch, (cert, key): &(String, String)) {
        replace(scratch, "server.crt", cert);
        replace(scratch, "server.key", key);
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
    }

    #[test]
    fn a_replacement_is_loaded_and_a_broken_one_reported_once() {
        let scratch = Scratch::new("reload");
        let first = self_signed("first.test");
        write(&scratch, &first);
        let (cert, key) = sources(&scratch);
        let mut resolver = ReloadingResolver::new(cert, key, provider()).expect("loads");
        resolver.check_interval = Duration::ZERO;
        let served = |resolver: &ReloadingResolver| resolver.current().cert[0].clone();
        let original = served(&resolver);
        assert_eq!(resolver.check(Instant::now()), Check::Unchanged);

        // A new pair is served from the next check on.
        write(&scratch, &self_signed("second.test"));
        assert_eq!(resolver.check(Instant::now()), Check::Reloaded);
        let renewed = served(&resolver);
        assert_ne!(renewed, original);

        // A certificate without its key is refused once, then left alone until it changes.
        replace(&scratch, "server.crt", &first.0);
        assert_eq!(resolver.check(Instant::now()), Check::Failed { first: true });
        assert_eq!(resolver.check(Instant::now()), Check::Failed { first: false });
        assert_eq!(served(&resolver), renewed);

        // Its key arriving completes the pair.
        replace(&scratch, "server.key", &first.1);
        assert_eq!(resolver.check(Instant::now()), Check::Reloaded);
        assert_eq!(served(&resolver), original);
    }

    #[test]
    fn checks_wait_for_the_interval() {
        let scratch = Scratch::new("interval");
        write(&scratch, &self_signed("interval.test"));
        let (cert, key) = sources(&scratch);
        let resolver = ReloadingResolver::new(cert, key, provider()).expect("loads");
        let start = Instant::now();
        assert_eq!(resolver.check(start), Check::NotDue);
        assert_eq!(resolver.check(start + RELOAD_CHECK_INTERVAL), Check::Unchanged);
    }

    #[test]
    fn load_errors_name_the_setting_and_the_file() {
        let scratch = Scratch::new("errors");
        let (cert, key) = sources(&scratch);
        let problem = ReloadingResolver::new(cert, key, provider()).expect_err("no files");
        assert_eq!(problem.key, "tls_server_config.cert_file");
        assert!(problem.message.contains("server.crt"), "{}", problem.message);

        let (cert_pem, _) = self_signed("errors.test");
        std::fs::write(scratch.0.join("server.crt"), &cert_pem).expect("write certificate");
        std::fs::write(scratch.0.join("server.key"), &cert_pem).expect("write key");
        let (cert, key) = sources(&scratch);
        let problem = ReloadingResolver::new(cert, key, provider()).expect_err("no key");
        assert_eq!(problem.key, "tls_server_config.key_file");
        assert!(problem.message.contains("no PEM private key"), "{}", problem.message);

        let (_, other_key) = self_signed("other.test");
        std::fs::write(scratch.0.join("server.key"), other_key).expect("write key");
        let (cert, key) = sources(&scratch);
        let problem = ReloadingResolver::new(cert, key, provider()).expect_err("mismatch");
        assert!(problem.message.contains("is not the key of"), "{}", problem.message);
    }
}
