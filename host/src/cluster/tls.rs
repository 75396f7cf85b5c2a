//! TLS for the cluster's QUIC links (rustls with ring): hosts verify clients' and peers'
//! certificates against the cluster CA (a client may come without one: it authenticates with
//! its token); clients verify hosts against the CA they were given.

use super::limits::{QuicLimits, ServeLimits};
use super::proto::ALPN;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// A TLS setup failed.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File { path: path.into(), reason: reason.to_string() }
}

/// The certificates of a PEM file.
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))?.collect();
    let certs = certs.map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

fn roots(ca: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca)? {
        roots.add(cert).map_err(|e| file_error(ca, e))?;
    }
    Ok(Arc::new(roots))
}

/// The QUIC transport of a cluster connection: `bidi_streams` streams the other side may open
/// (a host accepts the one control stream of a caller; a caller accepts none), no
/// unidirectional streams, no datagrams, bounded receive windows, keep-alive inside the idle
/// timeout so a dead side is noticed in `limits.idle_timeout` and a live one never times out.
pub fn transport(limits: &QuicLimits, bidi_streams: u32) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(bidi_streams.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.stream_receive_window(limits.stream_window.into());
    transport.receive_window(limits.connection_window.into());
    transport.send_window(u64::from(limits.connection_window));
    transport.datagram_receive_buffer_size(None);
    transport.keep_alive_interval(Some(limits.keep_alive));
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(limits.idle_timeout).ok());
    Arc::new(transport)
}

/// A node's identity: the cluster CA and its own certificate and key.
#[derive(Debug, Clone)]
pub struct NodeTls {
    /// The cluster CA (`ca.pem`).
    pub ca: PathBuf,
    /// The node's certificate (`NAME.pem`).
    pub cert: PathBuf,
    /// Its key (`NAME.key`).
    pub key: PathBuf,
}

impl NodeTls {
    /// The files of node `name` in a directory made by `certs init` / `certs issue`.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self { ca: dir.join("ca.pem"), cert: dir.join(format!("{name}.pem")), key: dir.join(format!("{name}.key")) }
    }

    /// The node name in this node's certificate.
    pub fn name(&self) -> Result<String, TlsError> {
        let cert = certs(&self.cert)?.into_iter().next().ok_or_else(|| file_error(&self.cert, "no certificate"))?;
        super::certs::node_name(cert.as_ref()).ok_or_else(|| file_error(&self.cert, "no node name in the certificate"))
    }

    /// The host side: presents the node certificate; verifies client certificates against the
    /// CA when one is presented (peers must present one; applications need not).
    pub fn server_config(&self, limits: &ServeLimits) -> Result<quinn::ServerConfig, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(&self.ca)?, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.cert)?, key(&self.key)?)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Config(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport(&limits.quic, 1));
        config.max_incoming(limits.max_incoming);
        Ok(config)
    }

    /// The peer side of a host-to-host link: verifies the host and presents this node's
    /// certificate.
    pub fn peer_client_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        let tls = client_builder(&self.ca)?
            .with_client_auth_cert(certs(&self.cert)?, key(&self.key)?)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        quic_client(tls)
    }
}

fn client_builder(
    ca: &Path,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>, TlsError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?))
}

fn quic_client(mut tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, TlsError> {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(&QuicLimits::default(), 0));
    Ok(config)
}

/// An application's side: verifies hosts against `ca`, presents no certificate.
pub fn app_client_config(ca: &Path) -> Result<quinn::ClientConfig, TlsError> {
    quic_client(client_builder(ca)?.with_no_client_auth())
}

/// The node name in the other side's verified certificate (a peer's or a host's), if it
/// presented one: its subject's common name, parsed as X.509.
pub fn peer_name(connection: &quinn::Connection) -> Option<String> {
    let identity = connection.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    super::certs::node_name(certs.first()?.as_ref())
}
