//! Admin commands: tenants, tokens and the dead-letter store, straight on the database.

use anyhow::{Context, bail};
use clap::Subcommand;
use microdash_core::metric::format_millis;
use microdash_core::token::Scopes;
use microdash_ingest::clock::now_ms;
use microdash_ingest::queue::RedisQueue;
use microdash_ingest::revocation::Revoker;
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
    /// List tenants with the retention and quotas in force.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a tenant's own retention; `default` returns a setting to the server's.
    Retention {
        /// The tenant.
        slug: String,
        /// Hours of raw points, or `default`.
        #[arg(long, allow_hyphen_values = true)]
        raw_hours: Option<String>,
        /// Days of 1-minute rollups, or `default`.
        #[arg(long = "1m-days", allow_hyphen_values = true)]
        rollup_1m_days: Option<String>,
        /// Days of 5-minute rollups, or `default`.
        #[arg(long = "5m-days", allow_hyphen_values = true)]
        rollup_5m_days: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a tenant's own quotas (0: unlimited); `default` returns a setting to the server's.
    Quota {
        /// The tenant.
        slug: String,
        /// Metrics a second it may have accepted (per API process), or `default`.
        #[arg(long, allow_hyphen_values = true)]
        max_ingest_metrics_per_s: Option<String>,
        /// Distinct series it may have, or `default`.
        #[arg(long, allow_hyphen_values = true)]
        max_series: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A setting's flag: absent keeps the setting, `default` clears it, else a number.
fn setting_flag(key: &str, value: Option<String>) -> anyhow::Result<Option<Option<i64>>> {
    match value.as_deref() {
        None => Ok(None),
        Some("default") => Ok(Some(None)),
        Some(text) => {
            text.parse().map(|n| Some(Some(n))).with_context(|| format!("{key} must be a whole number or default"))
        }
    }
}

/// A quota as listings show it.
fn quota_text(value: u64) -> String {
    if value == 0 { "unlimited".to_owned() } else { value.to_string() }
}

/// `microdash token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once and never stored.
    Create {
        /// Tenant slug (for ingest/read tokens).
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        tenant: Option<String>,
        /// Comma-separated scopes: ingest, read, alerts (rules and channels).
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

/// `microdash user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a dashboard user. Without --password-stdin a password is generated and printed once.
    Create {
        /// Sign-in name: lowercase letters, digits, '.', '_', '-'.
        username: String,
        /// The tenant whose dashboard the user sees.
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        tenant: Option<String>,
        /// An admin, who sees and manages every tenant.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Set a new password (ends the user's sessions).
    Passwd {
        /// The user.
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user and end their sessions.
    Delete {
        /// The user.
        username: String,
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
    let defaults = config.retention().defaults;
    let quotas = config.quotas().defaults;
    match cmd {
        TenantCommand::Create { slug, name, json } => {
            let tenant = views::tenant(&store.create_tenant(&slug, &name, now_ms()).await?, defaults, quotas);
            if json {
                return print_json(&tenant);
            }
            println!("created tenant {} (id {})", tenant.slug, tenant.id);
        }
        TenantCommand::List { json } => {
            let tenants: Vec<_> =
                store.list_tenants().await?.iter().map(|t| views::tenant(t, defaults, quotas)).collect();
            if json {
                return print_json(&tenants);
            }
            println!(
                "{:<6} {:<24} {:<24} {:<10} {:<8} {:<8} {:<12} {:<12} CREATED",
                "ID", "SLUG", "NAME", "RAW", "1M", "5M", "METRICS/S", "SERIES"
            );
            for t in tenants {
                let (raw, one, five) = (
                    format!("{}h", t.retention_raw_hours),
                    format!("{}d", t.retention_1m_days),
                    format!("{}d", t.retention_5m_days),
                );
                let (rate, series) = (quota_text(t.max_ingest_metrics_per_s), quota_text(t.max_series));
                println!(
                    "{:<6} {:<24} {:<24} {raw:<10} {one:<8} {five:<8} {rate:<12} {series:<12} {}",
                    t.id, t.slug, t.name, t.created_at
                );
            }
        }
        TenantCommand::Retention { slug, raw_hours, rollup_1m_days, rollup_5m_days, json } => {
            let change = microdash_store::RetentionChange {
                raw_hours: setting_flag("--raw-hours", raw_hours)?,
                rollup_1m_days: setting_flag("--1m-days", rollup_1m_days)?,
                rollup_5m_days: setting_flag("--5m-days", rollup_5m_days)?,
            };
            let tenant =
                store.tenant_by_slug(&slug).await?.with_context(|| format!("tenant {slug:?} does not exist"))?;
            change
                .check(tenant.retention, defaults)
                .map_err(|(field, message)| anyhow::anyhow!("{field} {message}"))?;
            let tenant = views::tenant(&store.set_tenant_retention(tenant.id, &change).await?, defaults, quotas);
            if json {
                return print_json(&tenant);
            }
            println!(
                "tenant {} keeps raw points {} h, 1-minute rollups {} d, 5-minute rollups {} d",
                tenant.slug, tenant.retention_raw_hours, tenant.retention_1m_days, tenant.retention_5m_days
            );
        }
        TenantCommand::Quota { slug, max_ingest_metrics_per_s, max_series, json } => {
            let change = microdash_store::QuotaChange {
                max_ingest_metrics_per_s: setting_flag("--max-ingest-metrics-per-s", max_ingest_metrics_per_s)?,
                max_series: setting_flag("--max-series", max_series)?,
            };
            let tenant =
                store.tenant_by_slug(&slug).await?.with_context(|| format!("tenant {slug:?} does not exist"))?;
            let updated = store.update_tenant(tenant.id, &Default::default(), &change).await?;
            let tenant = views::tenant(&updated, defaults, quotas);
            if json {
                return print_json(&tenant);
            }
            println!(
                "tenant {} may ingest {} metrics/s (per API process) and have {} series; servers apply it within \
                 tenant_quota_refresh_ms",
                tenant.slug,
                quota_text(tenant.max_ingest_metrics_per_s),
                quota_text(tenant.max_series)
            );
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
            let reach = match tenant {
                Some(slug) => microdash_store::Reach::Tenant(
                    store.tenant_by_slug(&slug).await?.with_context(|| format!("tenant {slug:?} does not exist"))?.id,
                ),
                None => microdash_store::Reach::Every,
            };
            let tokens: Vec<_> = store.list_tokens(reach).await?.iter().map(views::token).collect();
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
            let info = revoker(config, store).await.revoke_token(microdash_store::Reach::Every, id, now_ms()).await?;
            println!("revoked token {} (id {})", info.prefix, info.id);
        }
    }
    Ok(())
}

/// Revokes in the database and, with Redis configured, tells the running servers at once
/// (they also notice by themselves within `credential_recheck_ms`).
async fn revoker(config: &Config, store: microdash_store::Store) -> Revoker {
    let redis = match config.redis() {
        Some(redis) => match RedisQueue::connect(&redis).await {
            Ok(queue) => Some(queue),
            Err(err) => {
                tracing::warn!(error = %err, "cannot reach Redis; servers notice the revocation at their next recheck");
                None
            }
        },
        None => None,
    };
    Revoker::new(store, redis)
}

/// The password from stdin, or a generated one (then `true`: print it).
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
        return Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false));
    }
    Ok((microdash_store::generate_password()?, true))
}

/// Run a user command.
pub async fn user(config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match cmd {
        UserCommand::Create { username, tenant, admin: _, password_stdin } => {
            let tenant_id = match tenant {
                Some(slug) => Some(
                    store.tenant_by_slug(&slug).await?.with_context(|| format!("tenant {slug:?} does not exist"))?.id,
                ),
                None => None,
            };
            let (password, generated) = password(password_stdin)?;
            let user = store.create_user(&username, &password, tenant_id, now_ms()).await?;
            let role = user.tenant_slug.as_deref().map_or("admin".to_owned(), |t| format!("tenant {t}"));
            println!("created user {} ({role})", user.username);
            if generated {
                println!("password: {password}");
                eprintln!("This is the only time the password is shown.");
            }
        }
        UserCommand::List => {
            println!("{:<6} {:<24} {:<16} CREATED", "ID", "USERNAME", "TENANT");
            for u in store.list_users().await? {
                let tenant = u.tenant_slug.as_deref().unwrap_or("(admin)");
                println!("{:<6} {:<24} {:<16} {}", u.id, u.username, tenant, format_millis(u.created_at_ms));
            }
        }
        UserCommand::Passwd { username, password_stdin } => {
            let (password, generated) = password(password_stdin)?;
            revoker(config, store).await.set_password(&username, &password).await?;
            println!("password of {username} changed; their sessions have ended");
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::Delete { username } => {
            if !revoker(config, store).await.delete_user(&username).await? {
                bail!("no user {username:?}");
            }
            println!("deleted user {username}");
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
