//! The cluster's certificates: one CA per cluster, and a certificate per node signed by it
//! (hosts present theirs to clients and, mutually, to each other).
//!
//! The CA lives in its own directory (`ca.pem`, `ca.key`), kept off the hosts: `certs issue`
//! reads it from `--ca` and writes a node's directory (`ca.pem`, `NAME.pem`, `NAME.key`) that
//! holds no CA key, which is what `serve --tls-dir` takes (and it refuses a directory with a
//! `ca.key`). Keys are written owner-only (0600) and never over an existing file's contents
//! for a CA. Node certificates last [`NODE_DAYS`] by default and name only the node and the
//! addresses given (`localhost` only when asked).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// Default validity of a cluster CA, in days.
pub const CA_DAYS: u32 = 3650;
/// Default validity of a node certificate, in days.
pub const NODE_DAYS: u32 = 365;
/// The longest validity accepted, in days.
pub const MAX_DAYS: u32 = 36_500;
/// The file of a CA key (never in a host's `--tls-dir`).
pub const CA_KEY: &str = "ca.key";

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
    /// `certs init` into a directory that already has a CA.
    #[error("{0} already exists: a new CA would invalidate every certificate it issued (remove it first)")]
    CaExists(PathBuf),
    /// A validity of zero days, or beyond [`MAX_DAYS`].
    #[error("a certificate is valid for 1 to {MAX_DAYS} days")]
    NoValidity,
}

/// The CA's subject: the same on every run, so that the CA can sign from its key alone.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "mafalda-host cluster CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// Valid from an hour ago (clock skew between hosts) for `days`.
fn validity(params: &mut CertificateParams, days: u32) -> Result<(), CertError> {
    if days == 0 || days > MAX_DAYS {
        return Err(CertError::NoValidity);
    }
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(u64::from(days) * 86_400)).into();
    Ok(())
}

/// Writes `text` to `path` with `mode`; `create_new` refuses an existing file.
fn write(path: PathBuf, text: &str, mode: u32, create_new: bool) -> Result<(), CertError> {
    let mut options = std::fs::OpenOptions::new();
    // Never through a symbolic link someone planted.
    options.write(true).mode(mode).custom_flags(libc::O_NOFOLLOW);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    let result = options.open(&path).and_then(|mut file| {
        // The mode applies to new files only: an existing one is narrowed too (on the open file).
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        file.write_all(text.as_bytes())
    });
    result.map_err(|source| CertError::Io { path, source })
}

fn read(path: PathBuf) -> Result<String, CertError> {
    std::fs::read_to_string(&path).map_err(|source| CertError::Io { path, source })
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io { path: dir.into(), source })
}

/// Writes a new cluster CA (`ca.pem`, `ca.key` owner-only) into `dir`, valid for `days`;
/// refuses a directory that already holds one.
pub fn init_ca(dir: &Path, days: u32) -> Result<(), CertError> {
    create_dir(dir)?;
    for file in ["ca.pem", CA_KEY] {
        if dir.join(file).exists() {
            return Err(CertError::CaExists(dir.join(file)));
        }
    }
    let key = KeyPair::generate()?;
    let mut params = ca_params();
    validity(&mut params, days)?;
    let cert = params.self_signed(&key)?;
    write(dir.join(CA_KEY), &key.serialize_pem(), 0o600, true)?;
    write(dir.join("ca.pem"), &cert.pem(), 0o644, true)
}

/// What a node certificate names and how long it lasts.
#[derive(Debug, Clone)]
pub struct NodeCert {
    /// The node's name (its common name and first DNS name).
    pub name: String,
    /// Addresses clients dial it at.
    pub ips: Vec<IpAddr>,
    /// Further DNS names.
    pub dns: Vec<String>,
    /// Whether `localhost` is one of its names (only for single-machine setups).
    pub localhost: bool,
    /// Validity in days.
    pub days: u32,
}

impl NodeCert {
    /// A certificate for `name` at `ips`, valid [`NODE_DAYS`].
    pub fn new(name: &str, ips: &[IpAddr]) -> Self {
        Self { name: name.into(), ips: ips.to_vec(), dns: Vec::new(), localhost: false, days: NODE_DAYS }
    }
}

fn check_name(name: &str) -> Result<(), CertError> {
    // `ca` would overwrite the CA's own files.
    if name == "ca"
        || name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(CertError::BadName(name.into()));
    }
    Ok(())
}

/// Writes `NAME.pem`, `NAME.key` (owner-only) and the CA's `ca.pem` into `out`, signed by the
/// CA in `ca_dir`. `out` gets no CA key.
pub fn issue(ca_dir: &Path, out: &Path, node: &NodeCert) -> Result<(), CertError> {
    check_name(&node.name)?;
    for name in &node.dns {
        check_name(name)?;
    }
    let ca_pem = read(ca_dir.join("ca.pem"))?;
    let ca_key = KeyPair::from_pem(&read(ca_dir.join(CA_KEY))?)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut names = vec![node.name.clone()];
    names.extend(node.dns.iter().cloned());
    if node.localhost {
        names.push("localhost".to_string());
    }
    let mut params = CertificateParams::new(names)?;
    params.subject_alt_names.extend(node.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.distinguished_name.push(DnType::CommonName, node.name.as_str());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut params, node.days)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    create_dir(out)?;
    write(out.join(format!("{}.key", node.name)), &key.serialize_pem(), 0o600, false)?;
    write(out.join(format!("{}.pem", node.name)), &cert.pem(), 0o644, false)?;
    if ca_dir.canonicalize().ok() != out.canonicalize().ok() {
        write(out.join("ca.pem"), &ca_pem, 0o644, false)?;
    }
    Ok(())
}

/// The node name a DER certificate carries: its subject's common name, parsed as X.509.
pub fn node_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(name)
}
