//! The TLS configuration for talking to Vault: rustls on the ring provider,
//! with the CA, client certificate and verification settings of the
//! standard `VAULT_*` variables. Skipping verification is possible only
//! through [`dangerous::AcceptAnyServerCertificate`], named for what it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::error::Error;

/// What the TLS layer needs, all paths already resolved.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub ca_cert: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub skip_verify: bool,
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls client configuration. Unreadable or malformed files
/// are configuration errors naming the file.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, Error> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::config(format!("TLS: {err}")))?;

    let builder = if settings.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(dangerous::AcceptAnyServerCertificate(provider)))
    } else if settings.ca_cert.is_some() || settings.ca_path.is_some() {
        let mut roots = RootCertStore::empty();
        if let Some(file) = &settings.ca_cert {
            add_pem_certificates(&mut roots, file, "VAULT_CACERT")?;
        }
        if let Some(dir) = &settings.ca_path {
            let entries = std::fs::read_dir(dir)
                .map_err(|err| Error::config(format!("VAULT_CAPATH: {}: {err}", dir.display())))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_file() {
                    add_pem_certificates(&mut roots, &path, "VAULT_CAPATH")?;
                }
            }
        }
        if roots.is_empty() {
            return Err(Error::config(
                "VAULT_CACERT/VAULT_CAPATH: no CA certificate found",
            ));
        }
        builder.with_root_certificates(roots)
    } else {
        let verifier = rustls_platform_verifier::Verifier::new(provider)
            .map_err(|err| Error::config(format!("TLS: cannot load the system's CA certificates: {err}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };

    match (&settings.client_cert, &settings.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = read_certificates(cert, "VAULT_CLIENT_CERT")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|err| Error::config(format!("VAULT_CLIENT_KEY: {}: {err}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| Error::config(format!("VAULT_CLIENT_CERT/VAULT_CLIENT_KEY: {err}")))
        }
        (Some(_), None) => Err(Error::config(
            "VAULT_CLIENT_CERT is set but VAULT_CLIENT_KEY is not",
        )),
        (None, Some(_)) => Err(Error::config(
            "VAULT_CLIENT_KEY is set but VAULT_CLIENT_CERT is not",
        )),
    }
}

/// For an `http://` Vault: reqwest still wants a TLS configuration and
/// would otherwise build its default, parsing every system CA certificate
/// (about 10 ms measured). An empty one costs nothing and is never used.
pub fn unused_config() -> Result<ClientConfig, Error> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::config(format!("TLS: {err}")))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

fn read_certificates(path: &Path, variable: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| Error::config(format!("{variable}: {}: {err}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "{variable}: {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

fn add_pem_certificates(roots: &mut RootCertStore, path: &Path, variable: &str) -> Result<(), Error> {
    for cert in read_certificates(path, variable)? {
        roots
            .add(cert)
            .map_err(|err| Error::config(format!("{variable}: {}: {err}", path.display())))?;
    }
    Ok(())
}

/// Options that weaken TLS, named so that no reader mistakes them.
pub mod dangerous {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// `VAULT_SKIP_VERIFY=true`: any certificate for any name is accepted
    /// (signatures are still checked, so the session is encrypted, but not
    /// authenticated). vinit warns whenever this is on.
    #[derive(Debug)]
    pub struct AcceptAnyServerCertificate(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyServerCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
