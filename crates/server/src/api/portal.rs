//! `/v1/portal-sessions`: a CRM mints a scoped, expiring, revocable link to the customer portal
//! (the console's pages, limited to some webhooks and capabilities) and embeds it in its own page.

use super::extract::{ApiJson, Auth, IdPath};
use crate::error::{ErrorBody, Result};
use crate::service::sessions::{PortalInput, PortalView};
use crate::service::Hookline;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::{Json, Router};
use hookline_core::time;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route(
            "/portal-sessions",
            post(create_portal_session).delete(revoke_all_portal_sessions),
        )
        .route("/portal-sessions/{id}", delete(revoke_portal_session))
}

/// Where users reach this deployment: the configured `public_url`, else the request's own host.
fn base_url(h: &Hookline, headers: &HeaderMap) -> String {
    if let Some(u) = &h.config.public_url {
        return u.clone();
    }
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(axum::http::header::HOST))
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// Mint a portal link: `url` signs a browser in once (then stops working) to a portal limited to
/// `webhook_ids` (all of the tenant's when absent) and `capabilities` (default: view, manage,
/// resend; `reveal_secret` only when named), until `expires_at`.
#[utoipa::path(post, path = "/v1/portal-sessions", tag = "portal", operation_id = "createPortalSession",
    request_body = PortalInput,
    responses((status = 201, body = PortalView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_portal_session(
    State(h): State<Hookline>,
    Auth(who): Auth,
    headers: HeaderMap,
    ApiJson(input): ApiJson<PortalInput>,
) -> Result<(StatusCode, Json<PortalView>)> {
    let minted = h.create_portal(&who, input).await?;
    let url = format!("{}/portal/{}", base_url(&h, &headers), minted.code);
    Ok((
        StatusCode::CREATED,
        Json(PortalView {
            id: minted.id,
            url,
            expires_at: time::format(&minted.expires_at),
        }),
    ))
}

/// Revoke one portal link and end the browser sessions made from it at once.
#[utoipa::path(delete, path = "/v1/portal-sessions/{id}", tag = "portal", operation_id = "revokePortalSession",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke_portal_session(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<Uuid>,
) -> Result<StatusCode> {
    h.revoke_portals(&who, Some(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct RevokedView {
    /// How many portal links were revoked.
    pub revoked: u64,
}

/// Revoke every portal link of the tenant.
#[utoipa::path(delete, path = "/v1/portal-sessions", tag = "portal", operation_id = "revokeAllPortalSessions",
    responses((status = 200, body = RevokedView), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke_all_portal_sessions(
    State(h): State<Hookline>,
    Auth(who): Auth,
) -> Result<Json<RevokedView>> {
    Ok(Json(RevokedView {
        revoked: h.revoke_portals(&who, None).await?,
    }))
}
