//! When to poll each task: learn each model's time from submit to
//! "completed" and poll near the expected finish, instead of on a fixed beat.
//!
//! Pure: no clock, no runtime. Times are passed in ([`Time`], a `Duration`
//! since the run's start; a task's age since its submit), models are keyed by
//! name. The dispatcher feeds it on the wall clock; `tests/virtual_time.rs`
//! drives it through whole campaigns on a virtual clock against an oracle.
//!
//! What it assumes, and nothing more:
//! 1. Tasks of one model take about as long as each other, submit to
//!    completed, give or take a drift over the run. It learns that time only
//!    from finishes it saw, each bracketed by the last look that found the
//!    task unfinished and the first that found it done.
//! 2. `progress`, when a task shows it, grows at about the same pace for
//!    every task of a model once it moves. It is never read from submit (a
//!    provider may queue a task before progress starts, or count the queue in
//!    it): a task's rate is read between the first look that showed progress
//!    and a later one; a single reading at p% says what is left of the
//!    model's *sweep* (the time its progress takes from 0 to 99, learnt from
//!    the follow-ups below), or, if sooner, what the task's own pace says
//!    when read from the age at which the model's progress usually starts
//!    (learnt from finished tasks' first readings); and it bounds the finish
//!    from above (progress cannot have started before submit). Absent, stuck
//!    at 0, or moving in coarse steps, it gives no rate and is ignored.
//!
//! Per model, an estimate `E` of the time from submit to "completed":
//! - no estimate yet: two scout tasks probe (the others wait at the cadence
//!   for what they learn). The first probes from submit; the second, a
//!   reserve, from the age at which the first left its queue, so a long queue
//!   is probed once, and one task drawn long does not set `E` for the whole
//!   first wave (the first finish does). Probes grow ×1.5 from a short first
//!   look, or follow the scout's progress rate once read. The scout's finish
//!   lies between its last two looks; `E` starts at the middle, or at the
//!   last look when the scout's own rate timed it (progress in fine steps:
//!   the rate errs early, so that look lands just after the finish). Every
//!   wait is capped by the configured cadence (`poll_queued` while queued,
//!   `poll_in_progress` after);
//! - with one: the first poll goes at `E`, not capped by the cadence (see
//!   [`Poller`]). A task found unfinished there gets a *follow-up*: at what
//!   is left of the sweep by its reading (or of its own pace, see 2), or
//!   without one at a fraction of `E`. Each is a tracker of its own (the
//!   sweep, a factor on the pace, the fraction), moved by whether its
//!   follow-ups found the task done (a 0.85 quantile: about one follow-up in
//!   seven comes early).
//!   After that, the task's progress rate once read over two looks, else the
//!   follow-up gap once more, then doubling while the task runs long.
//!
//! `E` tracks a high quantile online. A first poll at `E` that finds the task
//! done lowers it by a small step, one that finds it unfinished raises it by a
//! larger one, so about one first poll in twenty comes early. Until the first
//! such early poll `E` is only an upper bound, and it is searched downwards
//! in steps that double. When a model's times spread (one task is seen done
//! at an age well below one at which another, polled about the same time, was
//! still unfinished; or early tasks finish well past `E`), the share of early
//! first polls rises, within a poll budget, and a task found done no longer
//! caps `E` at its own finish (with steady times it may: they all finish
//! alike; with spread ones, a task polled at an older, lower `E` and found
//! done says nothing of the next, and the cap sent `E` down to it: two first
//! polls in five early, 2.3 polls/job at σ 0.5 rate-bound); its step then
//! grows with how far past `E` early tasks finish, so `E` finds a high
//! quantile of a wide spread in tens of tasks. A run of on-time polls
//! much longer than the early share makes likely speeds the steps down. A
//! poll that went late because the request budget was busy teaches nothing,
//! nor does a look well before `E` (a scout's probes, a cadence look).
//!
//! How late a first poll may be depends on the run ([`Load`]): while the
//! submit budget, not the slots, bounds the run (it fills under half the slots
//! in one expected task time), a slot held a little longer delays nothing, and
//! first polls aim late (one in fifty early). With jobs waiting for a slot,
//! or none left to send (every task may be the last), lateness counts again.
//!
//! Tasks submitted together (the first fill of the slots, or a wave freed
//! together) were polled with the same `E` and say the same thing about it.
//! So the steps of polls that left within one window (5% of `E`) of each other
//! are averaged and taken once: twenty on-time polls in a clump lower `E` by
//! one small step, not twenty, which would send the whole next wave early.
//! BENCHMARKS.md ("Polling in virtual time") has what this costs per regime.
//!
//! What no schedule of this kind reaches: with times spread per task (σ 0.25
//! and more) in a balanced campaign, a runner that knew each model's
//! distribution exactly and polled at its best quantile, then at the best
//! conditional quantile after a miss, stays above 1.10× the oracle within 1.5
//! polls/job (`tests/vt/mod.rs` `QuantileBound`, worst of 20 seeds: 1.17× at
//! σ 0.25, 1.34× at σ 0.5). Even if its first look that found a task
//! unfinished told it the task's exact finish (`ExactFollowBound`), σ 0.5
//! stays above (1.11×), also with a first-poll quantile that changes along
//! the run. A task's own time is only known by looking at it.

use std::collections::HashMap;
use std::time::Duration;

/// A point in time: how long after the campaign's start. The poller never
/// reads a clock; every time is passed in, so it runs the same on the wall
/// clock and in virtual time (`tests/virtual_time.rs`).
pub type Time = Duration;

/// First look at a task of a model never seen finishing (before time scaling).
const FIRST_PROBE: Duration = Duration::from_millis(100);
/// Tasks that probe a model never seen finishing: the first from submit, the
/// others from where the first left its queue. The first finish sets the
/// estimate, so one task drawn long does not set it for the whole first wave.
const SCOUTS: u32 = 2;
/// Probe growth while a model's time is unknown.
const PROBE_GROWTH: f64 = 1.5;
/// The gap after a poll that came too early, as a fraction of the estimate.
const GAP_FRACTION: f64 = 0.05;
/// One step of the estimate, as a fraction of it.
const STEP: f64 = 0.05;
/// The share of first polls meant to come too early (the quantile tracked is 1 − this).
const EARLY_SHARE: f64 = 0.05;
/// Polls per job the early share may spend when slots are the bottleneck
/// (see [`ModelEstimate::target`]).
const POLL_BUDGET: f64 = 1.35;
/// The most first polls meant to come early.
const MAX_EARLY_SHARE: f64 = 0.45;
/// The share of first polls meant to come early while slots are not the
/// bottleneck ([`Load`]): a late look then costs nothing but the poll saved.
const RELAXED_SHARE: f64 = 0.02;
/// The share of follow-up looks (the look after a first poll that came too
/// early) meant to find the task done.
const FOLLOW_QUANTILE: f64 = 0.85;
/// How far one follow-up look moves its tracker (a factor of e^±this, weighted).
const FOLLOW_STEP: f64 = 0.2;
/// The shortest follow-up gap without a progress reading, as a fraction of the estimate.
const MIN_FOLLOW: f64 = 0.01;
/// The weight of one task in the running means of [`ModelEstimate::early_cost`].
const MEAN_WEIGHT: f64 = 0.1;
/// The largest step of the search down from the scout's upper bound.
const MAX_DESCENT: f64 = 0.2;

#[derive(Debug, Clone)]
struct ModelEstimate {
    /// Submit to completed, as far as polls could tell.
    estimate: Option<Duration>,
    /// Tasks of this model probing for the first estimate (at most
    /// [`SCOUTS`]); the others wait for what they learn.
    scouts: u32,
    /// The age at which a look first found a task of this model past its
    /// queue, while no estimate was known: when a reserve scout starts probing.
    started: Option<Duration>,
    /// `started` was just learnt: the reserve scouts waiting at the cadence
    /// are to be released ([`Poller::take_release`]).
    release: bool,
    /// The finished tasks whose polls left within the current window.
    clump: Option<Clump>,
    /// A first poll has come too early since the scout set the estimate. Until
    /// then the estimate is only an upper bound (the scout's probes overshoot
    /// the finish), and every on-time poll steps it down on its own.
    calibrated: bool,
    /// While not calibrated: the fraction the next clump of on-time polls
    /// lowers the estimate by (doubling, see [`Poller::finished`]).
    descent: f64,
    /// Running means over tasks whose first poll came early: polls after the
    /// first, and how far past the estimate they finished (a fraction of it).
    /// `None` until one has been seen.
    early_cost: Option<(f64, f64)>,
    /// Slots are not the bottleneck now (see [`Load`]).
    relaxed: bool,
    /// On-time first polls since the last one that came early.
    run: u32,
    /// How long this model's `progress` takes to run from 0 to 99, as a high
    /// quantile ([`FOLLOW_QUANTILE`]) over its tasks: a task seen at p% is
    /// looked at again `sweep · (99 − p)/99` later. `None` until a finished
    /// task showed a reading.
    sweep: Option<Duration>,
    /// The follow-up gap for a task that showed no reading, as a fraction of
    /// the estimate (the same quantile of how far past it tasks finish).
    follow: f64,
    /// The age at which tasks' progress starts, a running mean over finished
    /// tasks that showed a reading (`None` until one has).
    start: Option<Duration>,
    /// The factor on what a task's own rate from `start` says is left,
    /// tracked like the sweep.
    own: f64,
    /// Two tasks were told apart: one was seen done at an age at which
    /// another, polled within one estimate's worth of time, was still
    /// unfinished (see [`ModelEstimate::tell_apart`]).
    mixed: bool,
    /// Over the last estimate's worth of time: the least age at which a task
    /// was seen done, and the greatest at which one was seen unfinished,
    /// with when the poll that saw it left.
    done_low: Option<(Time, Duration)>,
    unfinished_high: Option<(Time, Duration)>,
    /// The greatest common divisor of the progress readings (1–98) seen:
    /// the step this model's progress moves by (0 until one is seen).
    grain: u32,
    /// While no estimate is known: the ages at which scouts' looks were
    /// timed by their own progress rate, read from fine readings (see
    /// [`Poller::finished`]).
    rate_timed: Vec<Duration>,
}

impl Default for ModelEstimate {
    fn default() -> ModelEstimate {
        ModelEstimate {
            estimate: None,
            scouts: 0,
            started: None,
            release: false,
            clump: None,
            calibrated: false,
            descent: 0.0,
            early_cost: None,
            relaxed: false,
            run: 0,
            sweep: None,
            follow: 2.0 * GAP_FRACTION,
            start: None,
            own: 1.0,
            mixed: false,
            done_low: None,
            unfinished_high: None,
            grain: 0,
            rate_timed: Vec::new(),
        }
    }
}

impl ModelEstimate {
    /// The share of first polls meant to come early. A first poll that comes
    /// late holds a slot; one that comes early costs polls. When tasks finish
    /// within a gap of the estimate (steady times), lateness costs little and
    /// the share stays at [`EARLY_SHARE`]. When they spread, early looks are
    /// worth their polls: as many as the poll budget pays for at what an
    /// early task has cost so far.
    fn target(&self) -> f64 {
        if self.relaxed {
            return RELAXED_SHARE;
        }
        match self.early_cost {
            Some((polls, _)) if self.spread() => {
                ((POLL_BUDGET - 1.0) / polls.max(1.0)).clamp(EARLY_SHARE, MAX_EARLY_SHARE)
            }
            _ => EARLY_SHARE,
        }
    }

    /// How many plain steps down a clump of on-time polls takes. A run of
    /// on-time first polls much longer than the early share makes likely
    /// (1/share) says the estimate sits too high: the steps grow with the
    /// run, up to [`MAX_HURRY`], so it comes down in tens of tasks, not hundreds.
    fn hurry(&self) -> f64 {
        (f64::from(self.run) * self.target()).clamp(1.0, MAX_HURRY)
    }

    /// One step of the estimate, as a fraction of it: [`STEP`], or half the
    /// mean overrun of early tasks when times spread more (up to [`MAX_STEP`]),
    /// so that the estimate finds a high quantile of a wide spread in tens of
    /// tasks.
    fn step(&self) -> f64 {
        match self.early_cost {
            Some((_, overrun)) if self.spread() => (overrun / 2.0).clamp(STEP, MAX_STEP),
            _ => STEP,
        }
    }

    /// A task was seen done at age `done` by a poll that left at `polled`,
    /// and unfinished at age `unfinished` before (if it was). If, within one
    /// estimate's worth of time, one task was seen done at an age more than a
    /// gap below one at which another was seen unfinished, their times
    /// differ. Steady times never show this, whatever the estimate does: every
    /// task is unfinished before the common finish and done after it. The
    /// window and the gap leave room for a slow drift (queues that grow).
    fn tell_apart(&mut self, polled: Time, done: Duration, unfinished: Option<Duration>) {
        let window = self.estimate.unwrap_or(done);
        let fresh = |seen: Option<(Time, Duration)>| {
            seen.filter(|(at, _)| polled.saturating_sub(*at) <= window)
        };
        let (seen, low) = match fresh(self.done_low) {
            Some((at, low)) if low <= done => (at, low),
            _ => (polled, done),
        };
        self.done_low = Some((seen, low));
        if let Some(u) = unfinished {
            self.unfinished_high = match fresh(self.unfinished_high) {
                Some((at, high)) if high >= u => Some((at, high)),
                _ => Some((polled, u)),
            };
        }
        if let Some((_, high)) = fresh(self.unfinished_high) {
            self.mixed |= low + window.mul_f64(GAP_FRACTION) < high;
        }
    }

    /// This model's progress moves in steps finer than [`FINE_GRAIN`] points
    /// (by the readings seen so far), so a rate read from two of them times
    /// a finish closely. Readings in steps of 25 do not.
    fn fine_progress(&self) -> bool {
        (1..FINE_GRAIN).contains(&self.grain)
    }

    /// The model's times spread: two tasks were told apart
    /// ([`ModelEstimate::tell_apart`]; steady times never are, so this keeps
    /// them apart from a spread of a few gaps), or tasks that finish past the
    /// estimate do so by more than a gap.
    fn spread(&self) -> bool {
        self.mixed
            || self
                .early_cost
                .is_some_and(|(_, overrun)| overrun > SPREAD_OVERRUN)
    }

    /// The wait from a first poll that found the task unfinished to the
    /// follow-up look: by its progress reading `p` if it showed one, else a
    /// tracked fraction of the estimate.
    fn follow_wait(
        &self,
        estimate: Duration,
        reading: Option<u32>,
        age: Duration,
        min_gap: Duration,
    ) -> Duration {
        self.by_reading(reading, age)
            .map(|(wait, _)| wait)
            .unwrap_or_else(|| estimate.mul_f64(self.follow))
            .max(min_gap)
    }

    /// What one reading of `p`% at `age` says is left, and whether the
    /// task's own start (not the sweep) said it.
    fn by_reading(&self, reading: Option<u32>, age: Duration) -> Option<(Duration, bool)> {
        let sweep = self.left_of_sweep(reading);
        let own = self.left_by_start(reading, age);
        match (sweep, own) {
            (Some(a), Some(b)) if b < a => Some((b, true)),
            (Some(a), _) => Some((a, false)),
            (None, Some(b)) => Some((b, true)),
            (None, None) => None,
        }
    }

    /// What is left after a reading of `p`% at `age` if the task's progress
    /// started at the model's usual start and runs linear: its own rate.
    fn left_by_start(&self, reading: Option<u32>, age: Duration) -> Option<Duration> {
        let p = mid_reading(reading)?;
        let ran = age.checked_sub(self.start?).filter(|d| !d.is_zero())?;
        Some(ran.mul_f64(self.own * f64::from(99 - p) / f64::from(p)))
    }

    /// What is left of the model's sweep after a reading of `p`% (`None`
    /// without a reading inside 1–98, or before the sweep is known).
    fn left_of_sweep(&self, reading: Option<u32>) -> Option<Duration> {
        let p = mid_reading(reading)?;
        Some(self.sweep?.mul_f64(f64::from(99 - p) / 99.0))
    }

    /// A follow-up look found the task done (`hit`) or not: move the tracker
    /// it was timed by ([`ModelEstimate::follow_wait`] with the same `reading`).
    fn learn_follow(&mut self, reading: Option<u32>, age: Duration, hit: bool) {
        let factor = if hit {
            (-FOLLOW_STEP * (1.0 - FOLLOW_QUANTILE)).exp()
        } else {
            (FOLLOW_STEP * FOLLOW_QUANTILE).exp()
        };
        match (self.by_reading(reading, age), self.sweep) {
            (Some((_, true)), _) => self.own = (self.own * factor).clamp(0.25, 4.0),
            (Some((_, false)), Some(sweep)) => self.sweep = Some(sweep.mul_f64(factor)),
            _ => self.follow = (self.follow * factor).clamp(MIN_FOLLOW, 1.0),
        }
    }
}

/// The largest step of the estimate ([`ModelEstimate::step`]).
const MAX_STEP: f64 = 0.25;

/// The most a run of on-time polls multiplies the step down by ([`ModelEstimate::hurry`]).
const MAX_HURRY: f64 = 8.0;

/// The least mean overrun (past the estimate, as a fraction of it) of tasks
/// whose first poll came early that counts as spread times.
const SPREAD_OVERRUN: f64 = 2.0 * GAP_FRACTION;

/// Progress readings whose greatest common divisor is this or more move in
/// coarse steps ([`ModelEstimate::fine_progress`]).
const FINE_GRAIN: u32 = 5;

/// How busy the run is when a task is submitted: whether late looks would
/// hold up other jobs.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Jobs remain to be sent.
    pub unsent: bool,
    /// The submit budget, calls per second (of the run's clock).
    pub submit_per_second: f64,
    pub max_in_flight: usize,
}

impl Load {
    /// Slots are not the bottleneck: jobs remain, and the submit budget fills
    /// under half the slots in one expected task time (Little's law), so a
    /// slot held a little longer delays nothing. With nothing left to send,
    /// every task may be the last, and lateness counts again.
    fn relaxed(&self, estimate: Duration) -> bool {
        self.unsent
            && self.submit_per_second * estimate.as_secs_f64() < self.max_in_flight as f64 / 2.0
    }
}

/// What [`Poller::finished`] is told about a task seen done.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finish {
    /// When the poll that saw it done left.
    pub polled: Time,
    /// Its age then.
    pub elapsed: Duration,
    /// Polls that found it unfinished before.
    pub misses: u32,
    /// The age at the last of them.
    pub unfinished_at: Duration,
    /// The first look that showed progress of 1% or more: when and how much.
    pub first_progress: Option<(Duration, u32)>,
    /// It was the model's scout: its looks were probes, not first polls at an estimate.
    pub scout: bool,
}

/// Looks at finished tasks whose polls left within one window of each other;
/// together they move the estimate once, by their average step (see the module
/// doc). The estimate is recomputed from `base` at each look, so it is always
/// up to date, and ends where the averaged step puts it.
#[derive(Debug, Clone, Copy)]
struct Clump {
    /// When the first of these polls left.
    opened: Time,
    /// The estimate before the first of them.
    base: Duration,
    /// The share of first polls meant to come early (see [`ModelEstimate::target`]).
    target: f64,
    /// The model's times spread ([`ModelEstimate::spread`]).
    spread: bool,
    /// How many times a plain step down this clump takes ([`ModelEstimate::hurry`]).
    hurry: f64,
    /// One step, as a fraction of the estimate ([`ModelEstimate::step`]).
    step: f64,
    looks: u32,
    /// How many were found unfinished by their first poll.
    early: u32,
    /// The earliest finish seen by an on-time first poll.
    on_time_low: Option<Duration>,
    /// The latest finish seen after an early poll.
    early_high: Duration,
    /// The latest time an early poll saw a task unfinished.
    unfinished_high: Duration,
}

impl Clump {
    fn new(opened: Time, base: Duration, m: &ModelEstimate) -> Clump {
        let (target, spread, hurry, step) = (m.target(), m.spread(), m.hurry(), m.step());
        Clump {
            step,
            opened,
            base,
            target,
            spread,
            hurry,
            looks: 0,
            early: 0,
            on_time_low: None,
            early_high: Duration::ZERO,
            unfinished_high: Duration::ZERO,
        }
    }

    /// Whether a poll that left at `polled` belongs to this clump.
    fn holds(&self, polled: Time) -> bool {
        polled.saturating_sub(self.opened) <= self.base.mul_f64(GAP_FRACTION)
    }

    /// One more task, seen finished `elapsed` after submit, after `misses`
    /// polls that found it unfinished (the last at `unfinished_at`).
    fn add(&mut self, elapsed: Duration, misses: u32, unfinished_at: Duration) {
        self.looks += 1;
        if misses == 0 {
            self.on_time_low = Some(self.on_time_low.map_or(elapsed, |low| low.min(elapsed)));
        } else {
            self.early += 1;
            self.early_high = self.early_high.max(elapsed);
            self.unfinished_high = self.unfinished_high.max(unfinished_at);
        }
    }

    /// The estimate after this clump: one step from `base`, weighted by the
    /// clump's share of early polls, and at least the latest time one of its
    /// tasks was seen unfinished.
    ///
    /// When the model's times spread (its early share is raised), one task
    /// seen unfinished late says nothing about the others: only the step
    /// applies.
    fn estimate(&self) -> Duration {
        if self.spread {
            self.step()
        } else {
            self.step().max(self.unfinished_high)
        }
    }

    fn step(&self) -> Duration {
        let estimate = self.base;
        let step = estimate.mul_f64(self.step);
        let early = f64::from(self.early) / f64::from(self.looks.max(1));
        let target = self.target;
        if early > target {
            // Up, but not past one step beyond these tasks' own finish: a wave of
            // early polls at once must not inflate the estimate.
            let up = step.mul_f64(early - target);
            (estimate + up)
                .min(self.early_high + step.mul_f64(1.0 - target))
                .max(estimate)
        } else {
            let down = estimate.saturating_sub(step.mul_f64((target - early) * self.hurry));
            if self.spread {
                // Spread times: one task found done early says nothing of the
                // next (it may have been polled at an older, lower estimate).
                return down;
            }
            self.on_time_low.map_or(down, |low| down.min(low))
        }
    }
}

/// What one poll that found a task unfinished saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Look {
    /// Time since submit.
    pub elapsed: Duration,
    /// The task was still `queued`.
    pub queued: bool,
    /// Polls of this task that found it unfinished, this one included.
    pub misses: u32,
    /// The `progress` percentage the API gave, if any.
    pub progress: Option<u32>,
    /// The first earlier look of this task that showed progress of 1% or
    /// more: when (after submit) and how much. Progress is read from there,
    /// never from submit: a provider may queue a task before its progress
    /// starts, or count the queue in it.
    pub first_progress: Option<(Duration, u32)>,
    /// The age at the look before this one that found the task unfinished
    /// (zero if this is the first).
    pub previous: Duration,
}

impl Look {
    /// Time left by the task's own `progress`: the rate between the first look
    /// that showed progress and this one, read as linear in time and rounded
    /// in the task's favour (p% shown is taken as p + 1), so the guess errs
    /// early rather than late. `None` when progress says nothing (absent,
    /// stuck, or seen only once).
    fn remaining(&self) -> Option<Duration> {
        let p = self.progress.filter(|p| (1..100).contains(p))?;
        let (at, p0) = self.first_progress?;
        let span = self.elapsed.checked_sub(at).filter(|d| !d.is_zero())?;
        let gained = p.checked_sub(p0).filter(|g| *g > 0)?;
        // `gained` may be a whole point too small (both readings truncated).
        Some(span.mul_f64(f64::from(99 - p) / f64::from(gained + 1)))
    }
}

impl Look {
    /// The longest the task can still take if its progress is linear in time:
    /// read from submit, the earliest it can have started. `None` without
    /// progress, or when an earlier look already gave a rate.
    fn latest_finish(&self) -> Option<Duration> {
        let p = self.progress.filter(|p| (1..100).contains(p))?;
        if self.first_progress.is_some() {
            return None;
        }
        Some(self.elapsed.mul_f64(f64::from(100 - p) / f64::from(p)))
    }
}

/// A look at `age` was a first poll sent at `estimate` (not a scout's probe or
/// a cadence look well before it).
fn on_time(age: Duration, estimate: Duration) -> bool {
    age + estimate.mul_f64(GAP_FRACTION) >= estimate
}

/// The reading a look at `age` showed, if it was the task's first progress.
fn read_at(first_progress: Option<(Duration, u32)>, age: Duration) -> Option<u32> {
    first_progress.filter(|(at, _)| *at == age).map(|(_, p)| p)
}

/// A reading that says how far along a running task is: 1–98 (0 says it has
/// not started, 99 and 100 that it is about done).
fn mid_reading(reading: Option<u32>) -> Option<u32> {
    reading.filter(|p| (1..99).contains(p))
}

/// The greatest common divisor (`gcd(0, b)` is `b`).
fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `base` doubled for each miss after the first (capped at 2^16).
fn doubled(base: Duration, misses: u32) -> Duration {
    base.saturating_mul(1 << misses.saturating_sub(1).min(16))
}

/// Poll timing for every model of a run, keyed by the model's name.
/// Durations here are already time-scaled.
///
/// The cadence caps (`poll_queued`, `poll_in_progress`) bound every wait that
/// is a guess: a scout's probes, the looks at a task past its model's
/// estimate. A first poll sent to a learnt estimate is not capped: the
/// estimate comes from finishes this run saw, and capping it at 10 s would
/// cost a 60 s model six polls per job for nothing. If the model slows down,
/// the first task past the estimate is looked at within the caps again.
#[derive(Debug)]
pub struct Poller {
    models: HashMap<String, ModelEstimate>,
    /// Cadence caps from the manifest.
    queued: Duration,
    in_progress: Duration,
    first_probe: Duration,
    min_gap: Duration,
}

impl Poller {
    /// `queued`/`in_progress`: the longest wait between polls; `scale` the run's time scale.
    pub fn new(queued: Duration, in_progress: Duration, scale: f64) -> Poller {
        let first_probe = FIRST_PROBE.mul_f64(scale).min(queued);
        Poller {
            models: HashMap::new(),
            queued,
            in_progress,
            first_probe,
            min_gap: Duration::from_millis(10)
                .mul_f64(scale.min(1.0))
                .min(first_probe),
        }
    }

    fn model(&mut self, model: &str) -> &mut ModelEstimate {
        self.models.entry(model.to_owned()).or_default()
    }

    /// How long after submitting to look first, and whether this task is the
    /// model's scout. While a model's time is unknown two tasks probe; the
    /// others wait at the cadence and are moved to the expected finish
    /// ([`Poller::finished`] says when) once the scout has learnt it. `load`
    /// says whether slots are the bottleneck ([`Load`]).
    pub fn first(&mut self, model: &str, load: Load) -> (Duration, bool) {
        let (queued, first_probe) = (self.queued, self.first_probe);
        let m = self.model(model);
        match m.estimate {
            Some(estimate) => {
                m.relaxed = load.relaxed(estimate);
                (estimate, false)
            }
            None if m.scouts == 0 => {
                m.scouts = 1;
                (first_probe, true)
            }
            None if m.scouts < SCOUTS => {
                // A reserve scout: it probes from where the first left its queue
                // (it waits at the cadence until then; see `take_release`).
                m.scouts += 1;
                (m.started.map_or(queued, |s| s.max(first_probe)), true)
            }
            None => (queued, false),
        }
    }

    /// A scout of a model stopped without teaching anything (it failed to
    /// poll, or the run lost it): the next task probes from submit (the other
    /// scout, if one is out, may have been a reserve still waiting).
    pub fn scout_lost(&mut self, model: &str) {
        if let Some(m) = self.models.get_mut(model) {
            m.scouts = 0;
        }
    }

    /// A look just found the first task of a model past its queue, before any
    /// estimate: the age the model's reserve scouts (those still waiting at
    /// the cadence) start probing at. `None` otherwise (asked once per look).
    pub fn take_release(&mut self, model: &str) -> Option<Duration> {
        let m = self.models.get_mut(model)?;
        if !std::mem::take(&mut m.release) {
            return None;
        }
        m.started.map(|s| s.max(self.first_probe))
    }

    /// Where an unfinished task's next poll belongs now that the model has an
    /// estimate: `estimate - elapsed` from now (zero if past it).
    pub fn until_expected(&self, model: &str, elapsed: Duration) -> Option<Duration> {
        let estimate = self.models.get(model)?.estimate?;
        Some(estimate.saturating_sub(elapsed))
    }

    /// A poll found the task unfinished: how long until the next look.
    pub fn next(&mut self, model: &str, look: Look) -> Duration {
        let (min_gap, cap) = (
            self.min_gap,
            if look.queued {
                self.queued
            } else {
                self.in_progress
            },
        );
        let m = self.model(model);
        if let Some(p) = mid_reading(look.progress) {
            m.grain = gcd(m.grain, p);
        }
        if m.estimate.is_none() && m.started.is_none() && !look.queued {
            m.started = Some(look.elapsed);
            m.release = true;
        }
        if let Some(estimate) = m.estimate
            && look.misses == 2
            && on_time(look.previous, estimate)
        {
            // The follow-up of a first poll at the estimate came early too.
            m.learn_follow(
                read_at(look.first_progress, look.previous),
                look.previous,
                false,
            );
        }
        // Never faster than a doubling floor, so a provider whose `progress`
        // runs ahead of the clock cannot draw a stream of polls; but never a
        // floor past a twentieth of the task's age, which a scout's many
        // probes would otherwise reach.
        let floor = doubled(min_gap, look.misses)
            .min(look.elapsed.mul_f64(GAP_FRACTION))
            .max(min_gap);
        let from_progress = look.remaining().map(|r| r.max(floor));
        let by_reading = m.left_of_sweep(look.progress).is_some();
        let wait = match (m.estimate, from_progress) {
            // Early (a scout's clump-mate or a slow poll): the estimate stands
            // unless the task's own progress says it is nearer. With spread
            // times a reading says more of this task than the estimate does.
            (Some(estimate), _)
                if look.elapsed + min_gap < estimate && !(m.spread() && by_reading) =>
            {
                let to_estimate = estimate - look.elapsed;
                from_progress.map_or(to_estimate, |wait| wait.min(to_estimate))
            }
            // The task's progress rate, once read over two looks (rounded to
            // err early; a provider whose progress moves in coarse steps shows
            // no gain and gives no rate).
            (Some(_), Some(wait)) => wait,
            // Else the follow-up gap: what is left of the model's sweep by this
            // look's reading, or a tracked fraction of the estimate; the same
            // again after a follow-up that came early (past the estimate a
            // spread task's time left shrinks rather than grows), then doubling
            // while the task runs long (a reading that does not move), and
            // never past the latest finish one reading allows (progress cannot
            // have started before submit).
            (Some(estimate), None) => {
                let gap = doubled(
                    m.follow_wait(estimate, look.progress, look.elapsed, min_gap),
                    look.misses.saturating_sub(1).max(1),
                );
                look.latest_finish()
                    .map_or(gap, |latest| gap.min(latest.max(floor)))
            }
            // Unknown model: the task's progress rate once it has been seen
            // twice, else probes that grow.
            (None, _) => {
                let probe = look.elapsed.mul_f64(PROBE_GROWTH - 1.0).max(min_gap);
                match (from_progress, look.latest_finish()) {
                    (Some(wait), _) => wait,
                    (None, Some(latest)) => probe.min((latest / 2).max(floor)),
                    (None, None) => probe,
                }
            }
        };
        let wait = wait.min(cap).max(min_gap.min(cap));
        if m.estimate.is_none() && from_progress == Some(wait) && m.fine_progress() {
            // A scout's look timed by its own rate (see `finished`).
            m.rate_timed.push(look.elapsed + wait);
        }
        wait
    }

    /// A task was seen finished (see [`Finish`]). Returns true when this gave
    /// the model its first estimate.
    pub fn finished(&mut self, model: &str, seen: Finish) -> bool {
        let Finish {
            polled,
            elapsed,
            misses,
            unfinished_at,
            first_progress,
            scout,
        } = seen;
        let min_gap = self.min_gap;
        let m = self.model(model);
        m.scouts = 0;
        m.tell_apart(polled, elapsed, (misses > 0).then_some(unfinished_at));
        if let Some((at, p)) = first_progress
            && p < 99
            && elapsed > at
        {
            // From p% at its first reading to 99 took about the middle of its
            // last two looks: the model's first sweep, if it has none, and
            // where this task's progress started.
            let mid = (unfinished_at.max(at) + elapsed) / 2;
            if m.sweep.is_none() {
                m.sweep = Some((mid - at).mul_f64(99.0 / f64::from(99 - p)));
            }
            let began = at.saturating_sub((mid - at).mul_f64(f64::from(p) / f64::from(99 - p)));
            m.start = Some(match m.start {
                None => began,
                Some(s) => s.mul_f64(1.0 - MEAN_WEIGHT) + began.mul_f64(MEAN_WEIGHT),
            });
        }
        if let Some(estimate) = m.estimate
            && misses == 1
            && on_time(unfinished_at, estimate)
        {
            // Seen done by the follow-up of a first poll at the estimate: if
            // the follow-up went when it was meant to, its tracker was high enough.
            let reading = read_at(first_progress, unfinished_at);
            let planned = m.follow_wait(estimate, reading, unfinished_at, min_gap);
            if elapsed <= unfinished_at + planned.mul_f64(1.0 + GAP_FRACTION) + min_gap {
                m.learn_follow(reading, unfinished_at, true);
            }
        }
        let Some(estimate) = m.estimate else {
            // The scout: the finish lies between its last two looks; start from
            // the middle (the search below moves it either way). Without
            // progress, ×1.5 probes leave a third of the finish's time between
            // them, and the later look would hold the whole first wave up to a
            // third past its finish. But a look timed by the task's own rate
            // (fine progress read twice, rounded to err early) lands just
            // after the finish: the middle would put it a half-gap early, and
            // the first wave, released at once, would spend its polls (and the
            // request budget) on early looks. The look that saw it done must
            // be one its rate timed (left then, or within a gap after: the
            // request budget may hold a poll back).
            let timed = std::mem::take(&mut m.rate_timed).iter().any(|at| {
                let late = elapsed.checked_sub(*at);
                late.is_some_and(|late| late <= at.mul_f64(GAP_FRACTION).max(min_gap))
            });
            let low = if misses > 0 && !timed {
                unfinished_at
            } else {
                elapsed
            };
            m.estimate = Some((low + elapsed) / 2);
            m.descent = STEP;
            return true;
        };
        // Only a look at (or just before) the estimate that found the task
        // unfinished says the estimate is too low: a scout's probes, or a
        // look at the cadence while the scout was out, came before it.
        let early = !scout && misses > 0 && on_time(unfinished_at, estimate);
        let misses = if early { misses } else { 0 };
        if !early && elapsed > estimate + estimate.mul_f64(GAP_FRACTION) {
            // Found finished by a poll that went late (the budget was busy):
            // that says nothing about whether the estimate is too high.
            return false;
        }
        let was_calibrated = m.calibrated;
        m.calibrated |= early;
        m.run = if early { 0 } else { m.run + 1 };
        if early {
            let polls = f64::from(misses);
            let overrun =
                elapsed.saturating_sub(estimate).as_secs_f64() / estimate.as_secs_f64().max(1e-9);
            m.early_cost = Some(match m.early_cost {
                None => (polls, overrun),
                Some((p, o)) => (
                    p + MEAN_WEIGHT * (polls - p),
                    o + MEAN_WEIGHT * (overrun - o),
                ),
            });
        }
        let mut clump = match m.clump {
            Some(clump) if clump.holds(polled) => clump,
            _ => {
                if m.clump.is_some() && !was_calibrated {
                    // Until the first early poll the estimate is only an upper
                    // bound: each clump of on-time polls steps down twice as
                    // far as the last one, a search for where the finishes are.
                    m.descent = (m.descent * 2.0).min(MAX_DESCENT);
                }
                Clump::new(polled, estimate, m)
            }
        };
        clump.add(elapsed, misses, unfinished_at);
        let next = if m.calibrated {
            clump.estimate()
        } else {
            let down = clump.base.mul_f64(1.0 - m.descent);
            clump.on_time_low.map_or(down, |low| down.min(low))
        };
        m.estimate = Some(next);
        m.clump = Some(clump);
        false
    }

    /// The current estimate for a model.
    #[cfg(test)]
    pub fn estimate(&self, model: &str) -> Option<Duration> {
        self.models.get(model).and_then(|m| m.estimate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "gemini-omni-flash";
    const OTHER: &str = "veo3.1-fast";

    /// Slots are the bottleneck: the load of a balanced campaign.
    const BUSY: Load = Load {
        unsent: true,
        submit_per_second: 20.0,
        max_in_flight: 20,
    };

    /// [`Poller::finished`] for a task without progress readings.
    fn done(
        p: &mut Poller,
        polled: Time,
        elapsed: Duration,
        misses: u32,
        unfinished_at: Duration,
    ) -> bool {
        p.finished(
            MODEL,
            Finish {
                polled,
                elapsed,
                misses,
                unfinished_at,
                first_progress: None,
                scout: false,
            },
        )
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The progress the simulator shows `t` into a task of `generation` (truncated, 99 at most).
    fn linear(t: Duration, generation: Duration) -> u32 {
        (t.as_secs_f64() / generation.as_secs_f64() * 99.0) as u32
    }

    /// A look at a running task, whose progress was first seen at 0.1 s at 5%.
    fn look(elapsed: Duration, misses: u32, progress: Option<u32>) -> Look {
        Look {
            elapsed,
            queued: false,
            misses,
            progress,
            first_progress: progress.map(|_| (ms(100), 5)),
            previous: Duration::ZERO,
        }
    }

    /// Simulates tasks of a steady `generation` time one after another; returns polls per task
    /// and the mean time a task's slot was held past its finish.
    fn simulate(
        poller: &mut Poller,
        generation: Duration,
        tasks: u32,
        progress: bool,
    ) -> (f64, Duration) {
        wave(poller, generation, 1, tasks, progress)
    }

    /// Like [`simulate`], in `waves` of `tasks` submitted at once (each wave after the last
    /// has finished, the way freed slots are filled again).
    fn wave(
        poller: &mut Poller,
        generation: Duration,
        tasks: u32,
        waves: u32,
        progress: bool,
    ) -> (f64, Duration) {
        let mut polls = 0;
        let mut overrun = Duration::ZERO;
        let mut clock = Duration::ZERO;
        for _ in 0..waves {
            let submitted = clock;
            let firsts: Vec<Duration> = (0..tasks).map(|_| poller.first(MODEL, BUSY).0).collect();
            let mut last = Duration::ZERO;
            for first in firsts {
                let (p, t) = follow(poller, submitted, first, generation, progress);
                polls += p;
                overrun += t - generation;
                last = last.max(t);
            }
            clock = submitted + last;
        }
        (
            f64::from(polls) / f64::from(tasks * waves),
            overrun / (tasks * waves),
        )
    }

    /// Polls one task submitted at `submitted` until it is found finished; returns the
    /// polls it took and when it was seen finished.
    fn follow(
        poller: &mut Poller,
        submitted: Time,
        first: Duration,
        generation: Duration,
        progress: bool,
    ) -> (u32, Duration) {
        let mut polls = 0;
        let mut t = first;
        let mut misses = 0;
        let mut unfinished_at = Duration::ZERO;
        let mut first_progress = None;
        loop {
            polls += 1;
            if t >= generation {
                poller.finished(
                    MODEL,
                    Finish {
                        polled: submitted + t,
                        elapsed: t,
                        misses,
                        unfinished_at,
                        first_progress,
                        scout: false,
                    },
                );
                return (polls, t);
            }
            misses += 1;
            unfinished_at = t;
            let shown = progress.then(|| linear(t, generation)).filter(|p| *p >= 1);
            let look = Look {
                elapsed: t,
                queued: false,
                misses,
                progress: shown,
                first_progress,
                previous: unfinished_at,
            };
            if first_progress.is_none() {
                first_progress = shown.map(|p| (t, p));
            }
            t += poller.next(MODEL, look);
        }
    }

    #[test]
    fn steady_times_cost_few_polls_and_little_overrun() {
        for (progress, max_polls, max_overrun) in [(true, 1.1, 0.05), (false, 1.5, 0.1)] {
            let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
            let g = Duration::from_secs(2);
            simulate(&mut p, g, 20, progress); // learn
            let (polls, overrun) = simulate(&mut p, g, 200, progress);
            assert!(
                polls <= max_polls,
                "progress {progress}: {polls} polls per task"
            );
            assert!(
                overrun <= g.mul_f64(max_overrun),
                "progress {progress}: {overrun:?} past the finish"
            );
        }
    }

    #[test]
    fn a_scout_with_progress_learns_in_a_few_polls() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        let g = Duration::from_secs(2);
        let (polls, overrun) = simulate(&mut p, g, 1, true);
        // Two probes to read the rate, then looks at the predicted finish that
        // err early (the +1 rounding) and close in: once per model.
        assert!(polls <= 5.0, "{polls} polls");
        assert!(overrun <= ms(100), "{overrun:?}");
        let e = p.estimate(MODEL).unwrap();
        assert!(e >= g && e <= g + ms(100), "{e:?}");
    }

    /// A scout whose last look was timed by its own progress rate: the first
    /// estimate is that look, not the middle of its last two, which would put
    /// it half a gap before a finish the rate pinned down.
    #[test]
    fn a_scout_timed_by_its_rate_sets_the_estimate_at_its_finish() {
        let scout = |readings: [u32; 2]| {
            let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
            let (first, _) = p.first(MODEL, BUSY);
            assert_eq!(first, FIRST_PROBE);
            let seen = Some((ms(1000), readings[0]));
            let mut wait = Duration::ZERO;
            for (at, misses, progress, first_progress) in [
                (ms(1000), 1, readings[0], None),
                (ms(1500), 2, readings[1], seen),
            ] {
                wait = p.next(
                    MODEL,
                    Look {
                        elapsed: at,
                        queued: false,
                        misses,
                        progress: Some(progress),
                        first_progress,
                        previous: Duration::ZERO,
                    },
                );
            }
            // Seen done by the look the last wait set.
            let done_at = ms(1500) + wait;
            p.finished(
                MODEL,
                Finish {
                    polled: done_at,
                    elapsed: done_at,
                    misses: 2,
                    unfinished_at: ms(1500),
                    first_progress: seen,
                    scout: true,
                },
            );
            (done_at, p.estimate(MODEL).unwrap())
        };
        // Fine progress (readings 49 and 73): that look was timed by the
        // rate, and the estimate is its age.
        let (done_at, estimate) = scout([49, 73]);
        assert_eq!(estimate, done_at);
        // Progress in steps of 25: a rate read from 50 and 75 says little, and
        // the finish is taken at the middle of the last two looks.
        let (done_at, estimate) = scout([50, 75]);
        assert_eq!(estimate, (ms(1500) + done_at) / 2);
        // Nor in steps of 10 (the provider's own status example shows 10).
        let (done_at, estimate) = scout([40, 70]);
        assert_eq!(estimate, (ms(1500) + done_at) / 2);
    }

    /// Without a reading, a follow-up that came early is followed at the same
    /// gap again; only later looks double it (a task far past the estimate
    /// may be stuck).
    #[test]
    fn a_second_early_follow_up_is_not_doubled() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        let e = Duration::from_secs(2);
        simulate(&mut p, e, 20, false);
        let e = p.estimate(MODEL).unwrap();
        let gap = |p: &mut Poller, misses: u32, at: Duration, previous: Duration| {
            p.next(
                MODEL,
                Look {
                    elapsed: at,
                    queued: false,
                    misses,
                    progress: None,
                    first_progress: None,
                    previous,
                },
            )
        };
        let first = gap(&mut p, 1, e, Duration::ZERO);
        let second = gap(&mut p, 2, e + first, e);
        // The second early look moved the follow-up tracker up once (one step
        // of FOLLOW_STEP), no more.
        let moved = (FOLLOW_STEP * FOLLOW_QUANTILE).exp();
        assert!(
            second.as_secs_f64() <= first.as_secs_f64() * moved * 1.001,
            "{first:?} then {second:?}"
        );
        let third = gap(&mut p, 3, e + first + second, e + first);
        assert!(third > second.mul_f64(1.5), "{second:?} then {third:?}");
    }

    #[test]
    fn progress_that_runs_ahead_still_backs_off() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        // A provider stuck at 99%: the waits must still grow.
        let waits: Vec<_> = (1..=8)
            .map(|misses| p.next(MODEL, look(Duration::from_secs(60), misses, Some(99))))
            .collect();
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
        assert!(waits[7] >= ms(1000), "{waits:?}");
    }

    #[test]
    fn past_the_estimate_one_reading_only_brings_the_next_look_closer() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        done(&mut p, Duration::ZERO, ms(2000), 0, Duration::ZERO);
        let plain = p.next(MODEL, look(ms(2000), 1, None));
        assert_eq!(
            plain,
            ms(200),
            "the first follow-up gap: 10% of the estimate"
        );
        let once = |progress| Look {
            first_progress: None,
            ..look(ms(2000), 1, Some(progress))
        };
        // One coarse reading (50% near the end) must not push the look out to ~2 s.
        assert_eq!(p.next(MODEL, once(50)), plain);
        // A fine one brings it closer.
        assert!(p.next(MODEL, once(98)) < plain);
        // A rate read over two looks is believed past the gap (erring early).
        let rate = p.next(MODEL, look(ms(2000), 2, Some(50)));
        assert!(rate > ms(1500) && rate < ms(2100), "{rate:?}");
    }

    /// A task seen at `p`% by its first poll at 2 s, with a model whose
    /// progress sweep (0 to 99) was learnt at 1.5 s.
    fn read_once(p: &mut Poller, progress: u32) -> Duration {
        p.finished(
            MODEL,
            Finish {
                polled: Duration::ZERO,
                elapsed: ms(2000),
                misses: 1,
                unfinished_at: ms(1990),
                first_progress: Some((ms(500), 1)),
                scout: false,
            },
        );
        p.next(
            MODEL,
            Look {
                first_progress: None,
                ..look(ms(2000), 1, Some(progress))
            },
        )
    }

    #[test]
    fn one_reading_times_the_follow_up_by_the_models_sweep() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        // Seen at 1% 0.5 s in, done at 2 s: the sweep is 1.5 s.
        let at_80 = read_once(&mut p, 80);
        let expected = ms(1500).mul_f64(19.0 / 98.0);
        assert!(at_80.abs_diff(expected) < ms(10), "{at_80:?}");
        let at_95 = read_once(&mut p, 95);
        assert!(at_95 < at_80 / 3, "{at_95:?}");
    }

    #[test]
    fn follow_ups_learn_how_far_past_the_estimate_tasks_finish() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        done(&mut p, Duration::ZERO, ms(2000), 0, Duration::ZERO);
        let gap = |p: &mut Poller| p.next(MODEL, look(ms(2000), 1, None));
        let before = gap(&mut p);
        // Follow-ups that keep finding tasks unfinished widen the gap...
        for _ in 0..5 {
            let second = Look {
                previous: ms(2000),
                ..look(ms(2200), 2, None)
            };
            p.next(MODEL, second);
        }
        let wider = gap(&mut p);
        assert!(wider > before.mul_f64(1.5), "{before:?} then {wider:?}");
        // ...and follow-ups that find them done narrow it again.
        for _ in 0..100 {
            done(&mut p, Duration::ZERO, ms(2050), 1, ms(2000));
        }
        assert!(gap(&mut p) < wider, "{:?}", gap(&mut p));
    }

    #[test]
    fn tasks_polled_about_together_that_finish_apart_mark_the_times_spread() {
        // Times a little spread: one task seen done at 2.0 s, another, a second
        // later, still unfinished at 2.12 s (and done at 2.14 s, 7% past `E`).
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        done(&mut p, ms(2000), ms(2000), 0, Duration::ZERO);
        assert!(!p.models[MODEL].spread());
        done(&mut p, ms(3000), ms(2140), 1, ms(2120));
        let (_, overrun) = p.models[MODEL].early_cost.unwrap_or_default();
        assert!(
            overrun <= SPREAD_OVERRUN,
            "{overrun}: spread by its overrun"
        );
        assert!(p.models[MODEL].spread());
    }

    #[test]
    fn steady_times_are_never_taken_for_spread_ones() {
        // Every task takes 2 s: an early poll sees it unfinished before 2 s,
        // an on-time one done at 2 s or later, whatever the estimate does.
        for progress in [true, false] {
            let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
            let g = Duration::from_secs(2);
            simulate(&mut p, g, 1, progress);
            wave(&mut p, g, 20, 20, progress);
            assert!(!p.models[MODEL].mixed, "progress {progress}");
        }
    }

    #[test]
    fn a_slow_drift_is_not_taken_for_spread_times() {
        // Steady times that grow by half over 200 tasks (a provider getting busy).
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        let mut clock = Duration::ZERO;
        for i in 0..200 {
            let g = ms(2000 + 5 * i);
            let firsts: Vec<Duration> = (0..20).map(|_| p.first(MODEL, BUSY).0).collect();
            let mut last = Duration::ZERO;
            for first in firsts {
                last = last.max(follow(&mut p, clock, first, g, true).1);
            }
            clock += last;
        }
        assert!(!p.models[MODEL].mixed);
    }

    #[test]
    fn with_slots_to_spare_first_polls_go_late_rather_than_early() {
        // 10/s into 200 slots with 2 s tasks: 20 in flight, slots to spare.
        let spare = Load {
            unsent: true,
            submit_per_second: 10.0,
            max_in_flight: 200,
        };
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        done(&mut p, Duration::ZERO, ms(2000), 0, Duration::ZERO);
        p.first(MODEL, spare);
        assert_eq!(p.models[MODEL].target(), RELAXED_SHARE);
        p.first(MODEL, BUSY);
        assert!(p.models[MODEL].target() >= EARLY_SHARE);
        let last = Load {
            unsent: false,
            ..spare
        };
        p.first(MODEL, last);
        assert!(
            p.models[MODEL].target() >= EARLY_SHARE,
            "the tail counts again"
        );
    }

    #[test]
    fn learns_a_long_model_and_never_waits_past_the_cadence() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        let g = Duration::from_secs(60);
        let (first_wave, _) = simulate(&mut p, g, 1, false);
        // One scout per model pays this once: ×1.5 probes from 100 ms, then the cadence.
        assert!(first_wave <= 20.0, "{first_wave}");
        let (polls, overrun) = simulate(&mut p, g, 100, false);
        assert!(polls <= 1.5, "{polls}");
        assert!(overrun <= Duration::from_secs(4), "{overrun:?}");
        // A task running far past the estimate is still looked at every `poll_in_progress`.
        let late = look(Duration::from_secs(600), 30, None);
        assert!(p.next(MODEL, late) <= Duration::from_secs(10));
        let queued = Look {
            queued: true,
            ..late
        };
        assert!(p.next(MODEL, queued) <= Duration::from_secs(5));
    }

    #[test]
    fn a_wave_of_early_polls_does_not_inflate_the_estimate() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        done(&mut p, Duration::ZERO, ms(2000), 0, Duration::ZERO);
        let polled = Duration::ZERO;
        for _ in 0..20 {
            // Seen unfinished at 1.95 s, done at 2.02 s.
            done(&mut p, polled, ms(2020), 1, ms(1950));
        }
        // One step (~5%) past the latest finish at most.
        let e = p.estimate(MODEL).unwrap();
        assert!(e >= ms(2020) && e <= ms(2130), "{e:?}");
    }

    #[test]
    fn a_clump_of_on_time_polls_lowers_the_estimate_once() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        let start = Duration::from_secs(100);
        done(&mut p, start, ms(2000), 0, Duration::ZERO);
        // One early poll: from now on, clumps move the estimate once.
        done(&mut p, start + ms(2000), ms(2010), 1, ms(1990));
        let e = p.estimate(MODEL).unwrap();
        assert!(e > ms(2010), "{e:?}");
        // Twenty tasks submitted together, found finished by polls 5 ms apart.
        for i in 0..20 {
            done(&mut p, start + ms(4000 + 5 * i), e, 0, Duration::ZERO);
        }
        // One step of 5% of 5%, not twenty (which would be 5% lower).
        let one_step = e - e.mul_f64(STEP * EARLY_SHARE);
        assert_eq!(p.first(MODEL, BUSY).0, one_step);
        // A poll past the window opens a clump of its own.
        done(&mut p, start + ms(6000), one_step, 0, Duration::ZERO);
        assert!(p.first(MODEL, BUSY).0 < one_step);
    }

    #[test]
    fn until_the_first_early_poll_each_on_time_poll_steps_down() {
        // The scout's estimate is an upper bound: a clump must not hold it there.
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        let start = Duration::from_secs(100);
        done(&mut p, start, ms(2500), 0, Duration::ZERO);
        for i in 0..20 {
            done(&mut p, start + ms(2500 + i), ms(2500), 0, Duration::ZERO);
        }
        let e = p.estimate(MODEL).unwrap();
        assert!(e < ms(2500).mul_f64(0.96), "{e:?}");
    }

    #[test]
    fn waves_of_tasks_submitted_together_cost_few_polls() {
        // Twenty slots filled at once, again and again: the start of every campaign.
        for progress in [true, false] {
            let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
            let g = Duration::from_secs(2);
            simulate(&mut p, g, 1, progress); // the scout
            wave(&mut p, g, 20, 10, progress); // down from the scout's estimate
            let (polls, overrun) = wave(&mut p, g, 20, 40, progress);
            assert!(polls <= 1.1, "progress {progress}: {polls} polls per task");
            assert!(
                overrun <= g.mul_f64(0.05),
                "progress {progress}: {overrun:?} past the finish"
            );
        }
    }

    #[test]
    fn a_scouts_probes_are_not_first_polls() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        // A task waiting at the 5 s cadence is seen done first: an upper bound.
        done(&mut p, Duration::ZERO, ms(5000), 0, Duration::ZERO);
        // Then the scout, a long task, after nine probes.
        let scout = Finish {
            polled: ms(5020),
            elapsed: ms(5020),
            misses: 9,
            unfinished_at: ms(4980),
            first_progress: None,
            scout: true,
        };
        p.finished(MODEL, scout);
        assert!(
            p.estimate(MODEL) <= Some(ms(5000)),
            "raised by a probe: {:?}",
            p.estimate(MODEL)
        );
        // Still an upper bound, searched downwards.
        for i in 0..3 {
            let e = p.estimate(MODEL).unwrap_or_default();
            done(
                &mut p,
                Duration::from_secs(10 * (i + 1)),
                e,
                0,
                Duration::ZERO,
            );
        }
        assert!(p.estimate(MODEL).unwrap_or_default() < ms(4500));
    }

    #[test]
    fn late_polls_do_not_lower_the_estimate() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        done(&mut p, Duration::ZERO, ms(2000), 0, Duration::ZERO);
        for _ in 0..50 {
            done(&mut p, Duration::ZERO, ms(2500), 0, Duration::ZERO);
        }
        assert_eq!(p.estimate(MODEL), Some(ms(2000)));
    }

    #[test]
    fn a_wave_finishing_together_barely_moves_the_estimate() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        done(&mut p, Duration::ZERO, ms(2000), 0, Duration::ZERO);
        for _ in 0..20 {
            done(&mut p, Duration::ZERO, ms(2300), 0, Duration::ZERO);
        }
        let e = p.estimate(MODEL).unwrap();
        assert!(e >= ms(1500), "{e:?}");
    }

    #[test]
    fn a_slower_spell_raises_the_estimate_at_once() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        simulate(&mut p, ms(2000), 50, false);
        done(&mut p, Duration::ZERO, ms(3100), 2, ms(3000));
        assert!(p.estimate(MODEL).unwrap() >= ms(3000));
    }

    #[test]
    fn two_scouts_per_model_until_the_first_estimate() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        assert_eq!(p.first(MODEL, BUSY), (ms(100), true));
        // The reserve scout waits at the cadence until the first leaves its queue.
        assert_eq!(p.first(MODEL, BUSY), (Duration::from_secs(5), true));
        assert_eq!(p.first(MODEL, BUSY), (Duration::from_secs(5), false));
        assert_eq!(p.first(OTHER, BUSY), (ms(100), true));
        assert_eq!(p.until_expected(MODEL, ms(500)), None);
        assert!(done(&mut p, Duration::ZERO, ms(2250), 2, ms(1500)));
        // The middle of the scout's last two looks.
        assert_eq!(p.until_expected(MODEL, ms(500)), Some(ms(1375)));
        assert_eq!(p.first(MODEL, BUSY), (ms(1875), false));
        p.scout_lost(OTHER);
        assert!(p.first(OTHER, BUSY).1, "a lost scout is replaced");
    }

    #[test]
    fn the_reserve_scout_probes_from_where_the_first_left_its_queue() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        p.first(MODEL, BUSY);
        p.first(MODEL, BUSY);
        let queued = Look {
            queued: true,
            ..look(ms(500), 1, None)
        };
        p.next(MODEL, queued);
        assert_eq!(p.take_release(MODEL), None, "still queued");
        p.next(MODEL, look(ms(750), 2, Some(3)));
        assert_eq!(p.take_release(MODEL), Some(ms(750)));
        assert_eq!(p.take_release(MODEL), None, "told once");
        // A scout lost: the next probes from submit, a reserve after it from 750 ms.
        p.scout_lost(MODEL);
        assert_eq!(p.first(MODEL, BUSY), (ms(100), true));
        assert_eq!(p.first(MODEL, BUSY), (ms(750), true));
    }

    #[test]
    fn a_reading_is_read_from_where_the_models_progress_starts() {
        let mut p = Poller::new(Duration::from_secs(5), Duration::from_secs(10), 1.0);
        p.first(MODEL, BUSY);
        // The scout first showed 25% at 1.5 s and finished between 2.9 and 3.0 s:
        // its progress ran 99 points in about 1.94 s, from about 1.01 s.
        p.finished(
            MODEL,
            Finish {
                polled: ms(3000),
                elapsed: ms(3000),
                misses: 4,
                unfinished_at: ms(2900),
                first_progress: Some((ms(1500), 25)),
                scout: true,
            },
        );
        let m = &p.models[MODEL];
        let start = m.start.unwrap();
        assert!(start > ms(1000) && start < ms(1020), "{start:?}");
        // A task at 75% at 2 s runs faster than the sweep: its own rate from
        // the start says about 0.32 s are left, the sweep 0.47 s.
        let (left, own) = m.by_reading(Some(75), ms(2000)).unwrap();
        assert!(own && left > ms(310) && left < ms(325), "{left:?}");
        // One at 25% at 2 s runs slower: the sweep's figure is the sooner, and
        // a follow-up errs early rather than late.
        let (left, own) = m.by_reading(Some(25), ms(2000)).unwrap();
        assert!(!own && left > ms(1440) && left < ms(1460), "{left:?}");
    }

    #[test]
    fn time_scale_shrinks_the_probes() {
        let mut p = Poller::new(ms(50), ms(100), 0.01);
        assert_eq!(p.first(MODEL, BUSY).0, ms(1));
        let queued = Look {
            queued: true,
            ..look(ms(10), 1, None)
        };
        assert!(p.next(MODEL, queued) <= ms(50));
    }
}
