//! `tls_server_config`: the rustls server configuration the section describes.
//!
//! rustls runs on its `ring` provider: it builds with the C compiler every Rust toolchain
//! host has, where the default `aws-lc-rs` provider wants CMake and more. What ring lacks
//! (TLS 1.0 and 1.1, CBC and RSA key-exchange suites, the P-521 curve) is refused by name at
//! load time rather than left out of the handshake unannounced.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider, SupportedKxGroup};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::{
    version, NamedGroup, RootCertStore, ServerConfig, SupportedCipherSuite,
    SupportedProtocolVersion,
};

use super::certs::{self, PemSource, ReloadingResolver};
use super::client_auth::{self, ClientAuthType};
use super::{resolve_path, Problem};

/// The section as written. Every field is optional here: which ones must be present, and
/// together with which, is checked in [`TlsSection::into_server_config`].
// NOTE: no Debug, so that an inline private key can never reach a log line.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsSection {
    cert: Option<String>,
    key: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

/// The protocol versions a file can name; the toolkit's TLS10 and TLS11 are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    Tls12,
    Tls13,
}

/// TLS 1.3's suites under the names Go gives them. Go never lets `cipher_suites` choose among
/// them, and neither does this exporter: TLS 1.3 always offers all three.
const TLS13_SUITE_NAMES: [&str; 3] =
    ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

/// The toolkit's curve names, and the group each stands for.
const CURVES: [(&str, NamedGroup); 4] = [
    ("X25519", NamedGroup::X25519),
    ("CurveP256", NamedGroup::secp256r1),
    ("CurveP384", NamedGroup::secp384r1),
    ("CurveP521", NamedGroup::secp521r1),
];

impl TlsSection {
    /// The server configuration, or `None` when the section sets nothing at all (the toolkit
    /// then serves plain HTTP too). Certificate files are read here, so that a missing or
    /// broken one stops the exporter at start.
    pub(super) fn into_server_config(
        self,
        directory: &Path,
    ) -> Result<Option<Arc<ServerConfig>>, Problem> {
        let section = self.without_blanks();
        if section.is_unset() {
            return Ok(None);
        }

        // The certificate and its key, each from a file or inline, never both.
        let cert = pem_source(directory, section.cert_file, section.cert, "cert_file", "cert")?;
        let key = pem_source(directory, section.key_file, section.key, "key_file", "key")?;
        let (Some(cert), Some(key)) = (cert, key) else {
            return Err(Problem::new(
                "tls_server_config",
                "TLS needs a certificate and its key: set cert_file and key_file (or cert and key)",
            ));
        };
        let provider = Arc::new(provider(
            section.cipher_suites.unwrap_or_default(),
            section.curve_preferences.unwrap_or_default(),
        )?);
        let resolver = ReloadingResolver::new(cert, key, provider.clone())?;

        // The protocol versions, TLS 1.2 up to TLS 1.3 unless narrowed.
        let min = version("min_version", section.min_version.as_deref(), Version::Tls12)?;
        let max = version("max_version", section.max_version.as_deref(), Version::Tls13)?;
        if min > max {
            return Err(Problem::new("tls_server_config.min_version", "is above max_version"));
        }
        let versions: Vec<&'static SupportedProtocolVersion> =
            [(Version::Tls12, &version::TLS12), (Version::Tls13, &version::TLS13)]
                .into_iter()
                .filter(|(version, _)| (min..=max).contains(version))
                .map(|(_, supported)| supported)
                .collect();

        let verifier = client_verifier(
            directory,
            section.client_auth_type.as_deref(),
            section.client_ca_file,
            section.client_ca,
            section.client_allowed_sans,
            &provider,
        )?;

        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|error| Problem::new("tls_server_config", error.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(resolver));
        // The toolkit's default is the server's order, which `cipher_suites` sets.
        config.ignore_client_order = section.prefer_server_cipher_suites.unwrap_or(true);
        // The server speaks HTTP/1.1 only; say so to clients that ask.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }

    /// Go reads a blank string as an absent one; so does this exporter.
    fn without_blanks(self) -> TlsSection {
        let given = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
        TlsSection {
            cert: given(self.cert),
            key: given(self.key),
            cert_file: given(self.cert_file),
            key_file: given(self.key_file),
            client_auth_type: given(self.client_auth_type),
            client_ca: given(self.client_ca),
            client_ca_file: given(self.client_ca_file),
            min_version: given(self.min_version),
            max_version: given(self.max_version),
            ..self
        }
    }

    /// Whether the section sets nothing. Any setting at all asks for TLS: the toolkit would
    /// serve plain HTTP when, say, only `min_version` is set, which is not what its writer
    /// meant, so here that is an error for a missing certificate instead.
    fn is_unset(&self) -> bool {
        let strings = [
            &self.cert,
            &self.key,
            &self.cert_file,
            &self.key_file,
            &self.client_auth_type,
            &self.client_ca,
            &self.client_ca_file,
            &self.min_version,
            &self.max_version,
        ];
        strings.iter().all(|value| value.is_none())
            && self.client_allowed_sans.is_none()
            && self.cipher_suites.is_none()
            && self.prefer_server_cipher_suites.is_none()
            && self.curve_preferences.is_none()
    }
}

/// Where a PEM item comes from: `file_key` names a path, `inline_key` holds the text itself.
fn pem_source(
    directory: &Path,
    file: Option<String>,
    inline: Option<String>,
    file_key: &'static str,
    inline_key: &'static str,
) -> Result<Option<PemSource>, Problem> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(Problem::new(
            format!("tls_server_config.{inline_key}"),
            format!("set either {file_key} or {inline_key}, not both"),
        )),
        (Some(path), None) => {
            Ok(Some(PemSource::File { key: file_key, path: resolve_path(directory, &path) }))
        }
        (None, Some(text)) => Ok(Some(PemSource::Inline { key: inline_key, text })),
        (None, None) => Ok(None),
    }
}

fn version(key: &str, value: Option<&str>, default: Version) -> Result<Version, Problem> {
    let key = format!("tls_server_config.{key}");
    match value {
        None => Ok(default),
        Some("TLS12") => Ok(Version::Tls12),
        Some("TLS13") => Ok(Version::Tls13),
        Some(old @ ("TLS10" | "TLS11")) => Err(Problem::new(
            key,
            format!("{old} is not supported (rustls speaks TLS 1.2 and TLS 1.3): use TLS12"),
        )),
        Some(other) => {
            Err(Problem::new(key, format!("unknown TLS version {other:?}: use TLS12 or TLS13")))
        }
    }
}

/// ring's provider, narrowed to the cipher suites and curves the file names, in its order.
/// An empty list keeps the provider's defaults, as Go keeps its own.
fn provider(suites: Vec<String>, curves: Vec<String>) -> Result<CryptoProvider, Problem> {
    let mut provider = ring::default_provider();
    if !suites.is_empty() {
        provider.cipher_suites = cipher_suites(&suites, &provider.cipher_suites)?;
    }
    if !curves.is_empty() {
        provider.kx_groups = kx_groups(&curves, &provider.kx_groups)?;
    }
    Ok(provider)
}

/// TLS 1.3's suites, then the TLS 1.2 suites that `names` lists, in its order.
fn cipher_suites(
    names: &[String],
    available: &[SupportedCipherSuite],
) -> Result<Vec<SupportedCipherSuite>, Problem> {
    let key = "tls_server_config.cipher_suites";
    let is_tls12 = |suite: &SupportedCipherSuite| matches!(suite, SupportedCipherSuite::Tls12(_));
    let mut chosen: Vec<SupportedCipherSuite> =
        available.iter().filter(|suite| !is_tls12(suite)).copied().collect();
    let tls12: Vec<&SupportedCipherSuite> = available.iter().filter(|s| is_tls12(s)).collect();

    for name in names {
        if TLS13_SUITE_NAMES.contains(&name.as_str()) {
            let message = format!(
                "{name} is a TLS 1.3 suite, which the list cannot choose: TLS 1.3 always \
                 offers all of its suites; remove it"
            );
            return Err(Problem::new(key, message));
        }
        // rustls names its suites as IANA and Go do.
        let Some(suite) = tls12.iter().find(|suite| suite.suite().as_str() == Some(name)) else {
            let names: Vec<&str> = tls12.iter().filter_map(|s| s.suite().as_str()).collect();
            let message =
                format!("{name} is not available; the TLS 1.2 suites are {}", names.join(", "));
            return Err(Problem::new(key, message));
        };
        if !chosen.contains(suite) {
            chosen.push(**suite);
        }
    }
    Ok(chosen)
}

/// The key-exchange groups that `names` lists, in its order.
fn kx_groups(
    names: &[String],
    available: &[&'static dyn SupportedKxGroup],
) -> Result<Vec<&'static dyn SupportedKxGroup>, Problem> {
    let key = "tls_server_config.curve_preferences";
    let mut chosen: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for name in names {
        let curve = CURVES.iter().find(|(known, _)| known == name);
        let group = curve.and_then(|(_, named)| available.iter().find(|g| g.name() == *named));
        let Some(group) = group else {
            let offered: Vec<&str> = (CURVES.iter())
                .filter(|(_, named)| available.iter().any(|g| g.name() == *named))
                .map(|(name, _)| *name)
                .collect();
            let what = if curve.is_some() { "is not available" } else { "is not a curve" };
            let message = format!("{name} {what}; the curves are {}", offered.join(", "));
            return Err(Problem::new(key, message));
        };
        if !chosen.iter().any(|known| known.name() == group.name()) {
            chosen.push(*group);
        }
    }
    Ok(chosen)
}

/// The client-certificate policy of `client_auth_type`, with its CA and SAN list.
fn client_verifier(
    directory: &Path,
    auth_type: Option<&str>,
    ca_file: Option<String>,
    ca_inline: Option<String>,
    allowed_sans: Option<Vec<String>>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, Problem> {
    let auth_type = match auth_type {
        None => ClientAuthType::NoClientCert,
        Some(name) => ClientAuthType::from_name(name).ok_or_else(|| {
            let names = ClientAuthType::NAMES.join(", ");
            let message = format!("unknown policy {name:?}; the policies are {names}");
            Problem::new("tls_server_config.client_auth_type", message)
        })?,
    };
    let source = pem_source(directory, ca_file, ca_inline, "client_ca_file", "client_ca")?;
    let roots = match source {
        Some(source) => Some(Arc::new(root_store(&source)?)),
        None => None,
    };
    client_auth::verifier(auth_type, roots, allowed_sans, provider)
}

/// Every certificate of the CA file, as trust anchors.
fn root_store(source: &PemSource) -> Result<RootCertStore, Problem> {
    let mut store = RootCertStore::empty();
    for (index, certificate) in certs::certificates(source)?.into_iter().enumerate() {
        store.add(certificate).map_err(|error| {
            let message =
                format!("certificate {} of {source} is not a usable CA: {error}", index + 1);
            Problem::new(source.key_path(), message)
        })?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn versions_are_named_as_the_toolkit_names_them() {
        assert_eq!(version("min_version", None, Version::Tls12).ok(), Some(Version::Tls12));
        assert_eq!(
            version("max_version", Some("TLS13"), Version::Tls12).ok(),
            Some(Version::Tls13)
        );
        let old = version("min_version", Some("TLS11"), Version::Tls12).expect_err("TLS 1.1");
        assert_eq!(old.key, "tls_server_config.min_version");
        assert!(old.message.contains("not supported"), "{}", old.message);
        assert!(version("min_version", Some("tls12"), Version::Tls12).is_err());
    }

    #[test]
    fn chosen_suites_keep_tls13_and_the_listed_order() {
        let available = ring::default_provider().cipher_suites;
        let wanted = names(&[
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ]);
        let chosen = cipher_suites(&wanted, &available).expect("known suites");
        let chosen: Vec<&str> = chosen.iter().filter_map(|s| s.suite().as_str()).collect();
        assert_eq!(chosen.len(), 5, "{chosen:?}");
        assert!(chosen[..3].iter().all(|name| name.starts_with("TLS13_")), "{chosen:?}");
        assert_eq!(&chosen[3..], &wanted[..]);
    }

    #[test]
    fn suites_rustls_lacks_are_refused_by_name() {
        let available = ring::default_provider().cipher_suites;
        for name in ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", "TLS_NOPE"] {
            let problem = cipher_suites(&names(&[name]), &available).expect_err(name);
            assert_eq!(problem.key, "tls_server_config.cipher_suites");
            assert!(problem.message.starts_with(name), "{}", problem.message);
        }
    }

    #[test]
    fn curves_follow_the_listed_order_and_p521_is_refused() {
        let available = ring::default_provider().kx_groups;
        let chosen = kx_groups(&names(&["CurveP384", "X25519"]), &available).expect("curves");
        let chosen: Vec<NamedGroup> = chosen.iter().map(|group| group.name()).collect();
        assert_eq!(chosen, [NamedGroup::secp384r1, NamedGroup::X25519]);

        let problem = kx_groups(&names(&["CurveP521"]), &available).expect_err("P-521");
        assert!(problem.message.contains("is not available"), "{}", problem.message);
        let problem = kx_groups(&names(&["P256"]), &available).expect_err("not a curve");
        assert!(problem.message.contains("is not a curve"), "{}", problem.message);
    }
}
