//! Keys, certificates and JWTs made by the tests themselves with the
//! `openssl` command: a CA and a client certificate for cert auth, an RSA
//! key pair and signed tokens for JWT and Kubernetes auth.

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(bytes) = input {
        stdin.write_all(bytes).unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A self-signed CA: (certificate, key).
pub fn certificate_authority(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
        None,
    );
    (cert, key)
}

/// A client certificate signed by `ca`: (certificate, key).
pub fn client_certificate(dir: &Path, ca: &(PathBuf, PathBuf), name: &str) -> (PathBuf, PathBuf) {
    let (cert, key, csr, ext) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
        dir.join(format!("{name}.csr")),
        dir.join(format!("{name}.ext")),
    );
    std::fs::write(&ext, "extendedKeyUsage = clientAuth\n").unwrap();
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ],
        None,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            ca.0.to_str().unwrap(),
            "-CAkey",
            ca.1.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
        None,
    );
    (cert, key)
}

/// An RSA key pair for signing JWTs: (private key, public key PEM text).
pub fn signing_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("jwt-key.pem");
    openssl(&["genrsa", "-out", key.to_str().unwrap(), "2048"], None);
    let public = openssl(&["rsa", "-in", key.to_str().unwrap(), "-pubout"], None);
    (key, String::from_utf8(public).unwrap())
}

/// An RS256 JWT with `claims`, signed by `key`.
pub fn jwt(key: &Path, claims: &serde_json::Value) -> String {
    let header = base64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = base64url(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let signature = openssl(
        &["dgst", "-sha256", "-sign", key.to_str().unwrap()],
        Some(signing_input.as_bytes()),
    );
    format!("{signing_input}.{}", base64url(&signature))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Seconds since the epoch, for `iat`/`exp` claims.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The public key (PEM) of the first certificate in `pem`.
pub fn public_key_of_cert(pem: &str) -> String {
    String::from_utf8(openssl(&["x509", "-noout", "-pubkey"], Some(pem.as_bytes()))).unwrap()
}

/// The public key (PEM) of the private key in `pem`.
pub fn public_key_of_key(pem: &str) -> String {
    String::from_utf8(openssl(&["pkey", "-pubout"], Some(pem.as_bytes()))).unwrap()
}

/// The end of validity of the first certificate in `pem`, in Unix seconds.
pub fn not_after(pem: &str) -> u64 {
    let text = String::from_utf8(openssl(
        &["x509", "-noout", "-enddate", "-dateopt", "iso_8601"],
        Some(pem.as_bytes()),
    ))
    .unwrap();
    let date = text.trim().trim_start_matches("notAfter=");
    let output = Command::new("date")
        .args(["-u", "-d", date, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
}
