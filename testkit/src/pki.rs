//! Certificates made at run time with `rcgen`, for TLS on loopback: a
//! certificate authority, server certificates it issues (for any names,
//! valid or expired), client certificates for mutual TLS, and the rustls
//! configurations that use them.

use leasehold::rustls::client::Resumption;
use leasehold::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use leasehold::rustls::server::WebPkiClientVerifier;
use leasehold::rustls::{ClientConfig, RootCertStore, ServerConfig};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::sync::Arc;

/// A certificate and its private key, ready for rustls.
#[derive(Debug)]
pub struct Certified {
    /// The certificate, then its issuers up to the root (left out).
    pub chain: Vec<CertificateDer<'static>>,
    /// The certificate's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Certified {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// A certificate authority that issues server and client certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// How long a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// From 2020 to the end of 2099.
    Current,
    /// Valid through 2000 only.
    Expired,
}

impl Authority {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = named(name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("a CA certificate");
        Self {
            issuer: Issuer::new(params, key),
            cert: cert.der().clone(),
        }
    }

    /// The CA certificate.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// A root store that trusts only this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).expect("the CA certificate");
        roots
    }

    /// A server certificate for `names` (DNS names or IP literals).
    pub fn server(&self, names: &[&str], validity: Validity) -> Certified {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server parameters");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, validity)
    }

    /// A client certificate whose common name is `name`.
    pub fn client(&self, name: &str) -> Certified {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params.distinguished_name = named(name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, Validity::Current)
    }

    fn issue(&self, mut params: CertificateParams, validity: Validity) -> Certified {
        let (from, to) = match validity {
            Validity::Current => (date_time_ymd(2020, 1, 1), date_time_ymd(2099, 12, 31)),
            Validity::Expired => (date_time_ymd(2000, 1, 1), date_time_ymd(2001, 1, 1)),
        };
        params.not_before = from;
        params.not_after = to;
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate");
        Certified {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

fn named(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// ring's provider, as `TlsConnector` uses it (rustls deprecates it for its
/// lack of a post-quantum key exchange, which these tests do not need).
#[allow(deprecated)]
fn ring() -> Arc<leasehold::rustls::crypto::CryptoProvider> {
    Arc::new(leasehold::rustls::crypto::ring::default_provider())
}

/// A server configuration presenting `cert`; with `clients`, it asks for a
/// client certificate issued by that CA (and accepts clients without one).
pub fn server_config(cert: &Certified, clients: Option<&Authority>) -> Arc<ServerConfig> {
    configured(cert, clients.map(|ca| (ca, false)))
}

/// A server configuration presenting `cert` that requires a client
/// certificate issued by `clients` and verifies it (mutual TLS).
pub fn server_config_requiring(cert: &Certified, clients: &Authority) -> Arc<ServerConfig> {
    configured(cert, Some((clients, true)))
}

/// `cert`, and a client verifier for the CA given, requiring a certificate
/// if told so.
fn configured(cert: &Certified, clients: Option<(&Authority, bool)>) -> Arc<ServerConfig> {
    let provider = ring();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some((ca, required)) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()), provider);
            let verifier = if required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().expect("a client verifier"))
        }
    };
    let config = builder
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .expect("a server certificate");
    Arc::new(config)
}

/// A client configuration for a TLS client made without the pool (see
/// `connect_tls` in `http_client.rs`), set up as `TlsConnector` sets up
/// its own: ring, the safe default protocol versions, no client
/// certificate, trusting `roots` only, and a session cache of `sessions`
/// (0 turns resumption off, as `TlsBuilder::session_cache(0)` does).
pub fn client_config(roots: RootCertStore, sessions: usize) -> Arc<ClientConfig> {
    let provider = ring();
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = match sessions {
        0 => Resumption::disabled(),
        sessions => Resumption::in_memory_sessions(sessions),
    };
    Arc::new(config)
}
