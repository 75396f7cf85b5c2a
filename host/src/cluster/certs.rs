//! The cluster's certificates: one CA per cluster, and a certificate per node signed by it
//! (hosts present theirs to clients and, mutually, to each other). Files in a directory:
//! `ca.pem`, `ca.key`, `NAME.pem`, `NAME.key`.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A certificate operation failed.
#[derive(Debug, Error)]
pub enum CertError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Generating or parsing a certificate or key.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A name that cannot be a file name or a DNS name.
    #[error("'{0}' is not a node name (letters, digits, '-', '.', '_')")]
    BadName(String),
}

/// The CA's subject: the same on every run, so that the CA can sign from its key alone.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "mafalda-host cluster CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2044, 1, 1);
    params
}

fn write(path: PathBuf, text: &str) -> Result<(), CertError> {
    std::fs::write(&path, text).map_err(|source| CertError::Io { path, source })
}

fn read(path: PathBuf) -> Result<String, CertError> {
    std::fs::read_to_string(&path).map_err(|source| CertError::Io { path, source })
}

/// Writes a new cluster CA (`ca.pem`, `ca.key`) into `dir`.
pub fn init_ca(dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io { path: dir.into(), source })?;
    let key = KeyPair::generate()?;
    let cert = ca_params().self_signed(&key)?;
    write(dir.join("ca.pem"), &cert.pem())?;
    write(dir.join("ca.key"), &key.serialize_pem())
}

/// Writes `NAME.pem` and `NAME.key` into `dir`, signed by the CA in `dir`. The certificate
/// names `name`, `localhost` and every address in `ips` (what clients may dial).
pub fn issue(dir: &Path, name: &str, ips: &[IpAddr]) -> Result<(), CertError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
        return Err(CertError::BadName(name.into()));
    }
    let ca_key = KeyPair::from_pem(&read(dir.join("ca.key"))?)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut params = CertificateParams::new(vec![name.to_string(), "localhost".to_string()])?;
    params.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2044, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write(dir.join(format!("{name}.pem")), &cert.pem())?;
    write(dir.join(format!("{name}.key")), &key.serialize_pem())
}
