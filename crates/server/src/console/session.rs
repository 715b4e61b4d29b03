//! What every console page shares: the session cookie, the signed-in [`Browser`], CSRF checks,
//! form bodies, the sign-in limiter and redirects. Sessions themselves (tokens, expiry, portal
//! grants) are the service layer's (`service/sessions.rs`); this only carries them over HTTP.

use super::views;
use crate::error::Error;
use crate::service::sessions::SignedIn;
use crate::service::Hookline;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The session cookie.
const COOKIE_NAME: &str = "hookline_session";
/// Failed sign-ins one address may make per window before it has to wait.
const SIGN_IN_ATTEMPTS: u32 = 10;
const SIGN_IN_WINDOW: Duration = Duration::from_secs(300);

/// The console's own state beside the service handle: the sign-in limiter (per node).
#[derive(Clone)]
pub struct Console {
    pub hookline: Hookline,
    pub(super) limiter: Arc<Mutex<HashMap<IpAddr, (u32, Instant)>>>,
}

impl Console {
    /// Counts a failed sign-in from `ip`; `false` when it is over the limit.
    pub fn note_failure(&self, ip: IpAddr) -> bool {
        let mut m = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Forget old windows so the map can't grow without bound.
        if m.len() > 10_000 {
            m.retain(|_, (_, t)| now.duration_since(*t) < SIGN_IN_WINDOW);
        }
        let e = m.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= SIGN_IN_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
        e.0 <= SIGN_IN_ATTEMPTS
    }

    /// Whether `ip` must wait before trying again.
    pub fn limited(&self, ip: IpAddr) -> bool {
        let m = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&ip).is_some_and(|(n, t)| {
            *n >= SIGN_IN_ATTEMPTS && Instant::now().duration_since(*t) < SIGN_IN_WINDOW
        })
    }
}

pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_string())
}

/// Whether the browser reached us over TLS (directly or through a proxy that says so).
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The cookie that carries a new session. Console sessions are `SameSite=Strict`; a portal is
/// opened inside the CRM's page (a cross-site frame), where only `SameSite=None; Secure` cookies
/// are sent — so over TLS a portal cookie is that, and `Lax` for plain-HTTP development.
pub fn session_cookie(token: &str, signed: &SignedIn, tls: bool) -> HeaderValue {
    let max_age = (signed.expires_at - hookline_core::time::now())
        .num_seconds()
        .max(0);
    let same_site = match (signed.is_portal(), tls) {
        (true, true) => "None",
        (true, false) => "Lax",
        (false, _) => "Strict",
    };
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("hookline_session=; Path=/; Max-Age=0"))
}

pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("hookline_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// A signed-in browser, or a redirect to the sign-in page.
pub struct Browser {
    pub signed: SignedIn,
}

impl FromRequestParts<Console> for Browser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Response> {
        let Some(token) = session_token(&parts.headers) else {
            return Err(redirect("/login"));
        };
        match c.hookline.session(&token).await {
            Ok(Some(signed)) => Ok(Browser { signed }),
            Ok(None) => {
                let mut r = redirect("/login?expired=1");
                r.headers_mut().insert(SET_COOKIE, clear_cookie());
                Err(r)
            }
            Err(e) => Err(views::error_page(None, &e)),
        }
    }
}

/// The client's address (sign-in rate limiting); unspecified when the server wasn't started with
/// connection info (in-process tests).
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip())
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
        ))
    }
}

/// A form body as name/value pairs (repeated names kept, e.g. the event checkboxes).
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> FormData {
        FormData(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A trimmed, non-empty value.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The refusal of a state-changing request whose CSRF token doesn't match the session's.
pub fn csrf_refusal(b: &Browser, form: &FormData) -> Option<Response> {
    if b.signed.csrf_ok(form.get("_csrf")) {
        None
    } else {
        Some(views::error_page(
            Some(&b.signed),
            &Error::Forbidden(
                "this form has expired or didn't come from this console; reload the page and try again"
                    .into(),
            ),
        ))
    }
}
