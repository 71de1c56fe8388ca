//! microdash as a Model Context Protocol server (cargo feature `mcp`), on the official Rust
//! SDK (`rmcp`) at the protocol's current revision (2026-07-28; older clients are served too).
//!
//! - [`McpServer`]: the tools (`list_tenants`, `list_agents`, `list_metrics`, `get_health`,
//!   `query_metrics`, `get_alerts`, `get_alert_history`, `list_alert_rules`, and the writes
//!   `create_alert_rule`, `update_alert_rule`, `pause_alert_rule`), the resources
//!   (`microdash://series`, `microdash://alerts`) and the prompts (`investigate_host`,
//!   `summarise_last_24h`), written once over a [`Source`].
//! - [`LocalSource`]: a [`Source`] in this process, through the functions the HTTP handlers
//!   answer with; [`crate::Runtime::mcp_source`] makes one for a token.
//! - `/mcp` (Streamable HTTP): mounted by [`crate::Runtime`] when built with
//!   [`crate::RuntimeBuilder::mcp`]; every request carries a bearer token and is answered for
//!   its caller, and Host and Origin are checked against [`McpConfig`]'s allow-list.
//! - stdio: [`serve_stdio`].
//!
//! Tenant safety is by construction: a [`Source`] is bound to one credential and every call
//! goes through that credential's checks, so no argument reaches another tenant. Writes need
//! the `alerts` scope and [`McpConfig::allow_writes`]. Answers are bounded (series, points,
//! list lengths, 1 MiB of JSON); failures are tool errors (`isError`) with a message a model
//! can act on.

pub(crate) mod http;
mod local;
mod server;
mod source;
pub mod tools;

pub use local::LocalSource;
pub use server::{McpServer, WRITE_TOOLS, query_metrics};
pub use source::{Source, SourceError};

/// Settings of the `/mcp` endpoint.
#[derive(Debug, Clone)]
pub struct McpConfig {
    /// Offer the tools that change alert rules (to tokens with the `alerts` scope).
    pub allow_writes: bool,
    /// Browser origins allowed besides the loopback ones (`https://dash.example.com`); their
    /// hosts are allowed as `Host` too. Requests from any other origin or host are refused
    /// (DNS-rebinding protection).
    pub allowed_origins: Vec<String>,
    /// Largest request body.
    pub max_request_bytes: usize,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self { allow_writes: false, allowed_origins: Vec::new(), max_request_bytes: 1 << 20 }
    }
}

/// Loopback names, always allowed.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl McpConfig {
    /// The `Host` values accepted: loopback, and the hosts of the allowed origins.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = LOOPBACK.iter().map(|h| h.trim_matches(['[', ']']).to_owned()).collect();
        hosts.extend(self.allowed_origins.iter().filter_map(|o| origin_host(o)));
        hosts
    }

    /// The `Origin` values accepted: loopback on any port and scheme, and the configured
    /// ones (on their scheme's default port when they name none).
    pub fn allowed_origins(&self) -> Vec<String> {
        let mut origins: Vec<String> =
            LOOPBACK.iter().flat_map(|h| [format!("http://{h}:*"), format!("https://{h}:*")]).collect();
        for origin in &self.allowed_origins {
            let origin = origin.trim().trim_end_matches('/');
            let Some((scheme, rest)) = origin.split_once("://") else { continue };
            let authority = rest.split('/').next().unwrap_or(rest);
            let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| p == "*" || p.parse::<u16>().is_ok())
                && !authority.ends_with(']');
            let default_port = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
            origins.push(if has_port {
                format!("{scheme}://{authority}")
            } else {
                format!("{scheme}://{authority}:{default_port}")
            });
        }
        origins
    }
}

/// The host of an origin such as `https://dash.example.com:8443`.
fn origin_host(origin: &str) -> Option<String> {
    let (_, rest) = origin.trim().split_once("://")?;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?.to_owned(),
        None => authority.split(':').next()?.to_owned(),
    };
    (!host.is_empty()).then_some(host)
}

/// Serve `server` over standard input and output until the client closes them.
pub async fn serve_stdio(server: McpServer) -> std::io::Result<()> {
    use rmcp::ServiceExt;
    let running = server.serve(rmcp::transport::stdio()).await.map_err(std::io::Error::other)?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_is_loopback_plus_the_configured_origins() {
        let config = McpConfig {
            allowed_origins: vec!["https://dash.example.com".into(), "http://10.0.0.5:8080/".into()],
            ..McpConfig::default()
        };
        let hosts = config.allowed_hosts();
        assert_eq!(hosts, ["localhost", "127.0.0.1", "::1", "dash.example.com", "10.0.0.5"]);
        let origins = config.allowed_origins();
        assert!(origins.contains(&"http://localhost:*".to_owned()));
        assert!(origins.contains(&"https://dash.example.com:443".to_owned()));
        assert!(origins.contains(&"http://10.0.0.5:8080".to_owned()));
    }
}
