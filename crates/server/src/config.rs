//! Configuration: an optional TOML file, then `HOOKLINE_*` environment variables, then
//! command-line flags; each layer overrides the one before. `hookline.example.toml` at the repository
//! root lists every key with its default; [`KEYS`] is the list the environment layer understands.
//!
//! Everything is validated here, once, at start: a bad value stops the process with a message that
//! names the key, instead of surfacing later as a confusing runtime failure.

use hookline_core::retry::{parse_delay, DisablePolicy, Jitter, RetrySchedule};
use hookline_core::sealing::EncryptionKey;
use hookline_core::url_policy::{IpCidr, UrlPolicy};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The kind of value a key takes, so environment strings can be turned into TOML values.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int,
    List,
}

/// Every configuration key, with its kind. Environment variable = `HOOKLINE_` + upper-case key.
const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Str),
    ("database_url", Kind::Str),
    ("brand", Kind::Str),
    ("allow_http", Kind::Bool),
    ("allow_targets", Kind::List),
    ("log_redact", Kind::List),
    ("timeout", Kind::Str),
    ("retry_schedule", Kind::Str),
    ("retry_after_cap", Kind::Str),
    ("retry_jitter", Kind::Str),
    ("response_body_cap", Kind::Int),
    ("batch_max_size", Kind::Int),
    ("max_concurrency_per_webhook", Kind::Int),
    ("retention_days", Kind::Int),
    ("secret_rotation_grace", Kind::Str),
    ("encryption_key", Kind::Str),
    ("encryption_keys_old", Kind::List),
    ("extra_ca_cert", Kind::Str),
    ("sqlite_synchronous", Kind::Str),
    ("sqlite_readers", Kind::Int),
    ("pg_pool_size", Kind::Int),
    ("max_request_body", Kind::Int),
    ("log", Kind::Str),
    ("log_format", Kind::Str),
    ("otel_endpoint", Kind::Str),
    ("metrics_token", Kind::Str),
    ("lease", Kind::Str),
    ("max_inflight", Kind::Int),
    ("max_in_flight_per_tenant", Kind::Int),
    ("max_deliveries_per_publish", Kind::Int),
    ("shutdown_grace", Kind::Str),
    ("job_step", Kind::Int),
    ("http_header_timeout", Kind::Str),
    ("http_body_timeout", Kind::Str),
    ("http_max_connections", Kind::Int),
    ("disable_after_failures", Kind::Int),
    ("disable_after", Kind::Str),
    ("console_session_idle", Kind::Str),
    ("console_session_max", Kind::Str),
    ("console_frame_ancestors", Kind::Str),
    ("portal_frame_ancestors", Kind::Str),
    ("public_url", Kind::Str),
];

/// The file as written: every key optional, unknown keys refused so typos are caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    database_url: Option<String>,
    brand: Option<String>,
    allow_http: Option<bool>,
    allow_targets: Option<Vec<String>>,
    log_redact: Option<Vec<String>>,
    timeout: Option<String>,
    retry_schedule: Option<StringOrList>,
    retry_after_cap: Option<String>,
    retry_jitter: Option<StringOrNumber>,
    response_body_cap: Option<u64>,
    batch_max_size: Option<u64>,
    max_concurrency_per_webhook: Option<u64>,
    retention_days: Option<u64>,
    secret_rotation_grace: Option<String>,
    encryption_key: Option<String>,
    encryption_keys_old: Option<Vec<String>>,
    extra_ca_cert: Option<String>,
    sqlite_synchronous: Option<String>,
    sqlite_readers: Option<u64>,
    pg_pool_size: Option<u64>,
    max_request_body: Option<u64>,
    log: Option<String>,
    log_format: Option<String>,
    otel_endpoint: Option<String>,
    metrics_token: Option<String>,
    lease: Option<String>,
    max_inflight: Option<u64>,
    max_in_flight_per_tenant: Option<u64>,
    max_deliveries_per_publish: Option<u64>,
    shutdown_grace: Option<String>,
    job_step: Option<u64>,
    http_header_timeout: Option<String>,
    http_body_timeout: Option<String>,
    http_max_connections: Option<u64>,
    disable_after_failures: Option<u64>,
    disable_after: Option<String>,
    console_session_idle: Option<String>,
    console_session_max: Option<String>,
    console_frame_ancestors: Option<String>,
    portal_frame_ancestors: Option<String>,
    public_url: Option<String>,
}

/// `retry_jitter` may be written `"10%"` or `0.1` (or `0`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    String(String),
    Int(i64),
    Float(f64),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrList {
    String(String),
    List(Vec<toml::Value>),
}

/// Validated configuration. `Debug` hides the database password.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    /// `{Brand}` in `X-{Brand}-Event` / `X-{Brand}-Delivery-ID`.
    pub brand: String,
    pub url_policy: UrlPolicy,
    /// Fields of an event's `data` kept out of the stored event (and so the log); receivers still
    /// get them (`hookline_core::redact`).
    pub log_redact: hookline_core::redact::Redaction,
    /// Whole-attempt timeout: connect + TLS + response headers + capped body.
    pub timeout: Duration,
    pub retry_schedule: RetrySchedule,
    /// Longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
    /// How far each retry delay is spread at random (±10 % by default).
    pub retry_jitter: Jitter,
    pub response_body_cap: usize,
    pub batch_max_size: usize,
    pub max_concurrency_per_webhook: usize,
    pub retention_days: u32,
    pub secret_rotation_grace: Duration,
    /// The key webhook secrets and custom header values are sealed under at rest. `None`: the key
    /// file beside a SQLite database (refused with PostgreSQL); see `encryption.rs`. `Debug`
    /// shows only its id.
    pub encryption_key: Option<EncryptionKey>,
    /// Older keys that still open values sealed before a key rotation, never seal.
    pub encryption_keys_old: Vec<EncryptionKey>,
    pub extra_ca_cert: Option<PathBuf>,
    pub sqlite_synchronous_full: bool,
    pub sqlite_readers: usize,
    /// PostgreSQL connections per node.
    pub pg_pool_size: usize,
    pub max_request_body: usize,
    /// `tracing` filter, e.g. `info` or `hookline_server=debug`.
    pub log: String,
    /// Log lines as human-readable text (`text`) or one JSON object per line (`json`).
    pub log_format: LogFormat,
    /// OTLP/HTTP collector to export traces to (e.g. `http://127.0.0.1:4318`); `None`: no tracing
    /// export at all (no exporter, no batch processor, no `traceparent` header).
    pub otel_endpoint: Option<String>,
    /// When set, `GET /metrics` answers only requests carrying `Authorization: Bearer <token>`.
    pub metrics_token: Option<MetricsToken>,
    /// How long a claimed delivery stays leased to its node; after that another node may send it.
    pub lease: Duration,
    /// Most deliveries in flight (claimed, not yet recorded) on this node.
    pub max_inflight: usize,
    /// Most deliveries of one tenant in flight on this node, so a tenant whose endpoints hang
    /// can't take every slot (default: a quarter of `max_inflight`).
    pub max_in_flight_per_tenant: usize,
    /// Most deliveries one publish may create (events × webhooks × objects for one-object formats).
    pub max_deliveries_per_publish: usize,
    /// After SIGTERM, the process is gone within this long whatever receivers or the database do.
    pub shutdown_grace: Duration,
    /// Rows a background job (a replay) handles per step, each step one short transaction.
    pub job_step: usize,
    /// The HTTP server's connection limits.
    pub http: HttpLimits,
    /// When a failing webhook is disabled.
    pub disable: DisablePolicy,
    /// A console or portal session ends after this long without a request.
    pub console_session_idle: Duration,
    /// ... and this long after sign-in at the latest.
    pub console_session_max: Duration,
    /// CSP `frame-ancestors` of the console's pages (who may embed them).
    pub console_frame_ancestors: String,
    /// CSP `frame-ancestors` of portal sessions' pages: the CRM's own origin(s).
    pub portal_frame_ancestors: String,
    /// The address users reach this deployment at (portal links); default: the request's host.
    pub public_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config::load(None, std::iter::empty(), &[]).expect("defaults are valid")
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The database URL. Held as a secret: its password never shows in `Debug` output or logs, where
/// it reads `postgres://user:***@host/db`.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(SecretString::from(url.into()))
    }

    /// The URL with its password, for connecting.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(self.expose()))
    }
}

impl PartialEq<&str> for DatabaseUrl {
    fn eq(&self, other: &&str) -> bool {
        self.expose() == *other
    }
}

/// What the HTTP server allows a client connection (see `http_server.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time to send a request's head, counted from when the server starts waiting for it: on a new
    /// connection and between keep-alive requests alike, so it is also the idle keep-alive timeout.
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// Open connections at most; past it new ones wait in the kernel's accept queue.
    pub max_connections: usize,
}

/// `metrics_token`: the bearer token `/metrics` requires. Held as a secret: `Debug` output and
/// logs show `***`, never the token.
#[derive(Clone)]
pub struct MetricsToken(SecretString);

impl MetricsToken {
    /// Shortest token accepted: long enough that guessing it over the network is hopeless.
    pub const MIN_LEN: usize = 16;
    const MAX_LEN: usize = 512;

    /// Empty or unset means no token (so an environment variable can turn it off). Otherwise
    /// 16-512 visible ASCII characters, so it travels unchanged in an `Authorization` header.
    fn parse(value: Option<String>) -> Result<Option<MetricsToken>, ConfigError> {
        let Some(v) = value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        else {
            return Ok(None);
        };
        // The value itself is never repeated in the message: it is a secret.
        if v.len() < Self::MIN_LEN
            || v.len() > Self::MAX_LEN
            || !v.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError(format!(
                "metrics_token must be {} to {} visible ASCII characters without spaces \
                 (e.g. the output of `openssl rand -hex 32`)",
                Self::MIN_LEN,
                Self::MAX_LEN
            )));
        }
        Ok(Some(MetricsToken(SecretString::from(v))))
    }

    /// The token, for the constant-time comparison in the service layer.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line, with the fields of the spans it was written in.
    Json,
}

/// `otel_endpoint`: an http(s) URL; empty means unset (so an environment variable can turn it off).
fn otel_endpoint(value: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(v) = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    match url::Url::parse(&v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Some(v)),
        _ => Err(ConfigError(format!(
            "otel_endpoint: `{v}` is not an http(s):// URL like http://127.0.0.1:4318"
        ))),
    }
}

/// An encryption key (see `hookline_core::sealing::EncryptionKey::parse`); empty means unset, so
/// an environment variable can clear it. The error never repeats the value: it may be a real key.
fn encryption_key(key: &str, value: Option<&str>) -> Result<Option<EncryptionKey>, ConfigError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => EncryptionKey::parse(v)
            .map(Some)
            .map_err(|e| ConfigError(format!("{key}: the key {e}"))),
    }
}

/// A configuration error names the key and the layer it came from.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Builds the configuration from the three layers. `file` is read when given (missing file is an
    /// error then); `env` is usually `std::env::vars()`; `flags` are `(key, value)` pairs from the CLI.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
        flags: &[(&str, String)],
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("can't read {}: {e}", path.display())))?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix("HOOKLINE_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if let Some((k, kind)) = KEYS.iter().find(|(k, _)| *k == key) {
                table.insert(k.to_string(), typed(k, *kind, &value, &name)?);
            }
        }
        for (key, value) in flags {
            let (k, kind) = KEYS
                .iter()
                .find(|(k, _)| k == key)
                .ok_or_else(|| ConfigError(format!("unknown flag key {key}")))?;
            table.insert(k.to_string(), typed(k, *kind, value, &format!("--{k}"))?);
        }
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(e.to_string().trim().to_string()))?;
        raw.validate()
    }
}

fn typed(key: &str, kind: Kind, value: &str, origin: &str) -> Result<toml::Value, ConfigError> {
    let bad = |what: &str| ConfigError(format!("{origin}: `{value}` is not {what} (key {key})"));
    Ok(match kind {
        Kind::Str => toml::Value::String(value.to_string()),
        Kind::Bool => toml::Value::Boolean(match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" | "" => false,
            _ => return Err(bad("a boolean")),
        }),
        Kind::Int => toml::Value::Integer(value.trim().parse().map_err(|_| bad("a whole number"))?),
        Kind::List => toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
    })
}

fn duration(key: &str, v: Option<String>, default: &str) -> Result<Duration, ConfigError> {
    let s = v.unwrap_or_else(|| default.to_string());
    parse_delay(&s).map_err(|e| ConfigError(format!("{key}: {e}")))
}

fn bounded(
    key: &str,
    v: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let n = v.unwrap_or(default);
    if n < min || n > max {
        return Err(ConfigError(format!(
            "{key} must be between {min} and {max} (got {n})"
        )));
    }
    Ok(n)
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let listen_s = self.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_s.parse().map_err(|_| {
            ConfigError(format!(
                "listen: `{listen_s}` is not an address like 127.0.0.1:8080"
            ))
        })?;
        let brand = self.brand.unwrap_or_else(|| "Hookline".into());
        if brand.is_empty()
            || brand.len() > 64
            || !brand.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ConfigError(format!(
                "brand: `{brand}` must be 1-64 ASCII letters, digits or dashes (it becomes a header name)"
            )));
        }
        let allow_targets = self
            .allow_targets
            .unwrap_or_default()
            .iter()
            .map(|s| {
                IpCidr::parse(s).map_err(|e| ConfigError(format!("allow_targets: `{s}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let log_redact =
            hookline_core::redact::Redaction::parse(&self.log_redact.unwrap_or_default())
                .map_err(|e| ConfigError(format!("log_redact: {e}")))?;
        let retry_schedule = match self.retry_schedule {
            None => Ok(RetrySchedule::recommended()),
            Some(StringOrList::String(s)) => RetrySchedule::parse_list(&s),
            Some(StringOrList::List(items)) => {
                let json: Vec<serde_json::Value> = items
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::Integer(i) => serde_json::json!(i),
                        other => serde_json::Value::String(
                            other.as_str().unwrap_or_default().to_string(),
                        ),
                    })
                    .collect();
                RetrySchedule::from_json(&serde_json::Value::Array(json))
            }
        }
        .map_err(|e| ConfigError(format!("retry_schedule: {e}")))?;
        let sqlite_synchronous_full = match self.sqlite_synchronous.as_deref().unwrap_or("full") {
            "full" => true,
            "normal" => false,
            other => {
                return Err(ConfigError(format!(
                    "sqlite_synchronous: `{other}` must be full or normal"
                )))
            }
        };
        let timeout = duration("timeout", self.timeout, "10s")?;
        if timeout > Duration::from_secs(300) {
            return Err(ConfigError("timeout must be at most 5m".into()));
        }
        let lease = duration("lease", self.lease, "60s")?;
        // A lease shorter than an attempt would let a second node send a delivery still in flight.
        if lease < timeout * 2 + Duration::from_secs(5) {
            return Err(ConfigError(format!(
                "lease ({}s) must be at least twice the timeout plus 5s ({}s)",
                lease.as_secs(),
                (timeout * 2 + Duration::from_secs(5)).as_secs()
            )));
        }
        for (key, v) in [
            ("http_header_timeout", &self.http_header_timeout),
            ("http_body_timeout", &self.http_body_timeout),
            ("shutdown_grace", &self.shutdown_grace),
        ] {
            if let Some(v) = v {
                if duration(key, Some(v.clone()), "1s")? < Duration::from_secs(1) {
                    return Err(ConfigError(format!("{key} must be at least 1s (got {v})")));
                }
            }
        }
        let max_inflight = bounded("max_inflight", self.max_inflight, 1024, 1, 100_000)? as usize;
        let max_in_flight_per_tenant = bounded(
            "max_in_flight_per_tenant",
            self.max_in_flight_per_tenant,
            (max_inflight as u64 / 4).max(1),
            1,
            100_000,
        )? as usize;
        Ok(Config {
            lease,
            max_inflight,
            max_in_flight_per_tenant,
            max_deliveries_per_publish: bounded(
                "max_deliveries_per_publish",
                self.max_deliveries_per_publish,
                10_000,
                1,
                10_000_000,
            )? as usize,
            shutdown_grace: duration("shutdown_grace", self.shutdown_grace, "30s")?,
            job_step: bounded("job_step", self.job_step, 1000, 1, 100_000)? as usize,
            http: HttpLimits {
                header_timeout: duration("http_header_timeout", self.http_header_timeout, "10s")?,
                body_timeout: duration("http_body_timeout", self.http_body_timeout, "30s")?,
                max_connections: bounded(
                    "http_max_connections",
                    self.http_max_connections,
                    10_000,
                    1,
                    1_000_000,
                )? as usize,
            },
            disable: DisablePolicy {
                max_consecutive_failures: bounded(
                    "disable_after_failures",
                    self.disable_after_failures,
                    1000,
                    1,
                    u32::MAX as u64,
                )?,
                max_failing_for: duration("disable_after", self.disable_after, "5d")?,
            },
            listen,
            database_url: DatabaseUrl::new(
                self.database_url
                    .unwrap_or_else(|| "sqlite://hookline.db".into()),
            ),
            brand,
            url_policy: UrlPolicy {
                allow_http: self.allow_http.unwrap_or(false),
                allow_targets,
            },
            log_redact,
            timeout,
            retry_schedule,
            retry_after_cap: duration("retry_after_cap", self.retry_after_cap, "1h")?,
            retry_jitter: match self.retry_jitter {
                None => Ok(Jitter::recommended()),
                Some(StringOrNumber::String(s)) => Jitter::parse(&s),
                Some(StringOrNumber::Int(i)) => Jitter::from_fraction(i as f64),
                Some(StringOrNumber::Float(f)) => Jitter::from_fraction(f),
            }
            .map_err(|e| ConfigError(format!("retry_jitter: {e}")))?,
            response_body_cap: bounded(
                "response_body_cap",
                self.response_body_cap,
                4096,
                0,
                1 << 20,
            )? as usize,
            batch_max_size: bounded("batch_max_size", self.batch_max_size, 100, 1, 10_000)?
                as usize,
            max_concurrency_per_webhook: bounded(
                "max_concurrency_per_webhook",
                self.max_concurrency_per_webhook,
                10,
                1,
                1000,
            )? as usize,
            retention_days: bounded("retention_days", self.retention_days, 30, 1, 3650)? as u32,
            secret_rotation_grace: duration(
                "secret_rotation_grace",
                self.secret_rotation_grace,
                "24h",
            )?,
            encryption_key: encryption_key("encryption_key", self.encryption_key.as_deref())?,
            encryption_keys_old: self
                .encryption_keys_old
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter_map(|(i, k)| {
                    encryption_key(&format!("encryption_keys_old (key {})", i + 1), Some(k))
                        .transpose()
                })
                .collect::<Result<_, _>>()?,
            extra_ca_cert: self.extra_ca_cert.map(PathBuf::from),
            sqlite_synchronous_full,
            sqlite_readers: bounded("sqlite_readers", self.sqlite_readers, 4, 1, 64)? as usize,
            pg_pool_size: bounded("pg_pool_size", self.pg_pool_size, 16, 1, 1000)? as usize,
            max_request_body: bounded(
                "max_request_body",
                self.max_request_body,
                10 << 20,
                1024,
                1 << 30,
            )? as usize,
            log: self.log.unwrap_or_else(|| "info".into()),
            log_format: match self.log_format.as_deref().unwrap_or("text") {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError(format!(
                        "log_format: `{other}` must be text or json"
                    )))
                }
            },
            otel_endpoint: otel_endpoint(self.otel_endpoint)?,
            metrics_token: MetricsToken::parse(self.metrics_token)?,
            console_session_idle: duration(
                "console_session_idle",
                self.console_session_idle,
                "30m",
            )?,
            console_session_max: duration("console_session_max", self.console_session_max, "12h")?,
            console_frame_ancestors: frame_ancestors(
                "console_frame_ancestors",
                self.console_frame_ancestors,
            )?,
            portal_frame_ancestors: frame_ancestors(
                "portal_frame_ancestors",
                self.portal_frame_ancestors,
            )?,
            public_url: match self.public_url {
                None => None,
                Some(u) => {
                    let u = u.trim().trim_end_matches('/').to_string();
                    if !(u.starts_with("https://") || u.starts_with("http://"))
                        || url::Url::parse(&u).is_err()
                    {
                        return Err(ConfigError(format!(
                            "public_url: `{u}` is not an http(s):// URL"
                        )));
                    }
                    Some(u)
                }
            },
        })
    }
}

/// A CSP `frame-ancestors` source list: `'none'`, `'self'`, or origins, space-separated. Nothing
/// that could end the directive or smuggle in another one.
fn frame_ancestors(key: &str, value: Option<String>) -> Result<String, ConfigError> {
    let v = value.unwrap_or_else(|| "'none'".into()).trim().to_string();
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_graphic() && c != ';' && c != ',' || c == ' ');
    if !ok {
        return Err(ConfigError(format!(
            "{key}: `{v}` is not a frame-ancestors source list, e.g. 'none', 'self' or https://crm.example.com"
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://hookline.db");
        assert_eq!(c.brand, "Hookline");
        assert!(!c.url_policy.allow_http);
        assert!(c.url_policy.allow_targets.is_empty());
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.retry_schedule, RetrySchedule::recommended());
        assert_eq!(c.retry_jitter, Jitter::recommended());
        assert_eq!(c.response_body_cap, 4096);
        assert_eq!(c.batch_max_size, 100);
        assert_eq!(c.retention_days, 30);
        assert_eq!(c.secret_rotation_grace, Duration::from_secs(86400));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.otel_endpoint, None);
    }

    #[test]
    fn layers_override_in_order_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookline.toml");
        std::fs::write(&path, "brand = \"FromFile\"\nlisten = \"127.0.0.1:1\"\nallow_http = true\nretry_schedule = [\"30s\", 60]\n").unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("HOOKLINE_BRAND", "FromEnv"),
                ("HOOKLINE_LISTEN", "127.0.0.1:2"),
                ("PATH", "/bin"),
            ]),
            &[("listen", "127.0.0.1:3".into())],
        )
        .unwrap();
        assert_eq!(c.brand, "FromEnv");
        assert_eq!(c.listen.to_string(), "127.0.0.1:3");
        assert!(c.url_policy.allow_http);
        assert_eq!(c.retry_schedule.to_json(), serde_json::json!(["30s", "1m"]));
    }

    #[test]
    fn env_lists_and_bools_parse() {
        let c = Config::load(
            None,
            env(&[
                ("HOOKLINE_ALLOW_TARGETS", "127.0.0.1/32, ::1"),
                ("HOOKLINE_ALLOW_HTTP", "1"),
                ("HOOKLINE_RETRY_SCHEDULE", ""),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.url_policy.allow_targets.len(), 2);
        assert!(c.url_policy.allow_http);
        assert_eq!(c.retry_schedule, RetrySchedule(vec![]));
    }

    #[test]
    fn retry_jitter_and_exponential_schedules_are_read_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookline.toml");
        std::fs::write(
            &path,
            "retry_jitter = 0.25\nretry_schedule = \"exp:1m..4m x4\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), env(&[]), &[]).unwrap();
        assert_eq!(c.retry_jitter, Jitter::parse("25%").unwrap());
        assert_eq!(
            c.retry_schedule.to_json(),
            serde_json::json!(["1m", "2m", "4m", "4m"])
        );
        std::fs::write(&path, "retry_jitter = 0\n").unwrap();
        let c = Config::load(Some(&path), env(&[]), &[]).unwrap();
        assert_eq!(c.retry_jitter, Jitter::none());
        let c = Config::load(Some(&path), env(&[("HOOKLINE_RETRY_JITTER", "5%")]), &[]).unwrap();
        assert_eq!(c.retry_jitter, Jitter::parse("0.05").unwrap());
    }

    #[test]
    fn bad_values_name_their_key() {
        for (k, v, needle) in [
            ("HOOKLINE_ALLOW_HTTP", "maybe", "allow_http"),
            ("HOOKLINE_ALLOW_TARGETS", "10.0.0.0/33", "allow_targets"),
            ("HOOKLINE_LISTEN", "nowhere", "listen"),
            ("HOOKLINE_BRAND", "Bad Brand", "brand"),
            ("HOOKLINE_TIMEOUT", "10 parsecs", "timeout"),
            ("HOOKLINE_RETRY_SCHEDULE", "6m,soon", "retry_schedule"),
            (
                "HOOKLINE_RETRY_SCHEDULE",
                "exp:1d..30s x3",
                "retry_schedule",
            ),
            ("HOOKLINE_RETRY_JITTER", "60%", "retry_jitter"),
            ("HOOKLINE_RETRY_JITTER", "lots", "retry_jitter"),
            ("HOOKLINE_BATCH_MAX_SIZE", "0", "batch_max_size"),
            ("HOOKLINE_SQLITE_SYNCHRONOUS", "off", "sqlite_synchronous"),
            ("HOOKLINE_LOG_FORMAT", "xml", "log_format"),
            ("HOOKLINE_OTEL_ENDPOINT", "collector:4318", "otel_endpoint"),
        ] {
            let err = Config::load(None, env(&[(k, v)]), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{k}={v}: {err}");
        }
    }

    #[test]
    fn encryption_keys_parse_from_base64_or_hex_and_never_show() {
        let current = EncryptionKey::generate();
        let old = EncryptionKey::generate();
        let hex_old = hookline_core::signing::hex(&[5u8; 32]);
        let c = Config::load(
            None,
            env(&[
                ("HOOKLINE_ENCRYPTION_KEY", &current.to_base64()),
                (
                    "HOOKLINE_ENCRYPTION_KEYS_OLD",
                    &format!("{}, {hex_old}", old.to_base64()),
                ),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.encryption_key.as_ref().unwrap().id(), current.id());
        assert_eq!(c.encryption_keys_old.len(), 2);
        assert_eq!(c.encryption_keys_old[0].id(), old.id());
        let shown = format!("{c:?}");
        assert!(!shown.contains(&current.to_base64()), "{shown}");
        assert!(!shown.contains(&hex_old), "{shown}");
        assert!(shown.contains(current.id().as_str()), "{shown}");
        // Empty = unset; a bad key is named, its text is not repeated.
        let c = Config::load(None, env(&[("HOOKLINE_ENCRYPTION_KEY", " ")]), &[]).unwrap();
        assert!(c.encryption_key.is_none());
        for (var, value, needle) in [
            (
                "HOOKLINE_ENCRYPTION_KEY",
                "c2VjcmV0LWtleQ==",
                "encryption_key",
            ),
            (
                "HOOKLINE_ENCRYPTION_KEYS_OLD",
                "notbase64!",
                "encryption_keys_old (key 1)",
            ),
        ] {
            let err = Config::load(None, env(&[(var, value)]), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains(value), "{err}");
        }
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let c = Config::load(
            None,
            env(&[("HOOKLINE_DATABASE_URL", "postgres://app:hunter2@db:5432/h")]),
            &[],
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db:5432/h"), "{shown}");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(redact_url("postgres://app@db/h"), "postgres://app@db/h");
    }

    #[test]
    fn the_metrics_token_is_checked_and_never_shown() {
        let token = "m3tr1cs-t0ken-0123456789abcdef";
        let c = Config::load(None, env(&[("HOOKLINE_METRICS_TOKEN", token)]), &[]).unwrap();
        assert_eq!(
            c.metrics_token.as_ref().map(MetricsToken::expose),
            Some(token)
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains(token), "{shown}");
        assert!(shown.contains("metrics_token: Some(***)"), "{shown}");
        // Empty turns it off, so the environment can override a file that sets one.
        let c = Config::load(None, env(&[("HOOKLINE_METRICS_TOKEN", " ")]), &[]).unwrap();
        assert!(c.metrics_token.is_none());
        for bad in [
            "short",
            "has a space in the middle of it",
            "tab\there-0123456789",
        ] {
            let err = Config::load(None, env(&[("HOOKLINE_METRICS_TOKEN", bad)]), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains("metrics_token"), "{err}");
            assert!(!err.contains(bad), "the message repeats the secret: {err}");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookline.toml");
        std::fs::write(&path, "brnad = \"typo\"\n").unwrap();
        let err = Config::load(Some(&path), std::iter::empty(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("brnad"), "{err}");
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The documented example file must parse and state exactly the built-in defaults.
    #[test]
    fn example_file_lists_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hookline.example.toml");
        let from_file = Config::load(Some(&path), std::iter::empty(), &[]).unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{:?}", Config::default()));
        let text = std::fs::read_to_string(&path).unwrap();
        for (key, _) in KEYS {
            assert!(
                text.contains(&format!("{key} =")),
                "example file lacks {key}"
            );
        }
    }
}
