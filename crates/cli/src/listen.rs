//! `hookline listen`: receive a deployment's deliveries on this machine, without a public URL.
//!
//! The CLI opens a listen session (`GET /v1/listen`, a server-sent event stream): the deployment
//! makes a temporary webhook for the events asked for and streams each delivery attempt, signed as
//! usual with the session's own secret (printed at start). Each is forwarded to `--forward-to`
//! (any URL this machine can reach: the URL policy doesn't apply, the request never leaves the
//! laptop), and the local answer is reported back, so the deployment's delivery log shows it.
//! When the CLI exits, the stream closes and the deployment deletes the webhook.

use crate::client::Api;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for the local receiver (the deployment's own timeout may be shorter).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// Most of the local answer's body reported back.
const BODY_CAP: usize = 64 * 1024;

pub struct Listen {
    pub events: String,
    pub format: Option<String>,
    pub forward_to: String,
}

pub async fn run(api: Api, args: Listen, as_json: bool) -> anyhow::Result<()> {
    let forward_to = reqwest::Url::parse(&args.forward_to).map_err(|e| {
        crate::error::usage(format!(
            "--forward-to {:?} is not a URL: {e}",
            args.forward_to
        ))
    })?;
    let local = reqwest::Client::builder()
        .timeout(FORWARD_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| anyhow::anyhow!("can't set up the HTTP client: {e}"))?;
    let mut query = vec![("events", args.events.clone())];
    if let Some(f) = &args.format {
        query.push(("format", f.clone()));
    }
    let mut resp = api.open_stream(&["v1", "listen"], &query).await?;
    let api = Arc::new(api);
    let mut session = String::new();
    // Raw bytes until a whole event is in: a character split between two chunks must not be
    // decoded half by half (the body is signed byte for byte).
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| anyhow::anyhow!("the listen session broke: {e}"))?;
        let Some(chunk) = chunk else {
            anyhow::bail!("the deployment ended the listen session");
        };
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let raw: Vec<u8> = buf.drain(..end + 2).collect();
            let block = String::from_utf8(raw)
                .map_err(|_| anyhow::anyhow!("the deployment sent an event that isn't UTF-8"))?;
            let (mut event, mut data) = (String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            let v: Value = serde_json::from_str(&data)
                .map_err(|e| anyhow::anyhow!("the deployment sent an unreadable event: {e}"))?;
            match event.as_str() {
                "session" => {
                    session = v["session"].as_str().unwrap_or_default().to_string();
                    if as_json {
                        outln!("{v}");
                    } else {
                        outln!(
                            "Ready. Session {session}: events {} in {} format, forwarded to {forward_to}",
                            args.events,
                            v["webhook"]["format"].as_str().unwrap_or("envelope")
                        );
                        outln!(
                            "The session's signing secret is {} (give it to your receiver to verify signatures). Ctrl-C ends the session.",
                            v["webhook"]["secret"].as_str().unwrap_or("?")
                        );
                    }
                }
                "request" => {
                    let (api, local, to, session) = (
                        api.clone(),
                        local.clone(),
                        forward_to.clone(),
                        session.clone(),
                    );
                    tokio::spawn(async move {
                        let report = forward(&local, to, &v).await;
                        let line = match (&report["status"], &report["error"]) {
                            (Value::Number(s), _) => format!("→ {s}"),
                            (_, Value::String(e)) => format!("→ not delivered: {e}"),
                            _ => "→ ?".into(),
                        };
                        let event = v["headers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find_map(|h| {
                                let name = h[0].as_str()?.to_ascii_lowercase();
                                (name.ends_with("-event") || name == "webhook-event")
                                    .then(|| h[1].as_str().unwrap_or_default().to_string())
                            })
                            .unwrap_or_else(|| "delivery".into());
                        if let Err(e) = api
                            .post(&["v1", "listen", &session, "reports"], Some(report))
                            .await
                        {
                            eprintln!("{event} {line} (could not report it back: {e})");
                        } else {
                            eprintln!("{event} {line}");
                        }
                    });
                }
                _ => {}
            }
        }
    }
}

/// Sends one request to the local receiver; the report for the deployment.
async fn forward(local: &reqwest::Client, to: reqwest::Url, v: &Value) -> Value {
    let id = v["id"].clone();
    let mut req = local.post(to);
    for h in v["headers"].as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (h[0].as_str(), h[1].as_str()) else {
            continue;
        };
        // Framing is the client's own business.
        if ["content-length", "host", "transfer-encoding", "connection"]
            .contains(&name.to_ascii_lowercase().as_str())
        {
            continue;
        }
        req = req.header(name, value);
    }
    match req
        .body(v["body"].as_str().unwrap_or_default().to_string())
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            let mut body = resp.text().await.unwrap_or_default();
            if body.len() > BODY_CAP {
                let mut cut = BODY_CAP;
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                body.truncate(cut);
            }
            json!({"id": id, "status": status, "headers": headers, "body": body})
        }
        Err(e) => {
            let mut detail = e.to_string();
            let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            while let Some(s) = source {
                detail = s.to_string();
                source = s.source();
            }
            json!({"id": id, "status": null, "error": detail})
        }
    }
}
