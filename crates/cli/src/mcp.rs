//! `hookline mcp`: MCP on standard input and output, forwarded to a running deployment's `/mcp`.
//!
//! An assistant on a laptop starts this as its MCP server; every request goes to the deployment
//! named by `--url` with `--key` (or a profile saved by `hookline login`: see `profile.rs`), so
//! the tools, their rules and the tenant's data are exactly those of the deployment (the tools
//! themselves live in the server's `mcp` module). Standard output
//! carries only MCP messages; logs go to standard error. A missing or refused key, or a server that
//! can't be reached, ends the process at once with a message and a non-zero exit.

use anyhow::{bail, Context};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{
    ErrorData as McpError, RoleClient, RoleServer, ServerHandler, ServiceError, ServiceExt,
};
use std::time::Duration;

/// How long connecting and the MCP handshake with the deployment may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Relays one stdio session to the deployment's session.
struct Forwarder {
    remote: RunningService<RoleClient, ()>,
}

fn upstream(e: ServiceError) -> McpError {
    match e {
        ServiceError::McpError(e) => e,
        other => McpError::internal_error(format!("the Hookline server: {other}"), None),
    }
}

impl ServerHandler for Forwarder {
    fn get_info(&self) -> ServerConfig {
        match self.remote.peer_info() {
            Some(info) => {
                let mut config = ServerConfig::new(info.capabilities.clone()).with_server_info(
                    info.server_info.clone().unwrap_or_else(|| {
                        Implementation::new("hookline", env!("CARGO_PKG_VERSION"))
                    }),
                );
                config.instructions = info.instructions.clone();
                config
            }
            None => ServerConfig::new(ServerCapabilities::builder().enable_tools().build()),
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.remote.list_tools(request).await.map_err(upstream)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let mut params = CallToolRequestParams::new(request.name);
        if let Some(args) = request.arguments {
            params = params.with_arguments(args);
        }
        Ok(self
            .remote
            .call_tool(params)
            .await
            .map_err(upstream)?
            .into())
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.remote.list_resources(request).await.map_err(upstream)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        self.remote
            .list_resource_templates(request)
            .await
            .map_err(upstream)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        Ok(self
            .remote
            .read_resource(ReadResourceRequestParams::new(request.uri))
            .await
            .map_err(upstream)?
            .into())
    }
}

/// The deployment's MCP endpoint: `https://host` and `https://host/mcp` both name it.
fn endpoint(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("--url must be the deployment's http:// or https:// address, e.g. https://hooks.example.com");
    }
    Ok(if url.ends_with("/mcp") {
        url.to_string()
    } else {
        format!("{url}/mcp")
    })
}

/// Connects to the deployment, then serves stdio until the assistant closes it. `url` and `key`
/// come resolved from the flags, a profile or the environment (`profile::resolve_parts`).
pub async fn run(url: Option<String>, key: Option<String>) -> anyhow::Result<()> {
    let url = url.context(
        "no server: give --url, set HOOKLINE_URL, or save a profile with `hookline login`",
    )?;
    let key = key.context(
        "no API key: give --key, set HOOKLINE_API_KEY, or save a profile with `hookline login`",
    )?;
    let endpoint = endpoint(&url)?;
    // HTTPS to the deployment uses rustls with the same ring provider as the server's sender.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(endpoint.clone()).auth_header(key),
    );
    let remote = match tokio::time::timeout(CONNECT_TIMEOUT, ().serve(transport)).await {
        Err(_) => bail!("{endpoint} did not answer within {CONNECT_TIMEOUT:?}"),
        Ok(Err(e)) if e.is_authorization_required() => {
            bail!("{endpoint} refused the API key (401): check --key / HOOKLINE_API_KEY")
        }
        Ok(Err(e)) => bail!("can't reach the Hookline server at {endpoint}: {e}"),
        Ok(Ok(remote)) => remote,
    };
    tracing::info!(%endpoint, "forwarding MCP on stdio");
    let service = Forwarder { remote }
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP handshake on stdio failed")?;
    service.waiting().await.context("stdio session")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn the_endpoint_is_the_deployment_url_with_mcp() {
        assert_eq!(
            endpoint("https://h.example/").unwrap(),
            "https://h.example/mcp"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:8080/mcp").unwrap(),
            "http://127.0.0.1:8080/mcp"
        );
        assert!(endpoint("h.example").is_err());
    }
}
