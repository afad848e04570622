//! The circuit breaker: tells an outage from a job's own failure.
//!
//! A failure of the world (refused connections, DNS, 5xx or HTML pages from
//! something that is not the API) says nothing about the job that met it. Many
//! of them in a row, across jobs, mean the service is down: the breaker opens,
//! the whole run pauses instead of every job backing off (and failing) on its
//! own, and one call at a time probes until one succeeds. An outage that lasts
//! past `limits.outage_timeout` ends the run (exit 75) with nothing lost.
//!
//! Pure: time is an argument, never read here, so every rule is unit-tested
//! without a clock.

use std::time::Duration;

use tokio::time::Instant;

/// World failures in a row, across jobs, that open the breaker once a call has
/// succeeded in this run. Before any call succeeded one is enough: nothing has
/// shown that the service is there at all.
pub const THRESHOLD: u32 = 5;
/// The first wait between probes; it doubles up to [`MAX_PROBE_WAIT`].
const FIRST_PROBE_WAIT: Duration = Duration::from_millis(250);
/// The longest wait between probes, so that work resumes within seconds of
/// the service coming back (a probe is a single cheap call).
const MAX_PROBE_WAIT: Duration = Duration::from_secs(5);

/// May a call start now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Closed: calls go as usual.
    Go,
    /// Open, and a probe is due: exactly one call may go; report it with [`Breaker::probe_sent`].
    Probe,
    /// Open: nothing goes before this instant (or before the probe in flight answers).
    Wait(Option<Instant>),
}

#[derive(Debug, Clone)]
enum State {
    Closed {
        /// World failures since the last success.
        failures: u32,
        /// When the first of them happened.
        since: Option<Instant>,
    },
    Open {
        /// When the failures that opened it began.
        since: Instant,
        next_probe: Instant,
        /// Probes that failed, for the doubling wait.
        probes: u32,
        probing: bool,
    },
}

/// See the module doc.
#[derive(Debug, Clone)]
pub struct Breaker {
    state: State,
    outage_timeout: Duration,
    /// Multiplies the waits between probes (the simulator's clock runs faster).
    scale: f64,
    /// A call has succeeded in this run.
    seen_success: bool,
    last_error: Option<String>,
}

impl Breaker {
    pub fn new(outage_timeout: Duration, scale: f64) -> Breaker {
        Breaker {
            state: State::Closed {
                failures: 0,
                since: None,
            },
            outage_timeout,
            scale,
            seen_success: false,
            last_error: None,
        }
    }

    pub fn gate(&self, now: Instant) -> Gate {
        match &self.state {
            State::Closed { .. } => Gate::Go,
            State::Open { probing: true, .. } => Gate::Wait(None),
            State::Open { next_probe, .. } if now >= *next_probe => Gate::Probe,
            State::Open { next_probe, .. } => Gate::Wait(Some(*next_probe)),
        }
    }

    /// The call let through by [`Gate::Probe`] has left.
    pub fn probe_sent(&mut self) {
        if let State::Open { probing, .. } = &mut self.state {
            *probing = true;
        }
    }

    /// A call got an answer from the API (even an error of the job's own, such
    /// as a 400: the service is there). Returns how long the outage lasted if
    /// this closed an open breaker.
    pub fn on_success(&mut self, now: Instant) -> Option<Duration> {
        self.seen_success = true;
        let was = std::mem::replace(
            &mut self.state,
            State::Closed {
                failures: 0,
                since: None,
            },
        );
        match was {
            State::Open { since, .. } => Some(now.saturating_duration_since(since)),
            State::Closed { .. } => None,
        }
    }

    /// A call met a failure of the world. Returns true when this opened the breaker.
    pub fn on_world_failure(&mut self, now: Instant, error: &str) -> bool {
        self.last_error = Some(error.to_string());
        let threshold = if self.seen_success { THRESHOLD } else { 1 };
        match &mut self.state {
            State::Closed { failures, since } => {
                *failures += 1;
                let since = *since.get_or_insert(now);
                if *failures >= threshold {
                    self.state = State::Open {
                        since,
                        next_probe: now + probe_wait(0, self.scale),
                        probes: 0,
                        probing: false,
                    };
                    return true;
                }
                false
            }
            State::Open {
                probing,
                probes,
                next_probe,
                ..
            } => {
                // Only a failure while a probe is out moves the schedule: calls
                // that failed before it went say nothing new. (A late answer of
                // one of those may be taken for the probe's; the next probe then
                // goes a little early, which costs one cheap call.)
                if *probing {
                    *probing = false;
                    *probes += 1;
                    *next_probe = now + probe_wait(*probes, self.scale);
                }
                false
            }
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// When the open breaker's failures began.
    pub fn open_since(&self) -> Option<Instant> {
        match self.state {
            State::Open { since, .. } => Some(since),
            State::Closed { .. } => None,
        }
    }

    /// The instant at which an open breaker ends the run, if it stays open.
    pub fn gives_up_at(&self) -> Option<Instant> {
        self.open_since().map(|since| since + self.outage_timeout)
    }

    /// Open for longer than `limits.outage_timeout`.
    pub fn timed_out(&self, now: Instant) -> bool {
        self.gives_up_at().is_some_and(|at| now >= at)
    }

    /// The last world failure seen, for messages.
    pub fn last_error(&self) -> &str {
        self.last_error.as_deref().unwrap_or("no answer")
    }
}

/// The wait before probe `probes + 1`: doubling from [`FIRST_PROBE_WAIT`], capped.
fn probe_wait(probes: u32, scale: f64) -> Duration {
    FIRST_PROBE_WAIT
        .saturating_mul(1 << probes.min(10))
        .min(MAX_PROBE_WAIT)
        .mul_f64(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn one_failure_before_any_success_opens_it() {
        let now = t0();
        let mut b = Breaker::new(Duration::from_secs(60), 1.0);
        assert_eq!(b.gate(now), Gate::Go);
        assert!(b.on_world_failure(now, "refused"));
        assert!(b.is_open());
        assert_eq!(b.gate(now), Gate::Wait(Some(now + FIRST_PROBE_WAIT)));
        assert_eq!(b.gate(now + FIRST_PROBE_WAIT), Gate::Probe);
    }

    #[test]
    fn after_a_success_it_takes_many_failures_in_a_row() {
        let now = t0();
        let mut b = Breaker::new(Duration::from_secs(60), 1.0);
        b.on_success(now);
        for _ in 0..THRESHOLD - 1 {
            assert!(!b.on_world_failure(now, "503"));
        }
        // A success in between starts the count again.
        b.on_success(now);
        for _ in 0..THRESHOLD - 1 {
            assert!(!b.on_world_failure(now, "503"));
        }
        assert_eq!(b.gate(now), Gate::Go);
        assert!(b.on_world_failure(now, "503"));
        assert!(b.is_open());
    }

    #[test]
    fn one_probe_at_a_time_with_a_doubling_capped_wait() {
        let mut now = t0();
        let mut b = Breaker::new(Duration::from_secs(600), 1.0);
        b.on_world_failure(now, "down");
        let mut waits = Vec::new();
        for _ in 0..8 {
            let Gate::Wait(Some(at)) = b.gate(now) else {
                panic!("expected a wait, got {:?}", b.gate(now));
            };
            waits.push((at - now).as_millis());
            now = at;
            assert_eq!(b.gate(now), Gate::Probe);
            b.probe_sent();
            // While the probe is out nothing else goes, however long it takes.
            assert_eq!(b.gate(now + Duration::from_secs(100)), Gate::Wait(None));
            b.on_world_failure(now, "still down");
        }
        assert_eq!(waits[0], 250);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
        assert_eq!(*waits.last().unwrap(), 5000);
    }

    #[test]
    fn a_success_closes_it_and_says_how_long_it_was_down() {
        let now = t0();
        let mut b = Breaker::new(Duration::from_secs(600), 1.0);
        b.on_world_failure(now, "down");
        let later = now + Duration::from_secs(20);
        assert_eq!(b.on_success(later), Some(Duration::from_secs(20)));
        assert_eq!(b.gate(later), Gate::Go);
        assert_eq!(b.on_success(later), None);
    }

    #[test]
    fn an_outage_past_the_timeout_is_reported_from_its_first_failure() {
        let now = t0();
        let mut b = Breaker::new(Duration::from_secs(10), 1.0);
        b.on_success(now);
        for i in 0..THRESHOLD {
            b.on_world_failure(now + Duration::from_secs(u64::from(i)), "503");
        }
        assert_eq!(b.gives_up_at(), Some(now + Duration::from_secs(10)));
        assert!(!b.timed_out(now + Duration::from_secs(9)));
        assert!(b.timed_out(now + Duration::from_secs(10)));
        assert_eq!(b.last_error(), "503");
    }

    #[test]
    fn waits_follow_the_time_scale() {
        let now = t0();
        let mut b = Breaker::new(Duration::from_secs(10), 0.01);
        b.on_world_failure(now, "down");
        assert_eq!(b.gate(now), Gate::Wait(Some(now + FIRST_PROBE_WAIT / 100)));
    }
}
