//! Email over SMTP, through lettre's pooled async transport.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Attempt, DeliveryError, SmtpConfig, error_chain};

/// The SMTP transport and the sender.
pub(super) struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    pub(super) from: Mailbox,
}

impl Smtp {
    /// Parse the URL and the sender; connects on the first send. lettre builds its rustls
    /// configuration with ring when no process-wide provider is installed, and
    /// `rustls-platform-verifier` makes it check certificates against the system's trust
    /// store, as webhooks do.
    pub(super) fn new(config: &SmtpConfig, timeout: Duration) -> Result<Smtp, DeliveryError> {
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|source| DeliveryError::SmtpFrom { from: config.from.clone(), source })?;
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url).map_err(DeliveryError::SmtpUrl)?;
        // Building the pool spawns its upkeep task, which panics outside a runtime.
        tokio::runtime::Handle::try_current().map_err(|_| DeliveryError::NoRuntime)?;
        Ok(Smtp { transport: builder.timeout(Some(timeout)).build(), from })
    }

    /// One attempt at sending to every recipient.
    pub(super) async fn send(&self, to: &[String], subject: &str, body: &str, timeout: Duration) -> Attempt {
        if to.is_empty() {
            return Attempt::failed("the email channel has no recipients");
        }
        let mut message =
            lettre::Message::builder().from(self.from.clone()).subject(subject).header(ContentType::TEXT_PLAIN);
        for address in to {
            match address.parse::<Mailbox>() {
                Ok(mailbox) => message = message.to(mailbox),
                Err(err) => return Attempt::failed(format!("invalid recipient {address:?}: {err}")),
            }
        }
        let message = match message.body(body.to_owned()) {
            Ok(message) => message,
            Err(err) => return Attempt::failed(format!("building the email: {}", error_chain(&err))),
        };
        // lettre's timeout is per network operation; this bounds the whole attempt.
        match tokio::time::timeout(timeout, self.transport.send(message)).await {
            Ok(Ok(_response)) => Attempt::sent(None),
            Ok(Err(err)) => refused(&err),
            Err(_elapsed) => Attempt::retry(format!("timed out after {timeout:?}")),
        }
    }
}

/// Classify an SMTP failure: a permanent reply (5xx) fails, anything else (a transient 4xx
/// reply, a timeout, a lost or refused connection, a TLS failure) is retried.
fn refused(err: &SmtpError) -> Attempt {
    let text = error_chain(err);
    if err.is_permanent() { Attempt::failed(format!("SMTP: {text}")) } else { Attempt::retry(format!("SMTP: {text}")) }
}
