//! `microdash`: the all-in-one server (`serve`, the default), the split `server` and
//! `worker` processes, and the admin commands. Parsing and wiring only; the work is in the
//! library crates.

mod admin;
mod config;
mod mcp;
mod mqtt_auth;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};

#[derive(Debug, Parser)]
#[command(name = "microdash", version, about = "Lightweight multi-tenant observability dashboard")]
struct Cli {
    /// Optional TOML configuration file.
    #[arg(long, env = "MICRODASH_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// API and workers in one process (the default).
    Serve {
        /// Create a `demo` tenant and user if missing; print a fresh token and password.
        #[arg(long)]
        demo: bool,
    },
    /// API only, for a split deployment (needs --redis-url).
    Server,
    /// Workers only, for a split deployment (needs --redis-url).
    Worker,
    /// The MQTT bridge only, for a split deployment (needs --mqtt-url and --redis-url).
    Bridge,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(admin::TenantCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Manage dashboard users.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Inspect and replay batches that could not be stored.
    #[command(subcommand)]
    Dlq(admin::DlqCommand),
    /// Write Mosquitto's password and ACL files from the tokens (each publishes only into its
    /// tenant's topics), and reload the broker.
    MqttAuth(mqtt_auth::MqttAuthArgs),
    /// Serve MCP (Model Context Protocol) over stdio for a desktop assistant or editor:
    /// against a server (`--url http://... --token ...`) or straight on the configured
    /// database (`--token ...` with `--database-url`).
    Mcp(mcp::McpArgs),
    /// Print the effective configuration (all layers merged) as JSON, passwords hidden.
    Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_ref(), &cli.overrides)?;
    let command = cli.command.unwrap_or(Command::Serve { demo: false });
    // Over stdio an assistant shows stderr as the server's log: keep it to what matters
    // unless a filter was chosen.
    let quiet = matches!(command, Command::Mcp(_)) && config.log_filter == "info";
    init_tracing(if quiet { "warn" } else { &config.log_filter });
    match command {
        Command::Serve { demo } => run::all_in_one(&config, demo).await,
        Command::Server => run::server(&config).await,
        Command::Worker => run::worker(&config).await,
        Command::Bridge => run::bridge(&config).await,
        Command::Tenant(cmd) => admin::tenant(&config, cmd).await,
        Command::Token(cmd) => admin::token(&config, cmd).await,
        Command::User(cmd) => admin::user(&config, cmd).await,
        Command::Dlq(cmd) => admin::dlq(&config, cmd).await,
        Command::MqttAuth(args) => mqtt_auth::run(&config, args).await,
        Command::Mcp(args) => mcp::run(&config, args).await,
        Command::Config => {
            println!("{}", serde_json::to_string_pretty(&config.redacted())?);
            Ok(())
        }
    }
}

fn init_tracing(filter: &str) {
    // RUST_LOG, when set, wins over the configured filter.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    // Colours only on a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}
