//! Strict query strings on every `/v1` route: a parameter the route doesn't take, a parameter given
//! twice, a malformed percent-encoding, a name-less parameter or a control character in a value is
//! a 400 `invalid_query` naming the parameter. Without this a typo such as `?stauts=failed` was
//! ignored and the list answered everything, and `?status=a&status=b` kept one of them silently.
//!
//! Which parameters a route takes is read from the OpenAPI document (each handler's
//! `#[utoipa::path(params(...))]`), so the documentation and the rule can't drift apart: a route
//! accepts exactly the query parameters it documents, and a route the document doesn't describe
//! accepts none. The check runs as a route layer, after routing (it needs the matched route) and
//! before any extractor; the extractors then only parse values.

use crate::error::Error;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, ParameterIn};

/// `(method, route as the document writes it)` → the query parameters it takes.
type Rules = HashMap<(Method, String), Vec<String>>;

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut rules = Rules::new();
        for (path, item) in &super::openapi::document().paths.paths {
            let shared = item.parameters.as_deref().unwrap_or_default();
            let operations: [(Method, &Option<Operation>); 5] = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, op) in operations {
                let Some(op) = op else { continue };
                let names = shared
                    .iter()
                    .chain(op.parameters.as_deref().unwrap_or_default())
                    .filter(|p| matches!(p.parameter_in, ParameterIn::Query))
                    .map(|p| p.name.clone())
                    .collect();
                rules.insert((method, path.clone()), names);
            }
        }
        rules
    })
}

/// The query parameters the route `path` (as matched, e.g. `/v1/webhooks/{id}`) takes for
/// `method`; a HEAD is a GET. Routes the document doesn't describe take none.
pub(crate) fn allowed(method: &Method, path: &str) -> &'static [String] {
    let method = if method == Method::HEAD {
        Method::GET
    } else {
        method.clone()
    };
    rules()
        .get(&(method, path.to_string()))
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn bad(field: &str, message: String) -> Error {
    Error::bad_request("invalid_query", message, Some(field))
}

/// Percent-decodes one `application/x-www-form-urlencoded` component (`+` is a space), refusing
/// a `%` without two hex digits and bytes that aren't UTF-8 instead of guessing.
fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Checks a query string against the parameters a route takes.
pub(crate) fn check(query: &str, allowed: &[String]) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(raw_name).ok_or_else(|| {
            bad(
                raw_name,
                format!("query parameter name `{raw_name}` is not valid percent-encoded UTF-8"),
            )
        })?;
        if name.is_empty() {
            return Err(bad("", "a query parameter has no name".into()));
        }
        if let Some((at, c)) = hookline_core::text::find_control(&name, false) {
            return Err(bad(
                &name.escape_default().to_string(),
                format!(
                    "query parameter names must not contain control characters; found {} at character {}",
                    hookline_core::text::describe(c),
                    at + 1
                ),
            ));
        }
        if !allowed.contains(&name) {
            let takes = if allowed.is_empty() {
                "this route takes no query parameters".to_string()
            } else {
                format!("this route takes {}", allowed.join(", "))
            };
            return Err(bad(
                &name,
                format!("unknown query parameter `{name}`; {takes}"),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(bad(
                &name,
                format!("query parameter `{name}` is given more than once"),
            ));
        }
        let value = decode(raw_value).ok_or_else(|| {
            bad(
                &name,
                format!("the value of `{name}` is not valid percent-encoded UTF-8"),
            )
        })?;
        if let Some((at, c)) = hookline_core::text::find_control(&value, false) {
            return Err(bad(
                &name,
                format!(
                    "the value of `{name}` must not contain control characters; found {} at character {}",
                    hookline_core::text::describe(c),
                    at + 1
                ),
            ));
        }
    }
    Ok(())
}

/// The route layer: refuses a request whose query string breaks the route's rules.
pub(crate) async fn strict_query(request: Request, next: Next) -> Response {
    if let (Some(query), Some(path)) = (
        request.uri().query(),
        request.extensions().get::<MatchedPath>(),
    ) {
        if let Err(e) = check(query, allowed(request.method(), path.as_str())) {
            return e.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(query: &str, allowed: &[&str]) -> Option<String> {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        check(query, &allowed)
            .err()
            .map(|e| e.body().error.field.unwrap_or_default())
    }

    #[test]
    fn unknown_repeated_nameless_and_malformed_parameters_are_named() {
        let list = ["status", "search", "limit", "cursor"];
        for (query, want) in [
            ("", None),
            ("status=failed&limit=5", None),
            ("status=failed&", None),
            ("&&status=failed", None),
            ("search=a+b%20c%C3%A9", None),
            ("search", None),
            ("search=", None),
            ("stauts=failed", Some("stauts")),
            ("status=failed&stauts=failed", Some("stauts")),
            ("status=a&status=b", Some("status")),
            ("status=a&st%61tus=b", Some("status")),
            ("limit=1&limit=1", Some("limit")),
            ("=x", Some("")),
            ("search=%zz", Some("search")),
            ("search=%4", Some("search")),
            ("search=%ff", Some("search")),
            ("search=a%00b", Some("search")),
            ("search=%09", Some("search")),
            ("search=%C2%85", Some("search")),
            ("sea%zzrch=x", Some("sea%zzrch")),
            ("STATUS=failed", Some("STATUS")),
        ] {
            assert_eq!(field(query, &list).as_deref(), want, "{query}");
        }
        assert_eq!(field("x=1", &[]).as_deref(), Some("x"));
        let e = check("stauts=failed", &["status".to_string()]).unwrap_err();
        assert_eq!(
            e.body().error.message,
            "unknown query parameter `stauts`; this route takes status"
        );
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_rules_come_from_the_openapi_document() {
        let list = allowed(&Method::GET, "/v1/deliveries");
        for p in [
            "webhook_id",
            "status",
            "event_type",
            "since",
            "until",
            "search",
            "limit",
            "cursor",
        ] {
            assert!(list.contains(&p.to_string()), "{p}: {list:?}");
        }
        assert_eq!(allowed(&Method::HEAD, "/v1/deliveries"), list);
        assert!(allowed(&Method::GET, "/v1/webhooks/{id}").is_empty());
        assert!(allowed(&Method::POST, "/v1/webhooks").is_empty());
        assert!(allowed(&Method::GET, "/v1/openapi.json").is_empty());
        assert!(allowed(&Method::GET, "/v1/contacts").contains(&"tag".to_string()));
    }
}
