//! What the journal says about each job: a small state machine fed by journal records.
//!
//! Replay and the live engine share [`CampaignState::apply`], so what a run
//! does and what a later run reads back can never disagree.

use foldhash::{HashMap, HashMapExt};
use std::fmt;
use std::path::Path;

use crate::journal::{self, Entry, Journal, JournalError, Record, Replay};

/// Where a job stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Nothing in flight: submit when allowed.
    Pending,
    /// The write-ahead record is written; the submit's answer is not.
    Submitting { attempt: u32 },
    /// The submit may have created a task we cannot see. Never resent silently.
    Unknown { attempt: u32 },
    /// A task exists and is not finished.
    Running { task_id: String, attempt: u32 },
    /// The task finished; the video is not on disk yet.
    Completed {
        task_id: String,
        url: String,
        expires_at: Option<i64>,
    },
    /// The video is on disk.
    Succeeded {
        task_id: String,
        bytes: u64,
        sha256: String,
    },
    /// The task ended `failed` (a new attempt may follow).
    TaskFailed { task_id: String },
    /// A final outcome: `failed`, `timed_out` or `expired`.
    Finished { status: Status },
}

/// The `status` column of the report (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    Failed,
    TimedOut,
    Expired,
    Unknown,
    Pending,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Succeeded,
        Status::Failed,
        Status::TimedOut,
        Status::Expired,
        Status::Unknown,
        Status::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::TimedOut => "timed_out",
            Status::Expired => "expired",
            Status::Unknown => "unknown",
            Status::Pending => "pending",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A journal timestamp (`t`) kept as whole seconds since the Unix epoch: 8 bytes
/// per job instead of a string (100k jobs × 3 stamps). Displays as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(std::num::NonZeroU64);

impl Stamp {
    /// `None` for a time that is not RFC 3339 (a hand-edited line): it is only shown.
    pub fn parse(t: &str) -> Option<Stamp> {
        let at = humantime::parse_rfc3339_weak(t).ok()?;
        let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        std::num::NonZeroU64::new(secs).map(Stamp)
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.0.get());
        write!(f, "{}", humantime::format_rfc3339_seconds(at))
    }
}

/// Everything the journal knows about one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub phase: Phase,
    /// Tasks created, or possibly created (unknown outcomes count).
    pub attempts: u32,
    /// Every task id this job has had, oldest first.
    pub task_ids: Vec<String>,
    /// The fingerprint of the request last sent.
    pub fingerprint: Option<String>,
    pub last_error: Option<String>,
    pub submitted_at: Option<Stamp>,
    pub completed_at: Option<Stamp>,
    pub downloaded_at: Option<Stamp>,
    /// The finished video's URL and when it expires, once known.
    pub video_url: Option<(String, Option<i64>)>,
    /// The job's final outcome came before any task of its last attempt existed.
    pub ended_unpaid: bool,
    /// The `client_business_id` sent with the last submit, for models that take one:
    /// a submit whose answer was lost is looked up by it.
    pub client_business_id: Option<String>,
    /// An attempt whose lost submit was looked up and not found: it is sent again
    /// as the same attempt (the same `client_business_id`), not a new one.
    pub resend_attempt: Option<u32>,
}

impl JobState {
    /// A job the journal has never mentioned.
    pub const NEW: JobState = JobState {
        phase: Phase::Pending,
        attempts: 0,
        task_ids: Vec::new(),
        fingerprint: None,
        last_error: None,
        submitted_at: None,
        completed_at: None,
        downloaded_at: None,
        video_url: None,
        ended_unpaid: false,
        client_business_id: None,
        resend_attempt: None,
    };
}

impl Default for JobState {
    fn default() -> Self {
        JobState::NEW
    }
}

/// `recorded` is `hash` as [`crate::manifest::Job::fingerprint`] writes it
/// (16 lower-case hex digits), compared without formatting `hash`.
fn same_fingerprint(recorded: &str, hash: u64) -> bool {
    recorded.len() == 16
        && recorded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && u64::from_str_radix(recorded, 16) == Ok(hash)
}

impl JobState {
    /// The manifest now asks something else of this job than its recorded
    /// submits did (their fingerprint differs from the job's).
    pub fn request_changed(&self, job: &crate::manifest::Job) -> bool {
        self.attempts > 0
            && self
                .fingerprint
                .as_deref()
                .is_some_and(|f| !same_fingerprint(f, job.fingerprint_hash()))
    }

    /// The report's status.
    pub fn status(&self) -> Status {
        match &self.phase {
            Phase::Succeeded { .. } => Status::Succeeded,
            // Reported only once a run has ended: a submit whose answer never
            // came may have created a task.
            Phase::Unknown { .. } | Phase::Submitting { .. } => Status::Unknown,
            Phase::Finished { status } => *status,
            Phase::TaskFailed { .. } => Status::Failed,
            // A finished video not fetched yet, or not this time (the network, the
            // disk): paid for, its URL kept, and the next run fetches it. SPEC §4:
            // a failure of the world never marks a job failed.
            Phase::Pending | Phase::Running { .. } | Phase::Completed { .. } => Status::Pending,
        }
    }

    /// The current task, if any.
    /// `failed` before any task of its last attempt existed: nothing was paid
    /// for that failure, so a plain rerun tries the job again, and `--retry
    /// failed` does not count it as paying again.
    pub fn failed_unpaid(&self) -> bool {
        self.ended_unpaid
            && matches!(
                self.phase,
                Phase::Finished {
                    status: Status::Failed
                }
            )
    }

    pub fn task_id(&self) -> Option<&str> {
        self.task_ids.last().map(String::as_str)
    }

    /// Folds one record in, moving its strings rather than copying them.
    pub(crate) fn apply(&mut self, t: &str, record: Record) {
        match record {
            Record::Submitting {
                attempt,
                fingerprint,
                client_business_id,
                ..
            } => {
                self.phase = Phase::Submitting { attempt };
                self.fingerprint = Some(fingerprint);
                self.client_business_id = client_business_id;
                self.resend_attempt = None;
            }
            Record::Submitted {
                attempt, task_id, ..
            } => {
                self.attempts = self.attempts.max(attempt);
                self.task_ids.push(task_id.clone());
                self.phase = Phase::Running { task_id, attempt };
                self.submitted_at = Stamp::parse(t);
                self.last_error = None;
            }
            Record::SubmitRejected { error, .. } => {
                self.phase = Phase::Pending;
                self.last_error = Some(error);
            }
            Record::SubmitUnknown { attempt, error, .. } => {
                self.phase = Phase::Unknown { attempt };
                self.attempts = self.attempts.max(attempt);
                self.last_error = Some(error);
            }
            Record::SubmitNotFound { attempt, .. } => {
                self.phase = Phase::Pending;
                self.resend_attempt = Some(attempt);
                self.last_error = Some(
                    "the lost submit was looked up by its client_business_id: no task, so it is sent again"
                        .into(),
                );
            }
            Record::ResubmitUnknown { .. } | Record::Retry { .. } => self.phase = Phase::Pending,
            Record::LookAgain { .. } => {
                if let (
                    Phase::Finished {
                        status: Status::TimedOut,
                    },
                    Some(task_id),
                ) = (&self.phase, self.task_ids.last())
                {
                    self.phase = Phase::Running {
                        task_id: task_id.clone(),
                        attempt: self.attempts,
                    };
                }
            }
            Record::FileMissing { .. } => {
                if let (Phase::Succeeded { task_id, .. }, Some((url, expires_at))) =
                    (&self.phase, &self.video_url)
                {
                    self.phase = Phase::Completed {
                        task_id: task_id.clone(),
                        url: url.clone(),
                        expires_at: *expires_at,
                    };
                    self.downloaded_at = None;
                }
            }
            Record::Completed {
                task_id,
                url,
                expires_at,
                ..
            } => {
                self.video_url = Some((url.clone(), expires_at));
                self.phase = Phase::Completed {
                    task_id,
                    url,
                    expires_at,
                };
                self.completed_at = Stamp::parse(t);
                self.last_error = None;
            }
            Record::TaskFailed { task_id, error, .. } => {
                self.phase = Phase::TaskFailed { task_id };
                self.completed_at = Stamp::parse(t);
                self.last_error = Some(error);
            }
            Record::DownloadFailed { error, .. } => self.last_error = Some(error),
            Record::Downloaded {
                task_id,
                bytes,
                sha256,
                ..
            } => {
                self.phase = Phase::Succeeded {
                    task_id,
                    bytes,
                    sha256,
                };
                self.downloaded_at = Stamp::parse(t);
                self.last_error = None;
            }
            Record::Finished { status, error, .. } => {
                // Ended with no task for this attempt: a refused submit, a failed upload.
                self.ended_unpaid = matches!(self.phase, Phase::Pending);
                self.phase = Phase::Finished {
                    status: Status::parse(&status).unwrap_or(Status::Failed),
                };
                self.last_error = Some(error);
            }
            Record::Header { .. } | Record::Upload { .. } => {}
        }
    }
}

/// A local image already uploaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Uploaded {
    pub sha256: String,
    pub url: String,
}

/// The whole journal folded: jobs by id, and uploads by path.
#[derive(Debug, Default, Clone)]
pub struct CampaignState {
    /// Where each job's state is in `states`. A table of positions, not of
    /// whole states: a resume looks every job up several times, and at 100k
    /// jobs a table of states was 30 MB of cache misses (and 6 MB of slack).
    index: HashMap<String, usize>,
    /// Job states in the order the journal first names them.
    states: Vec<JobState>,
    pub uploads: HashMap<String, Uploaded>,
}

impl CampaignState {
    pub fn with_capacity(jobs: usize) -> CampaignState {
        CampaignState {
            index: HashMap::with_capacity(jobs),
            states: Vec::with_capacity(jobs),
            uploads: HashMap::new(),
        }
    }

    /// Folds a replayed journal. A submit whose answer was never recorded becomes `unknown`.
    pub fn from_entries(entries: &[Entry]) -> CampaignState {
        let mut state = CampaignState::default();
        for entry in entries {
            state.apply(&entry.t, entry.record.clone());
        }
        state.settle();
        state
    }

    /// Reads and folds the state file in one pass, never holding its records
    /// (a missing file is an empty state).
    /// `jobs` sizes the table once (the manifest's job count), instead of growing it 16 times.
    pub fn load(path: &Path, jobs: usize) -> Result<(CampaignState, Replay), JournalError> {
        let mut state = CampaignState::with_capacity(jobs);
        let replay = journal::replay(path, |entry| state.apply(&entry.t, entry.record))?;
        state.settle();
        Ok((state, replay))
    }

    /// After the last record: a submit whose answer was never recorded becomes `unknown`.
    pub fn settle(&mut self) {
        for job in &mut self.states {
            if let Phase::Submitting { attempt } = job.phase {
                job.phase = Phase::Unknown { attempt };
                job.attempts = job.attempts.max(attempt);
                job.last_error = Some(
                    "the run stopped before the submit's answer was recorded; a task may exist \
                     (resend with --resubmit-unknown)"
                        .into(),
                );
            }
        }
    }

    /// Folds one record in (by value: a replay moves each line's strings into the state).
    pub fn apply(&mut self, t: &str, record: Record) {
        if let Record::Upload { path, sha256, url } = record {
            self.uploads.insert(path, Uploaded { sha256, url });
            return;
        }
        if let Some(job) = record.job() {
            self.job_or_new(job).apply(t, record);
        }
    }

    /// Records an event: in the journal first, then in this state, with the
    /// time the journal stamped it with (so a replay reads back the same).
    pub fn record(&mut self, journal: &mut Journal, record: Record) -> Result<(), JournalError> {
        let t = journal.append(&record)?;
        self.apply(&t, record);
        Ok(())
    }

    pub fn job(&self, id: &str) -> Option<&JobState> {
        self.index.get(id).map(|&at| &self.states[at])
    }

    pub fn job_mut(&mut self, id: &str) -> Option<&mut JobState> {
        self.index.get(id).map(|&at| &mut self.states[at])
    }

    /// Job `id`'s state, a new one if the journal never named it (looked up
    /// before inserting: a key is allocated once per job, not per record).
    pub fn job_or_new(&mut self, id: &str) -> &mut JobState {
        let at = match self.index.get(id) {
            Some(&at) => at,
            None => {
                self.index.insert(id.to_string(), self.states.len());
                self.states.push(JobState::default());
                self.states.len() - 1
            }
        };
        &mut self.states[at]
    }

    /// Takes job `id`'s state out, leaving a new one in its place (see
    /// `run::engine`, which keeps the manifest's jobs in its own table).
    pub fn take(&mut self, id: &str) -> Option<JobState> {
        self.job_mut(id).map(std::mem::take)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// Jobs the journal names.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Every job the journal names with its state, moved out, in the order the
    /// journal first names them (to merge several state files without copying).
    pub fn into_jobs(self) -> impl Iterator<Item = (String, JobState)> {
        let mut ids = vec![String::new(); self.states.len()];
        for (id, at) in self.index {
            ids[at] = id;
        }
        ids.into_iter().zip(self.states)
    }

    /// Puts `job`'s state in, replacing any it had.
    pub fn insert(&mut self, id: &str, state: JobState) {
        *self.job_or_new(id) = state;
    }

    /// Every job the journal names, with its state, in no particular order.
    pub fn jobs(&self) -> impl Iterator<Item = (&str, &JobState)> {
        self.index
            .iter()
            .map(|(id, &at)| (id.as_str(), &self.states[at]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(record: Record) -> Entry {
        Entry {
            t: "2026-01-01T00:00:00Z".into(),
            record,
        }
    }

    #[test]
    fn stamps_round_trip_and_tolerate_odd_times() {
        let t = "2026-11-22T06:14:29Z";
        assert_eq!(Stamp::parse(t).unwrap().to_string(), t);
        assert_eq!(Stamp::parse("yesterday"), None);
    }

    #[test]
    fn a_recorded_event_is_stamped_as_the_journal_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let (mut journal, _) = Journal::open(&path, "c", "c.toml", |_| {}).unwrap();
        let mut live = CampaignState::default();
        live.record(&mut journal, submitting(1)).unwrap();
        let submitted = Record::Submitted {
            job: "a".into(),
            attempt: 1,
            task_id: "t".into(),
        };
        live.record(&mut journal, submitted).unwrap();
        drop(journal);
        let (replayed, _) = CampaignState::load(&path, 1).unwrap();
        assert_eq!(replayed.job("a"), live.job("a"));
        assert!(live.job("a").unwrap().submitted_at.is_some());
    }

    #[test]
    fn fingerprints_compare_as_written() {
        assert!(same_fingerprint("00000000000000ff", 255));
        assert!(same_fingerprint("ffffffffffffffff", u64::MAX));
        assert!(!same_fingerprint("00000000000000fe", 255));
        // Only the form `Job::fingerprint` writes: 16 lower-case hex digits.
        assert!(!same_fingerprint("ff", 255));
        assert!(!same_fingerprint("00000000000000FF", 255));
        assert!(!same_fingerprint("+0000000000000ff", 255));
        assert!(!same_fingerprint("f", 15));
    }

    fn fold(records: Vec<Record>) -> CampaignState {
        let entries: Vec<Entry> = records.into_iter().map(entry).collect();
        CampaignState::from_entries(&entries)
    }

    fn submitting(attempt: u32) -> Record {
        Record::Submitting {
            job: "a".into(),
            attempt,
            fingerprint: "f".into(),
            client_business_id: None,
        }
    }

    #[test]
    fn submit_without_answer_is_unknown() {
        let s = fold(vec![submitting(1)]);
        let job = s.job("a").unwrap();
        assert_eq!(job.status(), Status::Unknown);
        assert_eq!(job.attempts, 1);
    }

    #[test]
    fn rejected_submit_keeps_attempt_count() {
        let s = fold(vec![
            submitting(1),
            Record::SubmitRejected {
                job: "a".into(),
                attempt: 1,
                error: "429".into(),
            },
        ]);
        let job = s.job("a").unwrap();
        assert_eq!(job.phase, Phase::Pending);
        assert_eq!(job.attempts, 0);
    }

    #[test]
    fn full_life_with_a_failed_attempt() {
        let s = fold(vec![
            submitting(1),
            Record::Submitted {
                job: "a".into(),
                attempt: 1,
                task_id: "t1".into(),
            },
            Record::TaskFailed {
                job: "a".into(),
                task_id: "t1".into(),
                error: "boom".into(),
            },
            submitting(2),
            Record::Submitted {
                job: "a".into(),
                attempt: 2,
                task_id: "t2".into(),
            },
            Record::Completed {
                job: "a".into(),
                task_id: "t2".into(),
                url: "u".into(),
                expires_at: None,
            },
            Record::DownloadFailed {
                job: "a".into(),
                error: "reset".into(),
            },
        ]);
        let job = s.job("a").unwrap();
        assert_eq!(
            job.status(),
            Status::Pending,
            "a paid video whose download failed is still to fetch, not failed"
        );
        let s2 = {
            let mut s2 = s.clone();
            s2.apply(
                "t",
                Record::Downloaded {
                    job: "a".into(),
                    task_id: "t2".into(),
                    path: "a.mp4".into(),
                    bytes: 3,
                    sha256: "x".into(),
                },
            );
            s2
        };
        let job = s2.job("a").unwrap();
        assert_eq!(job.status(), Status::Succeeded);
        assert_eq!(job.attempts, 2);
        assert_eq!(job.task_ids, ["t1", "t2"]);
        assert_eq!(job.last_error, None);
    }

    #[test]
    fn a_failure_before_any_task_is_unpaid_and_one_after_is_not() {
        let finished = || Record::Finished {
            job: "a".into(),
            status: "failed".into(),
            error: "HTTP 400".into(),
        };
        let rejected = Record::SubmitRejected {
            job: "a".into(),
            attempt: 1,
            error: "HTTP 400".into(),
        };
        let s = fold(vec![submitting(1), rejected, finished()]);
        assert!(s.job("a").unwrap().failed_unpaid());
        // A failed upload: no submit at all.
        let s = fold(vec![finished()]);
        assert!(s.job("a").unwrap().failed_unpaid());
        let completed = Record::Completed {
            job: "a".into(),
            task_id: "t1".into(),
            url: "u".into(),
            expires_at: None,
        };
        let submitted = Record::Submitted {
            job: "a".into(),
            attempt: 1,
            task_id: "t1".into(),
        };
        let s = fold(vec![submitting(1), submitted, completed, finished()]);
        assert!(
            !s.job("a").unwrap().failed_unpaid(),
            "a paid task's failure"
        );
    }

    #[test]
    fn unknown_then_resubmit_request() {
        let s = fold(vec![
            submitting(1),
            Record::SubmitUnknown {
                job: "a".into(),
                attempt: 1,
                error: "reset".into(),
            },
            Record::ResubmitUnknown { job: "a".into() },
        ]);
        let job = s.job("a").unwrap();
        assert_eq!(job.phase, Phase::Pending);
        assert_eq!(job.attempts, 1, "the unknown attempt still counts");
    }
}
