//! The MCP server: Hookline's tools for an AI assistant, served over streamable HTTP at `/mcp`.
//!
//! Every tool is a thin translation of camelCase tool arguments into a service-layer call — the
//! same [`Hookline`] methods the REST API calls — and of the answer into structured content. A
//! refused call (bad argument, URL policy, unknown event, not found, another tenant's id) is a
//! tool error (`isError: true`) whose text is the REST API's error object, with the field renamed
//! to the tool argument it came from; it is never a protocol error.
//!
//! Authentication happens before MCP sees the request: [`router`] puts a layer in front of the
//! transport that checks `Authorization: Bearer <API key or portal session token>` and answers 401
//! (no session is ever created without one); a portal session's token acts with that session's
//! webhooks and capabilities; the resolved [`Principal`] rides in the request's extensions to each
//! tool call. `hookline mcp` (the CLI) serves the same tools on stdio by forwarding to a running
//! server's `/mcp`. See ARCHITECTURE.md, "Interfaces".

use crate::error::Error;
use crate::service::catalog::{event_types, EventTypeList};
use crate::service::{
    DeliveryDetail, DeliveryQuery, DeliveryView, EventInput, HandshakeInput, HandshakeView,
    Hookline, JobView, Principal, PublishInput, PublishOutput, RecordView, ReplayInput, ReplayView,
    RotateInput, SecretView, TestInput, TestView, WebhookInput, WebhookView,
};
use crate::service::{ErasureInput, ErasureView, FilterTestInput, FilterTestView};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hookline_core::ids::{DeliveryId, WebhookId};
use hookline_core::record::{RecordId, RecordKind};
use hookline_store::{Page, RecordFilter};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, Implementation, ListResourceTemplatesResult,
    ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ErrorData as McpError, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tokio_util::sync::CancellationToken;

/// What an assistant is told about Hookline when it connects.
pub const INSTRUCTIONS: &str = "Hookline delivers a CRM's events (contact, organization, deal, \
service and task changes, and raw events) to webhooks: HTTPS endpoints that subscribe to event \
types. Each event to each webhook is a delivery, signed and retried until the receiver answers 2xx; \
every attempt is logged with its status, error kind, timings and response.\n\
Set up: list_event_types, then create_webhook {url, events}. Check it: send_test_event \
{webhookId} sends a sample now and shows the receiver's answer; verify_receiver {webhookId} tells \
whether the receiver really checks signatures.\n\
Debug a failing webhook: list_webhook_deliveries {webhookId, status: \"failed\"} (searchTerm matches \
the URL and the event name), then get_webhook_delivery {id} for each attempt's error kind \
(timeout, dns, connect, tls, blocked_destination, ...), status code and response body. Fix the \
receiver or the webhook (update_webhook), confirm with send_test_event, then \
resend_webhook_delivery {id} for one delivery or replay_webhook_deliveries {webhookId, since} for \
many (dryRun first; the replay runs as a background job, get_job {id} shows its progress). A resend is a new delivery record; the original stays as it was.";

/// Longest page of a list tool.
const MAX_PAGE_SIZE: usize = 100;
/// Furthest page `list_webhook_deliveries` walks to (pages are found by walking cursors).
const MAX_PAGE: usize = 100;

// Results keep the REST API's snake_case field names (they nest the same views); only the tool
// arguments are camelCase, as assistants know them.

/// The MCP handler: one per session; every call authenticates on its own.
#[derive(Clone)]
pub struct HooklineMcp {
    hookline: Hookline,
    tool_router: ToolRouter<Self>,
}

/// A refused tool call. It reaches the assistant as a tool error (`isError: true`) whose text is
/// the REST API's error object, with the field renamed to the tool's argument (`retry_schedule`
/// → `retrySchedule`; `events[2]` stays).
#[derive(Debug)]
pub struct ToolError(Error);

impl From<Error> for ToolError {
    fn from(e: Error) -> Self {
        ToolError(e)
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, McpError> {
        if let Error::Internal(detail) = &self.0 {
            tracing::error!(%detail, "MCP tool failed");
        }
        let body = self.0.body().error;
        let field = body.field.map(|f| camel_field(&f));
        let value = json!({"error": {"code": body.code, "message": body.message, "field": field}});
        Ok(CallToolResult::error(vec![ContentBlock::text(value.to_string())]).into())
    }
}

/// Tools answer `Result<rmcp::Json<T>>`: the SDK reads the output schema off that exact shape.
type Result<T, E = ToolError> = std::result::Result<T, E>;

fn camel_field(field: &str) -> String {
    let split = field.find(['.', '[']).unwrap_or(field.len());
    let (head, rest) = field.split_at(split);
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in head.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out + rest
}

fn invalid(field: &str, message: impl Into<String>) -> ToolError {
    ToolError(Error::invalid(field, "invalid", message))
}

fn parse_id<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T> {
    raw.trim().parse().map_err(|_| {
        ToolError(Error::bad_request(
            "invalid_id",
            format!("`{raw}` is not a valid id (a UUID)"),
            Some(field),
        ))
    })
}

/// The caller of this request, as the authentication layer resolved it.
fn principal(ctx: &RequestContext<RoleServer>) -> Result<Principal> {
    ctx.extensions
        .get::<Parts>()
        .and_then(|p| p.extensions.get::<Principal>())
        .cloned()
        .ok_or_else(|| {
            ToolError(Error::Unauthorized(
                "missing Authorization: Bearer <API key> header".into(),
            ))
        })
}

fn page_size(limit: Option<usize>, default: usize) -> Result<usize> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => Err(invalid(
            "limit",
            format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}

fn cursor_page(cursor: Option<&str>, limit: usize) -> Result<Page> {
    let before = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => Some(
            hookline_core::ids::parse_id(c)
                .ok_or_else(|| invalid("cursor", "cursor is not one this server returned"))?,
        ),
        None => None,
    };
    Ok(Page {
        before,
        limit: limit + 1,
    })
}

// ---- arguments and results ---------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhookArgs {
    /// The HTTPS endpoint to deliver to.
    pub url: String,
    /// Event types or patterns in any spelling: `contact.created`, `contacts.created`,
    /// `ContactCreated`, `contact.*`, `*`. list_event_types lists them.
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Signing secret (`whsec_` + base64); generated when absent and returned once.
    pub secret: Option<String>,
    /// Whether deliveries are made; default true.
    pub enabled: Option<bool>,
    /// Display name; defaults to the URL's host.
    pub name: Option<String>,
    /// Wire format: `envelope` (default), `flat`, `entity` or `contacts-list`.
    pub format: Option<String>,
    /// Extra headers sent with every delivery.
    pub headers: Option<BTreeMap<String, String>>,
    /// Delays before each retry: seconds or strings like "30s", "6m", "2h", or "exp:30s..1h x8"
    /// (8 retries doubling from 30s, capped at 1h); [] never retries.
    pub retry_schedule: Option<Vec<Value>>,
    /// At most this many deliveries per second.
    pub rate_limit: Option<u32>,
    /// `none` (default) or `entity`: events about one record arrive in order.
    pub ordering: Option<String>,
    /// Only events this condition matches are delivered, e.g. `"vip" in data.tags[*].name` or
    /// `changes.owner_id != null && data.amount >= 1000`; it reads `type`, `data`, `changes`,
    /// `source`, `actor`, `occurred_at`, `id` (a missing field is null). test_webhook_filter tries
    /// one out. Absent or "": every subscribed event.
    pub filter: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhookArgs {
    /// The webhook's id.
    pub id: String,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub name: Option<String>,
    pub format: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub retry_schedule: Option<Vec<Value>>,
    pub rate_limit: Option<u32>,
    pub ordering: Option<String>,
    /// The payload filter (see create_webhook); "" removes it, absent keeps it.
    pub filter: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestFilterArgs {
    /// The filter, as it would be saved on a webhook.
    pub filter: String,
    /// The event as a filter reads it: `{"type": "deal.updated", "data": {...}, "changes": {...},
    /// "source": ..., "actor": ..., "occurred_at": ..., "id": ...}`; absent keys read as null.
    pub event: Value,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListWebhooksArgs {
    /// Matches the webhook's name, URL and description.
    pub search_term: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// 1-100, default 50.
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EraseArgs {
    /// The record's subject type: contact, organization, deal, service, task, conversation,
    /// message, broadcast or meeting.
    pub entity_type: String,
    /// The record's id.
    pub entity_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdArgs {
    /// The id.
    pub id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateArgs {
    /// The webhook's id.
    pub id: String,
    /// How long the old secret keeps signing beside the new one, e.g. "24h" (default) or "0s".
    pub grace_period: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendTestArgs {
    /// A saved webhook to test (its own URL, format and secret).
    pub webhook_id: Option<String>,
    /// Or a URL that isn't saved yet.
    pub url: Option<String>,
    /// Which event to simulate; default: the webhook's first subscribed event.
    pub event_type: Option<String>,
    /// Format for an unsaved URL.
    pub format: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyReceiverArgs {
    pub webhook_id: String,
    /// Which event to simulate; default: the webhook's first subscribed event.
    pub event_type: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListDeliveriesArgs {
    /// Matches the webhook URL and the event name (any spelling).
    pub search_term: Option<String>,
    pub webhook_id: Option<String>,
    /// pending, delivering, retrying, delivered, failed or cancelled.
    pub status: Option<String>,
    pub event_type: Option<String>,
    /// RFC 3339: deliveries created at or after.
    pub since: Option<String>,
    /// RFC 3339: deliveries created before.
    pub until: Option<String>,
    /// 1-based page number; default 1.
    pub page: Option<usize>,
    /// 1-100, default 20.
    pub page_size: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayArgs {
    pub webhook_id: String,
    /// RFC 3339: replay deliveries created at or after.
    pub since: String,
    pub until: Option<String>,
    /// Statuses to replay; default ["failed"].
    pub status: Option<Vec<String>>,
    /// Only count what would be replayed.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishArgs {
    /// A catalog event type, e.g. `contact.created`.
    pub event_type: String,
    /// The object the event is about (`{"ids": [...]}` for deletes).
    pub data: Value,
    /// For updates: `{field: {previous, current}}`.
    pub changes: Option<Value>,
    /// Publishing again with the same key and event answers the first result.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetEntitiesArgs {
    /// contact, organization, deal, service or task (plural accepted).
    pub entity_type: String,
    /// Fetch these records by id.
    pub ids: Option<Vec<String>>,
    /// Or search names, company, email and title.
    pub search_term: Option<String>,
    /// 1-100, default 20.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    pub deleted: bool,
    pub id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    pub page: usize,
    pub page_size: usize,
    pub has_more: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RecordList {
    pub records: Vec<RecordView>,
    /// Requested ids that don't exist (with `ids`).
    pub missing: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Published {
    #[serde(flatten)]
    pub output: PublishOutput,
    /// True when the idempotency key answered an earlier identical publish.
    pub replayed: bool,
}

impl HooklineMcp {
    pub fn new(hookline: Hookline) -> Self {
        HooklineMcp {
            hookline,
            tool_router: Self::tool_router(),
        }
    }
}

/// `Some` fields of an update become the service's partial input.
#[allow(clippy::too_many_arguments)] // one per webhook setting, spelled out on purpose
fn webhook_input(
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
    name: Option<String>,
    format: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    retry_schedule: Option<Vec<Value>>,
    rate_limit: Option<u32>,
    ordering: Option<String>,
    filter: Option<String>,
) -> WebhookInput {
    WebhookInput {
        name,
        description,
        url,
        events,
        secret: None,
        enabled,
        format,
        headers,
        retry_schedule: retry_schedule.map(|s| Some(Value::Array(s))),
        rate_limit: rate_limit.map(Some),
        ordering,
        // A tool argument can't tell null from absent: "" is how an assistant removes a filter.
        filter: filter.map(|f| (!f.is_empty()).then_some(f)),
    }
}

#[tool_router]
impl HooklineMcp {
    #[tool(
        description = "Create a webhook: deliver the given event types to an HTTPS URL. Returns the webhook with its signing secret (shown only here).",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn create_webhook(
        &self,
        Parameters(a): Parameters<CreateWebhookArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<WebhookView>> {
        let who = principal(&ctx)?;
        let mut input = webhook_input(
            Some(a.url),
            Some(a.events),
            a.description,
            a.enabled,
            a.name,
            a.format,
            a.headers,
            a.retry_schedule,
            a.rate_limit,
            a.ordering,
            a.filter,
        );
        input.secret = a.secret;
        let view = self.hookline.create_webhook(&who, input).await?;
        Ok(rmcp::Json(view))
    }

    #[tool(
        description = "List webhooks, newest first. searchTerm matches name, URL and description.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_webhooks(
        &self,
        Parameters(a): Parameters<ListWebhooksArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<WebhookList>> {
        let who = principal(&ctx)?;
        let limit = page_size(a.limit, 50)?;
        let page = cursor_page(a.cursor.as_deref(), limit)?;
        let mut rows = self
            .hookline
            .list_webhooks(&who, a.search_term.as_deref(), page)
            .await?;
        let next_cursor = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            rows.last().map(|w| w.id.to_string())
        });
        Ok(rmcp::Json(WebhookList {
            webhooks: rows,
            next_cursor: next_cursor.flatten(),
        }))
    }

    #[tool(
        description = "Get one webhook by id.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_webhook(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<WebhookView>> {
        let who = principal(&ctx)?;
        let id: WebhookId = parse_id("id", &a.id)?;
        let view = self.hookline.get_webhook(&who, id).await?;
        Ok(rmcp::Json(view))
    }

    #[tool(
        description = "Change a webhook's settings; only the given fields change.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn update_webhook(
        &self,
        Parameters(a): Parameters<UpdateWebhookArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<WebhookView>> {
        let who = principal(&ctx)?;
        let id: WebhookId = parse_id("id", &a.id)?;
        let input = webhook_input(
            a.url,
            a.events,
            a.description,
            a.enabled,
            a.name,
            a.format,
            a.headers,
            a.retry_schedule,
            a.rate_limit,
            a.ordering,
            a.filter,
        );
        let view = self.hookline.update_webhook(&who, id, input).await?;
        Ok(rmcp::Json(view))
    }

    #[tool(
        description = "Try a webhook payload filter on an event without saving anything: whether it matches (i.e. whether the event would be delivered), its final value, the evaluation steps and whether it ran out of them. A filter that doesn't parse is an error naming the position.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn test_webhook_filter(
        &self,
        Parameters(a): Parameters<TestFilterArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<FilterTestView>> {
        let who = principal(&ctx)?;
        let input = FilterTestInput {
            filter: a.filter,
            event: a.event,
        };
        Ok(rmcp::Json(self.hookline.test_filter(&who, input)?))
    }

    #[tool(
        description = "Delete a webhook: it stops receiving at once and its queued deliveries are cancelled; its delivery log stays readable until retention.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn delete_webhook(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<Deleted>> {
        let who = principal(&ctx)?;
        let id: WebhookId = parse_id("id", &a.id)?;
        self.hookline.delete_webhook(&who, id).await?;
        Ok(rmcp::Json(Deleted {
            deleted: true,
            id: a.id,
        }))
    }

    #[tool(
        description = "Give a webhook a new signing secret; the old one keeps signing beside it for the grace period (default 24h). Returns the new secret.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn rotate_webhook_secret(
        &self,
        Parameters(a): Parameters<RotateArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<SecretView>> {
        let who = principal(&ctx)?;
        let id: WebhookId = parse_id("id", &a.id)?;
        let input = RotateInput {
            secret: None,
            grace_period: a.grace_period,
        };
        let view = self.hookline.rotate_secret(&who, id, input).await?;
        Ok(rmcp::Json(view))
    }

    #[tool(
        description = "The event catalog: every event type with its description, aliases and the name each wire format gives it.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_event_types(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<EventTypeList>> {
        principal(&ctx)?;
        Ok(rmcp::Json(event_types()))
    }

    #[tool(
        description = "Send a sample event now to a saved webhook (webhookId) or to a URL not saved yet (url), and show the receiver's answer: status, error kind, timings, response.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn send_test_event(
        &self,
        Parameters(a): Parameters<SendTestArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<TestView>> {
        let who = principal(&ctx)?;
        let view = match (a.webhook_id, a.url) {
            (Some(id), None) => {
                let id: WebhookId = parse_id("webhookId", &id)?;
                if a.format.is_some() {
                    return Err(invalid(
                        "format",
                        "a saved webhook is tested in its own format; give format only with url",
                    ));
                }
                let input = TestInput {
                    event_type: a.event_type,
                    ..TestInput::default()
                };
                self.hookline.test_webhook(&who, id, input).await
            }
            (None, Some(url)) => {
                let input = TestInput {
                    url: Some(url),
                    format: a.format,
                    secret: None,
                    event_type: a.event_type,
                };
                self.hookline.test_url(&who, input).await
            }
            _ => {
                return Err(invalid(
                    "webhookId",
                    "give either webhookId (a saved webhook) or url (an unsaved one)",
                ))
            }
        };
        Ok(rmcp::Json(view?))
    }

    #[tool(
        description = "Check whether a webhook's receiver really verifies signatures: sends one mis-signed and one correctly signed test request and reports a verdict with advice.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn verify_receiver(
        &self,
        Parameters(a): Parameters<VerifyReceiverArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<HandshakeView>> {
        let who = principal(&ctx)?;
        let id: WebhookId = parse_id("webhookId", &a.webhook_id)?;
        let input = HandshakeInput {
            event_type: a.event_type,
        };
        let view = self.hookline.verify_receiver(&who, id, input).await?;
        Ok(rmcp::Json(view))
    }

    #[tool(
        description = "The delivery log, newest first. searchTerm matches the webhook URL and the event name; filter by webhookId, status, eventType, since/until; page through with page and pageSize.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_webhook_deliveries(
        &self,
        Parameters(a): Parameters<ListDeliveriesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<DeliveryPage>> {
        let who = principal(&ctx)?;
        let size = match a.page_size {
            None => 20,
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            Some(_) => {
                return Err(invalid(
                    "pageSize",
                    format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                ))
            }
        };
        let page = match a.page {
            None => 1,
            Some(n) if (1..=MAX_PAGE).contains(&n) => n,
            Some(_) => {
                return Err(invalid(
                    "page",
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                ))
            }
        };
        let query = DeliveryQuery {
            webhook_id: a.webhook_id,
            status: a.status,
            event_type: a.event_type,
            since: a.since,
            until: a.until,
            search: a.search_term,
        };
        // Walk the cursor pages up to the one asked for: the log is keyed by time-ordered ids.
        let mut before = None;
        let mut rows = Vec::new();
        for _ in 0..page {
            rows = self
                .hookline
                .list_deliveries(
                    &who,
                    query.clone(),
                    Page {
                        before,
                        limit: size + 1,
                    },
                )
                .await?;
            if rows.len() <= size {
                break;
            }
            rows.truncate(size + 1);
            before = rows.get(size - 1).map(|d| d.id);
        }
        let has_more = rows.len() > size;
        rows.truncate(size);
        Ok(rmcp::Json(DeliveryPage {
            deliveries: rows,
            page,
            page_size: size,
            has_more,
        }))
    }

    #[tool(
        description = "One delivery with every attempt: status code or error kind, timings (dns, connect, tls, ttfb, total), request headers (credentials redacted), response headers and body.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_webhook_delivery(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<DeliveryDetail>> {
        let who = principal(&ctx)?;
        let id: DeliveryId = parse_id("id", &a.id)?;
        let view = self.hookline.get_delivery(&who, id).await?;
        Ok(rmcp::Json(view))
    }

    #[tool(
        description = "A background job (a replay): status (queued, running, succeeded, failed, cancelled) and progress (done of total).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_job(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<JobView>> {
        let who = principal(&ctx)?;
        let id: hookline_core::ids::JobId = parse_id("id", &a.id)?;
        Ok(rmcp::Json(self.hookline.get_job(&who, id).await?))
    }

    #[tool(
        description = "Erase one record everywhere (right to erasure): the record, every stored event about it with its deliveries and attempts, batches rewritten without it, receivers' stored answers to them. Runs as a background job: follow it with get_erasure {id}; its result counts what was removed (never the data). Events that only refer to the record (a deal's contact_id) stay.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn erase_record(
        &self,
        Parameters(a): Parameters<EraseArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<ErasureView>> {
        let who = principal(&ctx)?;
        let input = ErasureInput {
            entity_type: a.entity_type,
            entity_id: a.entity_id,
        };
        Ok(rmcp::Json(
            self.hookline.request_erasure(&who, input).await?,
        ))
    }

    #[tool(
        description = "An erasure: status (queued, running, succeeded, failed, cancelled), events examined, and what it removed (counts).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_erasure(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<ErasureView>> {
        let who = principal(&ctx)?;
        let id: hookline_core::ids::JobId = parse_id("id", &a.id)?;
        Ok(rmcp::Json(self.hookline.get_erasure(&who, id).await?))
    }

    #[tool(
        description = "Send a delivery's event to its webhook again. Creates a new delivery record linked to the original (resentFrom); the original is unchanged.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn resend_webhook_delivery(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<DeliveryView>> {
        let who = principal(&ctx)?;
        let id: DeliveryId = parse_id("id", &a.id)?;
        let view = self.hookline.resend(&who, id).await?;
        Ok(rmcp::Json(view))
    }

    #[tool(
        description = "Send a webhook's past deliveries again (default: the failed ones) created since a time, as new deliveries. Use dryRun to count first. The copies are made by a background job: follow it with get_job {id}.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn replay_webhook_deliveries(
        &self,
        Parameters(a): Parameters<ReplayArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<ReplayView>> {
        let who = principal(&ctx)?;
        let id: WebhookId = parse_id("webhookId", &a.webhook_id)?;
        let input = ReplayInput {
            since: a.since,
            until: a.until,
            status: a
                .status
                .map(|s| Value::Array(s.into_iter().map(Value::String).collect())),
            dry_run: a.dry_run,
        };
        let view = self.hookline.replay(&who, id, input).await?;
        Ok(rmcp::Json(view))
    }

    #[tool(
        description = "Publish an event (source \"mcp\"): it is delivered to every enabled webhook subscribed to its type. Returns the event id and its delivery ids.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn publish_event(
        &self,
        Parameters(a): Parameters<PublishArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<Published>> {
        let who = principal(&ctx)?;
        let input = PublishInput::One(Box::new(EventInput {
            event_type: a.event_type,
            data: a.data,
            entity_type: None,
            entity_id: None,
            source: Some("mcp".into()),
            source_id: None,
            occurred_at: None,
            changes: a.changes,
        }));
        let (output, replayed) = self
            .hookline
            .publish(&who, None, input, a.idempotency_key.as_deref())
            .await?;
        Ok(rmcp::Json(Published { output, replayed }))
    }

    #[tool(
        description = "Read CRM records Hookline keeps (contacts, organizations, deals, services, tasks): by ids, or by searchTerm over names, company, email and title.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_entities(
        &self,
        Parameters(a): Parameters<GetEntitiesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::Json<RecordList>> {
        let who = principal(&ctx)?;
        let kind = RecordKind::parse(a.entity_type.trim()).ok_or_else(|| {
            invalid(
                "entityType",
                "must be contact, organization, deal, service or task",
            )
        })?;
        let limit = match a.limit {
            None => 20,
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            Some(_) => {
                return Err(invalid(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                ))
            }
        };
        let mut records = Vec::new();
        let mut missing = Vec::new();
        match (a.ids, a.search_term) {
            (Some(ids), None) => {
                if ids.len() > MAX_PAGE_SIZE {
                    return Err(invalid(
                        "ids",
                        format!("ask for at most {MAX_PAGE_SIZE} ids"),
                    ));
                }
                for (i, raw) in ids.into_iter().enumerate() {
                    let id = RecordId::parse(&raw).map_err(|e| {
                        ToolError(Error::invalid(format!("ids[{i}]"), e.code, e.message))
                    })?;
                    match self.hookline.get_record(&who, kind, &id).await {
                        Ok(r) => records.push(r),
                        Err(Error::NotFound(_)) => missing.push(raw),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            (None, search) => {
                let filter = RecordFilter {
                    search: search
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                    ..RecordFilter::default()
                };
                records = self
                    .hookline
                    .list_records(&who, kind, filter, None, limit)
                    .await?;
            }
            (Some(_), Some(_)) => {
                return Err(invalid("ids", "give either ids or searchTerm, not both"))
            }
        }
        Ok(rmcp::Json(RecordList { records, missing }))
    }
}

const WEBHOOK_URI: &str = "hookline://webhooks/";
const CATALOG_URI: &str = "hookline://event-types";

fn resource_error(e: Error, uri: &str) -> McpError {
    match e {
        Error::NotFound(m) => McpError::resource_not_found(m, Some(json!({ "uri": uri }))),
        other => McpError::invalid_request(other.body().error.message, Some(json!({ "uri": uri }))),
    }
}

fn json_resource(uri: String, value: &impl Serialize) -> Result<ReadResourceResponse, McpError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| McpError::internal_error(e.to_string(), None))?;
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(text, uri).with_mime_type("application/json")
    ])
    .into())
}

fn caller(ctx: &RequestContext<RoleServer>) -> Result<Principal, McpError> {
    ctx.extensions
        .get::<Parts>()
        .and_then(|p| p.extensions.get::<Principal>())
        .cloned()
        .ok_or_else(|| McpError::invalid_request("not authenticated", None))
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HooklineMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("hookline", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let who = caller(&ctx)?;
        let webhooks = self
            .hookline
            .list_webhooks(
                &who,
                None,
                Page {
                    before: None,
                    limit: MAX_PAGE_SIZE,
                },
            )
            .await
            .map_err(|e| resource_error(e, WEBHOOK_URI))?;
        let mut items = vec![Resource::new(CATALOG_URI, "event-types")
            .with_description("The event catalog with every format's spelling")
            .with_mime_type("application/json")];
        items.extend(webhooks.into_iter().map(|w| {
            Resource::new(format!("{WEBHOOK_URI}{}", w.id), w.name)
                .with_description(w.url)
                .with_mime_type("application/json")
        }));
        Ok(ListResourcesResult::with_all_items(items))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("hookline://webhooks/{id}", "webhook")
                .with_title("Webhook")
                .with_description("A webhook's settings as JSON")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let who = caller(&ctx)?;
        let uri = request.uri;
        if uri == CATALOG_URI {
            return json_resource(uri, &event_types());
        }
        let Some(raw) = uri.strip_prefix(WEBHOOK_URI) else {
            return Err(McpError::resource_not_found(
                "no such resource",
                Some(json!({ "uri": uri })),
            ));
        };
        let Some(id) = WebhookId::parse(raw) else {
            return Err(McpError::resource_not_found(
                "webhook not found",
                Some(json!({ "uri": uri })),
            ));
        };
        let view = self
            .hookline
            .get_webhook(&who, id)
            .await
            .map_err(|e| resource_error(e, &uri))?;
        json_resource(uri, &view)
    }
}

/// `/mcp`: the streamable HTTP transport behind the bearer-key check. Open streams end when
/// `shutdown` is cancelled, so a graceful shutdown never waits on an idle assistant.
pub fn router(hookline: Hookline, shutdown: CancellationToken) -> Router {
    let h = hookline.clone();
    let service = StreamableHttpService::new(
        move || Ok(HooklineMcp::new(h.clone())),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default()
            // The transport's Host allow-list guards servers that trust whoever can reach them
            // (DNS rebinding). Every request here must carry an API key, which a rebinding page
            // doesn't have, and a deployment is reached under names we can't know in advance.
            .disable_allowed_hosts()
            .with_cancellation_token(shutdown.child_token()),
    );
    Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(hookline, authenticate))
}

/// Resolves the bearer key to a [`Principal`] for the tools, or answers 401 before MCP runs.
async fn authenticate(State(h): State<Hookline>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let result = match token {
        Some(t) => h.authenticate_bearer(&t).await,
        None => Err(Error::Unauthorized(
            "missing Authorization: Bearer <API key> header".into(),
        )),
    };
    match result {
        Ok(who) => {
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        Err(e) => {
            let mut resp = e.into_response();
            if resp.status() == axum::http::StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::camel_field;

    #[test]
    fn error_fields_name_the_tool_argument() {
        assert_eq!(camel_field("retry_schedule"), "retrySchedule");
        assert_eq!(camel_field("events[2]"), "events[2]");
        assert_eq!(camel_field("webhook_id"), "webhookId");
        assert_eq!(camel_field("headers.X-Foo_bar"), "headers.X-Foo_bar");
        assert_eq!(camel_field("url"), "url");
    }
}
