//! Logs and traces.
//!
//! Logs: one `tracing` subscriber writes every line as text or, with `log_format = "json"`, as one
//! JSON object per line, filtered by `log`. Work on a delivery happens inside an `attempt` span
//! carrying `delivery_id` and `webhook_id`, so every line written during it carries them too (in
//! JSON, under `span` and `spans`); lines about a delivery written outside an attempt name both ids
//! as fields of their own.
//!
//! Traces: with `otel_endpoint` set, an OpenTelemetry layer turns the `publish` and `attempt` spans
//! into OTLP spans, batched and exported over OTLP/HTTP (JSON) to `{otel_endpoint}/v1/traces` by a
//! thread of its own, and each delivery carries a W3C `traceparent` header naming its attempt span,
//! so a receiver's own spans join the attempt's trace. Without `otel_endpoint` there is no
//! exporter, no batch processor, no extra thread and no `traceparent` header: the spans are plain
//! `tracing` spans that only the log layer sees.

use crate::config::LogFormat;
use hookline_core::ids::{DeliveryId, EventId, WebhookId};
use hookline_core::retry::Verdict;
use hookline_store::Attempt;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::Arc;
use std::time::Duration;
use tracing::field::Empty;
use tracing::{Level, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

/// The crates whose spans are exported as traces (the OTel layer sees nothing else).
const TRACED_TARGET: &str = "hookline_server";

/// Keeps the trace exporter (if any) alive; [`Telemetry::shutdown`] exports what is still queued.
#[must_use = "dropping it stops the trace exporter; call shutdown() at exit"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// No trace export.
    pub fn none() -> Telemetry {
        Telemetry { provider: None }
    }

    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports every finished span now (tests, and before exit).
    pub async fn flush(&self) {
        if let Some(p) = self.provider.clone() {
            // The SDK blocks until its export thread is done: keep that off the async workers.
            let r = tokio::task::spawn_blocking(move || p.force_flush()).await;
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "exporting traces failed");
            }
        }
    }

    /// Exports what is still queued and stops the exporter.
    pub async fn shutdown(mut self) {
        if let Some(p) = self.provider.take() {
            let r = tokio::task::spawn_blocking(move || p.shutdown()).await;
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "stopping the trace exporter failed");
            }
        }
    }
}

/// Builds the subscriber: the log layer (`log` filter, `format`, written to `writer`) and, when
/// `otel_endpoint` is given, the trace layer and its exporter (which runs on a thread and a Tokio
/// runtime of its own, so this needs no runtime).
pub fn subscriber<W>(
    log: &str,
    format: LogFormat,
    otel_endpoint: Option<&str>,
    writer: W,
) -> anyhow::Result<(impl Subscriber + Send + Sync + 'static, Telemetry)>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(log).unwrap_or_else(|_| EnvFilter::new("info"));
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    layers.push(match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
    });
    let telemetry = match otel_endpoint {
        None => Telemetry::none(),
        Some(endpoint) => {
            let provider = tracer_provider(endpoint)?;
            let tracer = provider.tracer("hookline");
            layers.push(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_tracked_inactivity(false)
                    // Only our spans (not hyper's, rmcp's...), not the log lines inside them.
                    .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                        m.is_span()
                            && m.target().starts_with(TRACED_TARGET)
                            && *m.level() <= Level::INFO
                    }))
                    .boxed(),
            );
            Telemetry {
                provider: Some(provider),
            }
        }
    };
    Ok((Registry::default().with(layers), telemetry))
}

/// [`subscriber`] writing to standard error, installed as the process's subscriber.
pub fn init(
    log: &str,
    format: LogFormat,
    otel_endpoint: Option<&str>,
) -> anyhow::Result<Telemetry> {
    let (subscriber, telemetry) = subscriber(log, format, otel_endpoint, std::io::stderr)?;
    tracing::subscriber::set_global_default(subscriber)?;
    if let Some(endpoint) = otel_endpoint {
        tracing::info!(endpoint = %traces_url(endpoint), "exporting traces over OTLP/HTTP");
    }
    Ok(telemetry)
}

/// `{endpoint}/v1/traces`, unless the endpoint already names that path.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(ExportClient::new()?)
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(traces_url(endpoint))
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| anyhow::anyhow!("otel_endpoint: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder().with_attribute(
        opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
    );
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("hookline");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// The OTLP exporter's HTTP client: hyper (http:// or https://, webpki roots) driven by a one-thread
/// Tokio runtime of its own, because the SDK's batch processor exports from a plain thread, and so
/// that exporting never waits for (or on) the runtime that serves the API and sends deliveries.
#[derive(Debug)]
struct ExportClient {
    client: opentelemetry_http::hyper::HyperClient<Https>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ExportClient {
    fn new() -> anyhow::Result<ExportClient> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hookline-otlp")
            .enable_all()
            .build()?;
        Ok(ExportClient {
            client: opentelemetry_http::hyper::HyperClient::new(
                connector,
                Duration::from_secs(10),
                None,
            ),
            runtime: Some(runtime),
        })
    }
}

impl Drop for ExportClient {
    fn drop(&mut self) {
        // Dropping a runtime from inside another one panics; this never blocks.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let runtime = self.runtime.as_ref().ok_or("the exporter is stopped")?;
        runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}

// ---------------------------------------------------------------------------
// The spans
// ---------------------------------------------------------------------------

/// The span of one attempt. Its fields are the delivery's ids; [`attempt_finished`] adds the
/// outcome and timings.
pub fn attempt_span(
    delivery_id: DeliveryId,
    webhook_id: WebhookId,
    event_id: EventId,
    event_type: &str,
    attempt: u32,
) -> Span {
    tracing::info_span!(
        target: "hookline_server::attempt",
        "attempt",
        otel.kind = "client",
        otel.status_code = Empty,
        delivery_id = %delivery_id,
        webhook_id = %webhook_id,
        event_id = %event_id,
        event_type,
        attempt,
        http.response.status_code = Empty,
        error.type = Empty,
        outcome = Empty,
        dns_ms = Empty,
        connect_ms = Empty,
        tls_ms = Empty,
        ttfb_ms = Empty,
        total_ms = Empty,
    )
}

/// The W3C `traceparent` naming `span` (`00-<trace id>-<span id>-<flags>`), when the span is being
/// traced; `None` without an OpenTelemetry layer.
pub fn traceparent(span: &Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Records an attempt's outcome and timings on its span and writes the attempt's log line.
pub fn attempt_finished(span: &Span, verdict: Verdict, a: &Attempt) {
    let outcome = match verdict {
        Verdict::Delivered => "delivered",
        Verdict::Retry => "retry",
        Verdict::Failed => "failed",
    };
    if !span.is_disabled() {
        record_attempt(span, outcome, verdict, a);
    }
    span.in_scope(|| {
        tracing::debug!(
            target: "hookline_server::attempt",
            outcome,
            status = a.status_code,
            error_kind = a.error_kind.as_deref(),
            total_ms = a.total_ms,
            "attempt finished"
        )
    });
}

fn record_attempt(span: &Span, outcome: &str, verdict: Verdict, a: &Attempt) {
    if let Some(code) = a.status_code {
        span.record("http.response.status_code", code);
    }
    match (&a.error_kind, a.status_code) {
        (Some(kind), _) => {
            span.record("error.type", kind.as_str());
        }
        (None, Some(code)) if verdict != Verdict::Delivered => {
            span.record("error.type", code.to_string().as_str());
        }
        _ => {}
    }
    if verdict != Verdict::Delivered {
        span.record("otel.status_code", "error");
    }
    span.record("outcome", outcome);
    for (field, v) in [
        ("dns_ms", a.dns_ms),
        ("connect_ms", a.connect_ms),
        ("tls_ms", a.tls_ms),
        ("ttfb_ms", a.ttfb_ms),
        ("total_ms", Some(a.total_ms)),
    ] {
        if let Some(v) = v {
            span.record(field, v);
        }
    }
}

/// The span of one publish request; [`publish_finished`] adds what it published.
pub fn publish_span(tenant_id: impl std::fmt::Display) -> Span {
    tracing::info_span!(
        target: "hookline_server::publish",
        "publish",
        otel.kind = "internal",
        otel.status_code = Empty,
        tenant_id = %tenant_id,
        events = Empty,
        event_id = Empty,
        deliveries = Empty,
        delivery_ids = Empty,
        replayed = Empty,
        error.type = Empty,
    )
}

/// Most delivery ids listed on a publish span (the count is always there).
const MAX_SPAN_IDS: usize = 20;

/// Records what a publish published on its span: each event's id with its deliveries' ids.
pub fn publish_finished<'a>(
    span: &Span,
    events: impl ExactSizeIterator<Item = (uuid::Uuid, &'a [uuid::Uuid])>,
    replayed: bool,
) {
    if span.is_disabled() {
        return; // neither logged nor traced: don't even format the ids
    }
    let count = events.len();
    let mut deliveries = 0;
    let mut listed = Vec::new();
    for (event_id, delivery_ids) in events {
        if count == 1 {
            span.record("event_id", tracing::field::display(event_id));
        }
        deliveries += delivery_ids.len();
        for d in delivery_ids {
            if listed.len() < MAX_SPAN_IDS {
                listed.push(d.to_string());
            }
        }
    }
    span.record("events", count);
    span.record("deliveries", deliveries);
    span.record("delivery_ids", listed.join(",").as_str());
    span.record("replayed", replayed);
}

/// Records why a publish was refused on its span.
pub fn publish_failed(span: &Span, e: &crate::error::Error) {
    span.record("error.type", e.body().error.code.as_str());
    if e.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_appends_the_signal_path_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://c.example/otlp/"),
            "https://c.example/otlp/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn no_traceparent_without_an_exporter() {
        let (subscriber, telemetry) =
            subscriber("info", LogFormat::Text, None, std::io::sink).unwrap();
        assert!(!telemetry.exporting());
        tracing::subscriber::with_default(subscriber, || {
            let span = attempt_span(
                DeliveryId::new(),
                WebhookId::new(),
                EventId::new(),
                "contact.created",
                1,
            );
            assert_eq!(traceparent(&span), None);
        });
    }
}
