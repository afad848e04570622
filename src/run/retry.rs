//! Backoff for calls that are safe to repeat: exponential, capped, with full jitter.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff: attempt `n` (from 0) waits a random time in
/// `0..=min(max, base * 2^n)` ("full jitter"), so many jobs failing together
/// do not come back together.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const DEFAULT: Backoff = Backoff {
        base: Duration::from_millis(500),
        max: Duration::from_secs(30),
    };

    /// The cap for attempt `n`, before jitter.
    pub fn ceiling(&self, n: u32) -> Duration {
        self.base.saturating_mul(1u32 << n.min(20)).min(self.max)
    }

    /// The delay before retry `n` (0 = first retry).
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self.ceiling(n);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// The delays of retries 0, 1, 2, … (a testable iterator).
    pub fn iter(self) -> impl Iterator<Item = Duration> {
        (0..).map(move |n| self.delay(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_then_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let ceilings: Vec<_> = (0..6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(500), Duration::from_secs(1));
    }

    #[test]
    fn delays_stay_under_their_ceiling() {
        let b = Backoff::DEFAULT;
        for (n, d) in b.iter().take(40).enumerate() {
            assert!(d <= b.ceiling(n as u32), "retry {n}: {d:?}");
        }
    }
}
