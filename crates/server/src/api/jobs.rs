//! `/v1/jobs`: background jobs (a replay answers at once with its job). Read a job's progress, list
//! them, cancel one. What a job does and how it resumes after a crash is the job runner's
//! (`crate::jobs`) and the store's (`hookline_store::jobs`).

use super::extract::{Auth, IdPath, ListResponse, Pagination};
use super::responses::{BadRequest, Forbidden, JobList, NotFound};
use crate::error::Result;
use crate::service::{Hookline, JobView};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use hookline_core::ids::JobId;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/{id}", get(fetch))
        .route("/jobs/{id}/cancel", post(cancel))
}

/// List background jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", operation_id = "listBackgroundJobs",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "a page of jobs", body = JobList), (status = 400, response = BadRequest),
              (status = 403, response = Forbidden)),
    security(("bearer" = [])))]
async fn list(
    State(h): State<Hookline>,
    Auth(who): Auth,
    page: Pagination,
) -> Result<Json<ListResponse<JobView>>> {
    let rows = h.list_jobs(&who, page.page()?).await?;
    Ok(Json(page.respond(rows, |j| j.id)))
}

/// Get a job: its status and progress (`done` of `total`).
///
/// `queued` until a worker takes it, `running` while it works in steps, then `succeeded`,
/// `failed` (with `error`) or `cancelled`. A job survives restarts: another worker goes on where
/// the last one stopped.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "getBackgroundJob",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the job", body = JobView), (status = 400, response = BadRequest),
              (status = 403, response = Forbidden), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
async fn fetch(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<JobId>,
) -> Result<Json<JobView>> {
    Ok(Json(h.get_job(&who, id).await?))
}

/// Cancel a job.
///
/// No step runs after the answer; what it already did stays (replayed deliveries are sent).
/// Cancelling a finished job answers it unchanged.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", operation_id = "cancelBackgroundJob",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the job as it is now", body = JobView), (status = 400, response = BadRequest),
              (status = 403, response = Forbidden), (status = 404, response = NotFound)),
    security(("bearer" = [])))]
async fn cancel(
    State(h): State<Hookline>,
    Auth(who): Auth,
    IdPath(id): IdPath<JobId>,
) -> Result<Json<JobView>> {
    Ok(Json(h.cancel_job(&who, id).await?))
}
