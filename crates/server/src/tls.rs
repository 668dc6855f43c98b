//! TLS for signaling (`wss://`): a certificate from files, or a self-signed
//! one generated on first run and kept, whose SHA-256 fingerprint rides in
//! meeting links so clients can pin it.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

/// A certificate chain and its private key.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for TlsIdentity {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

impl TlsIdentity {
    /// Loads a PEM certificate chain and PEM private key (e.g. from an ACME client).
    pub fn from_pem_files(cert: &Path, key: &Path) -> io::Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| invalid(format!("{}: {e}", cert.display())))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("{}: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(invalid(format!("{}: no certificate", cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| invalid(format!("{}: {e}", key.display())))?;
        Ok(TlsIdentity { chain, key })
    }

    /// A self-signed certificate kept in `dir` (`cert.der`, `key.der`):
    /// generated on first use, loaded afterwards, so its fingerprint, and with
    /// it every link already sent, stays valid.
    pub fn self_signed_in(dir: &Path) -> io::Result<Self> {
        let cert_path = dir.join("cert.der");
        let key_path = dir.join("key.der");
        if let (Ok(cert), Ok(key)) = (std::fs::read(&cert_path), std::fs::read(&key_path)) {
            return Ok(TlsIdentity {
                chain: vec![CertificateDer::from(cert)],
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            });
        }
        let generated = rcgen::generate_simple_self_signed(vec!["conclave.local".to_owned()])
            .map_err(|e| invalid(format!("generating a certificate: {e}")))?;
        std::fs::create_dir_all(dir)?;
        let cert = generated.cert.der().to_vec();
        let key = generated.signing_key.serialize_der();
        write_private(&key_path, &key)?;
        std::fs::write(&cert_path, &cert)?;
        Ok(TlsIdentity {
            chain: vec![CertificateDer::from(cert)],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        })
    }

    /// SHA-256 of the leaf certificate, 64 lowercase hex digits (the link's `fp=`).
    pub fn fingerprint(&self) -> String {
        self.chain
            .first()
            .map(|c| {
                Sha256::digest(c.as_ref())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The acceptor for incoming connections.
    pub fn acceptor(&self) -> io::Result<tokio_rustls::TlsAcceptor> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| invalid(format!("certificate and key do not fit: {e}")))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(contents)
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_identity_is_kept() {
        let dir = std::env::temp_dir().join(format!("conclave-tls-{}", std::process::id()));
        let first = TlsIdentity::self_signed_in(&dir).expect("generate");
        let again = TlsIdentity::self_signed_in(&dir).expect("load");
        assert_eq!(first.fingerprint().len(), 64);
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert!(again.acceptor().is_ok());
        assert!(!format!("{first:?}").contains("key:"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
