//! Hookline's pure domain logic: everything that decides *what* happens, with no I/O.
//!
//! The server, store and CLI crates call into here so that each rule lives in exactly one place:
//! - [`catalog`]: the event catalog, each format's spelling of event names, subscription patterns;
//! - [`url_policy`]: which webhook URLs and which resolved addresses may be dialled (SSRF);
//! - [`signing`]: secrets, API keys and the two signature schemes;
//! - [`api_key`]: API keys' scopes, expiry and which key may be revoked;
//! - [`formats`], [`jsjson`]: wire formats, delivery headers, JavaScript-identical JSON bodies;
//! - [`retry`]: retry schedules and the classification of HTTP outcomes;
//! - [`sealing`]: the encrypted envelope of secrets at rest, keys and keyrings;
//! - [`webhook`]: validation of a webhook's settings (names, headers, formats, limits);
//! - [`filter`]: the payload filter language (a bounded subset of CEL) choosing a webhook's events;
//! - [`text`]: which characters a stored text may hold (control characters), and `FieldError`.
#![forbid(unsafe_code)]

pub mod api_key;
pub mod catalog;
pub mod csv;
pub mod diff;
pub mod erasure;
pub mod filter;
pub mod formats;
pub mod ids;
pub mod jsjson;
pub mod record;
pub mod redact;
pub mod retry;
pub mod sealing;
pub mod signing;
pub mod stats;
pub mod text;
pub mod time;
pub mod url_policy;
pub mod webhook;
