//! The provider's rate budgets as the run keeps them: a submit bucket (submits
//! and uploads), a query bucket (polls), and an optional cap on every call.
//!
//! The engine asks [`Limiter::try_acquire`] before it starts a call, so
//! pacing is decided in one place and in priority order, never by tasks
//! racing for tokens. Each bucket is a GCRA schedule (a token bucket written
//! as "the theoretical arrival time") kept here on the time the caller passes
//! in: no clock of its own, nothing that sleeps, so it is exact under
//! `tokio::time::pause` and in unit tests.
//!
//! The provider's buckets start full and so do ours, minus a small reserve
//! ([`reserve`]): requests reach the provider a little later and less evenly
//! than they leave, and the reserve keeps those few calls of slack there.
//!
//! A 429 slows the bucket its `X-RateLimit-Category` names (both when it names
//! none): that bucket waits out `Retry-After`, or `X-RateLimit-Reset` when the
//! provider says nothing remains, or a doubling backoff when it says neither;
//! and its rate is halved (down to a tenth), with no burst. Each quiet spell of
//! [`RECOVERY`] after that raises it by half again, up to the configured rate.
//!
//! Why not governor (which the first limiter used): the schedule must run on
//! the time the engine passes in (virtual time in tests, the simulator's scale),
//! be asked without spending ("does the bucket *and* the cap allow this call?",
//! so that a refusal takes nothing from either), be held until a provider's
//! `X-RateLimit-Reset`, and change rate mid-run without forgetting what was
//! spent. governor reads its own clock, spends on every conforming `check`,
//! and has neither a hold nor a retune; its fake clock covers only the first.
//! The GCRA itself is a dozen lines ([`Gcra`]), unit-tested below.

use std::time::Duration;

use tokio::time::Instant;

use crate::manifest::{Budget, Limits};

/// Quiet time after a 429 before the rate is raised a step (on the simulated clock under `--simulate`).
const RECOVERY: Duration = Duration::from_secs(10);
/// The lowest fraction of the configured rate a bucket slows to.
const MIN_FACTOR: f64 = 0.1;

/// Which of the provider's buckets a call draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// `async_submit`: submits, and uploads with them.
    Submit,
    /// `async_query`: status polls.
    Query,
}

impl Bucket {
    /// The bucket an `X-RateLimit-Category` names (`async_submit`, `async_query`);
    /// `None` when it names neither, and then a 429 slows both.
    pub fn from_category(category: Option<&str>) -> Option<Bucket> {
        let category = category?.trim().to_ascii_lowercase();
        if category.contains("submit") {
            Some(Bucket::Submit)
        } else if category.contains("query") || category.contains("poll") {
            Some(Bucket::Query)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Submit => "submit",
            Bucket::Query => "query",
        }
    }
}

/// Calls of a provider's burst the run leaves unused: with the provider's
/// bucket and ours both full at the start and refilling at one rate, the
/// provider then always holds this many calls more than we think we may send.
pub fn reserve(burst: u32) -> u32 {
    if burst >= 10 { (burst / 20).max(1) } else { 0 }
}

/// A GCRA schedule: a call conforms at `t` when `t >= tat - tolerance`.
#[derive(Debug, Clone)]
struct Gcra {
    period: Duration,
    /// `(burst - 1) * period`: how far ahead of the steady schedule calls may run.
    tolerance: Duration,
    /// The theoretical arrival time of the next call (`None`: the bucket is full).
    tat: Option<Instant>,
}

impl Gcra {
    fn new(rps: f64, burst: u32) -> Gcra {
        // Rounded up to the nanosecond: never a hair faster than the budget
        // (the provider's bucket refuses a call that comes 1 ns early).
        let period = if rps.is_finite() && rps > 0.0 {
            let nanos = (1e9 / rps).ceil();
            if nanos < 3.6e12 {
                Duration::from_nanos((nanos as u64).max(1))
            } else {
                Duration::from_secs(3600)
            }
        } else {
            Duration::from_nanos(1)
        };
        Gcra {
            period,
            tolerance: period.saturating_mul(burst.max(1) - 1),
            tat: None,
        }
    }

    /// Same schedule so far, another rate and burst from now on.
    fn retune(&mut self, rps: f64, burst: u32) {
        let tat = self.tat;
        *self = Gcra::new(rps, burst);
        self.tat = tat;
    }

    /// When the next call conforms, if not now.
    fn ready_at(&self, now: Instant) -> Option<Instant> {
        let at = self.tat?.checked_sub(self.tolerance)?;
        (at > now).then_some(at)
    }

    fn take(&mut self, now: Instant) {
        self.tat = Some(self.tat.map_or(now, |t| t.max(now)) + self.period);
    }

    /// Nothing conforms before `until` (the provider's bucket is empty until then).
    fn hold_until(&mut self, until: Instant) {
        let at = until + self.tolerance;
        self.tat = Some(self.tat.map_or(at, |t| t.max(at)));
    }
}

/// One bucket: its schedule and what 429s did to it.
#[derive(Debug, Clone)]
struct Lane {
    rps: f64,
    burst: u32,
    gcra: Gcra,
    /// The fraction of `rps` in force (1.0 unless the server pushed back).
    factor: f64,
    /// When the factor last changed.
    changed: Option<Instant>,
    /// No call of this bucket starts before this, after a 429.
    paused_until: Option<Instant>,
    /// 429s seen in a row without a wait given, for our own backoff.
    consecutive_429: u32,
    slowdowns: u64,
}

impl Lane {
    fn new(rps: f64, burst: u32) -> Lane {
        Lane {
            rps,
            burst,
            gcra: Gcra::new(rps, burst),
            factor: 1.0,
            changed: None,
            paused_until: None,
            consecutive_429: 0,
            slowdowns: 0,
        }
    }

    fn current_rps(&self) -> f64 {
        self.rps * self.factor
    }

    fn set_factor(&mut self, factor: f64, now: Instant) {
        self.factor = factor.clamp(MIN_FACTOR, 1.0);
        self.changed = Some(now);
        self.gcra.retune(self.current_rps(), 1);
    }

    /// `Ok` when a call may start now (the pause over, the schedule conforming).
    fn ready(&mut self, now: Instant, recovery: Duration) -> Result<(), Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until);
            }
            self.paused_until = None;
        }
        if self.factor < 1.0
            && self
                .changed
                .is_some_and(|at| now.duration_since(at) >= recovery)
        {
            let factor = self.factor * 1.5;
            if factor >= 1.0 {
                self.factor = 1.0;
                self.changed = None;
                self.gcra.retune(self.rps, self.burst);
            } else {
                self.set_factor(factor, now);
            }
        }
        match self.gcra.ready_at(now) {
            Some(at) => Err(at),
            None => Ok(()),
        }
    }

    fn slow_down(
        &mut self,
        now: Instant,
        wait: Option<Duration>,
        backoff_unit: Duration,
    ) -> Instant {
        self.slowdowns += 1;
        let wait = wait.unwrap_or_else(|| {
            self.consecutive_429 = (self.consecutive_429 + 1).min(6);
            backoff_unit * (1 << self.consecutive_429)
        });
        let until = now + wait;
        // 429s from calls that were already under way count once.
        let fresh = self.paused_until.is_none_or(|p| p <= now);
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        if fresh {
            self.set_factor(self.factor * 0.5, now);
        }
        self.gcra.hold_until(until);
        until
    }
}

/// The run's budgets: submit, query, and the optional cap on both together.
#[derive(Debug)]
pub struct Limiter {
    submit: Lane,
    query: Lane,
    /// `limits.requests_per_second`: every call, both buckets together.
    cap: Option<Lane>,
    recovery: Duration,
    backoff_unit: Duration,
}

impl Limiter {
    /// The budgets of `limits`; `time_scale` < 1 runs the provider's buckets
    /// that much faster (the simulator's clock under `--simulate`). The cap is
    /// the user's own and is not scaled.
    pub fn new(limits: &Limits, time_scale: f64) -> Limiter {
        let scale = if time_scale.is_finite() && time_scale > 0.0 {
            time_scale
        } else {
            1.0
        };
        let lane = |b: Budget| Lane::new(b.per_second / scale, b.burst - reserve(b.burst));
        Limiter {
            submit: lane(limits.submit),
            query: lane(limits.query),
            cap: limits
                .requests_per_second
                .map(|rps| Lane::new(rps, limits.burst)),
            recovery: RECOVERY.mul_f64(scale),
            backoff_unit: Duration::from_millis(500).mul_f64(scale),
        }
    }

    fn lane(&mut self, bucket: Bucket) -> &mut Lane {
        match bucket {
            Bucket::Submit => &mut self.submit,
            Bucket::Query => &mut self.query,
        }
    }

    /// Takes one call's place in `bucket` (and in the cap) if both have one now;
    /// otherwise says when to ask again. Nothing is taken from either on a refusal.
    pub fn try_acquire(&mut self, bucket: Bucket, now: Instant) -> Result<(), Instant> {
        let recovery = self.recovery;
        let own = self.lane(bucket).ready(now, recovery);
        let cap = self
            .cap
            .as_mut()
            .map_or(Ok(()), |cap| cap.ready(now, recovery));
        match (own, cap) {
            (Ok(()), Ok(())) => {
                self.lane(bucket).gcra.take(now);
                if let Some(cap) = &mut self.cap {
                    cap.gcra.take(now);
                }
                Ok(())
            }
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(at), Ok(())) | (Ok(()), Err(at)) => Err(at),
        }
    }

    /// A 429: `bucket` (both when `None`) waits `wait` (the server's
    /// `Retry-After` or reset), or our own doubling backoff when the server
    /// gave none, and is slowed. Returns when its calls may start again.
    pub fn slow_down(
        &mut self,
        now: Instant,
        bucket: Option<Bucket>,
        wait: Option<Duration>,
    ) -> Instant {
        let unit = self.backoff_unit;
        match bucket {
            Some(bucket) => self.lane(bucket).slow_down(now, wait, unit),
            None => {
                let a = self.submit.slow_down(now, wait, unit);
                let b = self.query.slow_down(now, wait, unit);
                a.max(b)
            }
        }
    }

    /// The provider said `bucket` has nothing left until `until` (a success
    /// with `X-RateLimit-Remaining: 0`): its calls wait, and nothing is slowed.
    pub fn hold(&mut self, bucket: Bucket, until: Instant) {
        let lane = self.lane(bucket);
        lane.paused_until = Some(lane.paused_until.map_or(until, |p| p.max(until)));
    }

    /// A call of `bucket` went through: the provider is not pushing back there.
    pub fn on_success(&mut self, bucket: Bucket) {
        self.lane(bucket).consecutive_429 = 0;
    }

    /// When a 429 pause is in force on any bucket, until when (the latest).
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        [self.submit.paused_until, self.query.paused_until]
            .into_iter()
            .flatten()
            .filter(|until| *until > now)
            .max()
    }

    /// The rate in force now in `bucket`, in calls per second (of the run's clock).
    pub fn current_rps(&self, bucket: Bucket) -> f64 {
        match bucket {
            Bucket::Submit => self.submit.current_rps(),
            Bucket::Query => self.query.current_rps(),
        }
    }

    /// A bucket a 429 slowed, and its rate now, for progress lines.
    pub fn slowed(&self) -> Option<(Bucket, f64)> {
        [(Bucket::Submit, &self.submit), (Bucket::Query, &self.query)]
            .into_iter()
            .find(|(_, lane)| lane.factor < 1.0)
            .map(|(bucket, lane)| (bucket, lane.current_rps()))
    }

    /// How many times a 429 slowed `bucket`.
    pub fn slowdowns(&self, bucket: Bucket) -> u64 {
        match bucket {
            Bucket::Submit => self.submit.slowdowns,
            Bucket::Query => self.query.slowdowns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(submit: (f64, u32), query: (f64, u32), cap: Option<f64>) -> Limits {
        Limits {
            submit: Budget::new(submit.0, submit.1),
            query: Budget::new(query.0, query.1),
            requests_per_second: cap,
            burst: 1,
            ..Limits::default()
        }
    }

    /// Calls of `bucket` granted at `now` before the first refusal.
    fn drain(l: &mut Limiter, bucket: Bucket, now: Instant) -> (u32, Instant) {
        let mut n = 0;
        loop {
            match l.try_acquire(bucket, now) {
                Ok(()) => n += 1,
                Err(at) => return (n, at),
            }
            assert!(n < 100_000, "never refuses");
        }
    }

    #[test]
    fn the_default_tier_is_the_providers() {
        let l = Limits::default();
        assert_eq!(l.submit, Budget::new(5.0, 50));
        assert_eq!(l.query, Budget::new(50.0, 500));
        assert_eq!(l.requests_per_second, None);
    }

    #[test]
    fn a_full_bucket_gives_its_burst_less_the_reserve_then_paces() {
        let mut l = Limiter::new(&Limits::default(), 1.0);
        let now = Instant::now();
        let (n, next) = drain(&mut l, Bucket::Submit, now);
        assert_eq!(n, 50 - reserve(50));
        assert_eq!(n, 48);
        assert_eq!(next - now, Duration::from_millis(200));
        // Then one every 200 ms.
        assert!(l.try_acquire(Bucket::Submit, next).is_ok());
        let after = l.try_acquire(Bucket::Submit, next).unwrap_err();
        assert_eq!(after - next, Duration::from_millis(200));
        // Queries are another bucket, still full.
        assert_eq!(drain(&mut l, Bucket::Query, now).0, 500 - 25);
    }

    #[test]
    fn the_least_time_for_n_submits_is_the_burst_then_the_rate() {
        // 150 submits at 5/s after a burst of 48: the last one at (150 - 48) / 5 s.
        let mut l = Limiter::new(&Limits::default(), 1.0);
        let start = Instant::now();
        let mut now = start;
        let mut sent = 0;
        while sent < 150 {
            match l.try_acquire(Bucket::Submit, now) {
                Ok(()) => sent += 1,
                Err(at) => now = at,
            }
        }
        let took = (now - start).as_secs_f64();
        assert!((took - 102.0 / 5.0).abs() < 1e-6, "{took}");
    }

    #[test]
    fn time_scale_runs_the_buckets_faster_and_keeps_the_counts() {
        let mut l = Limiter::new(&Limits::default(), 0.01);
        let now = Instant::now();
        let (n, next) = drain(&mut l, Bucket::Submit, now);
        assert_eq!(n, 48);
        assert_eq!(next - now, Duration::from_millis(2));
    }

    #[test]
    fn the_cap_binds_both_buckets_together_and_a_refusal_takes_nothing() {
        let mut l = Limiter::new(&limits((1000.0, 10), (1000.0, 10), Some(10.0)), 1.0);
        let now = Instant::now();
        assert!(l.try_acquire(Bucket::Submit, now).is_ok());
        // The cap (10/s, burst 1) refuses the query: the query bucket keeps its place.
        let at = l.try_acquire(Bucket::Query, now).unwrap_err();
        assert_eq!(at - now, Duration::from_millis(100));
        assert!(l.try_acquire(Bucket::Query, at).is_ok());
        let mut only_buckets = Limiter::new(&limits((1000.0, 10), (1000.0, 10), None), 1.0);
        assert_eq!(
            drain(&mut only_buckets, Bucket::Query, now).0,
            10 - reserve(10)
        );
    }

    #[test]
    fn a_429_on_one_bucket_leaves_the_other_alone() {
        let mut l = Limiter::new(&Limits::default(), 1.0);
        let now = Instant::now();
        let until = l.slow_down(now, Some(Bucket::Submit), Some(Duration::from_secs(3)));
        assert_eq!(until - now, Duration::from_secs(3));
        assert_eq!(l.try_acquire(Bucket::Submit, now).unwrap_err(), until);
        assert!(l.try_acquire(Bucket::Query, now).is_ok());
        assert_eq!(l.current_rps(Bucket::Submit), 2.5);
        assert_eq!(l.current_rps(Bucket::Query), 50.0);
        assert_eq!(l.slowed(), Some((Bucket::Submit, 2.5)));
        assert_eq!(l.paused_until(now), Some(until));
        // After the wait: one call, then the slowed pace with no burst.
        assert!(l.try_acquire(Bucket::Submit, until).is_ok());
        let next = l.try_acquire(Bucket::Submit, until).unwrap_err();
        assert_eq!(next - until, Duration::from_millis(400));
        assert_eq!(
            (l.slowdowns(Bucket::Submit), l.slowdowns(Bucket::Query)),
            (1, 0)
        );
    }

    #[test]
    fn an_empty_budget_said_on_a_success_holds_that_bucket_without_slowing_it() {
        let mut l = Limiter::new(&Limits::default(), 1.0);
        let now = Instant::now();
        let until = now + Duration::from_secs(2);
        l.hold(Bucket::Query, until);
        assert_eq!(l.try_acquire(Bucket::Query, now).unwrap_err(), until);
        assert!(l.try_acquire(Bucket::Submit, now).is_ok());
        assert!(l.try_acquire(Bucket::Query, until).is_ok());
        assert_eq!(l.current_rps(Bucket::Query), 50.0);
        assert_eq!(l.slowed(), None);
    }

    #[test]
    fn a_429_naming_no_bucket_slows_both() {
        let mut l = Limiter::new(&Limits::default(), 1.0);
        let now = Instant::now();
        let until = l.slow_down(now, None, Some(Duration::from_secs(1)));
        assert_eq!(l.try_acquire(Bucket::Submit, now).unwrap_err(), until);
        assert_eq!(l.try_acquire(Bucket::Query, now).unwrap_err(), until);
    }

    #[test]
    fn categories_name_buckets() {
        assert_eq!(
            Bucket::from_category(Some("async_submit")),
            Some(Bucket::Submit)
        );
        assert_eq!(
            Bucket::from_category(Some(" ASYNC_QUERY ")),
            Some(Bucket::Query)
        );
        assert_eq!(Bucket::from_category(Some("chat")), None);
        assert_eq!(Bucket::from_category(None), None);
    }

    #[test]
    fn many_429s_at_once_halve_once_and_the_floor_holds() {
        let mut l = Limiter::new(&limits((100.0, 1), (100.0, 1), None), 1.0);
        let now = Instant::now();
        for _ in 0..5 {
            l.slow_down(now, Some(Bucket::Query), Some(Duration::from_secs(1)));
        }
        assert_eq!(l.current_rps(Bucket::Query), 50.0);
        let mut t = now;
        for _ in 0..10 {
            t += Duration::from_secs(2);
            l.slow_down(t, Some(Bucket::Query), Some(Duration::from_secs(1)));
        }
        let rps = l.current_rps(Bucket::Query);
        assert!((rps - 10.0).abs() < 1e-9, "{rps}");
    }

    #[test]
    fn rate_and_burst_recover_after_quiet_spells() {
        let mut l = Limiter::new(&limits((100.0, 10), (100.0, 10), None), 1.0);
        let now = Instant::now();
        l.slow_down(now, Some(Bucket::Submit), Some(Duration::from_millis(1)));
        assert_eq!(l.current_rps(Bucket::Submit), 50.0);
        let _ = l.try_acquire(Bucket::Submit, now + RECOVERY);
        assert_eq!(l.current_rps(Bucket::Submit), 75.0);
        let later = now + RECOVERY * 2;
        let _ = l.try_acquire(Bucket::Submit, later);
        assert_eq!(l.current_rps(Bucket::Submit), 100.0);
        assert_eq!(l.slowed(), None);
        // The burst is back once the bucket has refilled.
        let full = later + Duration::from_secs(1);
        assert_eq!(drain(&mut l, Bucket::Submit, full).0, 10 - reserve(10));
    }

    #[test]
    fn own_backoff_doubles_without_a_wait_given() {
        let mut l = Limiter::new(&Limits::default(), 1.0);
        let now = Instant::now();
        let a = l.slow_down(now, Some(Bucket::Submit), None) - now;
        let b = l.slow_down(now, Some(Bucket::Submit), None) - now;
        assert!(b > a);
        l.on_success(Bucket::Submit);
        let c = l.slow_down(now, Some(Bucket::Submit), None) - now;
        assert_eq!(c, a);
    }
}
