//! One rate limit for every API call (submit, poll, upload), and the whole-run pause a 429 causes.
//!
//! The dispatcher asks [`Limiter::try_acquire`] before it starts a call, so
//! pacing is decided in one place and in priority order, never by tasks
//! racing for tokens. The GCRA schedule is governor's, with a small burst.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

#[derive(Debug)]
pub struct Limiter {
    gcra: DefaultDirectRateLimiter,
    clock: DefaultClock,
    /// No call starts before this, after a 429.
    paused_until: Option<Instant>,
    /// 429s seen in a row without a Retry-After, for our own backoff.
    consecutive_429: u32,
    /// How many times the run was slowed by a 429.
    pub slowdowns: u64,
}

impl Limiter {
    /// `rps` requests per second on average, at most `burst` at once after an idle spell.
    pub fn new(rps: f64, burst: u32) -> Limiter {
        let period = if rps.is_finite() && rps > 0.0 {
            Duration::from_secs_f64(1.0 / rps).max(Duration::from_nanos(1))
        } else {
            Duration::from_nanos(1)
        };
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Limiter {
            gcra: RateLimiter::direct(quota),
            clock: DefaultClock::default(),
            paused_until: None,
            consecutive_429: 0,
            slowdowns: 0,
        }
    }

    /// Takes one request's place if one is free now; otherwise says when to ask again.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until);
            }
            self.paused_until = None;
        }
        match self.gcra.check() {
            Ok(()) => Ok(()),
            Err(not_until) => Err(now + not_until.wait_time_from(self.clock.now())),
        }
    }

    /// A 429: hold every call for `retry_after`, or for our own doubling backoff
    /// when the server gave none. Returns when calls may start again.
    pub fn slow_down(&mut self, now: Instant, retry_after: Option<Duration>) -> Instant {
        self.slowdowns += 1;
        let wait = retry_after.unwrap_or_else(|| {
            self.consecutive_429 = (self.consecutive_429 + 1).min(6);
            Duration::from_millis(500) * (1 << self.consecutive_429)
        });
        let until = now + wait;
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        until
    }

    /// A call went through: the provider is not pushing back.
    pub fn on_success(&mut self) {
        self.consecutive_429 = 0;
    }

    /// When a 429 pause is in force, until when.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_paced() {
        let mut l = Limiter::new(10.0, 2);
        let now = Instant::now();
        assert!(l.try_acquire(now).is_ok());
        assert!(l.try_acquire(now).is_ok());
        let next = l.try_acquire(now).unwrap_err();
        let wait = next - now;
        assert!(
            wait > Duration::from_millis(50) && wait <= Duration::from_millis(101),
            "{wait:?}"
        );
    }

    #[test]
    fn pause_holds_everything() {
        let mut l = Limiter::new(1000.0, 5);
        let now = Instant::now();
        let until = l.slow_down(now, Some(Duration::from_secs(3)));
        assert_eq!(l.try_acquire(now).unwrap_err(), until);
        assert_eq!(l.paused_until(now), Some(until));
        assert!(l.try_acquire(until).is_ok());
        assert_eq!(l.slowdowns, 1);
    }

    #[test]
    fn own_backoff_doubles_without_retry_after() {
        let mut l = Limiter::new(1000.0, 5);
        let now = Instant::now();
        let a = l.slow_down(now, None) - now;
        let b = l.slow_down(now, None) - now;
        assert!(b > a);
        l.on_success();
        let c = l.slow_down(now, None) - now;
        assert_eq!(c, a);
    }
}
