//! One rate limit for every API call (submit, poll, upload), slowed for the whole run by 429s.
//!
//! The dispatcher asks [`Limiter::try_acquire`] before it starts a call, so
//! pacing is decided in one place and in priority order, never by tasks
//! racing for tokens. The schedule is governor's GCRA with a small burst.
//!
//! A 429 does two things: every call waits out `Retry-After` (or a doubling
//! backoff when the server gives none), and the rate is halved (down to a
//! tenth of the configured one). Each quiet spell of [`RECOVERY`] after that
//! raises it by half again, up to the configured rate.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// Quiet time after a 429 before the rate is raised a step.
const RECOVERY: Duration = Duration::from_secs(10);
/// The lowest fraction of the configured rate a run slows to.
const MIN_FACTOR: f64 = 0.1;

/// governor's GCRA on std's monotonic clock. Its default clock (quanta)
/// calibrates itself on first use: ~40 ms at the start of every run.
type Gcra = RateLimiter<
    NotKeyed,
    InMemoryState,
    MonotonicClock,
    NoOpMiddleware<<MonotonicClock as Clock>::Instant>,
>;

#[derive(Debug)]
pub struct Limiter {
    rps: f64,
    burst: u32,
    gcra: Gcra,
    clock: MonotonicClock,
    /// The fraction of `rps` in force (1.0 unless the server pushed back).
    factor: f64,
    /// When the factor last changed.
    changed: Option<Instant>,
    /// No call starts before this, after a 429.
    paused_until: Option<Instant>,
    /// 429s seen in a row without a Retry-After, for our own backoff.
    consecutive_429: u32,
    /// How many times the run was slowed by a 429.
    pub slowdowns: u64,
}

fn gcra(rps: f64, burst: u32) -> Gcra {
    let period = if rps.is_finite() && rps > 0.0 {
        Duration::from_secs_f64(1.0 / rps).max(Duration::from_nanos(1))
    } else {
        Duration::from_nanos(1)
    };
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst);
    RateLimiter::direct_with_clock(quota, MonotonicClock)
}

impl Limiter {
    /// `rps` requests per second on average, at most `burst` at once after an idle spell.
    pub fn new(rps: f64, burst: u32) -> Limiter {
        Limiter {
            rps,
            burst,
            gcra: gcra(rps, burst),
            clock: MonotonicClock,
            factor: 1.0,
            changed: None,
            paused_until: None,
            consecutive_429: 0,
            slowdowns: 0,
        }
    }

    /// The rate in force now, in requests per second.
    pub fn current_rps(&self) -> f64 {
        self.rps * self.factor
    }

    fn set_factor(&mut self, factor: f64, now: Instant) {
        self.factor = factor.clamp(MIN_FACTOR, 1.0);
        self.changed = Some(now);
        self.gcra = gcra(self.current_rps(), 1);
    }

    /// Takes one request's place if one is free now; otherwise says when to ask again.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until);
            }
            self.paused_until = None;
        }
        if self.factor < 1.0
            && self
                .changed
                .is_some_and(|at| now.duration_since(at) >= RECOVERY)
        {
            let factor = self.factor * 1.5;
            if factor >= 1.0 {
                self.factor = 1.0;
                self.changed = None;
                self.gcra = gcra(self.rps, self.burst);
            } else {
                self.set_factor(factor, now);
            }
        }
        match self.gcra.check() {
            Ok(()) => Ok(()),
            Err(not_until) => Err(now + not_until.wait_time_from(self.clock.now())),
        }
    }

    /// A 429: hold every call for `retry_after`, or for our own doubling backoff
    /// when the server gave none, and halve the rate. Returns when calls may start again.
    pub fn slow_down(&mut self, now: Instant, retry_after: Option<Duration>) -> Instant {
        self.slowdowns += 1;
        let wait = retry_after.unwrap_or_else(|| {
            self.consecutive_429 = (self.consecutive_429 + 1).min(6);
            Duration::from_millis(500) * (1 << self.consecutive_429)
        });
        let until = now + wait;
        // 429s from calls that were already under way count once.
        let fresh = self.paused_until.is_none_or(|p| p <= now);
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        if fresh {
            self.set_factor(self.factor * 0.5, now);
        }
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
    fn pause_holds_everything_and_halves_the_rate() {
        let mut l = Limiter::new(1000.0, 5);
        let now = Instant::now();
        let until = l.slow_down(now, Some(Duration::from_secs(3)));
        assert_eq!(l.try_acquire(now).unwrap_err(), until);
        assert_eq!(l.paused_until(now), Some(until));
        assert!(l.try_acquire(until).is_ok());
        assert_eq!(l.slowdowns, 1);
        assert_eq!(l.current_rps(), 500.0);
    }

    #[test]
    fn many_429s_at_once_halve_once_and_the_floor_holds() {
        let mut l = Limiter::new(100.0, 1);
        let now = Instant::now();
        for _ in 0..5 {
            l.slow_down(now, Some(Duration::from_secs(1)));
        }
        assert_eq!(l.current_rps(), 50.0);
        let mut t = now;
        for _ in 0..10 {
            t += Duration::from_secs(2);
            l.slow_down(t, Some(Duration::from_secs(1)));
        }
        assert!((l.current_rps() - 10.0).abs() < 1e-9, "{}", l.current_rps());
    }

    #[test]
    fn rate_recovers_after_quiet_spells() {
        let mut l = Limiter::new(100.0, 1);
        let now = Instant::now();
        l.slow_down(now, Some(Duration::from_millis(1)));
        assert_eq!(l.current_rps(), 50.0);
        let _ = l.try_acquire(now + RECOVERY);
        assert_eq!(l.current_rps(), 75.0);
        let _ = l.try_acquire(now + RECOVERY * 2);
        assert_eq!(l.current_rps(), 100.0);
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
