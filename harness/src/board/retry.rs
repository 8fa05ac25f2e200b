//! Waiting for a board that is on its way up: its console, its
//! bootloader's fastboot, its sshd or adbd answer only once it gets there,
//! so the first refusals are expected, and only the last one, at the
//! deadline, is the error.

use std::future::Future;
use std::time::{Duration, Instant};

/// How one attempt failed.
pub enum Attempt {
    /// Not yet: try again after the pause.
    Again(anyhow::Error),
    /// Waiting cannot cure it (a rejected key, a bad address): stop now.
    Fatal(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Attempt {
    fn from(e: E) -> Self {
        Attempt::Again(e.into())
    }
}

/// Runs `attempt` until it succeeds, fails fatally, or `limit` has passed
/// since the first try; the last error then says `what` did not happen
/// (e.g. "the console did not open after power on") and how long was waited.
pub async fn retry_until<T, F, Fut>(
    limit: Duration,
    pause: Duration,
    what: &str,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let t0 = Instant::now();
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Again(e)) if t0.elapsed() >= limit => {
                return Err(e.context(format!("{what} (waited {} s)", limit.as_secs())))
            }
            Err(Attempt::Again(_)) => tokio::time::sleep(pause).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn succeeds_after_refusals_and_gives_up_with_the_last_error() {
        let tries = AtomicU32::new(0);
        let v = retry_until(
            Duration::from_secs(5),
            Duration::from_millis(1),
            "x",
            || async {
                match tries.fetch_add(1, Ordering::Relaxed) {
                    0..=2 => Err(Attempt::Again(anyhow::anyhow!("refused"))),
                    n => Ok(n),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 3);

        let e = retry_until(
            Duration::from_millis(20),
            Duration::from_millis(5),
            "adbd did not answer",
            || async { Err::<(), _>(Attempt::Again(anyhow::anyhow!("connection refused"))) },
        )
        .await
        .unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.starts_with("adbd did not answer (waited 0 s)"),
            "{text}"
        );
        assert!(text.ends_with("connection refused"), "{text}");
    }

    #[tokio::test]
    async fn a_fatal_error_ends_the_wait_at_once() {
        let tries = AtomicU32::new(0);
        let e = retry_until(
            Duration::from_secs(60),
            Duration::from_millis(1),
            "x",
            || async {
                tries.fetch_add(1, Ordering::Relaxed);
                Err::<(), _>(Attempt::Fatal(anyhow::anyhow!("host key mismatch")))
            },
        )
        .await
        .unwrap_err();
        assert_eq!(tries.load(Ordering::Relaxed), 1);
        assert_eq!(e.to_string(), "host key mismatch");
    }
}
