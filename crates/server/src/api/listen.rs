//! `/v1/listen`: `hookline listen`'s session. `GET /v1/listen` opens one and streams its requests
//! as server-sent events (`session` first, then one `request` per delivery attempt); the CLI
//! forwards each to a local URL and answers with `POST /v1/listen/{session}/reports`. The session,
//! its temporary webhook and what happens when it ends are the service layer's
//! (`service/listen.rs`); how a request reaches the stream is the sender's (`sender/listen.rs`).

use super::extract::{ApiJson, Auth};
use super::responses::{BadRequest, Conflict, Forbidden, Invalid, NotFound};
use crate::error::{Error, Result};
use crate::sender::listen::ListenReport;
use crate::service::Hookline;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/listen", get(listen))
        .route("/listen/{session}/reports", post(report))
}

#[derive(Debug, Deserialize)]
struct ListenQuery {
    events: Option<String>,
    format: Option<String>,
}

/// Open a listen session (what `hookline listen` uses).
///
/// Creates a temporary webhook for `events` (comma-separated names or patterns, default `*`) in
/// `format` (default `envelope`) and answers a `text/event-stream`: first a `session` event
/// (`{session, webhook}`, the webhook with its signing secret), then a `request` event
/// (`{id, headers, body}`, signed as any delivery) for each attempt, to forward to the local
/// receiver and report with `POST /v1/listen/{session}/reports`. Closing the stream deletes the
/// webhook: its queued deliveries end `cancelled`. Needs a `full` key.
#[utoipa::path(get, path = "/v1/listen", tag = "listen", operation_id = "openListenSession",
    params(("events" = Option<String>, Query, description = "comma-separated event names or patterns; default *"),
           ("format" = Option<String>, Query, description = "envelope (default), flat, entity or contacts-list")),
    responses((status = 200, description = "the session's events", content_type = "text/event-stream", body = String),
              (status = 400, response = BadRequest), (status = 403, response = Forbidden), (status = 422, response = Invalid)),
    security(("bearer" = [])))]
async fn listen(
    State(h): State<Hookline>,
    Auth(who): Auth,
    q: std::result::Result<Query<ListenQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let Query(q) = q.map_err(|e| Error::bad_request("invalid_query", e.body_text(), None))?;
    let events: Vec<String> = q
        .events
        .as_deref()
        .unwrap_or("*")
        .split(',')
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect();
    let session = h.open_listen(&who, events, q.format).await?;
    let first = Event::default()
        .event("session")
        .json_data(&session.start)
        .map_err(|e| Error::Internal(format!("listen session: {e}")))?;
    // The guard lives as long as the stream: when the client goes, the stream is dropped, and
    // with it the guard, which ends the session.
    let state = (Some(first), session.requests, session.guard);
    let stream = futures_util::stream::unfold(state, |(first, mut requests, guard)| async move {
        if let Some(first) = first {
            return Some((Ok::<_, Infallible>(first), (None, requests, guard)));
        }
        let request = requests.recv().await?;
        let event = Event::default()
            .event("request")
            .json_data(&request)
            .unwrap_or_else(|_| Event::default().comment("unserializable request"));
        Some((Ok(event), (None, requests, guard)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Report what the local receiver answered to one request of a listen session.
#[utoipa::path(post, path = "/v1/listen/{session}/reports", tag = "listen", operation_id = "reportListenAnswer",
    params(("session" = String, Path)),
    request_body = ListenReport,
    responses((status = 204, description = "recorded as the attempt's answer"), (status = 400, response = BadRequest),
              (status = 403, response = Forbidden), (status = 404, response = NotFound), (status = 409, response = Conflict)),
    security(("bearer" = [])))]
async fn report(
    State(h): State<Hookline>,
    Auth(who): Auth,
    Path(session): Path<String>,
    ApiJson(r): ApiJson<ListenReport>,
) -> Result<StatusCode> {
    h.report_listen(&who, &session, r)?;
    Ok(StatusCode::NO_CONTENT)
}
