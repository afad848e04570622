//! The engine: runs a campaign to the end, resuming from and recording to the journal.
//!
//! Layout:
//! - `engine`: every job's state and every decision, pure: `handle(event, now)` → commands.
//! - `driver`: carries the engine's commands out (tokio, reqwest, the journal) and feeds results back.
//! - `breaker`: tells an outage from a job's failure; pauses the run while the world is down.
//! - `preflight`: the local checks before the first paid call.
//! - `limiter`: the submit and query budgets (and the optional cap on every call); what a 429 does to them.
//! - `poller`: when to poll each task; pure (times passed in), so
//!   `tests/virtual_time.rs` runs it through whole campaigns on a virtual clock.
//! - `download`: streaming, resumable, verified downloads.
//! - `retry`: backoff with full jitter.
//! - `progress`: what the user sees while it runs.
//! - `shutdown`: Ctrl-C / SIGTERM as stop-then-abort signals.

pub mod breaker;
pub mod download;
mod driver;
pub mod engine;
pub mod limiter;
pub mod poller;
mod preflight;
pub mod progress;
pub mod retry;
pub mod shutdown;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::api::Client;
use crate::journal::{Journal, JournalError, Record};
use crate::manifest::Campaign;
use crate::report;
use crate::state::{CampaignState, Phase, Status};
use driver::Driver;
use engine::{Ending, Engine};
pub use shutdown::Signal;

/// How to run, beyond what the manifest says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Multiplies poll intervals, backoffs and the task timeout (the simulator's clock runs faster).
    pub time_scale: f64,
    /// Resend jobs whose earlier submit has an unknown outcome.
    pub resubmit_unknown: bool,
    /// New attempts for jobs that ended failed, timed out or expired.
    pub retry_failed: bool,
    /// Work only on these job ids (`--only`); the report still covers every job.
    pub only: Option<std::collections::HashSet<String>>,
    /// `--skip-existing`: leave unsent the jobs whose output path already holds
    /// a file the state does not record, instead of refusing the run.
    pub skip_existing: bool,
    /// How often to print a progress line.
    pub progress_every: Duration,
    /// No progress lines.
    pub quiet: bool,
    /// `--log-format json`: progress lines carry their counts as fields.
    pub log_json: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            time_scale: 1.0,
            resubmit_unknown: false,
            retry_failed: false,
            only: None,
            skip_existing: false,
            progress_every: Duration::from_secs(5),
            quiet: false,
            log_json: false,
        }
    }
}

/// Why a run could not go on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Journal(Arc<JournalError>),
    #[error("the API refused the key in ${env}: {message}")]
    Auth { env: String, message: String },
    /// 402 or a quota error code: the account cannot pay for more tasks.
    #[error("the account's balance is too low: {message}")]
    Balance { message: String },
    /// A local check before the first paid call failed: nothing was sent.
    #[error("{0}")]
    Preflight(String),
    /// The service stayed unreachable past `limits.outage_timeout`.
    #[error("the service was unreachable for {secs} s (limits.outage_timeout), last: {last}")]
    Outage { secs: u64, last: String },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: Arc<std::io::Error>,
    },
}

impl RunError {
    /// SPEC §2's exit code for a run that ended on this.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Auth { .. } | RunError::Balance { .. } => crate::exit::API_FATAL,
            RunError::Outage { .. } => crate::exit::UNAVAILABLE,
            RunError::Preflight(_) => crate::exit::BAD_INPUT,
            // Before anything is sent, a state file that is not ours (or in use) is bad input.
            RunError::Journal(e) if !matches!(**e, JournalError::Write { .. }) => {
                crate::exit::BAD_INPUT
            }
            RunError::Journal(_) | RunError::Io { .. } => crate::exit::LOCAL_IO,
        }
    }

    /// What the user should do next, printed under the error.
    pub fn advice(&self) -> &'static str {
        match self {
            RunError::Auth { .. } => {
                "the run stopped; nothing more was sent. Fix the key and run the same command again."
            }
            RunError::Balance { .. } => {
                "no more jobs were submitted; tasks already paid for were finished. Top up the account, then run the same command again: unsent jobs are still pending."
            }
            RunError::Preflight(_) => "nothing was sent.",
            RunError::Outage { .. } => {
                "no job was marked failed and nothing is lost. Run the same command again when the service is back."
            }
            RunError::Journal(_) | RunError::Io { .. } => {
                "a local file could not be written (see the cause above). Free space or fix permissions, then run the same command again: nothing recorded is lost."
            }
        }
    }
}

impl From<JournalError> for RunError {
    fn from(e: JournalError) -> Self {
        RunError::Journal(Arc::new(e))
    }
}

/// What a run did.
#[derive(Debug)]
pub struct RunSummary {
    /// Every job of the campaign by report status (what the report says).
    pub counts: BTreeMap<Status, usize>,
    /// The jobs this run worked on (with `--only`, the selected ones) by status:
    /// the exit code and the ending speak of these.
    pub selected: BTreeMap<Status, usize>,
    /// From the journal's replay to the report written.
    pub elapsed: Duration,
    /// What the tasks created before this run cost, by the price table.
    pub spent_before: crate::plan::Cost,
    pub interrupted: bool,
    /// A fatal API condition that ended the run early (a refused key).
    pub fatal: Option<RunError>,
    pub report_path: PathBuf,
    /// Every job's state at the end, as the journal now records it.
    pub state: CampaignState,
}

impl RunSummary {
    /// SPEC §2: 0 all succeeded (with `--only`, all selected), 1 some did not, 3 fatal API condition (key or
    /// balance), 74 local I/O failure, 75 outage, 130 interrupted.
    pub fn exit_code(&self) -> i32 {
        if let Some(fatal) = &self.fatal {
            fatal.exit_code()
        } else if self.interrupted {
            130
        } else if self
            .selected
            .iter()
            .all(|(s, n)| *s == Status::Succeeded || *n == 0)
        {
            0
        } else {
            1
        }
    }
}

/// Runs `campaign` against `client` until every job has an outcome, a fatal
/// condition, or a stop signal. The report is written in every case.
pub async fn run(
    campaign: Arc<Campaign>,
    client: Client,
    opts: RunOptions,
    signals: mpsc::UnboundedReceiver<Signal>,
) -> Result<RunSummary, RunError> {
    let started = std::time::Instant::now();
    let run_started = started;
    let state_path = campaign.output.state_path();
    let mut state = CampaignState::with_capacity(campaign.jobs.len());
    let resuming = std::fs::metadata(&state_path).is_ok_and(|m| m.len() > 0);
    let (opened, on_disk) = std::thread::scope(|scope| {
        // While this thread replays the journal, the other core works out what
        // reconcile asks of every job of a resume: its fingerprint (cached on
        // the job) and whether its video is on disk.
        let prechecks = resuming.then(|| scope.spawn(|| videos_on_disk(&campaign)));
        let opened = Journal::open(
            &state_path,
            &campaign.name,
            &campaign.manifest_path.display().to_string(),
            |entry| state.apply(&entry.t, entry.record),
        );
        let on_disk = prechecks.map(|handle| match handle.join() {
            Ok(on_disk) => on_disk,
            Err(panic) => std::panic::resume_unwind(panic),
        });
        (opened, on_disk)
    });
    let (mut journal, replay) = opened?;
    if replay.torn_tail {
        tracing::warn!(
            "{}: the last line was cut short by a crash; ignored",
            state_path.display()
        );
    }
    state.settle();
    tracing::debug!(
        "state: {} records replayed in {:.0?}",
        replay.records,
        started.elapsed()
    );
    // Before reconcile, which may write retry records: a refused run leaves none.
    // The lock is held: temp files beside the report are a killed run's, not a live one's.
    let report = campaign.output.report_path();
    if let Some(dir) = report.parent() {
        let html = crate::html::path_next_to(&report);
        crate::util::remove_stale_temp_files(dir, &[report.as_path(), html.as_path()]);
    }
    let skipped =
        preflight::check(&campaign, &state, opts.skip_existing).map_err(RunError::Preflight)?;
    let started = std::time::Instant::now();
    reconcile(
        &campaign,
        &opts,
        &skipped,
        on_disk,
        &mut journal,
        &mut state,
    )?;
    journal.sync()?;
    tracing::debug!(
        "reconciled with the manifest and the disk in {:.0?}",
        started.elapsed()
    );

    let clocks = engine::Now {
        at: tokio::time::Instant::now(),
        wall: std::time::SystemTime::now(),
    };
    let spent_before = spent(&campaign, &state);
    let mut progress = progress::Progress::new(&opts);
    let only = opts.only.clone();
    let mut engine = Engine::new(campaign.clone(), opts, state, clocks);
    engine.plan(&skipped, driver::upload_is_fresh)?;
    // What this run starts from: its pace and ETA count only what it finishes.
    progress.start_from(engine.counts());
    let mut driver = Driver::new(engine, client, journal, progress);
    let ending = driver.run(signals).await;
    let state = driver.into_engine().into_state();

    let started = std::time::Instant::now();
    let report_path = campaign.output.report_path();
    let counts =
        report::write_campaign(&report_path, &campaign, &state).map_err(|source| RunError::Io {
            what: format!("cannot write report {}", report_path.display()),
            source: Arc::new(source),
        })?;
    tracing::debug!("report written in {:.0?}", started.elapsed());
    let (interrupted, fatal) = match ending {
        Ending::Finished => (false, None),
        Ending::Interrupted => (true, None),
        Ending::Fatal(e) => (false, Some(e)),
    };
    let mut selected: BTreeMap<Status, usize> = BTreeMap::new();
    for job in &campaign.jobs {
        if only.as_ref().is_none_or(|only| only.contains(&job.id)) {
            let status = state.job(&job.id).map_or(Status::Pending, |js| js.status());
            *selected.entry(status).or_default() += 1;
        }
    }
    Ok(RunSummary {
        counts,
        selected,
        elapsed: run_started.elapsed(),
        spent_before,
        interrupted,
        fatal,
        report_path,
        state,
    })
}

pub use crate::plan::spent;

/// Whether each job's video is on disk, in job order; hashes each job's
/// fingerprint on the way (it is cached on the job for [`reconcile`]).
fn videos_on_disk(campaign: &Campaign) -> Vec<bool> {
    campaign
        .jobs
        .iter()
        .map(|job| {
            job.fingerprint_hash();
            campaign.video_path(job).exists()
        })
        .collect()
}

/// Brings the journal's view in line with the manifest and the disk before
/// anything is sent. `on_disk` is [`videos_on_disk`] if it was worked out
/// already; otherwise the videos the journal calls downloaded are looked up here.
fn reconcile(
    campaign: &Campaign,
    opts: &RunOptions,
    skipped: &[usize],
    on_disk: Option<Vec<bool>>,
    journal: &mut Journal,
    state: &mut CampaignState,
) -> Result<(), RunError> {
    let mut changed = Vec::new();
    let skipped: std::collections::HashSet<usize> = skipped.iter().copied().collect();
    for (i, job) in campaign.jobs.iter().enumerate() {
        let Some(js) = state.job(&job.id) else {
            continue;
        };
        if js.request_changed(job) {
            changed.push(job.id.clone());
        }
        // `--retry failed` and `--resubmit-unknown` are recorded only for the jobs this
        // run works on: recorded for the others, the next plain run would pay for them unasked.
        let selected =
            opts.only.as_ref().is_none_or(|only| only.contains(&job.id)) && !skipped.contains(&i);
        let missing = matches!(js.phase, Phase::Succeeded { .. })
            && !on_disk
                .as_ref()
                .and_then(|on_disk| on_disk.get(i).copied())
                .unwrap_or_else(|| campaign.video_path(job).exists());
        match js.phase.clone() {
            Phase::Unknown { .. } if opts.resubmit_unknown && selected => {
                drop_stale_part(&campaign.video_path(job))?;
                let record = Record::ResubmitUnknown {
                    job: job.id.clone(),
                };
                state.record(journal, record)?;
            }
            // `--retry failed`: a new attempt (a new task) for each job that ended badly.
            Phase::TaskFailed { .. } | Phase::Finished { .. } if opts.retry_failed && selected => {
                drop_stale_part(&campaign.video_path(job))?;
                let record = Record::Retry {
                    job: job.id.clone(),
                };
                state.record(journal, record)?;
            }
            // A task that ran past the timeout last time may have finished since: look
            // again (only for the jobs this run works on: the record makes it a task to poll).
            Phase::Finished {
                status: Status::TimedOut,
            } if js.task_id().is_some() && selected => {
                let record = Record::LookAgain {
                    job: job.id.clone(),
                };
                state.record(journal, record)?;
            }
            Phase::Succeeded { bytes, .. } if missing => {
                let path = campaign.video_path(job);
                // A whole `.part` is renamed for any job; the download again only
                // for the jobs this run works on (a later run fetches the others).
                if recover_download(&path, bytes, &job.id, js)? && selected {
                    let record = Record::FileMissing {
                        job: job.id.clone(),
                    };
                    state.record(journal, record)?;
                }
            }
            _ => {}
        }
    }
    if !changed.is_empty() {
        tracing::warn!(
            "{} job(s) changed in the manifest since they were submitted; their recorded tasks are kept \
             (give a job a new id to generate it again): {}",
            changed.len(),
            preview(&changed)
        );
    }
    let known: foldhash::HashSet<&str> = campaign.jobs.iter().map(|j| j.id.as_str()).collect();
    let orphans: Vec<String> = state
        .jobs()
        .filter(|(id, _)| !known.contains(id))
        .map(|(id, _)| id.to_string())
        .collect();
    if !orphans.is_empty() {
        tracing::warn!(
            "{} job(s) in the state file are no longer in the manifest and are left alone: {}",
            orphans.len(),
            preview(&orphans)
        );
    }
    // A campaign that grew: say so before anything is sent.
    let added: Vec<String> = campaign
        .jobs
        .iter()
        .filter(|job| !state.contains(&job.id))
        .map(|job| job.id.clone())
        .collect();
    if !state.is_empty() && (!added.is_empty() || !orphans.is_empty() || !changed.is_empty()) {
        tracing::info!(
            "since the last run: {} changed, {} removed, {} not yet submitted (new, or not reached before){}",
            changed.len(),
            orphans.len(),
            added.len(),
            if added.is_empty() {
                String::new()
            } else {
                format!(": {}", preview(&added))
            }
        );
    }
    Ok(())
}

/// Before a job gets a new task: deletes the `.part` its old task may have
/// left (a download cut short, then the URL expired), so that the new task's
/// video is never appended to the old one's bytes if this run stops before
/// the new download starts.
fn drop_stale_part(path: &std::path::Path) -> Result<(), RunError> {
    let part = download::part_path(path);
    match std::fs::remove_file(&part) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RunError::Io {
            what: format!("cannot delete {} before retrying its job", part.display()),
            source: std::sync::Arc::new(e),
        }),
        _ => Ok(()),
    }
}

/// The journal says a video was downloaded but its file is not there: true
/// if it is to be downloaded again from its recorded URL.
fn recover_download(
    path: &std::path::Path,
    bytes: u64,
    id: &str,
    js: &crate::state::JobState,
) -> Result<bool, RunError> {
    let part = download::part_path(path);
    let part_len = std::fs::metadata(&part).map(|m| m.len()).ok();
    if part_len == Some(bytes) {
        // The run stopped between recording the download and renaming the file.
        driver::finish_file(path)?;
        return Ok(false);
    }
    if js.video_url.is_some() {
        tracing::warn!(
            "job {id}: {} is missing; downloading it again",
            path.display()
        );
        Ok(true)
    } else {
        tracing::warn!(
            "job {id}: {} is missing and its URL is unknown",
            path.display()
        );
        Ok(false)
    }
}

fn preview(ids: &[String]) -> String {
    let mut text = ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if ids.len() > 5 {
        text.push_str(&format!(" and {} more", ids.len() - 5));
    }
    text
}
