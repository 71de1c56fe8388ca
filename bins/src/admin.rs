//! Admin commands: tenants, tokens and the dead-letter store, straight on the database.

use anyhow::{Context, bail};
use clap::Subcommand;
use microdash_core::metric::format_millis;
use microdash_core::token::Scopes;
use microdash_ingest::clock::now_ms;
use microdash_ingest::views;
use serde::Serialize;

use crate::config::Config;
use crate::run::open_store;

/// `microdash tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Short name: a-z, 0-9 and '-'.
        slug: String,
        /// Display name (defaults to the slug).
        #[arg(long, default_value = "")]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `microdash token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once and never stored.
    Create {
        /// Tenant slug (for ingest/read tokens).
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        tenant: Option<String>,
        /// Comma-separated scopes: ingest, read.
        #[arg(long, default_value = "ingest,read")]
        scopes: String,
        /// Create an admin token (no tenant, admin scope).
        #[arg(long)]
        admin: bool,
        /// Label.
        #[arg(long, default_value = "")]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this tenant's tokens.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke {
        /// Token id, from `token list`.
        id: i64,
    },
}

/// `microdash dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead-lettered batches.
    List,
    /// Store dead-lettered batches again and remove the ones that succeed.
    Replay {
        /// Ids to replay; all when none are given.
        ids: Vec<i64>,
    },
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Run a tenant command.
pub async fn tenant(config: &Config, cmd: TenantCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match cmd {
        TenantCommand::Create { slug, name, json } => {
            let tenant = views::tenant(&store.create_tenant(&slug, &name, now_ms()).await?);
            if json {
                return print_json(&tenant);
            }
            println!("created tenant {} (id {})", tenant.slug, tenant.id);
        }
        TenantCommand::List { json } => {
            let tenants: Vec<_> = store.list_tenants().await?.iter().map(views::tenant).collect();
            if json {
                return print_json(&tenants);
            }
            println!("{:<6} {:<24} {:<24} CREATED", "ID", "SLUG", "NAME");
            for t in tenants {
                println!("{:<6} {:<24} {:<24} {}", t.id, t.slug, t.name, t.created_at);
            }
        }
    }
    Ok(())
}

/// Run a token command.
pub async fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match cmd {
        TokenCommand::Create { tenant, scopes, admin, name, json } => {
            let (tenant_id, scopes): (Option<i64>, Scopes) = if admin {
                (None, "admin".parse()?)
            } else {
                let slug = tenant.context("--tenant is required")?;
                let tenant =
                    store.tenant_by_slug(&slug).await?.with_context(|| format!("tenant {slug:?} does not exist"))?;
                (Some(tenant.id), scopes.parse()?)
            };
            let (info, secret) = store.create_token(tenant_id, scopes, &name, now_ms()).await?;
            if json {
                return print_json(&microdash_core::api::CreatedToken { info: views::token(&info), token: secret });
            }
            println!("created token {} (id {}, scopes {})", info.prefix, info.id, info.scopes);
            println!("{secret}");
            eprintln!("This is the only time the token is shown; store it now.");
        }
        TokenCommand::List { tenant, json } => {
            let tenant_id = match tenant {
                Some(slug) => Some(
                    store.tenant_by_slug(&slug).await?.with_context(|| format!("tenant {slug:?} does not exist"))?.id,
                ),
                None => None,
            };
            let tokens: Vec<_> = store.list_tokens(tenant_id).await?.iter().map(views::token).collect();
            if json {
                return print_json(&tokens);
            }
            println!("{:<6} {:<14} {:<16} {:<14} {:<26} STATE", "ID", "PREFIX", "TENANT", "SCOPES", "LAST USED");
            for t in tokens {
                let state = if t.revoked_at.is_some() { "revoked" } else { "active" };
                let tenant = t.tenant.as_deref().unwrap_or("(admin)");
                let last = t.last_used_at.as_deref().unwrap_or("never");
                println!("{:<6} {:<14} {:<16} {:<14} {:<26} {state}", t.id, t.prefix, tenant, t.scopes, last);
            }
        }
        TokenCommand::Revoke { id } => {
            let info = store.revoke_token(id, now_ms()).await?;
            println!("revoked token {} (id {})", info.prefix, info.id);
        }
    }
    Ok(())
}

/// Run a dead-letter command.
pub async fn dlq(config: &Config, cmd: DlqCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let letters = store.list_dead_letters().await?;
    match cmd {
        DlqCommand::List => {
            println!("{:<6} {:<8} {:<8} {:<9} {:<26} ERROR", "ID", "TENANT", "METRICS", "ATTEMPTS", "AT");
            for l in &letters {
                let at = format_millis(l.created_at_ms);
                println!(
                    "{:<6} {:<8} {:<8} {:<9} {:<26} {}",
                    l.id,
                    l.batch.tenant_id,
                    l.batch.metrics.len(),
                    l.attempts,
                    at,
                    l.error
                );
            }
        }
        DlqCommand::Replay { ids } => {
            let chosen: Vec<_> = letters.iter().filter(|l| ids.is_empty() || ids.contains(&l.id)).collect();
            if let Some(missing) = ids.iter().find(|id| !letters.iter().any(|l| l.id == **id)) {
                bail!("no dead letter with id {missing}");
            }
            let (mut replayed, mut failed) = (0, 0);
            for letter in chosen {
                // The same insert the workers use, so dedupe_id keeps a replay idempotent.
                match store.insert_batches(std::slice::from_ref(&letter.batch), now_ms()).await {
                    Ok(stats) => {
                        store.delete_dead_letter(letter.id).await?;
                        println!("replayed {}: {} metrics, {} new", letter.id, stats.metrics, stats.inserted);
                        replayed += 1;
                    }
                    Err(err) => {
                        eprintln!("replaying {} failed: {err}", letter.id);
                        failed += 1;
                    }
                }
            }
            println!("{replayed} replayed, {failed} failed");
            if failed > 0 {
                bail!("{failed} dead letter(s) could not be replayed");
            }
        }
    }
    Ok(())
}
