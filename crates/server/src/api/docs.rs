//! `GET /docs`: the API reference, rendered on the server from the OpenAPI document — every tag,
//! operation (method, path, summary, parameters, request body, responses) and schema — as one HTML
//! page with a stylesheet served beside it. No script, no external resource (a strict CSP says
//! so), and everything interpolated is escaped by `maud`. No key needed, like the document.

use crate::service::Hookline;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde_json::{Map, Value};
use std::sync::OnceLock;

pub fn router() -> Router<Hookline> {
    Router::new()
        .route("/docs", get(page))
        .route("/docs/docs.css", get(stylesheet))
}

/// Nothing but this origin's stylesheet; no script, frame, form or base at all.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

type Headers = [(HeaderName, &'static str); 4];

fn headers(content_type: &'static str) -> Headers {
    [
        (CONTENT_TYPE, content_type),
        (HeaderName::from_static("content-security-policy"), CSP),
        (HeaderName::from_static("x-content-type-options"), "nosniff"),
        (CACHE_CONTROL, "no-cache"),
    ]
}

async fn page() -> impl IntoResponse {
    static PAGE: OnceLock<String> = OnceLock::new();
    let body = PAGE.get_or_init(|| {
        let doc =
            serde_json::to_value(super::openapi::document()).expect("the document serializes");
        render(&doc).into_string()
    });
    (headers("text/html; charset=utf-8"), body.as_str())
}

async fn stylesheet() -> impl IntoResponse {
    (headers("text/css; charset=utf-8"), STYLE)
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// One operation of the document.
struct Op<'a> {
    method: &'a str,
    path: &'a str,
    op: &'a Map<String, Value>,
}

impl Op<'_> {
    fn id(&self) -> &str {
        self.op
            .get("operationId")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The whole page.
pub fn render(doc: &Value) -> Markup {
    let title = str_of(&doc["info"], "title").unwrap_or("API");
    let version = str_of(&doc["info"], "version").unwrap_or("");
    let mut ops: Vec<(String, Op)> = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(method).and_then(Value::as_object) {
                    let tag = op
                        .get("tags")
                        .and_then(|t| t.get(0))
                        .and_then(Value::as_str)
                        .unwrap_or("other")
                        .to_string();
                    ops.push((tag, Op { method, path, op }));
                }
            }
        }
    }
    // Tags in the document's order, then any others by name.
    let mut tags: Vec<(String, String)> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                str_of(t, "name")?.to_string(),
                str_of(t, "description").unwrap_or("").to_string(),
            ))
        })
        .collect();
    let mut extra: Vec<String> = ops
        .iter()
        .map(|(t, _)| t.clone())
        .filter(|t| !tags.iter().any(|(n, _)| n == t))
        .collect();
    extra.sort();
    extra.dedup();
    tags.extend(extra.into_iter().map(|t| (t, String::new())));
    let tags: Vec<_> = tags
        .into_iter()
        .filter(|(n, _)| ops.iter().any(|(t, _)| t == n))
        .collect();
    let schemas = doc["components"]["schemas"].as_object();
    let responses = &doc["components"]["responses"];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " reference" }
                link rel="stylesheet" href="/docs/docs.css";
            }
            body {
                nav {
                    p.brand { a href="#top" { (title) } " " span.version { (version) } }
                    @for (tag, _) in &tags {
                        h4 { a href={ "#tag-" (tag) } { (tag) } }
                        ul {
                            @for (_, o) in ops.iter().filter(|(t, _)| t == tag) {
                                li { a href={ "#op-" (o.id()) } {
                                    span class={ "m " (o.method) } { (o.method.to_uppercase()) } " " (o.path)
                                } }
                            }
                        }
                    }
                    @if schemas.is_some() { h4 { a href="#schemas" { "schemas" } } }
                }
                main id="top" {
                    h1 { (title) " " span.version { (version) } }
                    @if let Some(d) = str_of(&doc["info"], "description") { (prose(d)) }
                    p { "The machine-readable document: " a href="/v1/openapi.json" { code { "/v1/openapi.json" } } " (OpenAPI " (str_of(doc, "openapi").unwrap_or("")) ")." }
                    @for (tag, description) in &tags {
                        section id={ "tag-" (tag) } {
                            h2 { (tag) }
                            @if !description.is_empty() { (prose(description)) }
                            @for (_, o) in ops.iter().filter(|(t, _)| t == tag) { (operation(o, responses)) }
                        }
                    }
                    @if let Some(schemas) = schemas {
                        section id="schemas" {
                            h2 { "Schemas" }
                            @for (name, s) in schemas { (schema_section(name, s)) }
                        }
                    }
                }
            }
        }
    }
}

/// Text with `code` spans and blank-line paragraphs.
fn prose(text: &str) -> Markup {
    html! {
        @for para in text.split("\n\n") {
            p { (inline(para)) }
        }
    }
}

fn inline(text: &str) -> Markup {
    html! {
        @for (i, piece) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (piece) } } @else { (piece) }
        }
    }
}

fn operation(o: &Op, responses: &Value) -> Markup {
    let op = o.op;
    let summary = op.get("summary").and_then(Value::as_str);
    let description = op.get("description").and_then(Value::as_str);
    let params = op.get("parameters").and_then(Value::as_array);
    let secured = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    html! {
        article.op id={ "op-" (o.id()) } {
            h3 { span class={ "m " (o.method) } { (o.method.to_uppercase()) } " " code.path { (o.path) } }
            @if let Some(s) = summary { p.summary { (inline(s)) } }
            @if let Some(d) = description { (prose(d)) }
            p.meta {
                "operationId " code { (o.id()) }
                @if secured { " · needs " code { "Authorization: Bearer <API key>" } }
            }
            @if let Some(params) = params.filter(|p| !p.is_empty()) {
                h5 { "Parameters" }
                table {
                    tr { th { "name" } th { "in" } th { "type" } th { "description" } }
                    @for p in params {
                        tr {
                            td { code { (str_of(p, "name").unwrap_or("")) }
                                 @if p["required"].as_bool() == Some(true) { " " span.req { "required" } } }
                            td { (str_of(p, "in").unwrap_or("")) }
                            td { (type_of(&p["schema"])) }
                            td { @if let Some(d) = str_of(p, "description") { (inline(d)) } }
                        }
                    }
                }
            }
            @if let Some(body) = op.get("requestBody") {
                h5 { "Request body"
                     @if body["required"].as_bool() == Some(true) { " " span.req { "required" } } }
                @if let Some(d) = str_of(body, "description") { p { (inline(d)) } }
                (content(&body["content"]))
            }
            h5 { "Responses" }
            table {
                tr { th { "status" } th { "description" } th { "body" } }
                @for (status, r) in op.get("responses").and_then(Value::as_object).into_iter().flatten() {
                    @let (r, shared) = resolve_response(r, responses);
                    tr {
                        td { code { (status) } }
                        td {
                            @if let Some(d) = str_of(r, "description") { (inline(d)) }
                            @if let Some(name) = shared { " " span.shared { "(" (name) ")" } }
                        }
                        td { (content(&r["content"])) }
                    }
                }
            }
        }
    }
}

/// A response, following a `$ref` into `components/responses` (and its name, then).
fn resolve_response<'a>(r: &'a Value, responses: &'a Value) -> (&'a Value, Option<&'a str>) {
    match str_of(r, "$ref").and_then(|s| s.strip_prefix("#/components/responses/")) {
        Some(name) => (&responses[name], Some(name)),
        None => (r, None),
    }
}

fn content(content: &Value) -> Markup {
    html! {
        @for (media, c) in content.as_object().into_iter().flatten() {
            div.content { code.media { (media) } " " (type_of(&c["schema"])) }
        }
    }
}

/// A schema's type in a few words, with links to named schemas.
fn type_of(s: &Value) -> Markup {
    if let Some(name) = str_of(s, "$ref").and_then(|r| r.rsplit('/').next()) {
        return html! { a href={ "#schema-" (name) } { (name) } };
    }
    for (key, sep) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " & ")] {
        if let Some(items) = s.get(key).and_then(Value::as_array) {
            return html! {
                @for (i, item) in items.iter().enumerate() {
                    @if i > 0 { (sep) }
                    (type_of(item))
                }
            };
        }
    }
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let nullable = types.contains(&"null");
    let main: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    html! {
        @match main.as_slice() {
            ["array"] => { "array of " (type_of(&s["items"])) }
            ["object"] if s.get("properties").is_some() => {
                "object {"
                @for (i, (k, v)) in s["properties"].as_object().into_iter().flatten().enumerate() {
                    @if i > 0 { ", " }
                    code { (k) } ": " (type_of(v))
                }
                "}"
            }
            ["object"] if s.get("additionalProperties").is_some_and(Value::is_object) => {
                "map of " (type_of(&s["additionalProperties"]))
            }
            [] if s.is_object() && s.as_object().is_some_and(|m| m.is_empty()) => { "any" }
            [] => { "any" }
            ts => { (ts.join(" | ")) }
        }
        @if let Some(f) = str_of(s, "format") { " (" (f) ")" }
        @if let Some(e) = s.get("enum").and_then(Value::as_array) {
            ": "
            @for (i, v) in e.iter().enumerate() {
                @if i > 0 { ", " }
                code { (v.to_string()) }
            }
        }
        @if nullable { " | null" }
    }
}

fn schema_section(name: &str, s: &Value) -> Markup {
    let required: Vec<&str> = s["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    html! {
        article.schema id={ "schema-" (name) } {
            h3 { code { (name) } }
            @if let Some(d) = str_of(s, "description") { (prose(d)) }
            @if let Some(props) = s["properties"].as_object() {
                table {
                    tr { th { "field" } th { "type" } th { "description" } }
                    @for (k, v) in props {
                        tr {
                            td { code { (k) }
                                 @if required.contains(&k.as_str()) { " " span.req { "required" } }
                                 @if v["readOnly"].as_bool() == Some(true) { " " span.shared { "read-only" } } }
                            td { (type_of(v)) }
                            td { @if let Some(d) = str_of(v, "description") { (inline(d)) } }
                        }
                    }
                }
                @if s["additionalProperties"] == Value::Bool(false) {
                    p.meta { "No other fields are accepted." }
                }
            } @else {
                p { (type_of(s)) }
            }
        }
    }
}

const STYLE: &str = r#"
:root { --fg: #1d2330; --muted: #5b6475; --line: #dfe3ea; --bg: #fff; --code: #f3f5f8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); display: flex; }
nav { width: 300px; flex: none; height: 100vh; position: sticky; top: 0; overflow-y: auto; padding: 16px; border-right: 1px solid var(--line); font-size: 13px; }
nav ul { list-style: none; margin: 0 0 8px; padding: 0; }
nav li a { display: block; padding: 2px 0; color: var(--fg); text-decoration: none; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
nav h4 { margin: 14px 0 4px; text-transform: capitalize; }
nav .brand { font-weight: 600; font-size: 15px; }
main { flex: 1; min-width: 0; max-width: 1000px; padding: 16px 32px 64px; }
h1 .version, nav .version { color: var(--muted); font-weight: 400; font-size: 0.7em; }
h2 { margin-top: 48px; padding-bottom: 4px; border-bottom: 2px solid var(--line); text-transform: capitalize; }
h3 { margin: 0 0 4px; font-size: 16px; }
h5 { margin: 12px 0 4px; font-size: 13px; text-transform: uppercase; color: var(--muted); letter-spacing: .04em; }
article { border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 16px 0; }
code { background: var(--code); padding: 1px 4px; border-radius: 3px; font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 500; }
.m { display: inline-block; min-width: 56px; text-align: center; border-radius: 3px; padding: 0 4px; font: 600 12px ui-monospace, monospace; color: #fff; background: #6b7280; }
.m.get { background: #2563eb; } .m.post { background: #16a34a; } .m.put { background: #b45309; }
.m.patch { background: #7c3aed; } .m.delete { background: #dc2626; }
.summary { font-weight: 500; }
.meta, .shared { color: var(--muted); font-size: 13px; }
.req { color: #b91c1c; font-size: 12px; }
.content { margin: 2px 0; }
a { color: #1d4ed8; }
@media (max-width: 800px) { body { display: block; } nav { display: none; } main { padding: 12px; } }
"#;
