//! Backoff with jitter, for locked remotes and unreachable shares.

use std::time::Duration;

/// Exponential backoff with full jitter: a random delay in `[base·2^attempt / 2, base·2^attempt]`,
/// capped at `cap`.
///
/// ```
/// use std::time::Duration;
/// let d = sharecache::remote::retry::backoff(3, Duration::from_millis(10), Duration::from_secs(1));
/// assert!(d >= Duration::from_millis(40) && d <= Duration::from_millis(80));
/// ```
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
    let top = exp.min(cap);
    let half = top / 2;
    let jitter = (rand::random::<u64>() % (half.as_micros() as u64 + 1)) as u64;
    half + Duration::from_micros(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(10);
        let cap = Duration::from_millis(300);
        for attempt in 0..30 {
            let d = backoff(attempt, base, cap);
            assert!(d <= cap, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(0, base, cap) <= Duration::from_millis(10));
        assert!(backoff(10, base, cap) >= Duration::from_millis(150));
    }
}
