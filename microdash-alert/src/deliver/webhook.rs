//! Webhooks: an HTTP `POST` of the message's body, signed when the channel has a secret.

use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use rustls_platform_verifier::BuilderVerifierExt;

use super::destination::{self, Destinations, Resolver};
use super::{Attempt, DeliveryConfig, DeliveryError, MAX_RETRY_AFTER, Outcome, error_chain};

/// The header carrying the body's signature, `sha256=<hex>` (see [`signature`]).
pub const SIGNATURE_HEADER: &str = "X-Microdash-Signature";

/// How much of a refusing receiver's answer goes into [`Attempt::error`].
const MAX_ERROR_BODY_BYTES: usize = 300;

/// The `X-Microdash-Signature` value for `body`: `sha256=` and the lowercase hex HMAC-SHA256
/// of the body's bytes keyed with the channel's secret (as GitHub's `X-Hub-Signature-256`).
/// A receiver recomputes it over the raw body it got and compares in constant time.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut text = String::with_capacity(7 + 2 * digest.len());
    text.push_str("sha256=");
    for byte in digest.iter() {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    text
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The HTTP client: the attempt's timeout, no redirects, and rustls with ring and the
/// system's trust store, configured here rather than through a process-wide provider.
pub(super) fn client(config: &DeliveryConfig) -> Result<reqwest::Client, DeliveryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(DeliveryError::TrustStore)?
        .with_no_client_auth();
    // What reqwest offers when it builds the configuration itself.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        // A webhook that moved is a channel to fix, not a hop to take: following it would also
        // send the signed body to wherever the redirect points.
        .redirect(reqwest::redirect::Policy::none())
        // Only the allowed addresses of a name are connected to; and no proxy, which would
        // resolve (and reach) names on our behalf past that check.
        .dns_resolver(Arc::new(Resolver(config.destinations)))
        .no_proxy()
        .user_agent(config.user_agent.clone())
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(DeliveryError::HttpClient)
}

/// One `POST`.
pub(super) async fn send(
    http: &reqwest::Client,
    timeout: Duration,
    destinations: Destinations,
    url: &str,
    secret: Option<&str>,
    body: &str,
) -> Attempt {
    if let Ok(parsed) = reqwest::Url::parse(url)
        && let Err(refused) = destination::check_literal(&parsed, destinations)
    {
        return Attempt::failed(refused.to_string());
    }
    let mut request = http.post(url).header(CONTENT_TYPE, "application/json");
    if let Some(secret) = secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
    }
    match request.body(body.to_owned()).send().await {
        Ok(response) => answered(response).await,
        Err(err) => not_answered(err, timeout),
    }
}

/// Classify a response by its status.
async fn answered(response: reqwest::Response) -> Attempt {
    let status = response.status();
    let outcome = match status.as_u16() {
        200..=299 => Outcome::Sent,
        408 | 429 | 500..=599 => Outcome::Retry,
        _ => Outcome::Failed,
    };
    let http_status = Some(status.as_u16());
    if outcome == Outcome::Sent {
        return Attempt::sent(http_status);
    }
    let retry_after = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => retry_after(&response),
        _ => None,
    };
    let error = if status.is_redirection() {
        let location = response.headers().get(LOCATION).and_then(|value| value.to_str().ok()).unwrap_or("nowhere");
        format!("HTTP {status}: the webhook redirects to {location}; redirects are not followed, set the final URL")
    } else {
        match error_body(response).await {
            Some(text) => format!("HTTP {status}: {text}"),
            None => format!("HTTP {status}"),
        }
    };
    Attempt { outcome, http_status, error: Some(error), retry_after }
}

/// `Retry-After` in seconds (its HTTP-date form is not used), at most [`MAX_RETRY_AFTER`].
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// The start of the receiver's answer, on one line, for the error; `None` when empty or
/// unreadable. Reads no more than it keeps.
async fn error_body(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let truncated = bytes.len() > MAX_ERROR_BODY_BYTES;
    bytes.truncate(MAX_ERROR_BODY_BYTES);
    let text = String::from_utf8_lossy(&bytes);
    let mut line: String =
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned();
    if line.is_empty() {
        return None;
    }
    if truncated {
        line.push_str(" ...");
    }
    Some(line)
}

/// Classify a request that got no response.
fn not_answered(err: reqwest::Error, timeout: Duration) -> Attempt {
    // The URL may carry a token (`https://hooks.example.com/T0/B0/secret`): leave it out.
    let err = err.without_url();
    if err.is_timeout() {
        return Attempt::retry(format!("timed out after {timeout:?}"));
    }
    if let Some(refused) = destination::refused(&err) {
        return Attempt::failed(refused.to_string());
    }
    if err.is_builder() {
        return Attempt::failed(format!("invalid webhook request: {}", error_chain(&err)));
    }
    if err.is_connect() {
        return Attempt::retry(format!("connection failed: {}", error_chain(&err)));
    }
    Attempt::retry(error_chain(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        fn check(secret: &str, body: &str, expected: &str) {
            assert_eq!(signature(secret, body.as_bytes()), format!("sha256={expected}"));
        }
        // RFC 4231, test case 2.
        check(
            "Jefe",
            "what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        );
        // An empty key and message (a widely published vector).
        check("", "", "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
        assert_ne!(signature("a", b"{}"), signature("b", b"{}"));
        assert_ne!(signature("a", b"{}"), signature("a", b"{ }"));
    }
}
