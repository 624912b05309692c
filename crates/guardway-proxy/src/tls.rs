//! `--tls`: a short-lived CA and a localhost server certificate generated
//! at start-up and written to the TLS directory, so that `gh` (which
//! insists on HTTPS for a custom `GH_HOST`) can reach the proxy once the
//! CA is trusted (`SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`, a system store).
//!
//! Files: `ca.crt` (0644), `server.crt` (0644), `server.key` (0600, a
//! SEC1 `EC PRIVATE KEY`). Both certificates are ECDSA P-256, valid from
//! an hour ago for a day; the server certificate names `localhost`,
//! `127.0.0.1` and `::1`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// File name of the CA certificate clients trust.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the server certificate.
pub const SERVER_CERT_FILE: &str = "server.crt";
/// File name of the server private key.
pub const SERVER_KEY_FILE: &str = "server.key";
/// Organisation of both certificates' subjects.
pub const CERT_ORGANIZATION: &str = "MCPG Proxy";
/// Common name of the CA.
pub const CA_COMMON_NAME: &str = "MCPG Proxy CA";
/// Names the server certificate is valid for.
pub const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// How long the certificates are valid (from an hour before start-up).
pub const VALIDITY: Duration = Duration::hours(24);

/// `id-ecPublicKey` curve `prime256v1`.
const PRIME256V1: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];

/// Why the certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("failed to create TLS directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to generate the {what}: {message}")]
    Generate { what: &'static str, message: String },
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to build the TLS server configuration: {0}")]
    Config(#[from] guardway_gateway::TlsError),
}

/// The generated files and the server configuration using them.
#[derive(Debug, Clone)]
pub struct GeneratedTls {
    pub ca_cert_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// The gateway's rustls server configuration of these files (TLS 1.2
    /// and 1.3, HTTP/1.1 over ALPN).
    pub config: Arc<rustls::ServerConfig>,
}

fn generate_error(what: &'static str) -> impl Fn(rcgen::Error) -> TlsSetupError {
    move |error| TlsSetupError::Generate {
        what,
        message: error.to_string(),
    }
}

/// A positive random 128-bit serial number.
fn random_serial() -> Result<SerialNumber, TlsSetupError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| TlsSetupError::Generate {
        what: "serial number",
        message: error.to_string(),
    })?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, CERT_ORGANIZATION);
    name.push(DnType::CommonName, common_name);
    name
}

/// Generates the CA and server certificate (valid for [`SERVER_NAMES`]
/// and `extra_names`), writes them to `dir` (created when missing) and
/// builds the server configuration.
///
/// # Errors
/// A directory or file that cannot be written, a name that is not a valid
/// DNS name or IP address, or a generation failure.
pub fn generate_self_signed(
    dir: &Path,
    extra_names: &[String],
) -> Result<GeneratedTls, TlsSetupError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsSetupError::Directory {
        path: dir.to_owned(),
        source,
    })?;
    let not_before = OffsetDateTime::now_utc() - Duration::hours(1);

    let ca_key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error("CA key"))?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = subject(CA_COMMON_NAME);
    ca.serial_number = Some(random_serial()?);
    ca.not_before = not_before;
    ca.not_after = not_before + VALIDITY;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(generate_error("CA certificate"))?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error("server key"))?;
    let mut names: Vec<String> = SERVER_NAMES.iter().map(|name| (*name).to_owned()).collect();
    for name in extra_names {
        let name = name.trim();
        if name.is_empty() || names.iter().any(|known| known.eq_ignore_ascii_case(name)) {
            continue;
        }
        if !is_certificate_name(name) {
            return Err(TlsSetupError::Generate {
                what: "server names",
                message: format!("{name:?} is neither a DNS name nor an IP address"),
            });
        }
        names.push(name.to_owned());
    }
    let mut server = CertificateParams::new(names).map_err(generate_error("server names"))?;
    server.distinguished_name = subject("localhost");
    server.serial_number = Some(random_serial()?);
    server.not_before = not_before;
    server.not_after = OffsetDateTime::now_utc() + VALIDITY;
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(generate_error("server certificate"))?;

    let sec1 = sec1_from_pkcs8(&server_key.serialize_der()).ok_or(TlsSetupError::Generate {
        what: "server key encoding",
        message: "unexpected PKCS#8 structure".to_owned(),
    })?;

    let ca_cert_path = dir.join(CA_CERT_FILE);
    let cert_path = dir.join(SERVER_CERT_FILE);
    let key_path = dir.join(SERVER_KEY_FILE);
    write_file(&ca_cert_path, ca_cert.pem().as_bytes(), 0o644)?;
    write_file(&cert_path, server_cert.pem().as_bytes(), 0o644)?;
    write_file(&key_path, pem("EC PRIVATE KEY", &sec1).as_bytes(), 0o600)?;

    let config = guardway_gateway::tls::server_config(&guardway_gateway::config::TlsOptions {
        cert: cert_path.clone(),
        key: key_path.clone(),
        client_ca: None,
    })?;
    tracing::info!(dir = %dir.display(), "TLS certificates generated (valid 24h)");
    Ok(GeneratedTls {
        ca_cert_path,
        cert_path,
        key_path,
        config: Arc::new(config),
    })
}

/// Whether `name` can be a subject alternative name: an IP address, or a
/// DNS name of letters, digits and hyphens (a leading `*.` allowed).
fn is_certificate_name(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Writes `bytes` to `path` with permissions `mode` (applied also when the
/// file existed).
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsSetupError> {
    let error = |source| TlsSetupError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options.open(path).map_err(error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(error)?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(bytes).map_err(error)
}

/// PEM text of one block (64 columns, `\n` line ends).
fn pem(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), config)
}

/// The SEC1 `ECPrivateKey` inside a P-256 PKCS#8 key, with the curve
/// named in its parameters (as OpenSSL and Go write it).
fn sec1_from_pkcs8(pkcs8: &[u8]) -> Option<Vec<u8>> {
    use yasna::Tag;
    let inner = yasna::parse_der(pkcs8, |reader| {
        reader.read_sequence(|reader| {
            reader.next().read_u8()?;
            reader.next().read_der()?;
            reader.next().read_bytes()
        })
    })
    .ok()?;
    let (private, public) = yasna::parse_der(&inner, |reader| {
        reader.read_sequence(|reader| {
            reader.next().read_u8()?;
            let private = reader.next().read_bytes()?;
            reader.read_optional(|reader| reader.read_tagged(Tag::context(0), |r| r.read_der()))?;
            let public = reader.read_optional(|reader| {
                reader.read_tagged(Tag::context(1), |r| r.read_bitvec_bytes())
            })?;
            Ok((private, public))
        })
    })
    .ok()?;
    let curve = yasna::models::ObjectIdentifier::from_slice(PRIME256V1);
    Some(yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            writer.next().write_u8(1);
            writer.next().write_bytes(&private);
            writer
                .next()
                .write_tagged(Tag::context(0), |w| w.write_oid(&curve));
            if let Some((bits, len)) = &public {
                writer
                    .next()
                    .write_tagged(Tag::context(1), |w| w.write_bitvec_bytes(bits, *len));
            }
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_three_files_with_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let tls_dir = dir.path().join("proxy-tls");
        let generated = generate_self_signed(&tls_dir, &[]).unwrap();
        assert_eq!(generated.ca_cert_path, tls_dir.join("ca.crt"));
        let ca = std::fs::read_to_string(&generated.ca_cert_path).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----\n"));
        let key = std::fs::read_to_string(&generated.key_path).unwrap();
        assert!(key.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{key}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&generated.key_path), 0o600);
            assert_eq!(mode(&generated.cert_path), 0o644);
            assert_eq!(mode(&generated.ca_cert_path), 0o644);
        }
        // A second run replaces the files.
        let again = generate_self_signed(&tls_dir, &[]).unwrap();
        assert_ne!(std::fs::read_to_string(&again.ca_cert_path).unwrap(), ca);
    }

    #[test]
    fn bad_extra_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = generate_self_signed(dir.path(), &["not a name!".to_owned()]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("failed to generate the server names"),
            "{err}"
        );
        generate_self_signed(dir.path(), &["proxy.test".to_owned(), " ".to_owned()]).unwrap();
    }

    #[test]
    fn the_key_is_sec1_with_the_curve_named() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let sec1 = sec1_from_pkcs8(&key.serialize_der()).unwrap();
        // [0] { OID 1.2.840.10045.3.1.7 }
        let curve = [
            0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ];
        assert!(sec1.windows(curve.len()).any(|w| w == curve));
        assert!(sec1_from_pkcs8(b"\x30\x00").is_none());
        // rustls reads it (through the gateway's TLS set-up).
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, pem("EC PRIVATE KEY", &sec1)).unwrap();
        guardway_gateway::tls::server_config(&guardway_gateway::config::TlsOptions {
            cert: cert_path,
            key: key_path,
            client_ca: None,
        })
        .unwrap();
    }

    #[test]
    fn an_unwritable_directory_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let err = generate_self_signed(&file.join("tls"), &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("failed to create TLS directory"),
            "{err}"
        );
    }
}
