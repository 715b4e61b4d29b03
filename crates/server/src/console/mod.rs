//! The web console at `/` and the customer portal embedded from it: server-rendered HTML
//! (`maud`, escaped by construction), one small script for progressive enhancement, charts as
//! inline SVG. No asset comes from another origin, and nothing needs a JavaScript toolchain.
//!
//! Every page calls the service layer as the signed-in browser's [`Principal`], so a portal
//! session sees exactly what its grant allows, through pages and links alike. Sessions, CSRF
//! tokens and portal grants are in `service/sessions.rs`; this module only turns cookies and
//! forms into those calls. See ARCHITECTURE.md, "Interfaces".

mod charts;
mod pages;
mod session;
mod views;

use crate::service::sessions::PORTAL_TOKEN_PREFIX;
use crate::service::Hookline;
use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use session::{session_token, Console};

/// The console's routes (merged at `/` beside `/v1`).
pub fn router(hookline: Hookline) -> Router {
    let console = Console {
        hookline,
        limiter: Default::default(),
    };
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/portal/{code}", get(pages::portal_entry))
        .route("/webhooks", get(pages::webhooks))
        .route(
            "/webhooks/new",
            get(pages::new_webhook).post(pages::create_webhook),
        )
        .route("/webhooks/{id}", get(pages::webhook))
        .route(
            "/webhooks/{id}/edit",
            get(pages::edit_webhook).post(pages::update_webhook),
        )
        .route("/webhooks/{id}/action", post(pages::webhook_action))
        .route("/deliveries", get(pages::deliveries))
        .route("/deliveries/{id}", get(pages::delivery))
        .route("/deliveries/{id}/resend", post(pages::resend))
        .route("/event-types", get(pages::event_types))
        .route("/keys", get(pages::keys).post(pages::create_key))
        .route("/keys/{id}/revoke", post(pages::revoke_key))
        .route(
            "/erasures",
            get(pages::erasures).post(pages::create_erasure),
        )
        .route("/test-url", get(pages::test_url_form).post(pages::test_url))
        .route("/format-example", get(pages::format_example))
        .route("/assets/app.js", get(pages::script))
        .route("/assets/app.css", get(pages::stylesheet))
        .route("/assets/icon.svg", get(pages::icon))
        .route("/favicon.ico", get(pages::icon))
        .layer(middleware::from_fn_with_state(
            console.clone(),
            security_headers,
        ))
        .with_state(console)
}

/// Strict headers on every console response: no inline script, no framing except where the
/// configuration allows it, no MIME sniffing, no referrer leaking portal links.
async fn security_headers(State(c): State<Console>, req: Request, next: Next) -> Response {
    let portal = req.uri().path().starts_with("/portal/")
        || session_token(req.headers()).is_some_and(|t| t.starts_with(PORTAL_TOKEN_PREFIX));
    let mut resp = next.run(req).await;
    let ancestors = if portal {
        &c.hookline.config.portal_frame_ancestors
    } else {
        &c.hookline.config.console_frame_ancestors
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    );
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(CONTENT_SECURITY_POLICY, v);
    }
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
