//! `hookline bench`: the benchmark that BENCHMARKS.md reports. It starts Hookline in this process
//! (SQLite with durable commits in a temporary directory, or the PostgreSQL database given), a
//! minimal receiver on 127.0.0.1, drives publish load through the service layer, and reports each
//! figure together with its ratio to the raw loopback POST rate of the same receiver measured in the
//! same run — so numbers from different machines can be compared by their ratios.
//!
//! All traffic goes to 127.0.0.1. Every loop is bounded in count and time.

use clap::Args;
use hookline_server::config::Config;
use hookline_server::sender::{OutboundRequest, Sender, SenderConfig};
use hookline_server::service::{EventInput, Hookline, Principal, PublishInput, WebhookInput};
use hookline_server::{App, Roles};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Which figures: all, raw, single, throughput, latency, isolation, batch, fanout, backlog, console
    /// (comma-separated).
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Pending deliveries for the backlog figure.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: usize,
    /// Deliveries stored for the console figure (page render times).
    #[arg(long, default_value_t = 1_000_000)]
    console_deliveries: usize,
    /// Webhooks for the fan-out figure.
    #[arg(long, default_value_t = 1000)]
    fanout: usize,
    /// Rates (events/s) for the latency figure.
    #[arg(long, default_value = "500,2000,5000", value_delimiter = ',')]
    rates: Vec<u64>,
    /// Run on this PostgreSQL database instead of a temporary SQLite file (its tables are used as is:
    /// give it an empty database). Needs HOOKLINE_ENCRYPTION_KEY, as every PostgreSQL node does.
    #[arg(long)]
    postgres: Option<String>,
    /// With --postgres: nodes sharing the throughput work (each a full dispatcher in this process).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// The minimal receiver: counts requests, notes when each `seq` arrived, and makes `/hang` hang.
#[derive(Default)]
struct Sink {
    received: AtomicU64,
    arrivals: Mutex<HashMap<u64, Instant>>,
    track: std::sync::atomic::AtomicBool,
}

async fn start_receiver(hang_for: Duration) -> anyhow::Result<(String, Arc<Sink>)> {
    let sink = Arc::new(Sink::default());
    let s = sink.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let s = s.clone();
        async move {
            if uri.path() == "/hang" {
                tokio::time::sleep(hang_for).await;
                return "late";
            }
            if s.track.load(Ordering::Relaxed) {
                if let Some(seq) = find_seq(&body) {
                    s.arrivals
                        .lock()
                        .expect("arrivals")
                        .insert(seq, Instant::now());
                }
            }
            s.received.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((base, sink))
}

/// `"seq":123` in a body, without parsing the JSON (the receiver must stay cheap).
fn find_seq(body: &[u8]) -> Option<u64> {
    let pat = b"\"seq\":";
    let at = body.windows(pat.len()).position(|w| w == pat)? + pat.len();
    let digits: Vec<u8> = body[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn payload(seq: u64) -> Value {
    // About 1 KB once rendered.
    json!({"id": format!("c{seq}"), "seq": seq, "first_name": "Bench", "last_name": "Mark",
           "notes": "x".repeat(880), "primary_email": "bench@example.com"})
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time this process has used so far, in seconds: the whole process (threads that ended
/// included), and the SQLite writer's thread alone. Linux only (`/proc`); zero elsewhere.
fn cpu_seconds() -> (f64, f64) {
    // utime and stime, in clock ticks: USER_HZ, 100 on every Linux this runs on.
    fn ticks(stat: &str) -> f64 {
        // Fields after the `(comm)`, which may itself hold spaces: the first is the 3rd field
        // (state), so utime (14th) and stime (15th) are at 11 and 12.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return 0.0;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        f.get(11..13)
            .map(|v| v.iter().filter_map(|x| x.parse::<f64>().ok()).sum::<f64>() / 100.0)
            .unwrap_or(0.0)
    }
    let all = std::fs::read_to_string("/proc/self/stat")
        .map(|s| ticks(&s))
        .unwrap_or(0.0);
    let mut writer = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == "sqlite-writer" {
                writer += std::fs::read_to_string(t.path().join("stat"))
                    .map(|s| ticks(&s))
                    .unwrap_or(0.0);
            }
        }
    }
    (all, writer)
}

/// What a sustained phase measured: deliveries/s and CPU per delivery (µs; whole process, which
/// includes the in-process receiver and publisher but not a PostgreSQL server, and the SQLite
/// writer's share).
struct Sustained {
    rate: f64,
    /// Deliveries leased per claim transaction (of the first node, with `--nodes`).
    per_claim: f64,
    cpu_us: f64,
    writer_us: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Bench {
    args: BenchArgs,
    base: String,
    sink: Arc<Sink>,
    results: Vec<(String, f64, String)>,
    raw_rate: Option<f64>,
    _dir: tempfile::TempDir,
}

struct Node {
    hookline: Hookline,
    who: Principal,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Bench {
    fn record(&mut self, name: &str, value: f64, unit: &str) {
        self.results
            .push((name.to_string(), value, unit.to_string()));
        let ratio = match (unit, self.raw_rate) {
            ("/s", Some(raw)) if raw > 0.0 => {
                format!("  ({:.1} % of raw HTTP)", value / raw * 100.0)
            }
            _ => String::new(),
        };
        println!("{name:<58} {value:>12.1} {unit}{ratio}");
    }

    /// A fresh Hookline (new database) running API and worker in this process.
    async fn node(
        &self,
        tweak: impl FnOnce(&mut Vec<(&'static str, String)>),
    ) -> anyhow::Result<Node> {
        let db = match &self.args.postgres {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self._dir
                    .path()
                    .join(format!("bench-{}.db", hookline_core::ids::new_id()))
                    .display()
            ),
        };
        let mut flags: Vec<(&'static str, String)> = vec![
            ("database_url", db),
            ("allow_targets", "127.0.0.1/32".into()),
            ("allow_http", "true".into()),
            ("sqlite_synchronous", "full".into()),
            ("log", "warn".into()),
        ];
        tweak(&mut flags);
        let config = load(flags)?;
        let app = App::build(config).await?;
        let hookline = app.hookline.clone();
        hookline.bootstrap().await?;
        let who = hookline.principal_for_tenant("default").await?;
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let task = tokio::spawn(app.serve(
            listener,
            shutdown.clone(),
            Roles {
                api: false,
                worker: true,
            },
        ));
        Ok(Node {
            hookline,
            who,
            shutdown,
            task,
        })
    }

    async fn webhook(&self, n: &Node, path: &str, events: &[&str]) -> anyhow::Result<()> {
        let input = WebhookInput {
            url: Some(format!("{}{path}", self.base)),
            events: Some(events.iter().map(|e| e.to_string()).collect()),
            retry_schedule: Some(Some(json!([]))),
            ..Default::default()
        };
        n.hookline.create_webhook(&n.who, input).await?;
        Ok(())
    }

    /// Raw loopback POST rate of the receiver: the ceiling every other figure is compared with.
    async fn raw(&mut self) -> anyhow::Result<()> {
        let rate = self.raw_rate_over(32).await?;
        self.raw_rate = Some(rate);
        self.record(
            "raw loopback HTTP POST rate (1 KB, 32 connections)",
            rate,
            "/s",
        );
        Ok(())
    }

    /// What the receiver takes from `connections` keep-alive connections posting 1 KB bodies as
    /// fast as it answers.
    async fn raw_rate_over(&self, connections: usize) -> anyhow::Result<f64> {
        let sender = Sender::new(SenderConfig {
            policy: hookline_core::url_policy::UrlPolicy {
                allow_http: true,
                allow_targets: vec!["127.0.0.1/32".parse().map_err(anyhow::Error::msg)?],
            },
            max_idle_per_host: 64,
            ..Default::default()
        })
        .map_err(anyhow::Error::msg)?;
        let body: bytes::Bytes = serde_json::to_vec(&payload(0))?.into();
        let before = self.sink.received.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(self.args.duration);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (sender, body, url) = (sender.clone(), body.clone(), format!("{}/raw", self.base));
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    sender
                        .send(OutboundRequest {
                            url: url.clone(),
                            headers: vec![],
                            body: body.clone(),
                        })
                        .await;
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let n = self.sink.received.load(Ordering::Relaxed) - before;
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }

    /// The commonest heavy case: one integration receiving an import. One endpoint at the default
    /// concurrency, 1 KB events published in batches of 200, beside the raw rate the same receiver
    /// takes from as many connections as that concurrency.
    async fn single(&mut self) -> anyhow::Result<()> {
        let n = self.node(|_| {}).await?;
        let concurrency = n.hookline.config.max_concurrency_per_webhook;
        self.webhook(&n, "/single", &["contact.*"]).await?;
        n.hookline.metrics.sample_stages(true);
        let run = self
            .sustained_in(&n, &["contact.created"], 200, self.args.duration)
            .await?;
        let rate = run.rate;
        let stages = n.hookline.metrics.sample_stages(false);
        stop(n).await;
        self.stages("one endpoint", &stages);
        let raw = self.raw_rate_over(concurrency).await?;
        self.record(
            &format!("raw loopback HTTP POST rate ({concurrency} connections)"),
            raw,
            "/s",
        );
        self.record(
            &format!("one endpoint, default concurrency {concurrency}, deliveries/s"),
            rate,
            "/s",
        );
        self.record(
            &format!("one endpoint: share of raw at {concurrency} connections"),
            rate / raw * 100.0,
            "%",
        );
        self.cpu("one endpoint", &run);
        Ok(())
    }

    /// CPU per delivery of a sustained phase: the figure that stays put on a busy machine, where
    /// rates move with whatever else runs.
    fn cpu(&mut self, what: &str, run: &Sustained) {
        self.record(
            &format!("{what}: CPU per delivery (whole process)"),
            run.cpu_us,
            "µs",
        );
        if self.args.postgres.is_none() {
            self.record(
                &format!("{what}: CPU per delivery (SQLite writer)"),
                run.writer_us,
                "µs",
            );
        }
        self.record(
            &format!("{what}: deliveries leased per claim"),
            run.per_claim,
            "",
        );
    }

    /// Per-stage percentiles of a delivery's time (claim, queue, send, record; see
    /// `hookline_server::metrics::Stage`), in ms.
    fn stages(&mut self, what: &str, stages: &[(hookline_server::metrics::Stage, Vec<f32>)]) {
        for (stage, times) in stages {
            let ms: Vec<f64> = times.iter().map(|t| *t as f64 * 1000.0).collect();
            for (p, name) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p999")] {
                self.record(
                    &format!("{what}: stage {} {name}", stage.label()),
                    percentile(&ms, p),
                    "ms",
                );
            }
        }
    }

    /// Keeps a backlog in front of the dispatcher by publishing batches of 100, and measures
    /// deliveries per second at the receiver once warm.
    async fn sustained(&self, n: &Node, types: &[&str], seconds: u64) -> anyhow::Result<f64> {
        Ok(self.sustained_in(n, types, 100, seconds).await?.rate)
    }

    /// [`Self::sustained`] publishing `batch` events per request.
    async fn sustained_in(
        &self,
        n: &Node,
        types: &[&str],
        batch: u64,
        seconds: u64,
    ) -> anyhow::Result<Sustained> {
        let stop = CancellationToken::new();
        let published = Arc::new(AtomicU64::new(0));
        let publisher = {
            let (h, who, stop, published) = (
                n.hookline.clone(),
                n.who.clone(),
                stop.clone(),
                published.clone(),
            );
            let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            let sink = self.sink.clone();
            let start_count = sink.received.load(Ordering::Relaxed);
            tokio::spawn(async move {
                let mut seq = 0u64;
                while !stop.is_cancelled() {
                    let delivered = sink.received.load(Ordering::Relaxed) - start_count;
                    // Stay at most ~20k ahead of the receiver: a backlog, not a flood.
                    if published.load(Ordering::Relaxed) > delivered + 20_000 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    let events: Vec<EventInput> = (0..batch)
                        .map(|_| {
                            seq += 1;
                            event(&types[(seq as usize) % types.len()], payload(seq))
                        })
                        .collect();
                    if h.publish(&who, None, PublishInput::Many(events), None)
                        .await
                        .is_ok()
                    {
                        published.fetch_add(batch, Ordering::Relaxed);
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = self.sink.received.load(Ordering::Relaxed);
        let (cpu_before, writer_before) = cpu_seconds();
        let claims_before = n.hookline.metrics.claim_counts();
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let delivered = (self.sink.received.load(Ordering::Relaxed) - before) as f64;
        let rate = delivered / start.elapsed().as_secs_f64();
        let (cpu_after, writer_after) = cpu_seconds();
        let claims_after = n.hookline.metrics.claim_counts();
        stop.cancel();
        publisher.await?;
        let per = |s: f64| s * 1e6 / delivered.max(1.0);
        Ok(Sustained {
            rate,
            per_claim: (claims_after.1 - claims_before.1) as f64
                / (claims_after.0 - claims_before.0).max(1) as f64,
            cpu_us: per(cpu_after - cpu_before),
            writer_us: per(writer_after - writer_before),
        })
    }

    async fn throughput(&mut self) -> anyhow::Result<()> {
        let n = self
            .node(|f| f.push(("max_concurrency_per_webhook", "32".into())))
            .await?;
        let types = [
            "contact.created",
            "deal.created",
            "task.created",
            "service.created",
        ];
        for (i, t) in types.iter().enumerate() {
            self.webhook(&n, &format!("/w{i}"), &[t]).await?;
        }
        // Extra nodes on the same PostgreSQL database share the claiming (in this process: they
        // share its cores too, so this shows coordination overhead and scaling, not more hardware).
        let mut extra = Vec::new();
        if self.args.postgres.is_some() {
            for _ in 1..self.args.nodes {
                extra.push(
                    self.node(|f| f.push(("max_concurrency_per_webhook", "32".into())))
                        .await?,
                );
            }
        }
        let run = self
            .sustained_in(&n, &types, 100, self.args.duration)
            .await?;
        let rate = run.rate;
        for e in extra {
            stop(e).await;
        }
        if self.args.nodes > 1 && self.args.postgres.is_some() {
            println!("  ({} nodes on one PostgreSQL database)", self.args.nodes);
        }
        self.record(
            "sustained deliveries/s (signed, logged, durable; 4 endpoints)",
            rate,
            "/s",
        );
        self.cpu("4 endpoints", &run);
        stop(n).await;
        Ok(())
    }

    /// Publishes `contact.created` events one by one at `rate` per second for `seconds` and
    /// returns each one's publish → arrival time in ms (sorted), how many were published, and the
    /// rate achieved.
    async fn latencies(&self, n: &Node, rate: u64, seconds: u64) -> (Vec<f64>, u64, f64) {
        self.sink
            .arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.sink.track.store(true, Ordering::Relaxed);
        let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let total = rate * seconds;
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for seq in 0..total {
            let due = start + interval * seq as u32;
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
            let (h, who, sent) = (n.hookline.clone(), n.who.clone(), sent.clone());
            tasks.spawn(async move {
                sent.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(seq, Instant::now());
                let _ = h
                    .publish(
                        &who,
                        None,
                        PublishInput::One(Box::new(event("contact.created", payload(seq)))),
                        None,
                    )
                    .await;
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        let arrived = || {
            self.sink
                .arrivals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len() as u64
        };
        let wait_until = Instant::now() + Duration::from_secs(30);
        while arrived() < total && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let achieved = total as f64 / start.elapsed().as_secs_f64();
        self.sink.track.store(false, Ordering::Relaxed);
        let arrivals = std::mem::take(
            &mut *self
                .sink
                .arrivals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let sent = std::mem::take(
            &mut *sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut ms: Vec<f64> = arrivals
            .iter()
            .filter_map(|(seq, at)| {
                sent.get(seq)
                    .map(|s| at.duration_since(*s).as_secs_f64() * 1000.0)
            })
            .collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        (ms, total, achieved)
    }

    async fn latency(&mut self) -> anyhow::Result<()> {
        for rate in self.args.rates.clone() {
            let n = self
                .node(|f| f.push(("max_concurrency_per_webhook", "64".into())))
                .await?;
            self.webhook(&n, "/lat", &["contact.*"]).await?;
            n.hookline.metrics.sample_stages(true);
            let (ms, total, achieved) = self.latencies(&n, rate, self.args.duration).await;
            let stages = n.hookline.metrics.sample_stages(false);
            let lost = total as usize - ms.len();
            println!("  at {rate} events/s for {}s (achieved {achieved:.0}/s, {lost} not arrived in time):", self.args.duration);
            self.record(
                &format!("latency p50 at {rate}/s"),
                percentile(&ms, 0.50),
                "ms",
            );
            self.record(
                &format!("latency p99 at {rate}/s"),
                percentile(&ms, 0.99),
                "ms",
            );
            self.record(
                &format!("latency p999 at {rate}/s"),
                percentile(&ms, 0.999),
                "ms",
            );
            self.stages(&format!("at {rate}/s"), &stages);
            stop(n).await;
        }
        Ok(())
    }

    async fn isolation(&mut self) -> anyhow::Result<()> {
        // Baseline: the healthy endpoint alone, with the same event mix.
        let n = self.node(|_| {}).await?;
        self.webhook(&n, "/healthy", &["contact.*"]).await?;
        let alone = self
            .sustained(&n, &["contact.created", "deal.created"], self.args.duration)
            .await?;
        stop(n).await;
        // Now half the events go to an endpoint that hangs for the whole timeout.
        let n = self.node(|_| {}).await?;
        self.webhook(&n, "/healthy", &["contact.*"]).await?;
        self.webhook(&n, "/hang", &["deal.*"]).await?;
        let beside = self
            .sustained(&n, &["contact.created", "deal.created"], self.args.duration)
            .await?;
        stop(n).await;
        self.record("healthy endpoint alone, deliveries/s", alone, "/s");
        self.record(
            "healthy endpoint beside a hanging one, deliveries/s",
            beside,
            "/s",
        );
        self.record(
            "isolation: healthy throughput kept",
            beside / alone * 100.0,
            "%",
        );
        self.tenant_isolation().await
    }

    /// One event carrying 50,000 objects to a one-object-per-request (flat) webhook: 50,000
    /// deliveries, each rendered from its own object. Drains at about the rate of ordinary events
    /// to one endpoint (`alone`), where it once crawled at ~70/s.
    async fn big_batch(&mut self) -> anyhow::Result<()> {
        const OBJECTS: u64 = 50_000;
        // The baseline: ordinary one-contact events to one endpoint at the same concurrency.
        let n = self.node(|_| {}).await?;
        self.webhook(&n, "/one", &["contact.*"]).await?;
        let alone = self
            .sustained(&n, &["contact.created"], self.args.duration)
            .await?;
        stop(n).await;
        self.record(
            "one endpoint, one-contact events, deliveries/s",
            alone,
            "/s",
        );
        let n = self
            .node(|f| f.push(("max_deliveries_per_publish", OBJECTS.to_string())))
            .await?;
        let input = WebhookInput {
            url: Some(format!("{}/flat", self.base)),
            events: Some(vec!["contact.*".into()]),
            format: Some("flat".into()),
            retry_schedule: Some(Some(json!([]))),
            ..Default::default()
        };
        n.hookline.create_webhook(&n.who, input).await?;
        let objects: Vec<Value> = (0..OBJECTS)
            .map(|i| json!({"id": format!("c{i}"), "first_name": "Bench", "primary_email": "bench@example.com"}))
            .collect();
        let before = self.sink.received.load(Ordering::Relaxed);
        let start = Instant::now();
        n.hookline
            .publish(
                &n.who,
                None,
                PublishInput::One(Box::new(event("contact.created", Value::Array(objects)))),
                None,
            )
            .await?;
        let published = start.elapsed();
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.sink.received.load(Ordering::Relaxed) - before < OBJECTS
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = self.sink.received.load(Ordering::Relaxed) - before;
        let rate = got as f64 / start.elapsed().as_secs_f64();
        stop(n).await;
        println!(
            "  one event of {OBJECTS} objects to a flat webhook: committed in {:.2}s, {got} delivered",
            published.as_secs_f64()
        );
        self.record(
            "50,000-object event to a flat webhook, deliveries/s",
            rate,
            "/s",
        );
        self.record(
            "50,000-object event: rate against ordinary events to one endpoint",
            rate / alone * 100.0,
            "%",
        );
        Ok(())
    }

    /// Two tenants on one node: a calm one with one healthy endpoint, and a noisy one with 200
    /// endpoints that hang for the whole timeout and a 100,000-delivery backlog behind them. The
    /// calm tenant's throughput and p99 latency, with the noisy tenant beside it, against alone.
    async fn tenant_isolation(&mut self) -> anyhow::Result<()> {
        const LATENCY_RATE: u64 = 200;
        // Latency first, on a node with no backlog of the calm tenant's own; then throughput.
        let n = self.node(|_| {}).await?;
        self.webhook(&n, "/calm", &["contact.*"]).await?;
        let (alone_ms, _, _) = self.latencies(&n, LATENCY_RATE, self.args.duration).await;
        let alone = self
            .sustained(&n, &["contact.created"], self.args.duration)
            .await?;
        stop(n).await;

        let n = self.node(|_| {}).await?;
        self.webhook(&n, "/calm", &["contact.*"]).await?;
        n.hookline.create_key("noisy", "bench").await?;
        let noisy = n.hookline.principal_for_tenant("noisy").await?;
        for _ in 0..200 {
            let input = WebhookInput {
                url: Some(format!("{}/hang", self.base)),
                events: Some(vec!["deal.*".into()]),
                retry_schedule: Some(Some(json!([]))),
                ..Default::default()
            };
            n.hookline.create_webhook(&noisy, input).await?;
        }
        // 500 events x 200 webhooks = 100,000 deliveries, 50 events (10,000 deliveries) a publish.
        let started = Instant::now();
        for chunk in 0..10u64 {
            let batch: Vec<EventInput> = (0..50)
                .map(|i| event("deal.created", payload(chunk * 50 + i)))
                .collect();
            n.hookline
                .publish(&noisy, None, PublishInput::Many(batch), None)
                .await?;
        }
        println!(
            "  noisy tenant: 200 hanging endpoints, 100,000 deliveries queued in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let (beside_ms, _, _) = self.latencies(&n, LATENCY_RATE, self.args.duration).await;
        let beside = self
            .sustained(&n, &["contact.created"], self.args.duration)
            .await?;
        stop(n).await;
        let (p99_alone, p99_beside) = (percentile(&alone_ms, 0.99), percentile(&beside_ms, 0.99));
        self.record("calm tenant alone, deliveries/s", alone, "/s");
        self.record(
            "calm tenant beside a noisy tenant, deliveries/s",
            beside,
            "/s",
        );
        self.record(
            "tenant isolation: calm throughput kept",
            beside / alone * 100.0,
            "%",
        );
        self.record(
            &format!("calm tenant p99 at {LATENCY_RATE}/s alone"),
            p99_alone,
            "ms",
        );
        self.record(
            &format!("calm tenant p99 at {LATENCY_RATE}/s beside the noisy one"),
            p99_beside,
            "ms",
        );
        self.record(
            "tenant isolation: calm p99 beside / alone",
            p99_beside / p99_alone,
            "x",
        );
        Ok(())
    }

    async fn fanout(&mut self) -> anyhow::Result<()> {
        let (publish, delivered) = self.fanout_to(None).await?;
        self.record(
            &format!(
                "fan-out: one event to {} webhooks, all delivered (median of 5)",
                self.args.fanout
            ),
            delivered,
            "ms",
        );
        self.record(
            "fan-out deliveries/s",
            self.args.fanout as f64 / (delivered / 1000.0),
            "/s",
        );
        self.record("fan-out: the publish itself (median of 5)", publish, "ms");
        // The same with a payload filter on every webhook (one that matches, so the same
        // deliveries go out): what evaluating 1,000 filters inside the publish costs.
        let filter = r#"type.startsWith("contact.") && data.seq >= 0 && "bench@example.com" == data.primary_email"#;
        let (filtered, filtered_all) = self.fanout_to(Some(filter)).await?;
        self.record(
            "fan-out with a filter on every webhook: the publish (median of 5)",
            filtered,
            "ms",
        );
        self.record(
            "fan-out with a filter on every webhook: all delivered (median of 5)",
            filtered_all,
            "ms",
        );
        self.record(
            "fan-out: publish with filters / without",
            filtered / publish,
            "x",
        );
        Ok(())
    }

    /// Publishes one event to `--fanout` webhooks (each with `filter`) five times; the median
    /// time of the publish call and of all deliveries arriving, in ms.
    async fn fanout_to(&mut self, filter: Option<&str>) -> anyhow::Result<(f64, f64)> {
        let n = self.node(|_| {}).await?;
        for i in 0..self.args.fanout {
            let input = WebhookInput {
                url: Some(format!("{}/f{i}", self.base)),
                events: Some(vec!["*".to_string()]),
                retry_schedule: Some(Some(json!([]))),
                filter: Some(filter.map(str::to_string)),
                ..Default::default()
            };
            n.hookline.create_webhook(&n.who, input).await?;
        }
        let (mut publish, mut delivered) = (Vec::new(), Vec::new());
        for round in 0..5u64 {
            let before = self.sink.received.load(Ordering::Relaxed);
            let start = Instant::now();
            n.hookline
                .publish(
                    &n.who,
                    None,
                    PublishInput::One(Box::new(event("contact.created", payload(round)))),
                    None,
                )
                .await?;
            publish.push(start.elapsed().as_secs_f64() * 1000.0);
            let want = before + self.args.fanout as u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.sink.received.load(Ordering::Relaxed) < want && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            delivered.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        stop(n).await;
        let median = |mut v: Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        Ok((median(publish), median(delivered)))
    }

    async fn backlog(&mut self) -> anyhow::Result<()> {
        // Fill the backlog with the worker stopped, then start it and watch memory while it drains.
        let db = match &self.args.postgres {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self._dir.path().join("backlog.db").display()),
        };
        let flags: Vec<(&str, String)> = vec![
            ("database_url", db),
            ("allow_targets", "127.0.0.1/32".into()),
            ("allow_http", "true".into()),
            ("max_concurrency_per_webhook", "32".into()),
            ("log", "warn".into()),
        ];
        let app = App::build(load(flags)?).await?;
        app.hookline.bootstrap().await?;
        let who = app.hookline.principal_for_tenant("default").await?;
        let types = [
            "contact.created",
            "deal.created",
            "task.created",
            "service.created",
        ];
        for (i, t) in types.iter().enumerate() {
            let input = WebhookInput {
                url: Some(format!("{}/b{i}", self.base)),
                events: Some(vec![t.to_string()]),
                ..Default::default()
            };
            app.hookline.create_webhook(&who, input).await?;
        }
        let fill = Instant::now();
        let mut seq = 0u64;
        while (seq as usize) < self.args.backlog {
            let batch: Vec<EventInput> = (0..1000.min(self.args.backlog - seq as usize))
                .map(|_| {
                    seq += 1;
                    event(
                        types[(seq as usize) % types.len()],
                        json!({"id": format!("c{seq}"), "seq": seq, "first_name": "Backlog"}),
                    )
                })
                .collect();
            app.hookline
                .publish(&who, None, PublishInput::Many(batch), None)
                .await?;
        }
        let fill_s = fill.elapsed().as_secs_f64();
        let rss_before = rss_kb();
        let before = self.sink.received.load(Ordering::Relaxed);
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(app.dispatcher.clone().run(shutdown.clone()));
        let start = Instant::now();
        let mut peak = rss_before;
        let deadline = start + Duration::from_secs(3600);
        while self.sink.received.load(Ordering::Relaxed) - before < self.args.backlog as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(250)).await;
            peak = peak.max(rss_kb());
        }
        let drain_s = start.elapsed().as_secs_f64();
        shutdown.cancel();
        let _ = worker.await;
        self.record(
            &format!(
                "backlog: {} pending deliveries written in",
                self.args.backlog
            ),
            fill_s,
            "s",
        );
        self.record(
            "backlog: resident memory with the backlog pending",
            rss_before as f64 / 1024.0,
            "MB",
        );
        self.record(
            "backlog: peak resident memory while draining",
            peak as f64 / 1024.0,
            "MB",
        );
        self.record("backlog: time to drain", drain_s, "s");
        self.record(
            "backlog: drain rate",
            self.args.backlog as f64 / drain_s,
            "/s",
        );
        Ok(())
    }
}

impl Bench {
    /// Console pages with `console_deliveries` deliveries stored: each page is requested over HTTP
    /// (signed in, as a browser would) and its time from request to the last byte recorded.
    async fn console(&mut self) -> anyhow::Result<()> {
        let db = match &self.args.postgres {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self._dir.path().join("console.db").display()),
        };
        let flags: Vec<(&str, String)> = vec![
            ("database_url", db),
            ("allow_targets", "127.0.0.1/32".into()),
            ("allow_http", "true".into()),
            ("log", "warn".into()),
        ];
        let app = App::build(load(flags)?).await?;
        let key = app
            .hookline
            .bootstrap()
            .await?
            .ok_or_else(|| anyhow::anyhow!("the console bench needs an empty database"))?;
        let who = app.hookline.principal_for_tenant("default").await?;
        let types = [
            "contact.created",
            "deal.created",
            "task.created",
            "service.created",
        ];
        let mut webhook_ids = Vec::new();
        for (i, t) in types.iter().enumerate() {
            let input = WebhookInput {
                url: Some(format!("{}/console{i}", self.base)),
                events: Some(vec![t.to_string()]),
                ..Default::default()
            };
            webhook_ids.push(app.hookline.create_webhook(&who, input).await?.id);
        }
        let fill = Instant::now();
        let total = self.args.console_deliveries;
        let mut seq = 0usize;
        let mut some_delivery = None;
        while seq < total {
            let batch: Vec<EventInput> = (0..1000.min(total - seq))
                .map(|_| {
                    seq += 1;
                    event(
                        types[seq % types.len()],
                        json!({"id": format!("c{seq}"), "first_name": "Console"}),
                    )
                })
                .collect();
            let (out, _) = app
                .hookline
                .publish(&who, None, PublishInput::Many(batch), None)
                .await?;
            if some_delivery.is_none() {
                some_delivery = serde_json::to_value(&out)?["data"][0]["delivery_ids"][0]
                    .as_str()
                    .map(str::to_string);
            }
        }
        let fill_s = fill.elapsed().as_secs_f64();
        // The API role only: no worker sends anything while pages are measured.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.serve(
            listener,
            shutdown.clone(),
            Roles {
                api: true,
                worker: false,
            },
        ));
        // The CLI's reqwest has TLS without a bundled provider: install ring, as the CLI does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let login = http
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("key={key}"))
            .send()
            .await?;
        let cookie = login
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .ok_or_else(|| anyhow::anyhow!("sign-in failed: {}", login.status()))?
            .to_string();
        let w = webhook_ids[0];
        let d = some_delivery.unwrap_or_default();
        let pages = [
            ("webhooks list", "/webhooks".to_string()),
            (
                "webhook page with 24 h and 7 d charts",
                format!("/webhooks/{w}"),
            ),
            ("delivery log, first page", "/deliveries".to_string()),
            (
                "delivery log filtered by webhook and status",
                format!("/deliveries?webhook_id={w}&status=pending"),
            ),
            (
                "delivery log, event-name search",
                "/deliveries?search=deal.created".to_string(),
            ),
            ("one delivery", format!("/deliveries/{d}")),
        ];
        self.record(
            &format!("console: {total} deliveries written in"),
            fill_s,
            "s",
        );
        for (name, path) in pages {
            let mut times = Vec::new();
            for _ in 0..21 {
                let t = Instant::now();
                let resp = http
                    .get(format!("{base}{path}"))
                    .header("cookie", &cookie)
                    .send()
                    .await?;
                let status = resp.status();
                let _ = resp.bytes().await?;
                if !status.is_success() {
                    anyhow::bail!("{path} answered {status}");
                }
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.remove(0); // the first request warms caches
            times.sort_by(f64::total_cmp);
            self.record(
                &format!("console: {name}, p50"),
                percentile(&times, 0.5),
                "ms",
            );
            self.record(
                &format!("console: {name}, max"),
                percentile(&times, 1.0),
                "ms",
            );
        }
        shutdown.cancel();
        let _ = server.await;
        Ok(())
    }
}

/// The bench's settings, as defaults that `HOOKLINE_*` variables can override (to try a tuning).
fn load(settings: Vec<(&'static str, String)>) -> anyhow::Result<Config> {
    let defaults = settings
        .into_iter()
        .map(|(k, v)| (format!("HOOKLINE_{}", k.to_ascii_uppercase()), v));
    let env = std::env::vars().filter(|(k, _)| k.starts_with("HOOKLINE_"));
    Ok(Config::load(None, defaults.chain(env), &[])?)
}

fn event(event_type: &str, data: Value) -> EventInput {
    EventInput {
        event_type: event_type.to_string(),
        data,
        entity_type: None,
        entity_id: None,
        source: None,
        source_id: None,
        occurred_at: None,
        changes: None,
    }
}

async fn stop(n: Node) {
    n.shutdown.cancel();
    let _ = n.task.await;
    drop(n.hookline);
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let wanted: Vec<&str> = args.scenario.split(',').map(str::trim).collect();
    let all = wanted.contains(&"all");
    let on = |s: &str| all || wanted.contains(&s);
    let known = [
        "all",
        "raw",
        "single",
        "throughput",
        "latency",
        "isolation",
        "batch",
        "fanout",
        "backlog",
        "console",
    ];
    if let Some(bad) = wanted.iter().find(|w| !known.contains(w)) {
        anyhow::bail!("unknown scenario `{bad}`; choose from {}", known.join(", "));
    }
    if args.duration == 0 || args.duration > 600 {
        anyhow::bail!("--duration must be 1-600 seconds");
    }
    let timeout = Duration::from_secs(10);
    let (base, sink) = start_receiver(timeout + Duration::from_secs(1)).await?;
    println!(
        "hookline bench: {} cores, store {}, {}s per phase",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        if args.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite (synchronous=FULL)"
        },
        args.duration
    );
    let mut b = Bench {
        args: args.clone(),
        base,
        sink,
        results: Vec::new(),
        raw_rate: None,
        _dir: tempfile::tempdir()?,
    };
    // The ceiling is always measured, so every rate has its ratio.
    b.raw().await?;
    if on("single") {
        b.single().await?;
    }
    if on("throughput") {
        b.throughput().await?;
    }
    if on("latency") {
        b.latency().await?;
    }
    if on("isolation") {
        b.isolation().await?;
    }
    if on("batch") {
        b.big_batch().await?;
    }
    if on("fanout") {
        b.fanout().await?;
    }
    if on("backlog") {
        b.backlog().await?;
    }
    if on("console") {
        b.console().await?;
    }
    if let Some(path) = &args.json {
        let raw = b.raw_rate.unwrap_or(0.0);
        let rows: Vec<Value> = b
            .results
            .iter()
            .map(|(name, v, unit)| {
                let ratio = (unit == "/s" && raw > 0.0).then(|| v / raw);
                json!({"figure": name, "value": v, "unit": unit, "ratio_to_raw": ratio})
            })
            .collect();
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json!({"results": rows}))?,
        )?;
    }
    Ok(())
}
