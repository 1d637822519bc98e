//! The endpoint's TLS identity (RFC 3261 section 26.2, RFC 5630): the certificate chain and
//! private key it serves, loaded from PEM files, and the rustls configuration built from them.
//!
//! TLS here is hop by hop: it protects the connection to the next hop, as `sips:` asks, and
//! the endpoint asks no certificate of its clients (phones authenticate with digest). The
//! crypto provider is rustls' `ring` one, named explicitly rather than taken from the
//! process default, which rustls cannot pick (and panics) once a second provider is compiled
//! into the binary by some other crate.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS identity could not be loaded or served. The identity in use, if any, stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read: it is missing, or not readable by this process.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// A file has a PEM section that cannot be decoded (a missing END line, bad base64).
    #[error("{} is not valid PEM", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        #[source]
        source: pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("no certificate in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A chain given as DER is empty.
    #[error("the certificate chain is empty")]
    EmptyChain,
    /// The key file holds no private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[error("no private key in {}", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is of a kind the crypto provider cannot sign with, or is corrupt.
    #[error("unusable private key")]
    UnsupportedKey(#[source] rustls::Error),
    /// The first certificate of the chain cannot be parsed.
    #[error("unusable certificate")]
    BadCertificate(#[source] rustls::Error),
    /// The private key is not the one the first certificate of the chain was issued for.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// rustls refused the server configuration.
    #[error("TLS configuration refused")]
    Config(#[source] rustls::Error),
    /// TLS addresses were configured without an identity to serve on them.
    #[error("TLS listeners need a certificate and a private key")]
    NoIdentity,
    /// A reload was asked of an endpoint that listens on no TLS address.
    #[error("the endpoint has no TLS listener")]
    NotListening,
    /// A certificate given as a trust anchor cannot be one (not a CA certificate rustls can
    /// read).
    #[error("{} holds a certificate that cannot be a trust anchor", path.display())]
    BadAnchor {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
}

/// A certificate chain and the private key of its first certificate, checked to belong
/// together. Cloning it is cheap.
#[derive(Clone)]
pub struct TlsIdentity {
    certified: Arc<CertifiedKey>,
}

/// Short, for configuration dumps: how many certificates, and the key's algorithm (never
/// the key, and not kilobytes of DER).
impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("certificates", &self.certified.cert.len())
            .field("key", &self.certified.key.algorithm())
            .finish()
    }
}

impl TlsIdentity {
    /// Loads the chain (end-entity certificate first, then intermediates) from `cert` and the
    /// private key from `key`, both PEM; they may be the same file. Reads both files
    /// synchronously (they are small).
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsIdentity, TlsError> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let pem_error = |path: &Path| {
            let path = path.to_owned();
            move |source| TlsError::Pem { path, source }
        };
        let chain = CertificateDer::pem_slice_iter(&read(cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error(cert))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert.to_owned(),
            });
        }
        let private = match PrivateKeyDer::from_pem_slice(&read(key)?) {
            Ok(k) => k,
            Err(pem::Error::NoItemsFound) => {
                return Err(TlsError::NoPrivateKey {
                    path: key.to_owned(),
                });
            }
            Err(e) => return Err(pem_error(key)(e)),
        };
        TlsIdentity::from_der(chain, private)
    }

    /// An identity from DER: the chain, end-entity certificate first, and its private key.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsIdentity, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::EmptyChain);
        }
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(TlsError::UnsupportedKey)?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            // A key that cannot tell its public half is let through, as rustls itself does:
            // the handshake would fail visibly rather than serve the wrong certificate.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => return Err(TlsError::KeyMismatch),
            Err(e) => return Err(TlsError::BadCertificate(e)),
        }
        Ok(TlsIdentity {
            certified: Arc::new(certified),
        })
    }

    /// The certificates served, end-entity certificate first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.certified.cert
    }

    /// The rustls configuration that serves this identity to new connections.
    pub(crate) fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(self.certified.clone())));
        Ok(Arc::new(config))
    }
}

/// Whom the endpoint trusts when it opens a TLS connection (to a trunk, or to a peer a
/// request is sent to): Mozilla's root certificates, compiled in, and any anchors added from
/// files (a carrier's private CA, a test's own). The peer's certificate must name the host
/// of the URI the request goes to (RFC 5922 section 7.2), which the endpoint checks.
#[derive(Clone)]
pub struct TlsTrust {
    roots: Arc<rustls::RootCertStore>,
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust")
            .field("anchors", &self.roots.len())
            .finish()
    }
}

impl Default for TlsTrust {
    /// Mozilla's roots.
    fn default() -> TlsTrust {
        TlsTrust::mozilla()
    }
}

impl TlsTrust {
    /// Mozilla's root certificates (the `webpki-roots` crate).
    pub fn mozilla() -> TlsTrust {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        TlsTrust {
            roots: Arc::new(roots),
        }
    }

    /// Trusts nothing yet: build up with [`TlsTrust::add_pem_file`] or [`TlsTrust::add_der`].
    pub fn empty() -> TlsTrust {
        TlsTrust {
            roots: Arc::new(rustls::RootCertStore::empty()),
        }
    }

    /// Adds every certificate in a PEM file as a trust anchor.
    pub fn add_pem_file(mut self, path: impl AsRef<Path>) -> Result<TlsTrust, TlsError> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let certs = CertificateDer::pem_slice_iter(&text)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                path: path.to_owned(),
                source,
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                path: path.to_owned(),
            });
        }
        let roots = Arc::make_mut(&mut self.roots);
        for cert in certs {
            roots.add(cert).map_err(|source| TlsError::BadAnchor {
                path: path.to_owned(),
                source,
            })?;
        }
        Ok(self)
    }

    /// Adds one certificate (DER) as a trust anchor.
    pub fn add_der(mut self, cert: CertificateDer<'_>) -> Result<TlsTrust, rustls::Error> {
        Arc::make_mut(&mut self.roots).add(cert)?;
        Ok(self)
    }

    /// How many anchors are trusted.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether no anchor is trusted (every TLS connection the endpoint opens would fail).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The rustls configuration for connections the endpoint opens: no client certificate.
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// rustls' `ring` provider. rustls 0.23.48 deprecated it for lacking post-quantum key
/// exchange (X25519MLKEM768), which only its aws-lc-rs provider has; aws-lc-rs is a large C
/// build (cmake for some targets), and SIP phones and trunks do not offer ML-KEM today. Move
/// to aws-lc-rs, here and in `Cargo.toml`, when that weighs less than the build.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        _dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
        other_key: PathBuf,
        garbled: PathBuf,
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let one = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let two = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("written");
            path
        };
        let cert = write("cert.pem", &one.cert.pem());
        let key = write("key.pem", &one.signing_key.serialize_pem());
        let other_key = write("other.pem", &two.signing_key.serialize_pem());
        let garbled = write(
            "garbled.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n",
        );
        Files {
            _dir: dir,
            cert,
            key,
            other_key,
            garbled,
        }
    }

    #[test]
    fn a_matching_pair_loads_and_builds_a_server_config() {
        let f = files();
        let identity = TlsIdentity::from_pem_files(&f.cert, &f.key).expect("loads");
        assert_eq!(identity.chain().len(), 1);
        assert_eq!(
            format!("{identity:?}"),
            "TlsIdentity { certificates: 1, key: ECDSA }"
        );
        identity.server_config().expect("a configuration");
        // One file holding both works too.
        let both = f.cert.with_file_name("both.pem");
        let text = [
            std::fs::read_to_string(&f.cert).expect("read"),
            std::fs::read_to_string(&f.key).expect("read"),
        ]
        .concat();
        std::fs::write(&both, text).expect("written");
        TlsIdentity::from_pem_files(&both, &both).expect("loads from one file");
    }

    #[test]
    fn each_failure_has_its_own_error() {
        let f = files();
        let missing = f.cert.with_file_name("missing.pem");
        assert!(matches!(
            TlsIdentity::from_pem_files(&missing, &f.key),
            Err(TlsError::Read { path, source }) if path == missing && source.kind() == io::ErrorKind::NotFound
        ));
        assert!(matches!(
            TlsIdentity::from_pem_files(&f.key, &f.key),
            Err(TlsError::NoCertificate { path }) if path == f.key
        ));
        assert!(matches!(
            TlsIdentity::from_pem_files(&f.cert, &f.cert),
            Err(TlsError::NoPrivateKey { path }) if path == f.cert
        ));
        assert!(matches!(
            TlsIdentity::from_pem_files(&f.garbled, &f.key),
            Err(TlsError::Pem { path, .. }) if path == f.garbled
        ));
        assert!(matches!(
            TlsIdentity::from_pem_files(&f.cert, &f.other_key),
            Err(TlsError::KeyMismatch)
        ));
    }

    #[test]
    fn a_corrupt_key_or_certificate_is_refused() {
        let f = files();
        let key = PrivateKeyDer::from_pem_file(&f.key).expect("a key");
        let cert = CertificateDer::from_pem_file(&f.cert).expect("a certificate");
        assert!(matches!(
            TlsIdentity::from_der(vec![CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])], key),
            Err(TlsError::BadCertificate(_))
        ));
        let junk = PrivateKeyDer::Pkcs8(vec![0x30, 0x03, 1, 2, 3].into());
        assert!(matches!(
            TlsIdentity::from_der(vec![cert], junk),
            Err(TlsError::UnsupportedKey(_))
        ));
        let key = PrivateKeyDer::from_pem_file(&f.key).expect("a key");
        assert!(matches!(
            TlsIdentity::from_der(Vec::new(), key),
            Err(TlsError::EmptyChain)
        ));
    }
}
