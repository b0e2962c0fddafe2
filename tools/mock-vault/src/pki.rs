//! The PKI-like issue endpoint: a certificate authority made at the first
//! issuance of each endpoint, and leaf certificates with their keys signed
//! by it, with the fields OpenBao's `pki/issue/ROLE` answers.

use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, SanType};
use serde_json::{json, Map, Value};

/// A CA for one issue endpoint.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
    pem: String,
}

impl Authority {
    pub fn new(name: &str) -> Result<Self, String> {
        let key = KeyPair::generate().map_err(|e| format!("CA key: {e}"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("vinit-mock-vault CA ({name})"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).map_err(|e| format!("CA: {e}"))?;
        Ok(Authority {
            pem: cert.pem(),
            cert,
            key,
        })
    }

    /// Issues a certificate for `common_name` (plus `alt_names`, `ip_sans`
    /// as comma lists) valid from `now` for `ttl_secs`; returns the
    /// response's `data`.
    pub fn issue(&self, request: &Map<String, Value>, now: u64, ttl_secs: u64) -> Result<Value, String> {
        let common_name = request
            .get("common_name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false")?;
        let list = |field: &str| -> Vec<String> {
            request
                .get(field)
                .and_then(Value::as_str)
                .map(|s| {
                    s.split(',')
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut names = vec![common_name.to_string()];
        names.extend(list("alt_names"));
        let mut params = CertificateParams::new(names).map_err(|e| e.to_string())?;
        for ip in list("ip_sans") {
            let address = ip
                .parse()
                .map_err(|_| format!("ip_sans: \"{ip}\" is not an IP address"))?;
            params.subject_alt_names.push(SanType::IpAddress(address));
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        let not_before = now.saturating_sub(30);
        let not_after = now + ttl_secs;
        params.not_before = to_time(not_before)?;
        params.not_after = to_time(not_after)?;
        let serial: Vec<u8> = crate::vault::random_bytes(16);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let key = KeyPair::generate().map_err(|e| format!("key: {e}"))?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| e.to_string())?;
        let serial_text = serial
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        Ok(json!({
            "ca_chain": [self.pem],
            "certificate": cert.pem(),
            "expiration": not_after,
            "issuing_ca": self.pem,
            "not_before": not_before,
            "private_key": key.serialize_pem(),
            "private_key_type": "ec",
            "serial_number": serial_text,
        }))
    }
}

fn to_time(unix: u64) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::from_unix_timestamp(unix as i64).map_err(|e| e.to_string())
}
