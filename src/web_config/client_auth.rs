//! Client certificates: the policies of `client_auth_type`, and `client_allowed_sans`.
//!
//! The policies are Go's `tls.ClientAuthType`. Two of them ask for a certificate without
//! verifying it, which rustls has no verifier for; [`UnverifiedClientCert`] is that verifier.
//! It still checks the handshake signature, so the client holds the certificate's key.

use std::net::IpAddr;
use std::sync::Arc;

use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error as TlsError, RootCertStore,
    SignatureScheme,
};

use super::Problem;

/// Go's client authentication policies, by the names the toolkit reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuthType {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuthType {
    pub(super) const NAMES: [&'static str; 5] = [
        "NoClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ];

    pub(super) fn from_name(name: &str) -> Option<ClientAuthType> {
        Some(match name {
            "NoClientCert" => ClientAuthType::NoClientCert,
            "RequestClientCert" => ClientAuthType::RequestClientCert,
            // The toolkit still reads the older name.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuthType::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuthType::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuthType::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    /// Whether every client must present a certificate.
    fn requires_cert(self) -> bool {
        matches!(self, ClientAuthType::RequireAnyClientCert | Self::RequireAndVerifyClientCert)
    }
}

/// The verifier for `auth_type`, checked against the CA and SAN settings beside it.
pub(super) fn verifier(
    auth_type: ClientAuthType,
    roots: Option<Arc<RootCertStore>>,
    allowed_sans: Option<Vec<String>>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, Problem> {
    let key = "tls_server_config.client_auth_type";
    let hints = |roots: &Option<Arc<RootCertStore>>| match roots {
        Some(roots) => roots.subjects(),
        None => Vec::new(),
    };
    let verifier: Arc<dyn ClientCertVerifier> = match auth_type {
        ClientAuthType::NoClientCert if roots.is_some() => {
            let message = "NoClientCert ignores the client CA that the file sets; name the \
                           policy that uses it (RequireAndVerifyClientCert, most likely)";
            return Err(Problem::new(key, message));
        }
        ClientAuthType::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuthType::RequestClientCert | ClientAuthType::RequireAnyClientCert => {
            Arc::new(UnverifiedClientCert {
                mandatory: auth_type.requires_cert(),
                hints: hints(&roots),
                algorithms: provider.signature_verification_algorithms,
            })
        }
        ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert => {
            // NOTE: Go falls back to the system's roots without a client CA; verifying
            // clients against public CAs is never what is meant, so it is an error here.
            let Some(roots) = roots else {
                let message = "this policy verifies client certificates against the client \
                               CA: set client_ca_file (or client_ca)";
                return Err(Problem::new(key, message));
            };
            let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let builder =
                if auth_type.requires_cert() { builder } else { builder.allow_unauthenticated() };
            builder.build().map_err(|error| Problem::new(key, error.to_string()))?
        }
    };

    let Some(allowed) = allowed_sans else {
        return Ok(verifier);
    };
    let key = "tls_server_config.client_allowed_sans";
    if !auth_type.requires_cert() {
        let message = "needs client_auth_type RequireAndVerifyClientCert or \
                       RequireAnyClientCert: with other policies a client may send no \
                       certificate, and so no name to match";
        return Err(Problem::new(key, message));
    }
    if allowed.is_empty() {
        return Err(Problem::new(key, "is empty, which would refuse every client"));
    }
    Ok(Arc::new(AllowedSans { inner: verifier, allowed }))
}

/// Asks for a client certificate and takes any, as Go's `RequestClientCert` and
/// `RequireAnyClientCert` do: the application may inspect it, nothing vouches for it.
#[derive(Debug)]
struct UnverifiedClientCert {
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for UnverifiedClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Lets a client in only if its certificate, once `inner` accepts it, carries a subject
/// alternative name that equals one of `allowed` exactly, as the toolkit matches them.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let names = subject_alt_names(end_entity)
            .ok_or(TlsError::InvalidCertificate(CertificateError::BadEncoding))?;
        if names.iter().any(|name| self.allowed.contains(name)) {
            return Ok(verified);
        }
        tracing::debug!(names = ?names, "client certificate has none of client_allowed_sans");
        Err(TlsError::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The DNS names, e-mail addresses, IP addresses and URIs of a certificate's subject
/// alternative names, written as Go writes them; `None` if the DER is malformed.
///
/// rustls's own parser (webpki) answers only "is this certificate valid for that name",
/// with wildcard matching, where the toolkit compares names as strings. Reading the one
/// extension here keeps that behaviour without a general X.509 parser.
fn subject_alt_names(certificate: &[u8]) -> Option<Vec<String>> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { ... }, ... }
    let (certificate, _) = expect(certificate, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;

    // tbsCertificate's extensions are its only field tagged [3].
    let mut extensions = None;
    while !tbs.is_empty() {
        let (tag, contents, rest) = tlv(tbs)?;
        if tag == EXTENSIONS {
            extensions = Some(expect(contents, SEQUENCE)?.0);
        }
        tbs = rest;
    }

    // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTETS }
    let mut names = Vec::new();
    let mut extensions = extensions.unwrap_or_default();
    while !extensions.is_empty() {
        let (extension, rest) = expect(extensions, SEQUENCE)?;
        extensions = rest;
        let (oid, mut fields) = expect(extension, OID)?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        if fields.first() == Some(&BOOLEAN) {
            fields = tlv(fields)?.2;
        }
        let (value, _) = expect(fields, OCTET_STRING)?;
        let (mut general_names, _) = expect(value, SEQUENCE)?;
        while !general_names.is_empty() {
            let (tag, contents, rest) = tlv(general_names)?;
            general_names = rest;
            match tag {
                RFC822_NAME | DNS_NAME | URI => {
                    names.push(std::str::from_utf8(contents).ok()?.to_owned());
                }
                IP_ADDRESS => names.push(ip_address(contents)?),
                _ => {}
            }
        }
    }
    Some(names)
}

const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
/// `[3] EXPLICIT`, constructed.
const EXTENSIONS: u8 = 0xa3;
/// `id-ce-subjectAltName`, 2.5.29.17, as encoded.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// GeneralName's `[1]`, `[2]`, `[6]` and `[7]` IMPLICIT, primitive.
const RFC822_NAME: u8 = 0x81;
const DNS_NAME: u8 = 0x82;
const URI: u8 = 0x86;
const IP_ADDRESS: u8 = 0x87;

/// Go writes an IPv4 address in IPv6 form as plain IPv4; Rust would not.
fn ip_address(octets: &[u8]) -> Option<String> {
    let address = match octets.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(octets).ok()?),
        16 => {
            let address = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(octets).ok()?);
            address.to_ipv4_mapped().map_or(IpAddr::V6(address), IpAddr::V4)
        }
        _ => return None,
    };
    Some(address.to_string())
}

/// The contents of a TLV that must carry `tag`, and what follows it.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = tlv(input)?;
    (found == tag).then_some((contents, rest))
}

/// One DER tag-length-value: its tag, its contents, and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    // High tag numbers never occur in the structures read here.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, input) = input.split_first()?;
    let (length, input) = if first < 0x80 {
        (usize::from(first), input)
    } else {
        // Long form: the low bits count the length's bytes; four cover any certificate.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, input) = input.split_at(count);
        let length = bytes.iter().fold(0usize, |length, &byte| length << 8 | usize::from(byte));
        (length, input)
    };
    if input.len() < length {
        return None;
    }
    let (contents, rest) = input.split_at(length);
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{CertificateParams, KeyPair, SanType};

    fn certificate(sans: Vec<SanType>) -> Vec<u8> {
        let key = KeyPair::generate().expect("key pair");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = sans;
        params.self_signed(&key).expect("certificate").der().to_vec()
    }

    #[test]
    fn every_kind_of_name_is_read_as_go_writes_it() {
        let mapped: std::net::Ipv6Addr = "::ffff:192.0.2.7".parse().expect("address");
        let sans = vec![
            SanType::DnsName("scraper.example".try_into().expect("DNS name")),
            SanType::Rfc822Name("ops@example.org".try_into().expect("e-mail")),
            SanType::URI("spiffe://example.org/prometheus".try_into().expect("URI")),
            SanType::IpAddress("192.0.2.1".parse().expect("address")),
            SanType::IpAddress("2001:db8::1".parse().expect("address")),
            SanType::IpAddress(IpAddr::V6(mapped)),
        ];
        let names = subject_alt_names(&certificate(sans)).expect("parses");
        assert_eq!(
            names,
            [
                "scraper.example",
                "ops@example.org",
                "spiffe://example.org/prometheus",
                "192.0.2.1",
                "2001:db8::1",
                "192.0.2.7",
            ]
        );
    }

    #[test]
    fn a_certificate_without_the_extension_has_no_names() {
        assert_eq!(subject_alt_names(&certificate(Vec::new())), Some(Vec::new()));
    }

    #[test]
    fn malformed_der_is_refused_not_misread() {
        let der = certificate(vec![SanType::DnsName("a.example".try_into().expect("name"))]);
        for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
            assert_eq!(subject_alt_names(&der[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn policies_without_their_settings_are_refused() {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let any_ca = Some(Arc::new(RootCertStore::empty()));
        let sans = Some(vec!["a.example".to_owned()]);
        let cases = [
            (ClientAuthType::NoClientCert, any_ca.clone(), None, "client_auth_type"),
            (ClientAuthType::RequireAndVerifyClientCert, None, None, "client_auth_type"),
            (ClientAuthType::VerifyClientCertIfGiven, None, None, "client_auth_type"),
            (ClientAuthType::RequestClientCert, None, sans.clone(), "client_allowed_sans"),
            (ClientAuthType::RequireAnyClientCert, None, Some(Vec::new()), "client_allowed_sans"),
        ];
        for (auth_type, roots, sans, key) in cases {
            let problem =
                verifier(auth_type, roots, sans, &provider).expect_err(&format!("{auth_type:?}"));
            assert_eq!(problem.key, format!("tls_server_config.{key}"), "{auth_type:?}");
        }
        assert!(verifier(ClientAuthType::RequireAnyClientCert, None, sans, &provider).is_ok());
    }
}
