//! `microdash mqtt-auth`: Mosquitto's password and ACL files from the database, so that each
//! ingest token can publish only into its own tenant's topics. Rewritten only when they
//! change, atomically, followed by SIGHUP to the broker (which rereads them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use microdash_ingest::mqtt::mosquitto_files;

use crate::config::Config;
use crate::run::open_store;

/// Options of `microdash mqtt-auth`.
#[derive(Debug, clap::Args)]
pub struct MqttAuthArgs {
    /// Mosquitto `password_file` to write.
    #[arg(long)]
    password_file: PathBuf,
    /// Mosquitto `acl_file` to write.
    #[arg(long)]
    acl_file: PathBuf,
    /// The broker's pid file: it gets SIGHUP after a change.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Keep the files in step with the database, checking this often, in milliseconds (0:
    /// write them once). Under a second, a revoked token loses the broker within one: the
    /// broker disconnects clients whose password no longer checks out when it reloads.
    #[arg(long, default_value_t = 0)]
    watch_ms: u64,
    /// The same in seconds, for older scripts.
    #[arg(long, conflicts_with = "watch_ms", hide = true)]
    watch_s: Option<u64>,
}

/// Write the files (and keep them current with `--watch-ms`).
pub async fn run(config: &Config, args: MqttAuthArgs) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    // The bridge authenticates with the configured credentials and may read everything.
    let bridge_hash = match (&config.mqtt_username, &config.mqtt_password) {
        (Some(user), Some(password)) => {
            let mut salt = [0u8; 12];
            getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            Some((user.clone(), microdash_core::mqtt::mosquitto_password_hash(password, &salt)))
        }
        _ => None,
    };
    let watch = Duration::from_millis(args.watch_s.map_or(args.watch_ms, |s| s.saturating_mul(1000)));
    let mut last = None;
    loop {
        let accounts = store.mqtt_accounts().await?;
        let bridge = bridge_hash.as_ref().map(|(u, h)| (u.as_str(), h.as_str()));
        let files = mosquitto_files(&accounts, bridge, &config.mqtt_topic_root);
        if last.as_ref() != Some(&files) {
            write_atomically(&args.password_file, &files.0)?;
            write_atomically(&args.acl_file, &files.1)?;
            println!("wrote {} broker accounts", accounts.len() + usize::from(bridge.is_some()));
            if let Some(pid_file) = &args.pid_file {
                match reload(pid_file) {
                    Ok(()) => {}
                    // The broker may not be up yet (it starts once the files exist); it reads
                    // them when it starts.
                    Err(err) if !watch.is_zero() => eprintln!("not reloading the broker yet: {err:#}"),
                    Err(err) => return Err(err),
                }
            }
            last = Some(files);
        }
        if watch.is_zero() {
            return Ok(());
        }
        tokio::time::sleep(watch).await;
    }
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// SIGHUP makes Mosquitto reread its password and ACL files.
fn reload(pid_file: &Path) -> anyhow::Result<()> {
    let pid = std::fs::read_to_string(pid_file).with_context(|| format!("reading {}", pid_file.display()))?;
    let status = std::process::Command::new("kill").args(["-HUP", pid.trim()]).status().context("running kill")?;
    anyhow::ensure!(status.success(), "could not signal the broker (pid {})", pid.trim());
    Ok(())
}
