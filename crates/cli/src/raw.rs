//! `hookline api METHOD PATH`: any REST call with the configured deployment and key, for what no
//! dedicated command covers (organizations, deals, services, tasks, a new route). Prints the
//! answer's JSON; a refusal is shown and exits like every other command.

use crate::client::{Api, Body};
use crate::error::usage;
use crate::input;
use crate::output;
use clap::Args;
use reqwest::Method;

#[derive(Args)]
pub struct ApiArgs {
    /// GET, POST, PUT, PATCH or DELETE.
    method: String,
    /// The path, e.g. /v1/deals or /v1/deals/d1 (a query string may follow `?`).
    path: String,
    /// A JSON body: JSON text, @FILE, or `-` for standard input.
    #[arg(long, value_name = "JSON|@FILE|-")]
    data: Option<String>,
    /// A request header as `Name: value` (e.g. If-Match, X-Actor-Id, Idempotency-Key); repeat for more.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
}

pub async fn run(api: &Api, args: &ApiArgs) -> anyhow::Result<()> {
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .ok()
        .filter(|m| {
            [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ]
            .contains(m)
        })
        .ok_or_else(|| {
            usage(format!(
                "`{}` is not GET, POST, PUT, PATCH or DELETE",
                args.method
            ))
        })?;
    if !args.path.starts_with('/') {
        return Err(usage(format!(
            "the path `{}` must start with /, e.g. /v1/webhooks",
            args.path
        )));
    }
    let mut headers = Vec::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| usage(format!("--header `{h}` must look like `Name: value`")))?;
        headers.push((name.trim(), value.trim().to_string()));
    }
    let body = match &args.data {
        Some(d) => Body::Json(input::json("--data", Some(d))?),
        None => Body::None,
    };
    let answer = api
        .send_to(method, api.url_for_path(&args.path), &headers, body)
        .await?;
    if !answer.body.is_null() {
        output::json(&answer.body);
    }
    Ok(())
}
