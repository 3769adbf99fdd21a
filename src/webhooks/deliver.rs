//! One delivery: `POST` the event JSON, signed when the subscription has a secret, retried
//! with exponential backoff until it succeeds or its attempts are used up. Every attempt's
//! outcome is written to the delivery's row, so a restart resumes where it stopped. Every
//! attempt carries the same `X-Steward-Delivery` id: receivers use it to drop duplicates.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::Hooks;
use crate::domain::now_ms;
use crate::store::webhooks::{self as q, DeliveryRow};

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: f64 = 3600.0;
/// The outcome recorded for deliveries of a webhook deleted before they succeeded.
const DELETED: &str = "the webhook was deleted";
/// How much of a failing response body is kept as the error.
const ERROR_EXCERPT: usize = 200;

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `attempts + 1`, having made `attempts` (>= 1).
pub fn backoff(base_secs: f64, attempts: i32) -> Duration {
    let exp = (attempts.max(1) - 1).min(30);
    Duration::from_secs_f64((base_secs * f64::from(1u32 << exp)).min(MAX_BACKOFF_SECS))
}

/// Runs a delivery to its end (delivered or failed).
pub async fn run(hooks: Hooks, mut row: DeliveryRow) {
    loop {
        if let Some(at) = row.next_attempt_at {
            let wait = (at - now_ms()).max(0) as u64;
            if wait > 0 {
                actix_rt::time::sleep(Duration::from_millis(wait)).await;
            }
        }
        // The lists may have changed since the URL was accepted: a refused URL is not called.
        let refused = super::target::check_url(&row.url, &hooks.host_rules()).err();
        let outcome = match row.webhook_id.as_deref().map(|id| hooks.get(id)) {
            _ if refused.is_some() => Err((None, refused.clone().unwrap_or_default())),
            // The webhook was deleted meanwhile: its deliveries stop (and never go unsigned).
            Some(None) => Err((None, DELETED.to_string())),
            Some(Some(hook)) => attempt(&row, hook.secret.as_deref()).await,
            None => attempt(&row, None).await,
        };
        let deleted = refused.is_some() || matches!(&outcome, Err((None, e)) if e == DELETED);
        let (max_attempts, base) = hooks.retry_policy();
        row.attempts += 1;
        row.updated_at = now_ms();
        match outcome {
            Ok(code) => {
                row.status = "delivered".into();
                row.last_code = Some(code);
                row.last_error = None;
                row.next_attempt_at = None;
            }
            Err((code, error)) => {
                row.last_code = code;
                row.last_error = Some(error);
                if deleted || row.attempts as u32 >= max_attempts {
                    row.status = "failed".into();
                    row.next_attempt_at = None;
                } else {
                    let wait = backoff(base, row.attempts);
                    row.next_attempt_at = Some(now_ms() + wait.as_millis() as i64);
                }
            }
        }
        let saved = row.clone();
        if let Err(e) = hooks
            .store
            .write(move |c| q::update_delivery(c, &saved))
            .await
        {
            log::error!(
                "webhook delivery {}: cannot record the outcome: {e}",
                row.id
            );
        }
        if row.status != "pending" {
            if row.status == "failed" {
                log::warn!(
                    "webhook delivery {} to {} failed after {} attempt(s): {}",
                    row.id,
                    row.url,
                    row.attempts,
                    row.last_error.as_deref().unwrap_or("")
                );
            }
            return;
        }
    }
}

/// One `POST`; Ok(status) on 2xx, else the status (if any) and a reason.
async fn attempt(row: &DeliveryRow, secret: Option<&str>) -> Result<i32, (Option<i32>, String)> {
    let client = awc::Client::builder().timeout(ATTEMPT_TIMEOUT).finish();
    let mut req = client
        .post(&row.url)
        .insert_header(("content-type", "application/json"))
        .insert_header(("user-agent", concat!("steward/", env!("CARGO_PKG_VERSION"))))
        .insert_header(("x-steward-event", row.event_kind.as_str()))
        .insert_header(("x-steward-delivery", row.id.as_str()));
    if let Some(secret) = secret {
        req = req.insert_header((
            "x-steward-signature",
            signature(secret, row.body.as_bytes()),
        ));
    }
    match req.send_body(row.body.clone()).await {
        Ok(mut res) => {
            let code = i32::from(res.status().as_u16());
            if res.status().is_success() {
                Ok(code)
            } else {
                let body = res.body().limit(4096).await.unwrap_or_default();
                let excerpt: String = String::from_utf8_lossy(&body)
                    .chars()
                    .take(ERROR_EXCERPT)
                    .collect();
                Err((Some(code), format!("HTTP {code}: {excerpt}")))
            }
        }
        Err(e) => Err((None, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        assert_eq!(backoff(1.0, 1), Duration::from_secs(1));
        assert_eq!(backoff(1.0, 2), Duration::from_secs(2));
        assert_eq!(backoff(1.0, 4), Duration::from_secs(8));
        assert_eq!(backoff(1.0, 40), Duration::from_secs(3600));
    }
}
