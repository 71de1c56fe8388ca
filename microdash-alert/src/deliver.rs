//! Notification delivery (feature `delivery`): one [`Deliverer`] makes one attempt at sending
//! a [`Message`] to a [`Channel`] and says how it went ([`Attempt`]: sent, retry, failed).
//! When to try again is [`Attempt::retry_in`] ([`retry_delay`], at most [`MAX_ATTEMPTS`]);
//! the caller keeps the schedule (the store persists pending notifications), so a restart
//! loses no retry.
//!
//! - **Webhooks** ([`webhook`]): an HTTP `POST` of the body exactly as given, with
//!   `Content-Type: application/json` and, when the channel has a secret,
//!   `X-Microdash-Signature: sha256=<hex HMAC-SHA256(secret, body)>` ([`signature`]).
//!   2xx is sent; a timeout, a connection or TLS failure, 408, 429 and 5xx are retried (a
//!   `Retry-After` in seconds on 429 and 503 is [`Attempt::retry_after`]); any other 4xx
//!   fails at once. Redirects are not followed: a 3xx fails, naming where it pointed.
//! - **Email** ([`email`]): over SMTP with lettre's pooled transport, from
//!   [`SmtpConfig::from`] to every recipient, as UTF-8 plain text. Transient SMTP replies
//!   (4xx), timeouts and connection failures are retried; permanent ones (5xx) fail.
//!
//! TLS is rustls with ring, given to reqwest and lettre explicitly, and certificates are
//! checked against the system's trust store (rustls-platform-verifier). Nothing here installs
//! a process-wide crypto provider.

pub mod destination;
pub mod email;
pub mod webhook;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use microdash_core::alert::Channel;
use microdash_core::api::alert::ChannelKind;
use serde::{Deserialize, Serialize};

pub use crate::error::DeliveryError;
pub use crate::payload::Message;
pub use webhook::{SIGNATURE_HEADER, signature};

/// Attempts per notification, the first included: after the last one is retryable the caller
/// marks the notification failed. With [`retry_delay`] the waits between them add up to
/// about 18 minutes (1 s, 2 s, 4 s ... 256 s, then 300 s twice), enough to ride out a
/// receiver's restart or deploy without holding a notification for hours.
pub const MAX_ATTEMPTS: u32 = 12;

/// The longest wait [`retry_delay`] gives.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// The longest `Retry-After` honoured: a receiver cannot park a notification for longer.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What an email attempt fails with when no SMTP server is configured.
pub const EMAIL_NOT_CONFIGURED: &str = "email is not configured: set smtp_url and smtp_from";

/// How to deliver.
#[derive(Clone)]
pub struct DeliveryConfig {
    /// How long one attempt may take, connecting included (default 10 s): a receiver that
    /// hangs must not hold up the notifications behind it.
    pub timeout: Duration,
    /// The `User-Agent` of webhook requests, so receivers can tell microdash's calls apart.
    pub user_agent: String,
    /// The SMTP server for email channels; without one, emails fail with
    /// [`EMAIL_NOT_CONFIGURED`].
    pub smtp: Option<SmtpConfig>,
    /// Which addresses webhooks may reach (default: public and private networks, not
    /// link-local), against server-side request forgery by a tenant's channel URL.
    pub destinations: destination::Destinations,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            timeout: Duration::from_secs(10),
            user_agent: concat!("microdash/", env!("CARGO_PKG_VERSION")).to_owned(),
            smtp: None,
            destinations: destination::Destinations::default(),
        }
    }
}

impl fmt::Debug for DeliveryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryConfig")
            .field("timeout", &self.timeout)
            .field("user_agent", &self.user_agent)
            .field("smtp", &self.smtp)
            .field("destinations", &self.destinations)
            .finish()
    }
}

/// The SMTP server emails go through.
#[derive(Clone)]
pub struct SmtpConfig {
    /// lettre's connection URL: `smtp://host:25` (no TLS), `smtp://host:587?tls=required`
    /// (STARTTLS), `smtp://host:587?tls=opportunistic`, `smtps://host:465` (TLS from the
    /// start); credentials as `smtp://user:password@host...` (percent-encoded).
    pub url: String,
    /// The sender: `microdash@example.com` or `Microdash <microdash@example.com>`.
    pub from: String,
}

impl fmt::Debug for SmtpConfig {
    // Hand-written so that logging the configuration never prints the SMTP password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &microdash_core::text::redact_url_password(&self.url))
            .field("from", &self.from)
            .finish()
    }
}

/// How one attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The receiver took it.
    Sent,
    /// It may go through later (timeout, connection failure, overload, transient refusal).
    Retry,
    /// It will not go through as it is (refused, misconfigured): do not try again.
    Failed,
}

/// The result of one attempt, for the caller to record and schedule by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Sent, retry or failed.
    pub outcome: Outcome,
    /// The webhook's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// Why it was not sent, for the notification's history; `None` when sent. Never holds
    /// the webhook's URL (it may carry a token) or the SMTP password.
    pub error: Option<String>,
    /// How long the receiver asked us to wait (`Retry-After` in seconds on 429 and 503, at
    /// most [`MAX_RETRY_AFTER`]); [`Attempt::retry_in`] waits at least that long.
    pub retry_after: Option<Duration>,
}

impl Attempt {
    pub(crate) fn sent(http_status: Option<u16>) -> Attempt {
        Attempt { outcome: Outcome::Sent, http_status, error: None, retry_after: None }
    }

    pub(crate) fn retry(error: impl Into<String>) -> Attempt {
        Attempt { outcome: Outcome::Retry, http_status: None, error: Some(error.into()), retry_after: None }
    }

    pub(crate) fn failed(error: impl Into<String>) -> Attempt {
        Attempt { outcome: Outcome::Failed, http_status: None, error: Some(error.into()), retry_after: None }
    }

    /// When to try again after this attempt, the `attempt`-th (counting from 1): `None` when
    /// there is no next one (sent, failed, or the [`MAX_ATTEMPTS`]-th attempt); otherwise
    /// [`retry_delay`]`(attempt)`, or the receiver's `Retry-After` when that is longer.
    pub fn retry_in(&self, attempt: u32) -> Option<Duration> {
        if self.outcome != Outcome::Retry || attempt >= MAX_ATTEMPTS {
            return None;
        }
        let delay = retry_delay(attempt);
        Some(self.retry_after.map_or(delay, |asked| asked.max(delay)))
    }
}

/// How long to wait after the `attempt`-th attempt (counting from 1; 0 counts as 1) failed
/// with [`Outcome::Retry`]: 1 s, 2 s, 4 s ... doubling up to [`MAX_RETRY_DELAY`], each made up
/// to 20 % shorter at random so that notifications that failed together (a receiver's outage)
/// do not all come back in the same second.
pub fn retry_delay(attempt: u32) -> Duration {
    jittered(backoff(attempt), fastrand::f64())
}

/// The delay before jitter: 2^(attempt - 1) s, at most [`MAX_RETRY_DELAY`].
fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    Duration::from_secs(1 << doublings).min(MAX_RETRY_DELAY)
}

/// `base` shortened by `unit` (in [0, 1)) times 20 %.
fn jittered(base: Duration, unit: f64) -> Duration {
    base.mul_f64(1.0 - 0.2 * unit.clamp(0.0, 1.0))
}

/// Sends notifications: one HTTP client and, when configured, one pooled SMTP transport,
/// shared by every clone (cloning is cheap).
#[derive(Clone)]
pub struct Deliverer {
    http: reqwest::Client,
    smtp: Option<Arc<email::Smtp>>,
    timeout: Duration,
    destinations: destination::Destinations,
}

impl fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliverer")
            .field("timeout", &self.timeout)
            .field("smtp_from", &self.smtp.as_ref().map(|smtp| smtp.from.to_string()))
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    /// Build the HTTP client and, with [`DeliveryConfig::smtp`], the SMTP transport (which
    /// connects only when the first email is sent). With SMTP configured it must be called
    /// inside a Tokio runtime, where the connection pool runs its upkeep task.
    ///
    /// ```no_run
    /// # async fn demo(channel: microdash_core::alert::Channel) -> Result<(), microdash_alert::deliver::DeliveryError> {
    /// use microdash_alert::deliver::{DeliveryConfig, Deliverer, Message, Outcome, SmtpConfig};
    /// let deliverer = Deliverer::new(DeliveryConfig {
    ///     smtp: Some(SmtpConfig { url: "smtp://localhost:1025".into(), from: "microdash@localhost".into() }),
    ///     ..DeliveryConfig::default()
    /// })?;
    /// let attempt = deliverer.send(&channel, &Message::Webhook { body: r#"{"status":"firing"}"#.into() }).await;
    /// if attempt.outcome == Outcome::Retry {
    ///     let wait = attempt.retry_in(1);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn new(config: DeliveryConfig) -> Result<Self, DeliveryError> {
        let smtp = match &config.smtp {
            Some(smtp) => Some(Arc::new(email::Smtp::new(smtp, config.timeout)?)),
            None => None,
        };
        Ok(Deliverer {
            http: webhook::client(&config)?,
            smtp,
            timeout: config.timeout,
            destinations: config.destinations,
        })
    }

    /// The longest one attempt takes: a sender claims a notification for longer than this.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Make one attempt at delivering `message` over `channel`. Never panics: every failure
    /// is an [`Attempt`] saying whether to retry. A message of the other kind than the
    /// channel (the channel was changed after the message was built) fails.
    pub async fn send(&self, channel: &Channel, message: &Message) -> Attempt {
        match (channel, message) {
            (Channel::Webhook { url, secret, .. }, Message::Webhook { body }) => {
                webhook::send(&self.http, self.timeout, self.destinations, url, secret.as_deref(), body).await
            }
            (Channel::Email { to }, Message::Email { subject, body }) => match &self.smtp {
                Some(smtp) => smtp.send(to, subject, body, self.timeout).await,
                None => Attempt::failed(EMAIL_NOT_CONFIGURED),
            },
            (channel, message) => Attempt::failed(format!(
                "the message is for {} but the channel is {}",
                kind_name(message.kind()),
                kind_name(channel.kind())
            )),
        }
    }
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Webhook => "a webhook",
        ChannelKind::Email => "email",
    }
}

/// An error and its causes, `outer: inner: innermost`, skipping a cause whose text its
/// parent already includes (reqwest and hyper often repeat it).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_five_minutes() {
        fn check(attempt: u32, expected_s: u64) {
            let expected = Duration::from_secs(expected_s);
            assert_eq!(backoff(attempt), expected, "attempt {attempt}");
            assert_eq!(jittered(expected, 0.0), expected);
            assert_eq!(jittered(expected, 1.0), expected.mul_f64(0.8));
            for _ in 0..200 {
                let delay = retry_delay(attempt);
                assert!(delay <= expected && delay >= expected.mul_f64(0.8), "attempt {attempt}: {delay:?}");
            }
        }
        check(0, 1);
        check(1, 1);
        check(2, 2);
        check(3, 4);
        check(9, 256);
        check(10, 300);
        check(MAX_ATTEMPTS, 300);
        check(u32::MAX, 300);
    }

    #[test]
    fn retry_delays_are_spread() {
        let delays: std::collections::BTreeSet<Duration> = (0..50).map(|_| retry_delay(8)).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn retries_stop_after_the_last_attempt_and_wait_for_retry_after() {
        let retry = Attempt::retry("HTTP 503");
        let wait = retry.retry_in(1).unwrap();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(retry.retry_in(MAX_ATTEMPTS - 1).is_some());
        assert_eq!(retry.retry_in(MAX_ATTEMPTS), None);
        let asked = Attempt { retry_after: Some(Duration::from_secs(30)), ..retry.clone() };
        assert_eq!(asked.retry_in(1), Some(Duration::from_secs(30)));
        // A Retry-After shorter than the backoff does not hurry us.
        let short = Attempt { retry_after: Some(Duration::from_secs(1)), ..retry };
        assert!(short.retry_in(10).unwrap() >= Duration::from_secs(240));
        assert_eq!(Attempt::sent(Some(200)).retry_in(1), None);
        assert_eq!(Attempt::failed("HTTP 400").retry_in(1), None);
    }

    #[test]
    fn the_smtp_password_is_not_shown() {
        fn check(url: &str, expected: &str) {
            let config = SmtpConfig { url: url.into(), from: "a@b".into() };
            assert!(format!("{config:?}").contains(expected));
        }
        check(
            "smtp://user:s3cret@mail.example.com:587?tls=required",
            "smtp://user:***@mail.example.com:587?tls=required",
        );
        check("smtps://a%40b:p@ss@host/helo", "smtps://a%40b:***@host/helo");
        check("smtp://localhost:1025", "smtp://localhost:1025");
        check("smtp://user@host", "smtp://user@host");
        check("not a url", "not a url");
    }

    #[test]
    fn no_smtp_fails_emails_without_panicking() {
        let deliverer = Deliverer::new(DeliveryConfig::default()).unwrap();
        let channel = Channel::Email { to: vec!["ops@example.com".into()] };
        let message = Message::Email { subject: "s".into(), body: "b".into() };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let attempt = runtime.block_on(deliverer.send(&channel, &message));
        assert_eq!(attempt, Attempt::failed(EMAIL_NOT_CONFIGURED));
        let webhook = Channel::Webhook { url: "http://127.0.0.1:9/".into(), secret: None, format: Default::default() };
        let attempt = runtime.block_on(deliverer.send(&webhook, &message));
        assert_eq!(attempt, Attempt::failed("the message is for email but the channel is a webhook"));
    }

    #[test]
    fn the_pool_needs_a_runtime_and_says_so() {
        let config = DeliveryConfig {
            smtp: Some(SmtpConfig { url: "smtp://127.0.0.1:25".into(), from: "microdash@localhost".into() }),
            ..DeliveryConfig::default()
        };
        assert!(matches!(Deliverer::new(config), Err(DeliveryError::NoRuntime)));
    }
}
