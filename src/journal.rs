//! The state file: an append-only JSON Lines journal with a lock and replay.
//!
//! Each line is one [`Entry`]: a timestamp and a [`Record`]. The first line is
//! a [`Record::Header`] naming the format version and the campaign. Records
//! are written by group commit: those appended since the last
//! [`Journal::sync`] go out in a single `write` and one `fsync`, so `kill -9`
//! leaves at most one torn last line, which replay ignores and the next open
//! cuts off. The run syncs before every step that depends on a record (a
//! submit, the rename of a downloaded video) and after every batch of answers.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Bumped when a record changes shape in a way an older runner cannot read.
pub const FORMAT_VERSION: u32 = 1;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339, seconds, UTC: for people reading the file.
    pub t: String,
    #[serde(flatten)]
    pub record: Record,
}

/// An [`Entry`] to write, borrowing its record (appending clones nothing).
#[derive(Serialize)]
struct EntryRef<'a> {
    t: &'a str,
    #[serde(flatten)]
    record: &'a Record,
}

/// What happened. Field `job` is the job id from the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// First line: which campaign this file belongs to.
    Header {
        version: u32,
        campaign: String,
        manifest: String,
    },
    /// A local image was uploaded; `url` is used for it from now on.
    Upload {
        path: String,
        sha256: String,
        url: String,
    },
    /// Write-ahead: about to send a submit that may cost money.
    Submitting {
        job: String,
        attempt: u32,
        fingerprint: String,
        /// Sent with the submit for models that take it: the task can be looked up by it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_business_id: Option<String>,
    },
    /// The submit created task `task_id`.
    Submitted {
        job: String,
        attempt: u32,
        task_id: String,
    },
    /// The server answered the submit with an error: no task was created.
    SubmitRejected {
        job: String,
        attempt: u32,
        error: String,
    },
    /// The submit may have created a task we know nothing of.
    SubmitUnknown {
        job: String,
        attempt: u32,
        error: String,
    },
    /// A submit whose outcome was unknown was looked up by its `client_business_id`
    /// and no task has it: nothing was created, so the attempt is sent again.
    SubmitNotFound { job: String, attempt: u32 },
    /// The user asked to resend jobs whose submit outcome is unknown.
    ResubmitUnknown { job: String },
    /// The user asked for a new attempt of a job that ended failed, timed out or expired.
    Retry { job: String },
    /// A task this runner stopped polling at `limits.task_timeout` is polled
    /// again (a run started since): it may have finished.
    LookAgain { job: String },
    /// A video the journal calls downloaded is not on disk: it is fetched
    /// again from its recorded URL.
    FileMissing { job: String },
    /// The task finished with a video at `url`.
    Completed {
        job: String,
        task_id: String,
        url: String,
        expires_at: Option<i64>,
    },
    /// The task ended `failed`.
    TaskFailed {
        job: String,
        task_id: String,
        error: String,
    },
    /// A download attempt failed; the video URL is still worth trying again.
    DownloadFailed { job: String, error: String },
    /// The video is on disk (written before the `.part` file is renamed).
    Downloaded {
        job: String,
        task_id: String,
        path: String,
        bytes: u64,
        sha256: String,
    },
    /// A final outcome other than the above: `failed`, `timed_out`, `expired`.
    Finished {
        job: String,
        status: String,
        error: String,
    },
}

impl Record {
    pub fn job(&self) -> Option<&str> {
        match self {
            Record::Header { .. } | Record::Upload { .. } => None,
            Record::Submitting { job, .. }
            | Record::Submitted { job, .. }
            | Record::SubmitRejected { job, .. }
            | Record::SubmitUnknown { job, .. }
            | Record::SubmitNotFound { job, .. }
            | Record::ResubmitUnknown { job }
            | Record::Retry { job }
            | Record::LookAgain { job }
            | Record::FileMissing { job }
            | Record::Completed { job, .. }
            | Record::TaskFailed { job, .. }
            | Record::Downloaded { job, .. }
            | Record::DownloadFailed { job, .. }
            | Record::Finished { job, .. } => Some(job),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open state file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "state file {path} is in use by another run of this campaign (lock {lock} is held); wait for it to finish or stop it"
    )]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("state file {path}, line {line}: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "state file {path} belongs to campaign `{found}`, not `{expected}`; use --state to pick another file"
    )]
    OtherCampaign {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "state file {path} has format version {found}; this runner reads version {FORMAT_VERSION}"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write state file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What reading a journal found, besides its records (which go to a visitor).
#[derive(Debug, Default)]
pub struct Replay {
    /// The first record: a [`Record::Header`] in any file this runner wrote.
    pub first: Option<Record>,
    /// Records read.
    pub records: usize,
    /// A torn last line was found (and will be cut off when the file is opened for writing).
    pub torn_tail: bool,
    /// Byte length of the well-formed part.
    good_len: u64,
}

/// Reads a journal, handing each entry to `visit` as soon as it is parsed, so
/// that a 100k-job file is never held in memory. A missing file is an empty
/// replay. Only the last line may be torn.
pub fn replay(path: &Path, mut visit: impl FnMut(Entry)) -> Result<Replay, JournalError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replay::default()),
        Err(source) => {
            return Err(JournalError::Open {
                path: path.into(),
                source,
            });
        }
    };
    parse(BufReader::with_capacity(1 << 16, file), path, &mut visit)
}

/// Reads a whole journal into memory: for the HTML timeline and tests.
pub fn read(path: &Path) -> Result<(Replay, Vec<Entry>), JournalError> {
    let mut entries = Vec::new();
    let replay = replay(path, |entry| entries.push(entry))?;
    Ok((replay, entries))
}

fn parse(
    mut reader: impl BufRead,
    path: &Path,
    visit: &mut dyn FnMut(Entry),
) -> Result<Replay, JournalError> {
    let mut replay = Replay::default();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| JournalError::Open {
                path: path.into(),
                source,
            })?;
        if n == 0 {
            break;
        }
        number += 1;
        let complete = line.last() == Some(&b'\n');
        let text = match std::str::from_utf8(&line) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(&line),
        };
        if text.trim().is_empty() {
            replay.good_len += n as u64;
            continue;
        }
        if !complete {
            // No newline: the process died mid-write. Whatever it says, it did not happen.
            replay.torn_tail = true;
            break;
        }
        let entry = parse_line(text.trim_end()).map_err(|e| JournalError::Corrupt {
            path: path.into(),
            line: number,
            message: format!(
                "{e}; fix or remove this line by hand (the rest of the file is intact)"
            ),
        })?;
        replay.good_len += n as u64;
        if replay.records == 0 {
            replay.first = Some(entry.record.clone());
        }
        replay.records += 1;
        visit(entry);
    }
    Ok(replay)
}

/// One journal line as written: every field optional and borrowed where it
/// can be. Parsed in one pass, without the buffering that serde needs for
/// `#[serde(flatten)]` and internally tagged enums (half of a resume's time
/// at 100k jobs); [`Line::into_entry`] then checks the event's fields.
#[derive(Deserialize)]
struct Line<'a> {
    t: String,
    #[serde(borrow)]
    event: Cow<'a, str>,
    job: Option<String>,
    version: Option<u32>,
    campaign: Option<String>,
    manifest: Option<String>,
    path: Option<String>,
    sha256: Option<String>,
    url: Option<String>,
    attempt: Option<u32>,
    fingerprint: Option<String>,
    client_business_id: Option<String>,
    task_id: Option<String>,
    error: Option<String>,
    expires_at: Option<i64>,
    bytes: Option<u64>,
    status: Option<String>,
}

/// A field an event needs, or the error naming it.
fn need<T>(value: Option<T>, field: &str, event: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("missing field `{field}` in a `{event}` record"))
}

impl Line<'_> {
    fn into_entry(self) -> Result<Entry, String> {
        let event = &*self.event;
        let job_field = self.job;
        // Called in one arm at most.
        let job = move || need(job_field, "job", event);
        let record = match event {
            "header" => Record::Header {
                version: need(self.version, "version", event)?,
                campaign: need(self.campaign, "campaign", event)?,
                manifest: need(self.manifest, "manifest", event)?,
            },
            "upload" => Record::Upload {
                path: need(self.path, "path", event)?,
                sha256: need(self.sha256, "sha256", event)?,
                url: need(self.url, "url", event)?,
            },
            "submitting" => Record::Submitting {
                job: job()?,
                attempt: need(self.attempt, "attempt", event)?,
                fingerprint: need(self.fingerprint, "fingerprint", event)?,
                client_business_id: self.client_business_id,
            },
            "submitted" => Record::Submitted {
                job: job()?,
                attempt: need(self.attempt, "attempt", event)?,
                task_id: need(self.task_id, "task_id", event)?,
            },
            "submit_rejected" => Record::SubmitRejected {
                job: job()?,
                attempt: need(self.attempt, "attempt", event)?,
                error: need(self.error, "error", event)?,
            },
            "submit_unknown" => Record::SubmitUnknown {
                job: job()?,
                attempt: need(self.attempt, "attempt", event)?,
                error: need(self.error, "error", event)?,
            },
            "submit_not_found" => Record::SubmitNotFound {
                job: job()?,
                attempt: need(self.attempt, "attempt", event)?,
            },
            "resubmit_unknown" => Record::ResubmitUnknown { job: job()? },
            "retry" => Record::Retry { job: job()? },
            "look_again" => Record::LookAgain { job: job()? },
            "file_missing" => Record::FileMissing { job: job()? },
            "completed" => Record::Completed {
                job: job()?,
                task_id: need(self.task_id, "task_id", event)?,
                url: need(self.url, "url", event)?,
                expires_at: self.expires_at,
            },
            "task_failed" => Record::TaskFailed {
                job: job()?,
                task_id: need(self.task_id, "task_id", event)?,
                error: need(self.error, "error", event)?,
            },
            "download_failed" => Record::DownloadFailed {
                job: job()?,
                error: need(self.error, "error", event)?,
            },
            "downloaded" => Record::Downloaded {
                job: job()?,
                task_id: need(self.task_id, "task_id", event)?,
                path: need(self.path, "path", event)?,
                bytes: need(self.bytes, "bytes", event)?,
                sha256: need(self.sha256, "sha256", event)?,
            },
            "finished" => Record::Finished {
                job: job()?,
                status: need(self.status, "status", event)?,
                error: need(self.error, "error", event)?,
            },
            other => return Err(format!("unknown event `{other}`")),
        };
        Ok(Entry { t: self.t, record })
    }
}

/// Parses one journal line.
fn parse_line(text: &str) -> Result<Entry, String> {
    serde_json::from_str::<Line>(text)
        .map_err(|e| e.to_string())?
        .into_entry()
}

/// An open journal, locked for this process.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Held for as long as the journal is open; dropping it releases the lock.
    _lock: File,
    /// Records appended since the last [`Journal::sync`], not yet written.
    pending: Vec<u8>,
    /// Written since the last fsync.
    dirty: bool,
}

impl Journal {
    /// Locks, reads and opens the journal for appending, writing a header if it is new.
    /// Refuses a journal of another campaign.
    /// Each record already in the file goes to `visit`, oldest first.
    pub fn open(
        path: &Path,
        campaign: &str,
        manifest: &str,
        visit: impl FnMut(Entry),
    ) -> Result<(Journal, Replay), JournalError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::util::create_dir_all_durable(parent).map_err(|source| JournalError::Open {
                path: path.into(),
                source,
            })?;
        }
        let lock_path = lock_path(path);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| JournalError::Open {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Locked {
                    path: path.into(),
                    lock: lock_path,
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(JournalError::Open {
                    path: lock_path,
                    source,
                });
            }
        }
        let replay = replay(path, visit)?;
        check_header(&replay, path, campaign)?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| JournalError::Open {
                path: path.into(),
                source,
            })?;
        let write_err = |source| JournalError::Write {
            path: path.into(),
            source,
        };
        if replay.torn_tail {
            file.set_len(replay.good_len).map_err(write_err)?;
        }
        file.seek(SeekFrom::End(0)).map_err(write_err)?;
        let mut journal = Journal {
            path: path.into(),
            file,
            _lock: lock,
            pending: Vec::new(),
            dirty: false,
        };
        if replay.records == 0 {
            journal.append(&Record::Header {
                version: FORMAT_VERSION,
                campaign: campaign.into(),
                manifest: manifest.into(),
            })?;
            journal.sync()?;
            // A new file's name is durable only once its folder is synced: without
            // this, a power loss could take the whole journal, write-ahead records
            // of paid submits included.
            crate::util::sync_dir(path.parent().unwrap_or(Path::new("")));
        }
        Ok((journal, replay))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and returns the time it was stamped with (`t`).
    /// The record is written at the next [`Journal::sync`], with every other
    /// record appended since, in one write and one fsync (group commit), or
    /// when the journal is dropped. Nothing may rely on it before that.
    pub fn append(&mut self, record: &Record) -> Result<String, JournalError> {
        let t = now_rfc3339();
        self.append_at(&t, record)?;
        Ok(t)
    }

    /// Appends `record` stamped `t` (the engine's time: see [`stamp`]).
    pub fn append_at(&mut self, t: &str, record: &Record) -> Result<(), JournalError> {
        let entry = EntryRef { t, record };
        let mark = self.pending.len();
        if let Err(e) = serde_json::to_writer(&mut self.pending, &entry) {
            self.pending.truncate(mark);
            return Err(JournalError::Write {
                path: self.path.clone(),
                source: io::Error::other(e),
            });
        }
        self.pending.push(b'\n');
        Ok(())
    }

    /// Writes the appended records and flushes them to disk: one write and
    /// one fsync for any number of appends.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.write_pending()
            .and_then(|()| {
                if self.dirty {
                    self.file.sync_data()?;
                    self.dirty = false;
                }
                Ok(())
            })
            .map_err(|source| JournalError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Writes the appended records, without an fsync: enough for a `kill -9`
    /// later, not for a power loss.
    fn write_pending(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending)?;
            self.pending.clear();
            self.dirty = true;
        }
        Ok(())
    }
}

impl Drop for Journal {
    /// A run that ends on an error still leaves every record it appended.
    fn drop(&mut self) {
        let _ = self.write_pending();
    }
}

fn check_header(replay: &Replay, path: &Path, campaign: &str) -> Result<(), JournalError> {
    let Some(first) = &replay.first else {
        return Ok(());
    };
    match first {
        Record::Header {
            version,
            campaign: found,
            ..
        } => {
            if *version > FORMAT_VERSION {
                return Err(JournalError::Version {
                    path: path.into(),
                    found: *version,
                });
            }
            check_campaign(found, path, campaign)
        }
        _ => Err(JournalError::Corrupt {
            path: path.into(),
            line: 1,
            message: "the first line is not a header; this is not a runner state file".into(),
        }),
    }
}

impl Replay {
    /// Refuses a journal whose header names another campaign (reading it
    /// without opening it: `runner status`, `runner report`).
    pub fn check_campaign(&self, path: &Path, campaign: &str) -> Result<(), JournalError> {
        match &self.first {
            Some(Record::Header {
                campaign: found, ..
            }) => check_campaign(found, path, campaign),
            _ => Ok(()),
        }
    }
}

fn check_campaign(found: &str, path: &Path, campaign: &str) -> Result<(), JournalError> {
    if found == campaign {
        return Ok(());
    }
    Err(JournalError::OtherCampaign {
        path: path.into(),
        found: found.into(),
        expected: campaign.into(),
    })
}

/// `state.jsonl` → `state.jsonl.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

fn now_rfc3339() -> String {
    stamp(std::time::SystemTime::now())
}

/// The `t` of a record made at `at`.
pub fn stamp(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A first submit of `job` as task `t-{job}`: the record tests here and in
/// `html::timeline` build their journals from.
#[cfg(test)]
pub(crate) fn submitted(job: &str) -> Record {
    Record::Submitted {
        job: job.into(),
        attempt: 1,
        task_id: format!("t-{job}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        {
            let (mut j, replay) = Journal::open(&path, "c", "c.toml", |_| {}).unwrap();
            assert_eq!(replay.records, 0);
            j.append(&submitted("a")).unwrap();
            j.sync().unwrap();
        }
        // A torn write: half a line, no newline.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"t":"x","event":"submitted","jo"#).unwrap();
        drop(f);
        let (replay, entries) = read(&path).unwrap();
        assert!(replay.torn_tail);
        assert_eq!(entries.len(), 2);
        {
            let mut seen = Vec::new();
            let (mut j, _) = Journal::open(&path, "c", "c.toml", |e| seen.push(e.record)).unwrap();
            assert_eq!(seen[1], submitted("a"));
            j.append(&submitted("b")).unwrap();
        }
        let (replay, entries) = read(&path).unwrap();
        assert!(!replay.torn_tail);
        let jobs: Vec<_> = entries.iter().filter_map(|e| e.record.job()).collect();
        assert_eq!(jobs, ["a", "b"]);
    }

    #[test]
    fn records_are_written_together_at_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        let (mut j, _) = Journal::open(&path, "c", "c.toml", |_| {}).unwrap();
        let header = fs::metadata(&path).unwrap().len();
        j.append(&submitted("a")).unwrap();
        j.append(&submitted("b")).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            header,
            "not before the sync"
        );
        j.sync().unwrap();
        let (_, entries) = read(&path).unwrap();
        let jobs: Vec<_> = entries.iter().filter_map(|e| e.record.job()).collect();
        assert_eq!(jobs, ["a", "b"]);
    }

    #[test]
    fn corrupt_middle_line_is_an_error_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        fs::write(&path, "{\"t\":\"x\",\"event\":\"header\",\"version\":1,\"campaign\":\"c\",\"manifest\":\"m\"}\nnot json\n").unwrap();
        let err = read(&path).unwrap_err();
        assert!(
            matches!(err, JournalError::Corrupt { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn refuses_other_campaign_and_second_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let (_j, _) = Journal::open(&path, "one", "one.toml", |_| {}).unwrap();
        let err = Journal::open(&path, "one", "one.toml", |_| {}).unwrap_err();
        assert!(matches!(err, JournalError::Locked { .. }), "{err}");
        drop(_j);
        let err = Journal::open(&path, "two", "two.toml", |_| {}).unwrap_err();
        assert!(
            err.to_string().contains("belongs to campaign `one`"),
            "{err}"
        );
        // Read without opening (`runner status`): the same refusal.
        let (replay, _) = read(&path).unwrap();
        assert!(replay.check_campaign(&path, "one").is_ok());
        let err = replay.check_campaign(&path, "two").unwrap_err();
        assert!(
            err.to_string().contains("belongs to campaign `one`"),
            "{err}"
        );
    }

    #[test]
    fn records_read_as_plain_json() {
        let line = serde_json::to_string(&Entry {
            t: "2026-01-01T00:00:00Z".into(),
            record: submitted("a"),
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"t":"2026-01-01T00:00:00Z","event":"submitted","job":"a","attempt":1,"task_id":"t-a"}"#
        );
    }

    /// One of every record, with every optional field both ways.
    fn every_record() -> Vec<Record> {
        let job = || "a \"quoted\" id".to_string();
        vec![
            Record::Header {
                version: FORMAT_VERSION,
                campaign: "c".into(),
                manifest: "c.toml".into(),
            },
            Record::Upload {
                path: "in/cat.png".into(),
                sha256: "ab".into(),
                url: "https://x/cat.png".into(),
            },
            Record::Submitting {
                job: job(),
                attempt: 2,
                fingerprint: "f".into(),
                client_business_id: None,
            },
            submitted("a"),
            Record::SubmitRejected {
                job: job(),
                attempt: 1,
                error: "bad\nrequest".into(),
            },
            Record::SubmitUnknown {
                job: job(),
                attempt: 1,
                error: "timeout".into(),
            },
            Record::ResubmitUnknown { job: job() },
            Record::Retry { job: job() },
            Record::LookAgain { job: job() },
            Record::FileMissing { job: job() },
            Record::Completed {
                job: job(),
                task_id: "t".into(),
                url: "https://x/v.mp4".into(),
                expires_at: Some(1_790_000_000),
            },
            Record::Completed {
                job: job(),
                task_id: "t".into(),
                url: "https://x/v.mp4".into(),
                expires_at: None,
            },
            Record::TaskFailed {
                job: job(),
                task_id: "t".into(),
                error: "nsfw".into(),
            },
            Record::DownloadFailed {
                job: job(),
                error: "reset".into(),
            },
            Record::Downloaded {
                job: job(),
                task_id: "t".into(),
                path: "out/a.mp4".into(),
                bytes: 1 << 40,
                sha256: "cd".into(),
            },
            Record::Finished {
                job: job(),
                status: "expired".into(),
                error: "gone".into(),
            },
        ]
    }

    #[test]
    fn the_fast_line_parser_reads_what_serde_writes() {
        for record in every_record() {
            let entry = Entry {
                t: "2026-01-01T00:00:00Z".into(),
                record,
            };
            let line = serde_json::to_string(&entry).unwrap();
            assert_eq!(parse_line(&line).as_ref(), Ok(&entry), "{line}");
            assert_eq!(serde_json::from_str::<Entry>(&line).unwrap(), entry);
        }
    }

    #[test]
    fn the_fast_line_parser_names_what_is_wrong() {
        let err = parse_line(r#"{"t":"x","event":"submitted","job":"a","attempt":1}"#);
        assert_eq!(
            err,
            Err("missing field `task_id` in a `submitted` record".into())
        );
        let err = parse_line(r#"{"t":"x","event":"launched","job":"a"}"#);
        assert_eq!(err, Err("unknown event `launched`".into()));
        assert!(parse_line(r#"{"t":"x","event":"retry","job":7}"#).is_err());
        assert!(parse_line("{not json").is_err());
    }
}
