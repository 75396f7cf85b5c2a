//! The cluster's keys and certificates: keys readable by their owner only, a CA never
//! overwritten and never in a host's `--tls-dir`, node certificates that name only their node,
//! and a host that cannot present itself as another node.

mod cluster_support;

use cluster_support::{binary, certs, run, scratch};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("file").permissions().mode() & 0o777
}

/// `serve` with `args`; its stderr once it exits (it must, with an error).
fn serve_error(args: &[&str]) -> String {
    let out = Command::new(binary())
        .env("MAFALDA_ADMIN", "off")
        .arg("serve")
        .args(args)
        // Bounded even if it wrongly starts.
        .args(["--duration", "5"])
        .env_remove("MAFALDA_CLUSTER")
        .output()
        .expect("run serve");
    assert!(!out.status.success(), "serve {args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn keys_are_private_and_a_ca_is_never_overwritten() {
    let dir = scratch("pki-keys");
    certs(&dir, &[("media30", "127.0.0.30")]);
    let ca = dir.join("ca");
    assert_eq!(mode(&ca.join("ca.key")), 0o600, "the CA key");
    assert_eq!(mode(&dir.join("media30.key")), 0o600, "a node key");
    assert!(!dir.join("ca.key").exists(), "the node's directory holds no CA key");
    assert!(dir.join("ca.pem").exists(), "but the CA certificate");
    let before = std::fs::read(ca.join("ca.pem")).expect("ca.pem");
    let out =
        Command::new(binary()).args(["certs", "init", "--out", ca.to_str().expect("utf-8")]).output().expect("run");
    assert!(!out.status.success(), "certs init over an existing CA");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read(ca.join("ca.pem")).expect("ca.pem"), before, "the CA is unchanged");
    // Nor can a node named `ca` be issued over it.
    let ca_dir = ca.to_str().expect("utf-8");
    let out =
        Command::new(binary()).args(["certs", "issue", "ca", "--ca", ca_dir, "--out", ca_dir]).output().expect("run");
    assert!(!out.status.success(), "a node named ca");
    assert_eq!(std::fs::read(ca.join("ca.pem")).expect("ca.pem"), before, "the CA is unchanged");
}

#[test]
fn node_certificates_name_their_node_for_a_year_and_localhost_only_when_asked() {
    let dir = scratch("pki-names");
    certs(&dir, &[("media31", "127.0.0.31")]);
    let ca = dir.join("ca");
    let pem = std::fs::read(dir.join("media31.pem")).expect("pem");
    let der = rustls_pemfile_der(&pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    use x509_parser::extensions::GeneralName;
    let san = cert.subject_alternative_name().expect("san").expect("a SAN");
    let names = &san.value.general_names;
    assert!(names.iter().any(|n| matches!(n, GeneralName::DNSName("media31"))), "{names:?}");
    assert!(names.iter().any(|n| matches!(n, GeneralName::IPAddress([127, 0, 0, 31]))), "{names:?}");
    assert!(!names.iter().any(|n| matches!(n, GeneralName::DNSName("localhost"))), "no localhost unless asked");
    let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert!((365..=366).contains(&days), "valid a year by default: {days} days");
    run(&[
        "certs",
        "issue",
        "local",
        "--ca",
        ca.to_str().expect("utf-8"),
        "--out",
        dir.to_str().expect("utf-8"),
        "--localhost",
        "--days",
        "7",
    ]);
    let der = rustls_pemfile_der(&std::fs::read(dir.join("local.pem")).expect("pem"));
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    let san = cert.subject_alternative_name().expect("san").expect("a SAN");
    assert!(san.value.general_names.iter().any(|n| matches!(n, GeneralName::DNSName("localhost"))));
}

/// The DER of the first certificate in a PEM file.
fn rustls_pemfile_der(pem: &[u8]) -> Vec<u8> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem).expect("pem");
    parsed.contents
}

#[test]
fn serve_refuses_a_tls_dir_with_the_ca_key_and_a_certificate_of_another_node() {
    let dir = scratch("pki-serve");
    certs(&dir, &[("media32", "127.0.0.32"), ("media33", "127.0.0.33")]);
    let tls = dir.to_str().expect("utf-8");
    // The CA key next to a host's files: refused, naming the file.
    std::fs::copy(dir.join("ca").join("ca.key"), dir.join("ca.key")).expect("copy");
    let error = serve_error(&["--listen", "127.0.0.32:4443", "--node", "media32", "--tls-dir", tls]);
    assert!(error.contains("ca.key") && error.contains("never needs the CA key"), "{error}");
    std::fs::remove_file(dir.join("ca.key")).expect("remove");
    // media33's certificate and key under media32's name: the host cannot claim media32.
    std::fs::copy(dir.join("media33.pem"), dir.join("media32.pem")).expect("copy");
    std::fs::copy(dir.join("media33.key"), dir.join("media32.key")).expect("copy");
    let error = serve_error(&["--listen", "127.0.0.32:4443", "--node", "media32", "--tls-dir", tls]);
    assert!(error.contains("names node 'media33', not 'media32'"), "{error}");
}
