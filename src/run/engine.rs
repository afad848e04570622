//! The engine: every job's state and every decision, with no I/O and no clock.
//!
//! The driver (`driver.rs`) feeds it what happened ([`Event`]) and the time
//! ([`Now`]); the engine answers with what to do ([`Command`]): records to
//! append to the journal (already applied to its own state, so the journal and
//! memory cannot disagree), a sync, API calls, downloads, renames. It never
//! spawns, sleeps or reads a clock, so a scheduling rule can be tried on any
//! timeline. API calls start only from [`Engine::pump`], which asks the [`Limiter`] for
//! each one in priority order (uploads, submits, due polls): uploads and
//! submits draw on the submit budget, polls on the query budget, so a
//! submit bucket that is empty never holds polls back (nor the other way
//! round). A submit's write-ahead record comes before a [`Command::Sync`], and
//! the submit after it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::breaker::{Breaker, Gate};
use super::download::{self, DownloadError, DownloadLimits, Fetched};
use super::limiter::{Bucket, Limiter};
use super::poller::{Finish, Load, Look, Poller};
use super::retry::{self, Backoff, Call, Failure};
use super::{RunError, RunOptions};
use crate::api::{ApiError, Task, TaskStatus};
use crate::journal::Record;
use crate::manifest::{Campaign, ImageRef, Job};
use crate::state::{CampaignState, JobState, Phase, Status};

use retry::MAX_DOWNLOAD_TRIES;
/// How long a first Ctrl-C waits for submits already sent, so their task ids are kept.
const STOP_GRACE: Duration = Duration::from_secs(8);
/// Looks at a `completed` task whose answer has no video URL before the job
/// fails: some services fill the URL in a moment after the status.
const MISSING_URL_LOOKS: u32 = 5;
/// Tries of a lookup by `client_business_id` before the job is left `unknown`
/// for the next run to look up again.
const LOOKUP_TRIES: u32 = 6;

/// The time of a step: the driver reads the clocks once and passes them in.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For every schedule (monotonic).
    pub at: Instant,
    /// For record stamps and URL expiry (`expires_at` is the server's wall clock).
    pub wall: SystemTime,
}

impl Now {
    fn unix(&self) -> i64 {
        self.wall
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// What the engine asks the driver to do, in order.
#[derive(Debug)]
pub enum Command {
    /// Append to the journal, stamped `t` (the engine has applied it already).
    Record(String, Record),
    /// Make every record so far durable: the submits that follow may cost money.
    Sync,
    Submit {
        job: usize,
        attempt: u32,
        body: serde_json::Value,
    },
    Poll {
        job: usize,
        task_id: String,
    },
    /// Look a lost submit up by its `client_business_id` (a poll by that id).
    Lookup {
        job: usize,
        client_business_id: String,
    },
    Upload {
        path: String,
    },
    /// Fetch `url` into `path`'s `.part`; a file at `path` itself is not overwritten.
    Download {
        job: usize,
        url: String,
        path: PathBuf,
        limits: DownloadLimits,
        start: download::Start,
    },
    /// `.part` → `path` once the records so far are durable.
    Rename(PathBuf),
}

/// What a worker reports back.
#[derive(Debug)]
pub enum Event {
    Uploaded {
        path: String,
        result: Result<(String, String), UploadError>,
    },
    Submitted {
        job: usize,
        attempt: u32,
        result: Result<Task, ApiError>,
    },
    Polled {
        job: usize,
        result: Result<Task, ApiError>,
    },
    /// The answer to a lookup of a lost submit by its `client_business_id`.
    LookedUp {
        job: usize,
        result: Result<Task, ApiError>,
    },
    Downloaded {
        job: usize,
        result: Result<Fetched, DownloadError>,
    },
}

/// Why a local image did not get a URL. Kept typed, so a refused key is known by its status.
#[derive(Debug)]
pub enum UploadError {
    Read(String),
    Api(ApiError),
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadError::Read(e) => f.write_str(e),
            UploadError::Api(e) => e.fmt(f),
        }
    }
}

/// Something to do at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    /// A poll of job `.0`, valid while the job's poll generation is `.1`.
    Poll(usize, u32),
    RetrySubmit(usize),
    /// Look up job `.0`'s lost submit by its `client_business_id`.
    Lookup(usize),
    RetryDownload(usize),
    /// An upload to try again: an index into `Dispatcher::upload_paths`.
    RetryUpload(usize),
}

/// An API call the engine may start next.
#[derive(Debug)]
enum Action {
    Upload(String),
    Submit(usize),
    Poll(usize),
    Lookup(usize),
}

impl Action {
    /// The provider's budget this call draws on.
    fn bucket(&self) -> Bucket {
        match self {
            Action::Upload(_) | Action::Submit(_) => Bucket::Submit,
            Action::Poll(_) | Action::Lookup(_) => Bucket::Query,
        }
    }
}

impl Call {
    fn bucket(self) -> Bucket {
        match self {
            Call::Submit | Call::Upload => Bucket::Submit,
            Call::Poll => Bucket::Query,
        }
    }
}

/// What the engine keeps about every job during this run only: kept
/// small, since a 100k-job campaign holds one per job.
#[derive(Debug, Default, Clone, Copy)]
struct Live {
    submit_errors: u32,
    lookup_errors: u32,
    download_errors: u32,
    /// Bumped when a scheduled poll is moved: older timers for the job are stale.
    poll_generation: u32,
    /// This task probes for its model's first time estimate.
    scout: bool,
    /// The job's current task was submitted by this run, so no earlier
    /// download of it can have left a `.part` (see [`download::Start`]).
    submitted_here: bool,
    /// The job is in [`Engine::counts`]: every job, or those `--only` names.
    counted: bool,
}

/// What the engine keeps about a task while it polls it: only for the
/// tasks in flight, from the start of tracking until the task ends.
#[derive(Debug, Default)]
struct Tracking {
    poll_errors: u32,
    /// The last poll error of the current task, for a timeout's message.
    last_poll_error: Option<String>,
    /// When this run gives up polling the current task.
    deadline: Option<Instant>,
    /// When the current task was submitted, if in this run (resumed tasks teach the poller nothing).
    submitted: Option<Instant>,
    /// Polls of the current task that found it unfinished.
    misses: u32,
    /// When (after submit) the last of those polls was.
    unfinished_at: Duration,
    /// When (after submit) a poll first showed progress of 1% or more, and how much.
    first_progress: Option<(Duration, u32)>,
    /// When the last poll of the task left.
    poll_sent: Option<Instant>,
    /// The last status and progress seen, for progress lines.
    last_status: Option<TaskStatus>,
    /// A poll for this job is in flight (never two at once).
    polling: bool,
    /// Polls that found the task `completed` with no video URL in the answer.
    missing_url: u32,
}

#[derive(Debug)]
enum UploadState {
    Queued,
    Running,
    Done(String),
    Failed(String),
}

pub struct Engine {
    campaign: Arc<Campaign>,
    opts: RunOptions,
    /// Every manifest job's journal state, by job number (the manifest's
    /// order): events name jobs by number, so none looks an id up. A slot
    /// changes only in [`Engine::record`], by applying the record the
    /// journal is given, so the journal and memory cannot disagree.
    slots: Vec<JobState>,
    /// The rest of the journal's state: uploads, and jobs the manifest no
    /// longer has (kept for the report).
    others: CampaignState,
    /// Jobs by where they are, kept as slots change (never recounted).
    counts: super::progress::Counts,
    /// Why this run left a job unsent, when that is no journal fact (the
    /// budget, the balance): the next run may well send it. Shown in the
    /// report's `error` column, never written to the journal.
    notes: foldhash::HashMap<usize, String>,
    /// What to do, in order; taken by the driver after each step.
    out: Vec<Command>,
    /// The time of the step being taken.
    now: Now,
    live: Vec<Live>,
    /// By job index: the tasks being polled.
    tracking: foldhash::HashMap<usize, Tracking>,
    limiter: Limiter,
    poller: Poller,
    /// The run's start: the poller's times are measured from it.
    epoch: Instant,
    /// Jobs waiting to be submitted, in manifest order.
    submit_queue: VecDeque<usize>,
    /// Jobs waiting for their local images to be uploaded.
    blocked_on_upload: Vec<usize>,
    uploads: HashMap<String, UploadState>,
    upload_queue: VecDeque<String>,
    /// Failed tries per local image, and the images named by `Wake::RetryUpload`.
    upload_tries: HashMap<String, u32>,
    upload_paths: Vec<String>,
    timers: BinaryHeap<Reverse<(Instant, Wake)>>,
    due_polls: VecDeque<usize>,
    /// Jobs whose lost submit is to be looked up by its `client_business_id` now.
    due_lookups: VecDeque<usize>,
    /// Finished tasks waiting for a download slot, soonest-expiring first.
    download_queue: BinaryHeap<Reverse<(i64, usize)>>,
    /// Tasks submitted (or being submitted) and not finished.
    in_flight: usize,
    active_submits: usize,
    /// Submits whose write-ahead record is written in this pump, not yet spawned.
    preparing: usize,
    active_calls: usize,
    active_downloads: usize,
    /// No API call has succeeded yet: one at a time, so a bad key or URL costs one request.
    verified: bool,
    /// Estimated cost of every task created or possibly created, this run and before.
    spent: f64,
    /// `limits.budget` stopped a submit (logged once).
    budget_reached: bool,
    /// Tells an outage from a job's failure; gates every API call while the service is down.
    breaker: Breaker,
    /// The balance ran out (402 or a quota code): no more submits; what is paid is finished.
    out_of_money: Option<String>,
    /// A poll answer carrying another task's id was seen (logged once).
    wrong_id_logged: bool,
    stopping: Option<Instant>,
    fatal: Option<RunError>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("campaign", &self.campaign.name)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// See [`Engine::held`].
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub paused: Option<Duration>,
    pub slowed: Option<(&'static str, f64)>,
    pub outage: Option<Duration>,
}

/// How a run ended.
#[derive(Debug)]
pub enum Ending {
    Finished,
    Interrupted,
    Fatal(RunError),
}

impl Engine {
    pub fn new(
        campaign: Arc<Campaign>,
        opts: RunOptions,
        state: CampaignState,
        now: Now,
    ) -> Engine {
        let limits = &campaign.limits;
        let limiter = Limiter::new(limits, opts.time_scale);
        let breaker = Breaker::new(limits.outage_timeout, opts.time_scale);
        let poller = Poller::new(
            limits.poll_queued.mul_f64(opts.time_scale),
            limits.poll_in_progress.mul_f64(opts.time_scale),
            opts.time_scale,
        );
        let spent = crate::plan::spent(&campaign, &state).known();
        let mut others = state;
        let slots: Vec<JobState> = campaign
            .jobs
            .iter()
            .map(|job| others.take(&job.id).unwrap_or_default())
            .collect();
        let mut counts = super::progress::Counts::default();
        let mut live = vec![Live::default(); campaign.jobs.len()];
        for ((job, slot), live) in campaign.jobs.iter().zip(&slots).zip(&mut live) {
            live.counted = opts.only.as_ref().is_none_or(|only| only.contains(&job.id));
            if live.counted {
                *count_of(&mut counts, &slot.phase) += 1;
            }
        }
        Engine {
            live,
            tracking: Default::default(),
            campaign,
            opts,
            slots,
            others,
            counts,
            notes: Default::default(),
            out: Vec::new(),
            now,
            limiter,
            poller,
            epoch: now.at,
            submit_queue: VecDeque::new(),
            blocked_on_upload: Vec::new(),
            uploads: HashMap::new(),
            upload_queue: VecDeque::new(),
            upload_tries: HashMap::new(),
            upload_paths: Vec::new(),
            timers: BinaryHeap::new(),
            due_polls: VecDeque::new(),
            due_lookups: VecDeque::new(),
            download_queue: BinaryHeap::new(),
            in_flight: 0,
            active_submits: 0,
            preparing: 0,
            active_calls: 0,
            active_downloads: 0,
            verified: false,
            spent,
            budget_reached: false,
            breaker,
            out_of_money: None,
            wrong_id_logged: false,
            stopping: None,
            fatal: None,
        }
    }

    /// A command the driver did not carry out (the journal failed before it):
    /// the call it stood for is not awaited.
    pub fn not_sent(&mut self, command: &Command) {
        match command {
            Command::Submit { .. } => {
                self.active_submits -= 1;
                self.active_calls -= 1;
            }
            Command::Poll { .. } | Command::Lookup { .. } | Command::Upload { .. } => {
                self.active_calls -= 1;
            }
            Command::Download { .. } => self.active_downloads -= 1,
            Command::Record(..) | Command::Sync | Command::Rename(_) => {}
        }
    }

    /// The commands of the step just taken, in order.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.out)
    }

    /// The journal's view of every job, for the report, with this run's
    /// reasons for the jobs it left unsent (see `notes`).
    pub fn into_state(self) -> CampaignState {
        let mut state = self.others;
        for (idx, slot) in self.slots.into_iter().enumerate() {
            *state.job_or_new(&self.campaign.jobs[idx].id) = slot;
        }
        for (idx, note) in self.notes {
            state.job_or_new(&self.campaign.jobs[idx].id).last_error = Some(note);
        }
        state
    }

    /// What the journal says of job number `idx` so far.
    pub fn job_state(&self, idx: usize) -> &JobState {
        &self.slots[idx]
    }

    /// The tracking of job `idx`'s task (a fresh one if it had none).
    fn tracked(&mut self, idx: usize) -> &mut Tracking {
        self.tracking.entry(idx).or_default()
    }

    fn job(&self, idx: usize) -> &Job {
        &self.campaign.jobs[idx]
    }

    fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.opts.time_scale)
    }

    /// A final outcome other than success: recorded with its reason.
    fn finish(&mut self, idx: usize, status: Status, error: String) -> Result<(), RunError> {
        let job = self.job(idx).id.clone();
        self.record(
            idx,
            Record::Finished {
                job,
                status: status.as_str().into(),
                error,
            },
        )
    }

    /// Records an event of job `idx`: applied to its slot now (the counts
    /// follow), appended to the journal by the driver.
    fn record(&mut self, idx: usize, record: Record) -> Result<(), RunError> {
        debug_assert_eq!(record.job(), Some(self.campaign.jobs[idx].id.as_str()));
        let t = crate::journal::stamp(self.now.wall);
        let slot = &mut self.slots[idx];
        if self.live[idx].counted {
            *count_of(&mut self.counts, &slot.phase) -= 1;
        }
        slot.apply(&t, record.clone());
        if self.live[idx].counted {
            *count_of(&mut self.counts, &slot.phase) += 1;
        }
        self.notes.remove(&idx);
        self.out.push(Command::Record(t, record));
        Ok(())
    }

    /// Records an upload (no job's).
    fn record_upload(&mut self, record: Record) -> Result<(), RunError> {
        let t = crate::journal::stamp(self.now.wall);
        self.others.apply(&t, record.clone());
        self.out.push(Command::Record(t, record));
        Ok(())
    }

    /// Says why this run leaves job `idx` unsent (see `notes`).
    fn note(&mut self, idx: usize, why: String) {
        self.notes.insert(idx, why);
    }

    /// Puts every job where its journal state says it belongs; `skipped` (by
    /// index, from `--skip-existing`) are left where they are.
    /// `fresh` says whether an image uploaded before is still the file on disk.
    pub fn plan(
        &mut self,
        skipped: &[usize],
        fresh: impl Fn(&str, &crate::state::Uploaded) -> bool,
    ) -> Result<(), RunError> {
        let now = self.now.at;
        for (path, uploaded) in &self.others.uploads {
            self.uploads
                .insert(path.clone(), UploadState::Done(uploaded.url.clone()));
        }
        for idx in 0..self.campaign.jobs.len() {
            if let Some(only) = &self.opts.only
                && !only.contains(&self.campaign.jobs[idx].id)
            {
                continue;
            }
            if skipped.binary_search(&idx).is_ok() {
                let path = self.campaign.video_path(&self.campaign.jobs[idx]);
                let why = format!(
                    "not submitted: {} already exists (--skip-existing)",
                    path.display()
                );
                self.note(idx, why);
                continue;
            }
            let job_state = self.job_state(idx);
            match job_state.phase {
                Phase::Pending => self.submit_queue.push_back(idx),
                Phase::TaskFailed { .. }
                    if job_state.attempts < self.campaign.limits.max_attempts =>
                {
                    self.submit_queue.push_back(idx)
                }
                // Failed before any task existed (a refused submit, an upload that
                // failed): nothing was paid, so a plain rerun tries again.
                Phase::Finished {
                    status: Status::Failed,
                } if job_state.failed_unpaid() => self.submit_queue.push_back(idx),
                Phase::Running { .. } => {
                    self.in_flight += 1;
                    self.start_tracking(idx, now, Duration::ZERO);
                    self.tracked(idx).submitted = None;
                }
                Phase::Completed { .. } => self.queue_download(idx),
                // A lost submit of a model that takes `client_business_id`: look it up.
                // It may be a task, so it holds a slot until the answer says.
                Phase::Unknown { .. } if job_state.client_business_id.is_some() => {
                    self.in_flight += 1;
                    self.due_lookups.push_back(idx);
                }
                _ => {}
            }
        }
        // Local images needed by jobs still to submit, whose uploads are not known or changed.
        let mut needed: Vec<String> = Vec::new();
        for &idx in &self.submit_queue {
            for image in &self.campaign.jobs[idx].images {
                if let ImageRef::Local(path) = image {
                    let key = path.display().to_string();
                    if !needed.contains(&key) {
                        needed.push(key);
                    }
                }
            }
        }
        for key in needed {
            let fresh = self
                .others
                .uploads
                .get(&key)
                .is_some_and(|up| fresh(&key, up));
            if !fresh {
                self.uploads.insert(key.clone(), UploadState::Queued);
                self.upload_queue.push_back(key);
            }
        }
        Ok(())
    }

    pub fn fail_fatal(&mut self, e: RunError) -> Option<Instant> {
        if self.fatal.is_none() {
            self.fatal = Some(e);
        }
        None
    }

    /// A first Ctrl-C: no new submits; the answers of those sent are still awaited a while.
    pub fn begin_stop(&mut self, now: Now) {
        self.now = now;
        if self.stopping.is_none() {
            tracing::warn!(
                "interrupted: no new submits; waiting up to {}s for submits already sent, then saving state (Ctrl-C again to quit now)",
                STOP_GRACE.as_secs()
            );
            self.stopping = Some(now.at + STOP_GRACE);
        }
    }

    /// How the run ends, once it does.
    pub fn ending(&self, now: Now) -> Option<Ending> {
        if let Some(fatal) = &self.fatal {
            // Submits already sent still get their answers recorded.
            if self.active_submits == 0 {
                return Some(Ending::Fatal(fatal.clone()));
            }
            return None;
        }
        if let Some(deadline) = self.stopping {
            if self.active_submits == 0 || now.at >= deadline {
                return Some(Ending::Interrupted);
            }
            return None;
        }
        let idle = self.active_calls == 0
            && self.active_downloads == 0
            && self.submit_queue.is_empty()
            && self.blocked_on_upload.is_empty()
            && self.upload_queue.is_empty()
            && self.timers.is_empty()
            && self.due_polls.is_empty()
            && self.due_lookups.is_empty()
            && self.download_queue.is_empty();
        if !idle {
            return None;
        }
        // Out of money: what was paid is finished; the run still says why it stopped.
        Some(match &self.out_of_money {
            Some(message) => Ending::Fatal(RunError::Balance {
                message: message.clone(),
            }),
            None => Ending::Finished,
        })
    }

    /// Starts whatever may start now; returns when to look again. The calls
    /// to make are in [`Engine::take_commands`].
    pub fn pump(&mut self, now: Now) -> Option<Instant> {
        self.now = now;
        match self.pump_at(now.at) {
            Ok(wake) => wake,
            Err(e) => self.fail_fatal(e),
        }
    }

    fn pump_at(&mut self, now: Instant) -> Result<Option<Instant>, RunError> {
        let mut wake: Option<Instant> = None;
        let soonest = |t: Instant, wake: &mut Option<Instant>| {
            *wake = Some(wake.map_or(t, |w| w.min(t)));
        };
        if self.fatal.is_some() || self.stopping.is_some() {
            if let Some(deadline) = self.stopping {
                soonest(deadline, &mut wake);
            }
            return Ok(wake);
        }
        while let Some(Reverse((at, what))) = self.timers.peek().copied() {
            if at > now {
                soonest(at, &mut wake);
                break;
            }
            self.timers.pop();
            match what {
                Wake::Poll(idx, generation) => {
                    if self.live[idx].poll_generation == generation {
                        self.due_polls.push_back(idx);
                    }
                }
                Wake::RetrySubmit(idx) if self.out_of_money.is_none() => {
                    self.submit_queue.push_front(idx)
                }
                Wake::RetrySubmit(idx) => {
                    self.note(
                        idx,
                        "not submitted: the account's balance ran out; top up and run again".into(),
                    );
                }
                Wake::Lookup(idx) => self.due_lookups.push_back(idx),
                Wake::RetryDownload(idx) => self.queue_download(idx),
                Wake::RetryUpload(n) => {
                    if let Some(path) = self.upload_paths.get(n).cloned() {
                        self.uploads.insert(path.clone(), UploadState::Queued);
                        self.upload_queue.push_back(path);
                    }
                }
            }
        }
        self.start_downloads()?;
        if self.breaker.timed_out(now) {
            let secs = self.campaign.limits.outage_timeout.as_secs();
            let last = self.breaker.last_error().to_string();
            tracing::error!(
                "the service was unreachable for {secs} s (limits.outage_timeout); stopping"
            );
            self.fail_fatal(RunError::Outage { secs, last });
            return Ok(wake);
        }
        if let Some(at) = self.breaker.gives_up_at() {
            soonest(at, &mut wake);
        }
        let mut submits = Vec::new();
        // A bucket with no room now is skipped for the rest of this pump; the other goes on.
        let (mut submit_room, mut query_room) = (true, true);
        while let Some(action) = self.next_action(submit_room, query_room) {
            if !self.verified && self.active_calls + self.preparing > 0 {
                self.put_back(action);
                break;
            }
            let probe = match self.breaker.gate(now) {
                Gate::Go => false,
                Gate::Probe => true,
                Gate::Wait(at) => {
                    self.put_back(action);
                    if let Some(at) = at {
                        soonest(at, &mut wake);
                    }
                    break;
                }
            };
            let bucket = action.bucket();
            if let Err(at) = self.limiter.try_acquire(bucket, now) {
                self.put_back(action);
                soonest(at, &mut wake);
                match bucket {
                    Bucket::Submit => submit_room = false,
                    Bucket::Query => query_room = false,
                }
                continue;
            }
            match action {
                Action::Upload(path) => self.spawn_upload(path),
                Action::Poll(idx) => self.spawn_poll(idx),
                Action::Lookup(idx) => self.spawn_lookup(idx),
                Action::Submit(idx) => {
                    if let Some(submit) = self.prepare_submit(idx)? {
                        self.preparing += 1;
                        submits.push(submit);
                    }
                }
            }
            if probe {
                // One call finds out whether the service is back; the rest wait for its answer.
                self.breaker.probe_sent();
                tracing::debug!("service unreachable: probing with one call");
                break;
            }
        }
        if !submits.is_empty() {
            // The write-ahead records must be on disk before any of these requests leave.
            self.preparing = 0;
            self.out.push(Command::Sync);
            for (idx, attempt, body) in submits {
                self.spawn_submit(idx, attempt, body);
            }
        }
        Ok(wake)
    }

    /// The next API call in priority order, taken off its queue; uploads and
    /// submits only with `submits`, polls and lookups only with `polls`.
    fn next_action(&mut self, submits: bool, polls: bool) -> Option<Action> {
        // Settling a lost submit comes first: it may free a slot or adopt a task.
        if polls && let Some(idx) = self.due_lookups.pop_front() {
            return Some(Action::Lookup(idx));
        }
        let poll = |d: &mut Self| {
            if polls {
                d.pop_due_poll().map(Action::Poll)
            } else {
                None
            }
        };
        if self.out_of_money.is_some() || !submits {
            return poll(self);
        }
        if let Some(path) = self.upload_queue.pop_front() {
            return Some(Action::Upload(path));
        }
        let campaign = Arc::clone(&self.campaign);
        let limits = &campaign.limits;
        while self.in_flight + self.active_submits + self.preparing < limits.max_in_flight
            && self.active_submits + self.preparing < limits.submit_concurrency
        {
            let Some(idx) = self.submit_queue.pop_front() else {
                break;
            };
            if !self.within_budget(idx) {
                continue;
            }
            match self.images_ready(idx) {
                Ok(true) => return Some(Action::Submit(idx)),
                Ok(false) => self.blocked_on_upload.push(idx),
                Err(error) => {
                    if let Err(e) = self.finish(idx, Status::Failed, error) {
                        self.fail_fatal(e);
                    }
                }
            }
        }
        poll(self)
    }

    /// The next due poll still worth sending: a job can be queued twice (moved
    /// while it waited for a token), and a task may have ended since.
    fn pop_due_poll(&mut self) -> Option<usize> {
        while let Some(idx) = self.due_polls.pop_front() {
            let running = matches!(self.job_state(idx).phase, Phase::Running { .. });
            let polling = self.tracking.get(&idx).is_some_and(|t| t.polling);
            if running && !polling {
                return Some(idx);
            }
        }
        None
    }

    /// `limits.budget`: would this job's estimated cost take the run past it?
    /// A job over budget stays pending (the report says so); nothing is paid for it.
    fn within_budget(&mut self, idx: usize) -> bool {
        let Some(budget) = self.campaign.limits.budget else {
            return true;
        };
        let cost = crate::plan::job_cost(&self.campaign.pricing, self.job(idx)).unwrap_or(0.0);
        if crate::plan::fits_budget(self.spent, cost, budget) {
            return true;
        }
        if !self.budget_reached {
            self.budget_reached = true;
            let currency = &self.campaign.pricing.currency;
            tracing::warn!(
                "budget reached: {} of {} spent by estimate; no more submits (raise limits.budget and run again)",
                crate::plan::money(self.spent, currency),
                crate::plan::money(budget, currency)
            );
        }
        self.note(idx, crate::report::OVER_BUDGET.into());
        false
    }

    fn put_back(&mut self, action: Action) {
        match action {
            Action::Upload(path) => self.upload_queue.push_front(path),
            Action::Submit(idx) => self.submit_queue.push_front(idx),
            Action::Poll(idx) => self.due_polls.push_front(idx),
            Action::Lookup(idx) => self.due_lookups.push_front(idx),
        }
    }

    /// Ok(true) when every local image of the job has a URL.
    fn images_ready(&self, idx: usize) -> Result<bool, String> {
        for image in &self.job(idx).images {
            if let ImageRef::Local(path) = image {
                match self.uploads.get(&path.display().to_string()) {
                    Some(UploadState::Done(_)) => {}
                    Some(UploadState::Failed(e)) => {
                        return Err(format!("upload of {} failed: {e}", path.display()));
                    }
                    _ => return Ok(false),
                }
            }
        }
        Ok(true)
    }

    fn image_urls(&self, idx: usize) -> Vec<String> {
        self.job(idx)
            .images
            .iter()
            .map(|image| match image {
                ImageRef::Url(url) => url.clone(),
                ImageRef::Local(path) => match self.uploads.get(&path.display().to_string()) {
                    Some(UploadState::Done(url)) => url.clone(),
                    _ => String::new(),
                },
            })
            .collect()
    }

    /// Writes the write-ahead record; the caller syncs, then spawns.
    fn prepare_submit(
        &mut self,
        idx: usize,
    ) -> Result<Option<(usize, u32, serde_json::Value)>, RunError> {
        let job = self.job(idx).clone();
        let state = self.job_state(idx);
        // A lost submit looked up and not found is sent again as the same attempt.
        let attempt = state.resend_attempt.unwrap_or(state.attempts + 1);
        let mut body = job.request_body(&self.image_urls(idx));
        let takes_id = self
            .campaign
            .catalogue
            .entry(job.model.as_str())
            .is_some_and(|entry| entry.takes_client_business_id());
        let client_business_id =
            takes_id.then(
                || match (&state.resend_attempt, &state.client_business_id) {
                    (Some(_), Some(id)) => id.clone(),
                    _ => client_business_id(&self.campaign.name, &job, attempt),
                },
            );
        if let (Some(id), Some(fields)) = (&client_business_id, body.as_object_mut()) {
            fields.insert("client_business_id".into(), id.clone().into());
        }
        self.spent += crate::plan::job_cost(&self.campaign.pricing, &job).unwrap_or(0.0);
        self.record(
            idx,
            Record::Submitting {
                job: job.id.clone(),
                attempt,
                fingerprint: job.fingerprint(),
                client_business_id,
            },
        )?;
        Ok(Some((idx, attempt, body)))
    }

    fn spawn_submit(&mut self, idx: usize, attempt: u32, body: serde_json::Value) {
        self.active_submits += 1;
        self.active_calls += 1;
        tracing::debug!(job = %self.job(idx).id, attempt, "submitting");
        self.out.push(Command::Submit {
            job: idx,
            attempt,
            body,
        });
    }

    fn spawn_poll(&mut self, idx: usize) {
        let Some(task_id) = self.job_state(idx).task_id().map(String::from) else {
            return;
        };
        if self.tracking.get(&idx).is_some_and(|t| t.polling) {
            // Queued twice (a poll moved by `reschedule_waiting` while it waited
            // for a token): one poll of a task at a time.
            return;
        }
        self.active_calls += 1;
        let sent = self.now.at;
        let tracking = self.tracked(idx);
        tracking.polling = true;
        tracking.poll_sent = Some(sent);
        self.out.push(Command::Poll { job: idx, task_id });
    }

    /// Asks for the task a lost submit may have created, by its `client_business_id`.
    fn spawn_lookup(&mut self, idx: usize) {
        let Some(id) = self.job_state(idx).client_business_id.clone() else {
            return;
        };
        self.active_calls += 1;
        tracing::debug!(job = %self.job(idx).id, client_business_id = %id, "looking up a lost submit");
        self.out.push(Command::Lookup {
            job: idx,
            client_business_id: id,
        });
    }

    fn spawn_upload(&mut self, path: String) {
        self.active_calls += 1;
        self.uploads.insert(path.clone(), UploadState::Running);
        self.out.push(Command::Upload { path });
    }

    fn start_downloads(&mut self) -> Result<(), RunError> {
        while self.active_downloads < self.campaign.limits.downloads {
            let Some(Reverse((_, idx))) = self.download_queue.pop() else {
                break;
            };
            self.spawn_download(idx)?;
        }
        Ok(())
    }

    fn queue_download(&mut self, idx: usize) {
        if let Phase::Completed { expires_at, .. } = self.job_state(idx).phase {
            self.download_queue
                .push(Reverse((expires_at.unwrap_or(i64::MAX), idx)));
        }
    }

    fn output_path(&self, idx: usize) -> PathBuf {
        self.campaign.video_path(self.job(idx))
    }

    fn spawn_download(&mut self, idx: usize) -> Result<(), RunError> {
        let (url, expires_at) = match &self.job_state(idx).phase {
            Phase::Completed {
                url, expires_at, ..
            } => (url.clone(), *expires_at),
            _ => return Ok(()),
        };
        let unix_now = self.now.unix();
        if let Some(expires_at) = expires_at
            && unix_now >= expires_at
        {
            return self.finish(
                idx,
                Status::Expired,
                format!(
                    "video URL expired at {} before it was downloaded",
                    fmt_unix(expires_at)
                ),
            );
        }
        let path = self.output_path(idx);
        self.active_downloads += 1;
        let now = self.now.at;
        let limits = &self.campaign.limits;
        let job = self.job(idx);
        let download_limits = DownloadLimits {
            max_bytes: limits.max_video_bytes,
            min_rate: limits.download_min_rate,
            stall: self.scaled(limits.download_stall),
            // `expires_at` is the server's wall clock: only its distance from now is known here.
            deadline: expires_at
                .map(|at| now + Duration::from_secs(u64::try_from(at - unix_now).unwrap_or(0))),
            allow_gif: job
                .metadata
                .get("enable_gif")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        };
        let live = &self.live[idx];
        let start = if live.submitted_here && live.download_errors == 0 {
            download::Start::Fresh
        } else {
            download::Start::Resume
        };
        self.out.push(Command::Download {
            job: idx,
            url,
            path,
            limits: download_limits,
            start,
        });
        Ok(())
    }

    /// One thing that happened; its commands are in [`Engine::take_commands`].
    pub fn handle(&mut self, event: Event, now: Now) {
        self.now = now;
        if let Err(e) = self.on_event(event) {
            self.fail_fatal(e);
        }
    }

    fn on_event(&mut self, event: Event) -> Result<(), RunError> {
        match event {
            Event::Uploaded { path, result } => self.on_uploaded(path, result),
            Event::Submitted {
                job,
                attempt,
                result,
            } => self.on_submitted(job, attempt, result),
            Event::Polled { job, result } => self.on_polled(job, result),
            Event::LookedUp { job, result } => self.on_looked_up(job, result),
            Event::Downloaded { job, result } => self.on_downloaded(job, result),
        }
    }

    /// What an answer says about the world. Any answer of the API itself (a
    /// task, or an error of the request's own) shows the service is there and
    /// closes the breaker; a failure of the world counts toward an outage.
    /// Returns how the policy classes the error, if it is one.
    fn on_api_result<T>(&mut self, result: &Result<T, ApiError>, call: Call) -> Option<Failure> {
        let now = self.now.at;
        match result {
            Ok(_) => {
                self.verified = true;
                self.limiter.on_success(call.bucket());
                self.service_answered(now);
                None
            }
            Err(e) => {
                let failure = retry::classify(e, call);
                match failure {
                    Failure::World | Failure::Ambiguous => self.world_failure(now, e),
                    _ => self.service_answered(now),
                }
                Some(failure)
            }
        }
    }

    fn service_answered(&mut self, now: Instant) {
        if let Some(down) = self.breaker.on_success(now) {
            tracing::info!(
                "the service answers again after {:.0}s; resuming",
                down.as_secs_f64()
            );
        }
    }

    fn world_failure(&mut self, now: Instant, e: &ApiError) {
        if self.breaker.on_world_failure(now, &e.to_string()) {
            tracing::warn!(
                "the service looks unreachable ({e}); every call pauses and one at a time probes \
                 (the run stops after limits.outage_timeout = {}; no job is marked failed)",
                humantime::format_duration(self.campaign.limits.outage_timeout)
            );
        }
    }

    /// A success whose `X-RateLimit-Remaining` is 0: that budget waits for its reset.
    fn budget_said_empty(&mut self, bucket: Bucket, task: &Task, now: Instant) {
        if let Some(wait) = task.budget_empty_for {
            tracing::debug!(
                "the provider's {} budget is empty for {:.1}s (X-RateLimit-Remaining: 0)",
                bucket.name(),
                wait.as_secs_f64()
            );
            self.limiter.hold(bucket, now + wait);
        }
    }

    /// A 429: the budget its category names (both when it names none) waits
    /// for the longer of `Retry-After` and the reset, and is slowed. Never a job's failure.
    fn rate_limited(
        &mut self,
        now: Instant,
        call: &str,
        retry_after: Option<Duration>,
        category: Option<&str>,
        reset: Option<Duration>,
    ) {
        let bucket = Bucket::from_category(category);
        let wait = match (retry_after, reset) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let until = self.limiter.slow_down(now, bucket, wait);
        let which = match bucket {
            Some(bucket) => format!("{} calls wait", bucket.name()),
            None => "submits and polls wait".to_string(),
        };
        tracing::warn!(
            "429 on {call} ({}): {which} {:.1}s",
            category.unwrap_or("no category"),
            (until - now).as_secs_f64()
        );
    }

    /// 402 or a quota code: no more submits. Tasks already paid for are
    /// polled and downloaded to the end; the jobs not sent stay pending.
    fn stop_for_money(&mut self, e: &ApiError) {
        if self.out_of_money.is_some() {
            return;
        }
        tracing::error!(
            "the balance is too low ({e}): no more submits; finishing the tasks already paid for"
        );
        self.out_of_money = Some(e.to_string());
        let waiting: Vec<usize> = self
            .submit_queue
            .drain(..)
            .chain(self.blocked_on_upload.drain(..))
            .collect();
        self.upload_queue.clear();
        for idx in waiting {
            self.note(
                idx,
                "not submitted: the account's balance ran out; top up and run again".into(),
            );
        }
    }

    /// The key was refused: stop everything, name the variable.
    fn auth_failure(&mut self, e: &ApiError) {
        let fatal = RunError::Auth {
            env: self.campaign.api.api_key_env.clone(),
            message: e.to_string(),
        };
        self.fail_fatal(fatal);
    }

    fn on_uploaded(
        &mut self,
        path: String,
        result: Result<(String, String), UploadError>,
    ) -> Result<(), RunError> {
        self.active_calls -= 1;
        match result {
            Ok((sha256, url)) => {
                self.verified = true;
                self.limiter.on_success(Bucket::Submit);
                self.service_answered(self.now.at);
                self.record_upload(Record::Upload {
                    path: path.clone(),
                    sha256,
                    url: url.clone(),
                })?;
                self.uploads.insert(path, UploadState::Done(url));
            }
            Err(error) => self.on_upload_failed(path, error),
        }
        // Jobs that waited on this upload go back to the front of the line.
        for idx in std::mem::take(&mut self.blocked_on_upload)
            .into_iter()
            .rev()
        {
            self.submit_queue.push_front(idx);
        }
        Ok(())
    }

    /// Uploads create nothing paid, so like polls they are safe to repeat: a 429
    /// slows the whole run and the upload keeps its place; a failure of the
    /// world retries with backoff (during an outage without counting). Only a
    /// refused key, a file that cannot be read, an upload the API refuses, or
    /// too many tries fail it (and with it the jobs that need the image; they
    /// cost nothing, so a plain rerun tries them again).
    fn on_upload_failed(&mut self, path: String, error: UploadError) {
        let now = self.now.at;
        let failure = match &error {
            UploadError::Api(e) => {
                let failure = retry::classify(e, Call::Upload);
                match failure {
                    Failure::World | Failure::Ambiguous => self.world_failure(now, e),
                    _ => self.service_answered(now),
                }
                Some(failure)
            }
            UploadError::Read(_) => None,
        };
        let counts = !self.breaker.is_open();
        let tries = {
            let tries = self.upload_tries.entry(path.clone()).or_default();
            if counts {
                *tries += 1;
            }
            *tries
        };
        match (failure, &error) {
            (Some(Failure::Key), UploadError::Api(e)) => {
                tracing::error!("upload of {path} failed: {error}");
                self.auth_failure(e);
            }
            (Some(Failure::Money), UploadError::Api(e)) => {
                tracing::error!("upload of {path} failed: {error}");
                self.stop_for_money(e);
            }
            (
                Some(Failure::RateLimited {
                    retry_after,
                    category,
                    reset,
                }),
                _,
            ) => {
                self.rate_limited(now, "upload", retry_after, category.as_deref(), reset);
                // Not the upload's fault: it keeps its place and its tries.
                if let Some(tries) = self.upload_tries.get_mut(&path) {
                    *tries = tries.saturating_sub(1);
                }
                self.uploads.insert(path.clone(), UploadState::Queued);
                self.upload_queue.push_front(path);
                return;
            }
            (
                Some(Failure::World | Failure::Ambiguous | Failure::SubmitLimiterDown { .. }),
                UploadError::Api(_),
            ) if tries < retry::MAX_SUBMIT_TRIES => {
                let delay = self.scaled(Backoff::DEFAULT.delay(tries));
                tracing::warn!(
                    "upload of {path} failed ({error}); retrying in {:.1}s",
                    delay.as_secs_f64()
                );
                self.upload_paths.push(path.clone());
                let n = self.upload_paths.len() - 1;
                self.uploads.insert(path, UploadState::Running);
                self.timers
                    .push(Reverse((now + delay, Wake::RetryUpload(n))));
                return;
            }
            _ => tracing::error!("upload of {path} failed: {error}"),
        }
        self.uploads
            .insert(path, UploadState::Failed(error.to_string()));
    }

    fn on_submitted(
        &mut self,
        idx: usize,
        attempt: u32,
        result: Result<Task, ApiError>,
    ) -> Result<(), RunError> {
        self.active_submits -= 1;
        self.active_calls -= 1;
        let failure = self.on_api_result(&result, Call::Submit);
        let id = self.job(idx).id.clone();
        let now = self.now.at;
        if let Ok(task) = &result {
            self.budget_said_empty(Bucket::Submit, task, now);
        }
        match result {
            Ok(task) => {
                self.record(
                    idx,
                    Record::Submitted {
                        job: id.clone(),
                        attempt,
                        task_id: task.id.clone(),
                    },
                )?;
                tracing::debug!(job = %id, task = %task.id, attempt, "submitted");
                self.in_flight += 1;
                self.live[idx].submit_errors = 0;
                self.live[idx].submitted_here = true;
                let load = Load {
                    unsent: !self.submit_queue.is_empty(),
                    submit_per_second: self.limiter.current_rps(Bucket::Submit),
                    max_in_flight: self.campaign.limits.max_in_flight,
                };
                let (first, scout) = self.poller.first(self.job(idx).model.as_str(), load);
                self.start_tracking(idx, now, first);
                self.live[idx].scout = scout;
            }
            Err(e) => {
                let failure = failure.unwrap_or(Failure::World);
                if failure == Failure::Ambiguous {
                    // The request may have created a task: never resent silently.
                    tracing::warn!(job = %id, "submit outcome unknown: {e}");
                    self.record(
                        idx,
                        Record::SubmitUnknown {
                            job: id,
                            attempt,
                            error: format!("submit outcome unknown: {e}"),
                        },
                    )?;
                    if self.job_state(idx).client_business_id.is_some() {
                        // Looked up by its client_business_id once the service had time
                        // to store it; until then it may be a task, so it keeps its slot.
                        self.in_flight += 1;
                        let delay = self.scaled(self.campaign.limits.poll_queued);
                        self.timers.push(Reverse((now + delay, Wake::Lookup(idx))));
                    }
                    return Ok(());
                }
                // No task was created: its estimated cost is not spent.
                self.spent -=
                    crate::plan::job_cost(&self.campaign.pricing, self.job(idx)).unwrap_or(0.0);
                self.record(
                    idx,
                    Record::SubmitRejected {
                        job: id.clone(),
                        attempt,
                        error: e.to_string(),
                    },
                )?;
                self.after_submit_failure(idx, failure, &e, now)?;
            }
        }
        Ok(())
    }

    /// A submit that created no task: the policy says whose failure it was.
    /// Only a failure of the job's own (or one that kept coming back while the
    /// rest of the service answered) ends the job, and then nothing was paid,
    /// so a plain rerun tries it again.
    fn after_submit_failure(
        &mut self,
        idx: usize,
        failure: Failure,
        e: &ApiError,
        now: Instant,
    ) -> Result<(), RunError> {
        let id = self.job(idx).id.clone();
        match failure {
            Failure::Key => self.auth_failure(e),
            Failure::Money => {
                self.stop_for_money(e);
                self.note(
                    idx,
                    format!("not submitted: the balance is too low ({e}); top up and run again"),
                );
            }
            Failure::RateLimited {
                retry_after,
                category,
                reset,
            } => {
                // Not the job's fault: it keeps its place and its tries.
                self.rate_limited(now, "submit", retry_after, category.as_deref(), reset);
                self.submit_queue.push_front(idx);
            }
            Failure::SubmitLimiterDown { retry_after } => {
                // The provider's submit limiter is down; polls still work.
                let delay = retry_after.unwrap_or_else(|| Backoff::DEFAULT.ceiling(2));
                let delay = self.scaled(delay);
                tracing::warn!(job = %id, "the service cannot take submits right now ({e}); trying again in {:.1}s", delay.as_secs_f64());
                self.timers
                    .push(Reverse((now + delay, Wake::RetrySubmit(idx))));
            }
            Failure::World | Failure::Ambiguous => {
                // During an outage the breaker holds every call; a failure then says
                // nothing about this job. Outside one, a job whose submit keeps
                // failing while others go through stops after MAX_SUBMIT_TRIES.
                let live = &mut self.live[idx];
                if !self.breaker.is_open() {
                    live.submit_errors += 1;
                }
                let tries = live.submit_errors;
                if tries >= retry::MAX_SUBMIT_TRIES {
                    let error = format!(
                        "submit failed {tries} times while the service answered other calls, last: {e}; \
                         no task was created, so a plain rerun tries it again"
                    );
                    tracing::error!(job = %id, "{error}");
                    return self.finish(idx, Status::Failed, error);
                }
                let delay = self.scaled(Backoff::DEFAULT.delay(tries));
                tracing::debug!(job = %id, "submit failed ({e}); trying again in {:.1}s", delay.as_secs_f64());
                self.timers
                    .push(Reverse((now + delay, Wake::RetrySubmit(idx))));
            }
            Failure::Job => {
                let error = format!("rejected by the API: {e}");
                tracing::error!(job = %id, "{error}");
                self.finish(idx, Status::Failed, error)?;
            }
        }
        Ok(())
    }

    /// Starts polling a task: first poll after `first`, timeout from now.
    fn start_tracking(&mut self, idx: usize, now: Instant, first: Duration) {
        let timeout = self.scaled(self.campaign.limits.task_timeout);
        self.tracking.insert(
            idx,
            Tracking {
                deadline: Some(now + timeout),
                submitted: Some(now),
                ..Tracking::default()
            },
        );
        self.live[idx].scout = false;
        self.schedule_poll(idx, now + first);
    }

    /// A task that was probing for its model's time is gone without an answer.
    fn lose_scout(&mut self, idx: usize) {
        if std::mem::take(&mut self.live[idx].scout) {
            self.poller.scout_lost(self.job(idx).model.as_str());
        }
    }

    /// (Re)schedules a job's next poll; any earlier timer for it goes stale.
    fn schedule_poll(&mut self, idx: usize, at: Instant) {
        let live = &mut self.live[idx];
        live.poll_generation = live.poll_generation.wrapping_add(1);
        self.timers
            .push(Reverse((at, Wake::Poll(idx, live.poll_generation))));
    }

    /// The running tasks of `model` (only its scouts, if `scouts`) whose first
    /// poll has not been sent, with their submit times, in job order.
    fn awaiting_first_poll(
        &self,
        model: crate::models::Model,
        scouts: bool,
    ) -> Vec<(usize, Instant)> {
        let mut waiting: Vec<(usize, Instant)> = self
            .tracking
            .iter()
            .filter(|(idx, t)| {
                self.campaign.jobs[**idx].model == model
                    && (!scouts || self.live[**idx].scout)
                    && !t.polling
                    && t.misses == 0
                    && matches!(self.slots[**idx].phase, Phase::Running { .. })
            })
            .filter_map(|(idx, t)| Some((*idx, t.submitted?)))
            .collect();
        waiting.sort_unstable();
        waiting
    }

    /// A model just got its first time estimate: tasks that waited for it are
    /// moved to their expected finish.
    fn reschedule_waiting(&mut self, model: crate::models::Model, now: Instant) {
        for (idx, submitted) in self.awaiting_first_poll(model, false) {
            if let Some(wait) = self
                .poller
                .until_expected(model.as_str(), now.duration_since(submitted))
            {
                self.schedule_poll(idx, now + wait);
            }
        }
    }

    /// A model's first task left its queue before any estimate: its reserve
    /// scouts, waiting at the cadence, probe from the same age.
    fn release_scouts(&mut self, model: crate::models::Model, start: Duration, now: Instant) {
        for (idx, submitted) in self.awaiting_first_poll(model, true) {
            self.schedule_poll(idx, (submitted + start).max(now));
        }
    }

    fn on_polled(&mut self, idx: usize, result: Result<Task, ApiError>) -> Result<(), RunError> {
        self.active_calls -= 1;
        if let Some(tracking) = self.tracking.get_mut(&idx) {
            tracking.polling = false;
        }
        let failure = self.on_api_result(&result, Call::Poll);
        let now = self.now.at;
        if let Ok(task) = &result {
            self.budget_said_empty(Bucket::Query, task, now);
        }
        let id = self.job(idx).id.clone();
        let task_id = match &self.job_state(idx).phase {
            Phase::Running { task_id, .. } => task_id.clone(),
            _ => return Ok(()),
        };
        let limits = self.campaign.limits.clone();
        let model = self.job(idx).model;
        // An answer about another task (a confused proxy or cache) is not believed.
        let result = match result {
            Ok(task) if task.id != task_id => {
                if !std::mem::replace(&mut self.wrong_id_logged, true) {
                    tracing::warn!(job = %id, "a poll of task {task_id} answered for task {}; not believed, polling again (logged once)", task.id);
                }
                Err(ApiError::Decode(format!(
                    "the poll of task {task_id} answered for another task ({})",
                    task.id
                )))
            }
            other => other,
        };
        // A `completed` answer with no URL yet is looked at again, a few times.
        let result = match result {
            Ok(task) if task.status == TaskStatus::Completed && task.video_url.is_none() => {
                let looks = {
                    let tracking = self.tracked(idx);
                    tracking.missing_url += 1;
                    tracking.missing_url
                };
                if looks >= MISSING_URL_LOOKS {
                    self.in_flight -= 1;
                    self.lose_scout(idx);
                    self.tracking.remove(&idx);
                    return self.finish(
                        idx,
                        Status::Failed,
                        format!(
                            "task {task_id} answered `completed` {looks} times with no video URL \
                             (looked in result.data[].url and the other places SPEC §1 lists)"
                        ),
                    );
                }
                tracing::debug!(job = %id, "task {task_id} is completed but has no video URL yet; looking again");
                let delay = self.scaled(limits.poll_queued.min(Backoff::DEFAULT.ceiling(looks)));
                return self.next_poll_or_timeout(idx, now, delay);
            }
            other => other,
        };
        match result {
            Ok(task) => {
                let ended = matches!(task.status, TaskStatus::Completed | TaskStatus::Failed);
                let task_poll = if ended {
                    // The task is over: nothing more to track.
                    self.tracking.remove(&idx).unwrap_or_default()
                } else {
                    std::mem::take(self.tracked(idx))
                };
                let mut task_poll = Tracking {
                    poll_errors: 0,
                    last_poll_error: None,
                    ..task_poll
                };
                // Time the look from when the poll left: a slow answer says nothing
                // about how long the task took.
                let looked = task_poll.poll_sent.unwrap_or(now);
                let elapsed = task_poll
                    .submitted
                    .map(|at| looked.saturating_duration_since(at));
                if ended
                    && let Some(elapsed) = elapsed
                    && self.poller.finished(
                        model.as_str(),
                        Finish {
                            polled: looked.saturating_duration_since(self.epoch),
                            elapsed,
                            misses: task_poll.misses,
                            unfinished_at: task_poll.unfinished_at,
                            first_progress: task_poll.first_progress,
                            scout: self.live[idx].scout,
                        },
                    )
                {
                    self.reschedule_waiting(model, now);
                }
                tracing::trace!(job = %id, status = ?task.status, elapsed_ms = ?elapsed.map(|e| e.as_millis()),
                    misses = task_poll.misses, "polled");
                match task.status {
                    TaskStatus::Completed => {
                        self.in_flight -= 1;
                        match task.video_url {
                            Some(url) => {
                                self.record(
                                    idx,
                                    Record::Completed {
                                        job: id,
                                        task_id,
                                        url,
                                        expires_at: task.expires_at,
                                    },
                                )?;
                                self.queue_download(idx);
                            }
                            None => self.finish(
                                idx,
                                Status::Failed,
                                format!("task {task_id} completed but its answer has no video URL"),
                            )?,
                        }
                    }
                    TaskStatus::Failed => {
                        self.in_flight -= 1;
                        let error = task
                            .error
                            .unwrap_or_else(|| "generation failed (no reason given)".into());
                        tracing::warn!(job = %id, task = %task_id, "generation failed: {error}");
                        self.record(
                            idx,
                            Record::TaskFailed {
                                job: id,
                                task_id,
                                error,
                            },
                        )?;
                        if self.job_state(idx).attempts < limits.max_attempts {
                            self.submit_queue.push_back(idx);
                        }
                    }
                    status => {
                        if let TaskStatus::Other(s) = &status
                            && task_poll.last_status.as_ref() != Some(&status)
                        {
                            tracing::warn!(job = %id, "task {task_id} has undocumented status `{s}`; still polling");
                        }
                        task_poll.misses += 1;
                        let elapsed = elapsed.unwrap_or_default();
                        let queued = status == TaskStatus::Queued;
                        let wait = self.poller.next(
                            model.as_str(),
                            Look {
                                elapsed,
                                queued,
                                misses: task_poll.misses,
                                progress: task.progress,
                                first_progress: task_poll.first_progress,
                                previous: task_poll.unfinished_at,
                            },
                        );
                        if task_poll.first_progress.is_none()
                            && let Some(p) = task.progress.filter(|p| *p >= 1)
                        {
                            task_poll.first_progress = Some((elapsed, p));
                        }
                        tracing::trace!(job = %id, ?status, progress = ?task.progress,
                            elapsed_ms = elapsed.as_millis(), next_ms = wait.as_millis(), "unfinished");
                        task_poll.unfinished_at = elapsed;
                        task_poll.last_status = Some(status);
                        *self.tracked(idx) = task_poll;
                        let delay = (looked + wait).saturating_duration_since(now);
                        self.next_poll_or_timeout(idx, now, delay)?;
                        if let Some(start) = self.poller.take_release(model.as_str()) {
                            self.release_scouts(model, start, now);
                        }
                    }
                }
            }
            Err(e) => {
                let task_poll = self.tracked(idx);
                task_poll.poll_errors += 1;
                task_poll.last_poll_error = Some(e.to_string());
                let errors = task_poll.poll_errors;
                // Polls create nothing: whatever went wrong, looking again is safe.
                // Only a refused key stops; the balance is no reason to stop polling.
                match failure.unwrap_or(Failure::World) {
                    Failure::Key => self.auth_failure(&e),
                    Failure::RateLimited {
                        retry_after,
                        category,
                        reset,
                    } => {
                        self.rate_limited(now, "poll", retry_after, category.as_deref(), reset);
                        self.due_polls.push_front(idx);
                    }
                    _ => {
                        tracing::debug!(job = %id, "poll failed ({e}); retrying");
                        let delay = Backoff::DEFAULT.delay(errors.saturating_sub(1));
                        let delay = self.scaled(limits.poll_queued.max(delay));
                        self.next_poll_or_timeout(idx, now, delay)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The answer to a lookup by `client_business_id`. Found: the task is adopted
    /// (recorded as this attempt's) and polled like any other. Not found: no task
    /// was created, so the attempt is sent again. Anything else: looked up again
    /// later; after [`LOOKUP_TRIES`] the job stays `unknown` for the next run.
    fn on_looked_up(&mut self, idx: usize, result: Result<Task, ApiError>) -> Result<(), RunError> {
        self.active_calls -= 1;
        let failure = self.on_api_result(&result, Call::Poll);
        let now = self.now.at;
        let id = self.job(idx).id.clone();
        let Phase::Unknown { attempt } = self.job_state(idx).phase else {
            self.in_flight -= 1;
            return Ok(());
        };
        match result {
            Ok(task) => {
                tracing::info!(job = %id, task = %task.id, "the lost submit created task {}; adopted, nothing is sent again", task.id);
                self.live[idx].lookup_errors = 0;
                self.record(
                    idx,
                    Record::Submitted {
                        job: id,
                        attempt,
                        task_id: task.id,
                    },
                )?;
                self.start_tracking(idx, now, Duration::ZERO);
                // Its submit time is not known: it teaches the poller nothing.
                self.tracked(idx).submitted = None;
            }
            Err(e) if e.status() == Some(404) => {
                tracing::info!(job = %id, "the lost submit created no task; sending it again");
                self.in_flight -= 1;
                self.record(idx, Record::SubmitNotFound { job: id, attempt })?;
                self.submit_queue.push_front(idx);
            }
            Err(e) => match failure.unwrap_or(Failure::World) {
                Failure::Key => self.auth_failure(&e),
                Failure::RateLimited {
                    retry_after,
                    category,
                    reset,
                } => {
                    self.rate_limited(now, "lookup", retry_after, category.as_deref(), reset);
                    self.due_lookups.push_front(idx);
                }
                _ => {
                    let live = &mut self.live[idx];
                    if !self.breaker.is_open() {
                        live.lookup_errors += 1;
                    }
                    let tries = live.lookup_errors;
                    if tries >= LOOKUP_TRIES {
                        self.in_flight -= 1;
                        tracing::warn!(job = %id, "the lost submit could not be looked up ({e}); it stays unknown, and the next run looks again");
                        return Ok(());
                    }
                    let delay = self.scaled(
                        self.campaign
                            .limits
                            .poll_queued
                            .max(Backoff::DEFAULT.delay(tries)),
                    );
                    self.timers.push(Reverse((now + delay, Wake::Lookup(idx))));
                }
            },
        }
        Ok(())
    }

    fn next_poll_or_timeout(
        &mut self,
        idx: usize,
        now: Instant,
        delay: Duration,
    ) -> Result<(), RunError> {
        let deadline = self.tracked(idx).deadline.unwrap_or(now);
        // An outage is not the task's slowness: the breaker's own timeout decides then.
        if now >= deadline && !self.breaker.is_open() {
            self.in_flight -= 1;
            self.lose_scout(idx);
            let task = self.job_state(idx).task_id().unwrap_or("?").to_string();
            let last = self
                .tracking
                .remove(&idx)
                .unwrap_or_default()
                .last_poll_error
                .as_ref()
                .map(|e| format!(" (last poll: {e})"))
                .unwrap_or_default();
            return self.finish(idx, Status::TimedOut, format!(
                    "task {task} unfinished after {} (limits.task_timeout){last}; run again to keep polling it",
                    humantime::format_duration(self.campaign.limits.task_timeout)
                ));
        }
        let at = (now + delay).min(deadline.max(now));
        self.schedule_poll(idx, at);
        Ok(())
    }

    fn on_downloaded(
        &mut self,
        idx: usize,
        result: Result<Fetched, DownloadError>,
    ) -> Result<(), RunError> {
        self.active_downloads -= 1;
        let id = self.job(idx).id.clone();
        let task_id = match &self.job_state(idx).phase {
            Phase::Completed { task_id, .. } => task_id.clone(),
            _ => return Ok(()),
        };
        let path = self.output_path(idx);
        match result {
            Ok(fetched) => {
                self.record(
                    idx,
                    Record::Downloaded {
                        job: id.clone(),
                        task_id,
                        path: path.display().to_string(),
                        bytes: fetched.bytes,
                        sha256: fetched.sha256,
                    },
                )?;
                // Renamed at the next commit, after the record is durable; a crash in
                // between is finished by the next run (run::recover_download).
                self.out.push(Command::Rename(path.clone()));
                tracing::debug!(job = %id, "downloaded {} ({} bytes)", path.display(), fetched.bytes);
            }
            Err(DownloadError::Expired(error)) => {
                tracing::error!(job = %id, "{error}");
                self.finish(idx, Status::Expired, error)?;
            }
            Err(DownloadError::Retry(error))
                if self.live[idx].download_errors + 1 < MAX_DOWNLOAD_TRIES =>
            {
                let n = self.live[idx].download_errors;
                self.live[idx].download_errors += 1;
                let delay = self.scaled(Backoff::DEFAULT.delay(n));
                tracing::warn!(job = %id, "download interrupted ({error}); resuming in {:.1}s", delay.as_secs_f64());
                self.timers
                    .push(Reverse((self.now.at + delay, Wake::RetryDownload(idx))));
            }
            Err(DownloadError::Retry(error)) => {
                let error = format!(
                    "download failed {MAX_DOWNLOAD_TRIES} times, last: {error}; run again to retry"
                );
                tracing::error!(job = %id, "{error}");
                self.record(idx, Record::DownloadFailed { job: id, error })?;
            }
            Err(DownloadError::Fatal(error)) => {
                tracing::error!(job = %id, "{error}");
                self.finish(idx, Status::Failed, error)?;
            }
            Err(DownloadError::InTheWay(error)) => {
                // The checks before the first paid call refuse this; a file that
                // appeared since is not overwritten. The task is paid for, so its
                // URL is kept and a plain rerun downloads it once the file is moved.
                tracing::error!(job = %id, "{error}");
                self.record(idx, Record::DownloadFailed { job: id, error })?;
            }
            Err(DownloadError::Local(error)) => {
                // The clip is paid for and its URL still works: keep it for the
                // next run, and stop this one (the disk is full, or not ours).
                tracing::error!(job = %id, "{error}");
                self.record(
                    idx,
                    Record::DownloadFailed {
                        job: id.clone(),
                        error: format!("{error}; run again to download it"),
                    },
                )?;
                self.fail_fatal(RunError::Io {
                    what: format!("cannot save the video of job {id}"),
                    source: Arc::new(std::io::Error::other(error)),
                });
            }
        }
        Ok(())
    }

    /// What holds the run back, for progress lines: a 429's pause, a slowed
    /// budget (on the provider's clock, as configured), an outage.
    pub fn held(&self, now: Instant) -> Held {
        Held {
            paused: self.limiter.paused_until(now).map(|u| u - now),
            slowed: self
                .limiter
                .slowed()
                .map(|(bucket, rate)| (bucket.name(), rate * self.opts.time_scale)),
            outage: self.breaker.open_since().map(|since| now - since),
        }
    }

    /// Counts by report status plus what is in motion, for progress lines: the
    /// jobs this run works on (with `--only`, the selected ones).
    pub fn counts(&self) -> super::progress::Counts {
        self.counts
    }
}

/// The count a job in `phase` adds to.
fn count_of<'a>(counts: &'a mut super::progress::Counts, phase: &Phase) -> &'a mut usize {
    match phase {
        Phase::Pending => &mut counts.to_send,
        Phase::Submitting { .. } | Phase::Running { .. } => &mut counts.in_flight,
        Phase::Completed { .. } => &mut counts.downloading,
        Phase::Succeeded { .. } => &mut counts.done,
        Phase::Unknown { .. } => &mut counts.unknown,
        Phase::TaskFailed { .. } | Phase::Finished { .. } => &mut counts.failed,
    }
}

fn fmt_unix(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The `client_business_id` of a job's attempt: stable (the same on a resend of
/// the attempt, and in any later run), and unlikely to meet another campaign's:
/// a hash of the campaign, the job and what it asks for, then the attempt.
fn client_business_id(campaign: &str, job: &Job, attempt: u32) -> String {
    let mut hasher = crate::util::Sha256::new();
    for part in [campaign, job.id.as_str(), &job.fingerprint()] {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    let digest = hasher.finish();
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("runner-{hex}-{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_business_id_is_stable_per_attempt_and_differs_across_campaigns_and_attempts() {
        let campaign = crate::manifest::load_str(
            "name = \"c\"\n[defaults]\nmodel = \"veo3.1-fast\"\n[[job]]\nid = \"a\"\nprompt = \"p\"\n",
            std::path::Path::new("c.toml"),
        );
        let Ok(campaign) = campaign else {
            return;
        };
        let job = &campaign.jobs[0];
        let one = client_business_id("c", job, 1);
        assert_eq!(one, client_business_id("c", job, 1));
        assert_ne!(one, client_business_id("c", job, 2));
        assert_ne!(one, client_business_id("other", job, 1));
        assert!(one.starts_with("runner-") && one.ends_with("-1"), "{one}");
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod virtual_time;
