//! Bounded request headers: more than [`MAX_REQUEST_HEADERS`] header fields, or more than
//! [`MAX_REQUEST_HEADER_BYTES`] of names and values together, is a 431 `headers_too_large` on every
//! route. No legitimate client of this API comes near either (a browser sends about twenty,
//! cookies included, in a few kilobytes); a request that does is trying to make every layer
//! behind the listener copy, log or parse a mountain of headers.
//!
//! This runs on the parsed request, as a layer in front of every route; the listener's own parser
//! limits (how long it waits for headers, its buffer) are the connection layer's business.

use crate::error::Error;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Most header fields a request may carry (each value of a repeated header counts).
pub const MAX_REQUEST_HEADERS: usize = 64;
/// Most bytes of header names and values a request may carry, together.
pub const MAX_REQUEST_HEADER_BYTES: usize = 16 * 1024;

/// The check itself: `Some(message)` when `headers` is over a limit.
pub(crate) fn over_limit(headers: &axum::http::HeaderMap) -> Option<String> {
    if headers.len() > MAX_REQUEST_HEADERS {
        return Some(format!(
            "the request has {} header fields; at most {MAX_REQUEST_HEADERS} are accepted",
            headers.len()
        ));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (bytes > MAX_REQUEST_HEADER_BYTES).then(|| {
        format!(
            "the request's headers take {bytes} bytes; at most {MAX_REQUEST_HEADER_BYTES} are accepted"
        )
    })
}

/// The layer: 431 before anything else looks at a request over a limit.
pub(crate) async fn limit_headers(request: Request, next: Next) -> Response {
    match over_limit(request.headers()) {
        Some(message) => Error::HeadersTooLarge(message).into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderName, HeaderValue};

    fn headers(n: usize, value_len: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        for i in 0..n {
            h.append(
                HeaderName::try_from(format!("x-h{i}")).unwrap(),
                HeaderValue::from_str(&"v".repeat(value_len)).unwrap(),
            );
        }
        h
    }

    #[test]
    fn header_count_and_size_are_bounded() {
        assert_eq!(over_limit(&headers(MAX_REQUEST_HEADERS, 10)), None);
        assert!(over_limit(&headers(MAX_REQUEST_HEADERS + 1, 1)).is_some());
        // Repeated values count one by one.
        let mut h = HeaderMap::new();
        for _ in 0..=MAX_REQUEST_HEADERS {
            h.append("x-same", HeaderValue::from_static("v"));
        }
        assert!(over_limit(&h).is_some());
        // Size: names and values together.
        let mut h = HeaderMap::new();
        h.insert(
            "x-big",
            HeaderValue::from_str(&"v".repeat(MAX_REQUEST_HEADER_BYTES - 5)).unwrap(),
        );
        assert_eq!(over_limit(&h), None);
        h.insert(
            "x-big",
            HeaderValue::from_str(&"v".repeat(MAX_REQUEST_HEADER_BYTES - 4)).unwrap(),
        );
        assert!(over_limit(&h).is_some());
    }
}
