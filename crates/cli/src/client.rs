//! The REST API client every remote command uses: one deployment, one key, JSON in and out.
//!
//! It adds nothing to the API: paths are built from segments (so an id typed by a user can't
//! change the route), non-2xx answers become an [`ApiError`] carrying the API's own message and
//! field, and failures to get any answer become [`CliError::Unreachable`]. Lists are read page by
//! page through `next_cursor` until the caller's `--limit` is reached.

use crate::error::{failed, usage, ApiError, CliError};
use crate::profile::Target;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::{json, Value};
use std::time::Duration;

/// Long enough for a test send or a receiver handshake (two requests, each up to the server's own
/// timeout) and for an import chunk; short enough that a hung connection ends.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The API's largest page.
pub const MAX_PAGE: usize = 100;

/// A request body.
pub enum Body {
    None,
    Json(Value),
}

/// A 2xx answer: its headers (`ETag`, `Idempotent-Replayed`) and body.
pub struct Answer {
    pub headers: HeaderMap,
    /// The parsed JSON body; `null` when there was none (204).
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A connection to one deployment with one key.
pub struct Api {
    http: reqwest::Client,
    base: Url,
    key: String,
}

/// The deployment's base address: `https://host`, `https://host/` and `https://host/v1` all name
/// the same deployment; a path prefix (a deployment behind `/hookline`) is kept.
pub fn base_url(raw: &str) -> anyhow::Result<Url> {
    let trimmed = raw.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
    let url = Url::parse(trimmed).map_err(|e| {
        usage(format!(
            "--url `{raw}` is not a URL ({e}); give the deployment's address, e.g. https://hooks.example.com"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(usage(format!(
            "--url `{raw}` must be an http:// or https:// address, e.g. https://hooks.example.com"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(usage(format!(
            "--url `{raw}` must be the deployment's address without a query or fragment"
        )));
    }
    Ok(url)
}

/// Installs ring as rustls' provider (the same one the server and `hookline mcp` use); reqwest is
/// built without a provider of its own, so this must happen before the first client is built.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Api {
    pub fn new(url: &str, key: &str) -> anyhow::Result<Api> {
        let base = base_url(url)?;
        let key = key.trim().to_string();
        if key.is_empty() || HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
            return Err(usage(
                "the API key is empty or holds characters a header can't carry",
            ));
        }
        install_crypto();
        let http = reqwest::Client::builder()
            .user_agent(concat!("hookline-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // A redirect would turn a POST into a GET (or drop the key on another host): say where
            // the deployment is instead of following it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("can't set up the HTTP client: {e}"))?;
        Ok(Api { http, base, key })
    }

    /// From `--url`/`--key`/`--profile` and the environment.
    pub fn from_target(t: &Target) -> anyhow::Result<Api> {
        let (url, key) = crate::profile::resolve(t)?;
        Api::new(&url, &key)
    }

    /// The deployment's address as given (for messages).
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        let query: Vec<_> = query.iter().filter(|(_, v)| !v.is_empty()).collect();
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// A path typed by a user (`/v1/deals?limit=5`), kept as written (its own percent-encoding
    /// included) under the deployment's base path.
    pub fn url_for_path(&self, path_and_query: &str) -> Url {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        url.set_query(Some(query).filter(|q| !q.is_empty()));
        url
    }

    /// Sends one request; `Ok` only for a 2xx answer.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        headers: &[(&str, String)],
        body: Body,
    ) -> anyhow::Result<Answer> {
        self.send_to(method, self.url(segments, query), headers, body)
            .await
    }

    /// Sends one request to `url` (one of this deployment's); `Ok` only for a 2xx answer.
    pub async fn send_to(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, String)],
        body: Body,
    ) -> anyhow::Result<Answer> {
        let mut req = self
            .http
            .request(method, url.clone())
            .header(AUTHORIZATION, format!("Bearer {}", self.key));
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|_| usage(format!("the {name} value can't be sent in a header")))?;
            req = req.header(*name, value);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&v)?),
        };
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| self.unreachable(&e))?;
        if (300..400).contains(&status) {
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("elsewhere");
            return Err(usage(format!(
                "{} redirects to {to} (HTTP {status}): give the deployment's address as it is served, e.g. with https://",
                self.base()
            )));
        }
        if !(200..300).contains(&status) {
            return Err(ApiError::from_response(status, &text).into());
        }
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                failed(format!(
                    "{} answered HTTP {status} with a body that isn't JSON: is {} a Hookline deployment?",
                    url.path(),
                    self.base()
                ))
            })?
        };
        Ok(Answer { headers, body })
    }

    /// Opens a long-lived `GET` (a server-sent event stream): no overall timeout, only the
    /// connect one. `Ok` only for a 2xx answer, whose body is then read as it comes.
    pub async fn open_stream(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<reqwest::Response> {
        let resp = self
            .http
            .get(self.url(segments, query))
            .header(AUTHORIZATION, format!("Bearer {}", self.key))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            // A session lasts as long as the user wants it to.
            .timeout(Duration::from_secs(100 * 365 * 24 * 3600))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            return Err(ApiError::from_response(status, &text).into());
        }
        Ok(resp)
    }

    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        // reqwest's own message is terse ("error sending request"); the causes say what happened.
        let mut detail = String::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        let what = if e.is_timeout() {
            format!(
                "{} did not answer within {}s",
                self.base(),
                REQUEST_TIMEOUT.as_secs()
            )
        } else {
            format!("can't reach the Hookline server at {}", self.base())
        };
        let msg = if detail.is_empty() {
            format!("{what}: {e}")
        } else {
            format!("{what}: {detail}")
        };
        CliError::Unreachable(msg).into()
    }

    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<Value> {
        Ok(self
            .send(Method::GET, segments, query, &[], Body::None)
            .await?
            .body)
    }

    pub async fn post(&self, segments: &[&str], body: Option<Value>) -> anyhow::Result<Value> {
        let body = body.map(Body::Json).unwrap_or(Body::None);
        Ok(self
            .send(Method::POST, segments, &[], &[], body)
            .await?
            .body)
    }

    pub async fn patch(&self, segments: &[&str], body: Value) -> anyhow::Result<Value> {
        Ok(self
            .send(Method::PATCH, segments, &[], &[], Body::Json(body))
            .await?
            .body)
    }

    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<Value> {
        Ok(self
            .send(Method::DELETE, segments, &[], &[], Body::None)
            .await?
            .body)
    }

    /// Up to `limit` rows of a list endpoint from `cursor` on, reading as many pages as needed.
    /// Answers in the API's own shape, `{"data": [...], "next_cursor": ...}`, where `next_cursor`
    /// continues right after the last row returned.
    pub async fn list(
        &self,
        segments: &[&str],
        filters: &[(&str, String)],
        limit: usize,
        cursor: Option<String>,
    ) -> anyhow::Result<Value> {
        let mut rows = Vec::new();
        let mut cursor = cursor;
        loop {
            let want = (limit - rows.len()).min(MAX_PAGE);
            let mut query = filters.to_vec();
            query.push(("limit", want.to_string()));
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let page = self.get(segments, &query).await?;
            if let Some(data) = page.get("data").and_then(Value::as_array) {
                rows.extend(data.iter().cloned());
            }
            cursor = page
                .get("next_cursor")
                .and_then(Value::as_str)
                .map(str::to_string);
            if cursor.is_none() || rows.len() >= limit {
                break;
            }
        }
        Ok(json!({"data": rows, "next_cursor": cursor}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_names_the_deployment() {
        for raw in [
            "https://h.example",
            "https://h.example/",
            "https://h.example/v1",
        ] {
            assert_eq!(base_url(raw).unwrap().as_str(), "https://h.example/");
        }
        assert_eq!(
            base_url("http://127.0.0.1:8080/hookline/")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/hookline"
        );
        assert!(base_url("h.example").is_err());
        assert!(base_url("ftp://h.example").is_err());
    }

    #[test]
    fn ids_become_path_segments_not_paths() {
        let api = Api::new("http://127.0.0.1:1/prefix", "hk_x").unwrap();
        let url = api.url(
            &["v1", "webhooks", "../events"],
            &[("status", "failed".into()), ("search", String::new())],
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/prefix/v1/webhooks/..%2Fevents?status=failed"
        );
        assert_eq!(
            api.url_for_path("/v1/deliveries?since=2026-01-01T00:00:00%2B01:00")
                .as_str(),
            "http://127.0.0.1:1/prefix/v1/deliveries?since=2026-01-01T00:00:00%2B01:00"
        );
    }
}
