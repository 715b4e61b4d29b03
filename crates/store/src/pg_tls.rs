//! TLS for PostgreSQL connections, as the database URL's `sslmode` and `sslrootcert` ask, with
//! rustls (ring provider, the same as the webhook sender's).
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require` and no `sslrootcert`, so
//! [`TlsSettings::from_url`] takes both parameters out of the URL before the driver parses the
//! rest, and [`TlsSettings::connector`] builds the rustls configuration each mode needs. The modes
//! mean what they mean to libpq:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | when the server offers TLS | no |
//! | `require` | always | no; with `sslrootcert`, its chain (as `verify-ca`) |
//! | `verify-ca` | always | chain up to `sslrootcert` |
//! | `verify-full` | always | chain up to `sslrootcert`, and the host name |
//!
//! Without `sslrootcert`, `verify-ca` and `verify-full` trust the Mozilla roots (webpki-roots, as
//! the sender does); `sslrootcert=system` says so explicitly and, as in libpq, implies
//! `verify-full`. `allow`, client certificates (`sslcert`, `sslkey`) and other `ssl*` parameters
//! are refused by name rather than ignored, so nobody believes they are in force.
//!
//! No channel binding: SCRAM authenticates without `tls-server-end-point` (the driver's default
//! `channel_binding=prefer` carries on), so `channel_binding=require` can't be met.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// The `sslmode` values Hookline supports (libpq's, minus `allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow (plaintext unless the server insists on TLS) is not \
                            supported; use disable, prefer, require, verify-ca or verify-full"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "sslmode=`{other}` is not one of disable, prefer, require, verify-ca, \
                     verify-full"
                ))
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What the driver does before the handshake: whether it asks for TLS and may fall back.
    pub(crate) fn driver(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RootCert {
    /// Not given: the Mozilla roots where a mode verifies.
    Unset,
    /// `sslrootcert=system`: the Mozilla roots (webpki-roots), asked for by name.
    System,
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
}

/// The TLS parameters of a database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// `None` when the URL names no `sslmode` (the driver's parse of the rest decides: `prefer`).
    mode: Option<SslMode>,
    root_cert: RootCert,
}

/// Parameters of libpq's that would change security if they worked, refused so nobody thinks they
/// do. (`sslnegotiation` goes through: the driver understands it.)
const REFUSED: &[(&str, &str)] = &[
    ("sslcert", "client certificates are not supported"),
    ("sslkey", "client certificates are not supported"),
    ("sslpassword", "client certificates are not supported"),
    ("sslcertmode", "client certificates are not supported"),
    ("sslcrl", "certificate revocation lists are not supported"),
    (
        "sslcrldir",
        "certificate revocation lists are not supported",
    ),
    ("sslsni", "SNI is always sent for host names"),
    ("sslcompression", "TLS compression is never used"),
    (
        "ssl_min_protocol_version",
        "TLS 1.2 or later is always required",
    ),
    (
        "ssl_max_protocol_version",
        "TLS 1.2 or later is always required",
    ),
];

impl TlsSettings {
    /// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query; returns the URL the
    /// driver should parse and the settings. A key=value connection string is returned unchanged
    /// (its `sslmode`, if any, is the driver's: disable, prefer or require).
    pub(crate) fn from_url(url: &str) -> Result<(String, TlsSettings), String> {
        let mut settings = TlsSettings {
            mode: None,
            root_cert: RootCert::Unset,
        };
        let Some((base, query)) = url.split_once('?').filter(|_| url.contains("://")) else {
            return Ok((url.to_string(), settings));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(raw_key)?;
            match key.as_str() {
                "sslmode" => settings.mode = Some(SslMode::parse(&percent_decode(raw_value)?)?),
                "sslrootcert" => {
                    let value = percent_decode(raw_value)?;
                    settings.root_cert = match value.as_str() {
                        "" => return Err("sslrootcert is empty".into()),
                        "system" => RootCert::System,
                        path => RootCert::File(PathBuf::from(path)),
                    };
                }
                _ => {
                    if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == key) {
                        return Err(format!("{key} is not supported ({why})"));
                    }
                    kept.push(pair);
                }
            }
        }
        if settings.root_cert == RootCert::System {
            // As libpq: naming the system roots only makes sense if they are checked, host included.
            match settings.mode {
                None => settings.mode = Some(SslMode::VerifyFull),
                Some(SslMode::VerifyCa | SslMode::VerifyFull) => {}
                Some(m) => {
                    return Err(format!(
                        "sslrootcert=system needs sslmode=verify-full or verify-ca, not {}",
                        m.name()
                    ))
                }
            }
        } else if let RootCert::File(_) = settings.root_cert {
            if !matches!(
                settings.mode,
                Some(SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
            ) {
                // libpq would ignore it; an operator who named a CA surely expects it checked.
                return Err(format!(
                    "sslrootcert is only used with sslmode=require, verify-ca or verify-full \
                     (the URL says {})",
                    settings.mode.unwrap_or(SslMode::Prefer).name()
                ));
            }
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((url, settings))
    }

    /// The mode in force: the URL's, else what the driver parsed from a connection string (its
    /// default being `prefer`).
    pub(crate) fn mode(&self, driver: DriverSslMode) -> SslMode {
        self.mode.unwrap_or(match driver {
            DriverSslMode::Disable => SslMode::Disable,
            DriverSslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        })
    }

    /// A short description for error messages: `sslmode=verify-full, sslrootcert=/etc/ca.pem`.
    pub(crate) fn describe(&self, mode: SslMode) -> String {
        match &self.root_cert {
            RootCert::Unset => format!("sslmode={}", mode.name()),
            RootCert::System => format!("sslmode={}, sslrootcert=system", mode.name()),
            RootCert::File(p) => format!("sslmode={}, sslrootcert={}", mode.name(), p.display()),
        }
    }

    /// The connector for `mode`: reads `sslrootcert` now, so a missing or unreadable file stops
    /// the start instead of failing every connection later.
    pub(crate) fn connector(&self, mode: SslMode) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = || -> Result<RootCertStore, String> {
            match &self.root_cert {
                RootCert::Unset | RootCert::System => Ok(RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                }),
                RootCert::File(path) => read_roots(path),
            }
        };
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::Disable | SslMode::Prefer => Arc::new(NoCertificateCheck(provider.clone())),
            SslMode::Require if self.root_cert == RootCert::Unset => {
                Arc::new(NoCertificateCheck(provider.clone()))
            }
            // libpq: "if a root CA file exists, require behaves like verify-ca".
            SslMode::Require | SslMode::VerifyCa => Arc::new(ChainOnly {
                roots: Arc::new(roots()?),
                provider: provider.clone(),
            }),
            SslMode::VerifyFull => rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots()?),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("can't use the trusted certificates: {e}"))?,
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration failed: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // What PostgreSQL 17's direct TLS (`sslnegotiation=direct`) requires; older servers
        // ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustlsConnect {
            config: Arc::new(config),
        })
    }
}

/// `%XX` decoding of one URL query component, as the driver does it (`+` stays `+`).
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("`{s}` has a bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

fn read_roots(path: &std::path::Path) -> Result<RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path)
        .map_err(|e| format!("can't read sslrootcert {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| {
            format!(
                "sslrootcert {}: a certificate is not usable as a trust anchor: {e}",
                path.display()
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {} holds no PEM CERTIFICATE",
            path.display()
        ));
    }
    Ok(roots)
}

/// `prefer` and `require` without a CA: encryption against passive eavesdroppers, no proof of
/// whom we talk to (libpq's meaning). The handshake's signatures are still checked, so the peer
/// does hold the key of the certificate it shows.
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the certificate must chain up to a trusted CA and be valid now; the host name is
/// not compared (for servers reached by an address their certificate doesn't name).
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The driver's TLS hook: one rustls configuration for every connection of the store.
#[derive(Clone)]
pub(crate) struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = std::convert::Infallible;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, Self::Error> {
        // A name that can't be a TLS server name (a Unix socket has "") only fails if TLS is
        // actually attempted, so `prefer` over a socket still works.
        let server_name = ServerName::try_from(host.to_string()).map_err(|e| {
            format!("`{host}` can't be checked against a certificate (not a host name or IP address: {e})")
        });
        Ok(RustlsConnect {
            config: self.config.clone(),
            server_name,
        })
    }
}

pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    server_name: Result<ServerName<'static>, String>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = self
                .server_name
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// An encrypted connection to the server. (Boxed: a rustls session is large, and the driver moves
/// its stream around.)
pub(crate) struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> Result<(String, TlsSettings), String> {
        TlsSettings::from_url(url)
    }

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (rest, s) = split(
            "postgres://app:pw@db.internal:5432/h?application_name=hl&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://app:pw@db.internal:5432/h?application_name=hl&connect_timeout=3"
        );
        assert_eq!(s.mode(DriverSslMode::Prefer), SslMode::VerifyFull);
        assert_eq!(s.root_cert, RootCert::File("/etc/ca dir/ca.pem".into()));
        assert_eq!(
            s.describe(SslMode::VerifyFull),
            "sslmode=verify-full, sslrootcert=/etc/ca dir/ca.pem"
        );

        let (rest, s) = split("postgres://db/h?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://db/h");
        assert_eq!(s.mode(DriverSslMode::Prefer), SslMode::Require);
        assert_eq!(SslMode::Require.driver(), DriverSslMode::Require);
        assert_eq!(SslMode::VerifyCa.driver(), DriverSslMode::Require);

        // No sslmode: the driver's default, prefer, as libpq.
        let (rest, s) = split("postgres://db/h").unwrap();
        assert_eq!(rest, "postgres://db/h");
        assert_eq!(s.mode(DriverSslMode::Prefer), SslMode::Prefer);

        // sslrootcert=system means the public roots, checked in full.
        let (_, s) = split("postgresql://db/h?sslrootcert=system").unwrap();
        assert_eq!(s.mode(DriverSslMode::Prefer), SslMode::VerifyFull);
        assert_eq!(s.root_cert, RootCert::System);

        // A key=value string goes to the driver as it is.
        let (rest, s) = split("host=db sslmode=require").unwrap();
        assert_eq!(rest, "host=db sslmode=require");
        assert_eq!(s.mode(DriverSslMode::Require), SslMode::Require);
    }

    #[test]
    fn unsupported_or_inconsistent_tls_settings_are_refused_by_name() {
        for (url, needle) in [
            ("postgres://db/h?sslmode=allow", "sslmode=allow"),
            ("postgres://db/h?sslmode=verify_full", "verify_full"),
            ("postgres://db/h?sslmode=require&sslcert=/c.pem", "sslcert"),
            ("postgres://db/h?sslmode=require&sslkey=/k.pem", "sslkey"),
            ("postgres://db/h?sslmode=verify-full&sslcrl=/x", "sslcrl"),
            ("postgres://db/h?sslrootcert=/ca.pem", "sslrootcert"),
            (
                "postgres://db/h?sslmode=disable&sslrootcert=/ca.pem",
                "disable",
            ),
            (
                "postgres://db/h?sslmode=require&sslrootcert=system",
                "system",
            ),
            ("postgres://db/h?sslmode=require&sslrootcert=", "empty"),
            ("postgres://db/h?sslmode=%zz", "%-escape"),
        ] {
            let err = split(url).unwrap_err();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn an_unusable_sslrootcert_stops_the_connector_being_built() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let url = format!(
            "postgres://db/h?sslmode=verify-full&sslrootcert={}",
            missing.display()
        );
        let (_, s) = split(&url).unwrap();
        let err = s.connector(SslMode::VerifyFull).err().unwrap();
        assert!(err.contains("can't read sslrootcert"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let url = format!(
            "postgres://db/h?sslmode=verify-ca&sslrootcert={}",
            garbage.display()
        );
        let (_, s) = split(&url).unwrap();
        let err = s.connector(SslMode::VerifyCa).err().unwrap();
        assert!(err.contains("no PEM CERTIFICATE"), "{err}");

        // The public roots and the unverified modes need no file.
        let (_, s) = split("postgres://db/h?sslmode=verify-full").unwrap();
        assert!(s.connector(SslMode::VerifyFull).is_ok());
        assert!(s.connector(SslMode::Prefer).is_ok());
    }
}
