//! Streams one video to `<file>.part`: resumes with a Range request, checks the
//! length, hashes while streaming, fsyncs. Never holds a large video in memory.
//!
//! Renaming `.part` to the final name is the driver's job, after the
//! journal records the download, so a crash can never leave a partial file
//! under the final name.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::CONTENT_RANGE;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, spawn_blocking};

use crate::api::{ApiError, Client};
use crate::util::Sha256;

/// A finished `.part` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The URL no longer serves the video (403/404/410): the clip is gone.
    #[error("video URL no longer works: {0}")]
    Expired(String),
    /// Worth trying again: the `.part` file keeps what arrived.
    #[error("{0}")]
    Retry(String),
    /// Trying again will not help.
    #[error("{0}")]
    Fatal(String),
    /// The `.part` could not be written or read here (disk full, permissions).
    #[error("{0}")]
    Local(String),
    /// A file the state does not record is at the output path: not overwritten.
    #[error("{0}")]
    InTheWay(String),
}

/// What bounds one download.
#[derive(Debug, Clone)]
pub struct DownloadLimits {
    pub max_bytes: u64,
    /// Cut a download slower than this many bytes/s over `stall` (0: no minimum).
    pub min_rate: u64,
    /// The window over which `min_rate` is judged.
    pub stall: std::time::Duration,
    /// The URL's expiry (`expires_at`): no download outlives it.
    pub deadline: Option<tokio::time::Instant>,
    /// GIF is a video here (the task asked for `enable_gif`).
    pub allow_gif: bool,
}

/// `clip.mp4` → `clip.mp4.part`.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    path.with_file_name(name)
}

/// Where a download starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From what the `.part` already holds: the task may have been downloaded
    /// in part before (by an earlier run, or an earlier try in this one).
    Resume,
    /// From byte 0, replacing any `.part`: the task was submitted in this run
    /// and this is its first try, so a `.part` on disk can only be another
    /// task's. Saves a blocking step (a stat) per clip.
    Fresh,
}

/// Downloads `url` into `part`, resuming what is already there if `start` says so.
pub async fn fetch(
    client: &Client,
    url: &str,
    part: &Path,
    limits: &DownloadLimits,
    start: Start,
) -> Result<Fetched, DownloadError> {
    let max_bytes = limits.max_bytes;
    let io = |what: &str, e: std::io::Error| {
        DownloadError::Retry(format!("{what} {}: {e}", part.display()))
    };
    let mut offset = match start {
        Start::Fresh => 0,
        Start::Resume => {
            let part = part.to_path_buf();
            spawn_blocking(move || existing_part(&part))
                .await
                .map_err(|e| io("cannot look at", std::io::Error::other(e)))?
        }
    };
    if offset > max_bytes {
        offset = 0;
    }
    let response = match open(client, url, offset, limits).await {
        Ok(response) => response,
        // The range runs past the end: what we have may be the whole file, or junk.
        Err(DownloadError::Fatal(e)) if offset > 0 && e.starts_with("HTTP 416") => {
            return restart(client, url, part, limits).await;
        }
        Err(e) => return Err(e),
    };
    let (start, total) = match (offset, response.status()) {
        (0, _) => (0, response.content_length()),
        (_, StatusCode::PARTIAL_CONTENT) => match content_range(&response) {
            // A range that starts where the `.part` ends, of a video longer than it.
            Some((start, total)) if start == offset && total.is_none_or(|t| t > offset) => {
                (start, total)
            }
            _ => (0, None), // a range we did not ask for, or past the end: start over
        },
        // The server ignored the range and sent everything.
        _ => (0, response.content_length()),
    };
    if start == 0 && offset > 0 && response.status() == StatusCode::PARTIAL_CONTENT {
        return restart(client, url, part, limits).await;
    }
    if let Some(total) = total.filter(|t| *t > max_bytes) {
        return Err(DownloadError::Fatal(format!(
            "video is {total} bytes, over the limit of {max_bytes} (limits.max_video_size)"
        )));
    }
    stream_to_part(response, part, start, total, limits).await
}

/// How many bytes of the video the `.part` already holds (0 if there is
/// none: its folder is made when the `.part` is, by [`create_part`]).
fn existing_part(part: &Path) -> u64 {
    resumable_len(part, booted_at())
}

/// [`existing_part`], given when the machine last started. A `.part` last
/// written before then counts as empty: a `.part` is fsynced only when it is
/// whole, and after a power loss some filesystems keep a file's length but
/// not all its blocks, so the bytes past the last flush may be zeros.
/// Resuming from them would give a video with a hole in it. Downloading it
/// again costs bandwidth only: the task is paid for and its URL still works.
fn resumable_len(part: &Path, booted: Option<std::time::SystemTime>) -> u64 {
    let Ok(meta) = std::fs::metadata(part) else {
        return 0;
    };
    let before_boot = booted.zip(meta.modified().ok()).is_some_and(|(b, m)| m < b);
    if before_boot && meta.len() > 0 {
        tracing::warn!(
            "{}: written before this machine last started, so it may hold gaps; downloading it again",
            part.display()
        );
        return 0;
    }
    meta.len()
}

/// When this machine last started (`btime` in `/proc/stat`); `None` where
/// that cannot be read, and then every `.part` is trusted.
fn booted_at() -> Option<std::time::SystemTime> {
    static BOOTED: std::sync::OnceLock<Option<std::time::SystemTime>> = std::sync::OnceLock::new();
    *BOOTED.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let secs = stat.lines().find_map(|l| l.strip_prefix("btime "))?;
        let secs: u64 = secs.trim().parse().ok()?;
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    })
}

/// Starts the GET; the wait for its headers is bounded by `limits.stall` and the URL's expiry.
async fn open(
    client: &Client,
    url: &str,
    offset: u64,
    limits: &DownloadLimits,
) -> Result<reqwest::Response, DownloadError> {
    let mut until = tokio::time::Instant::now() + limits.stall;
    if let Some(deadline) = limits.deadline {
        until = until.min(deadline);
    }
    match tokio::time::timeout_at(until, client.open_download(url, offset)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(classify(e)),
        Err(_) if limits.deadline.is_some_and(|d| d <= until) => Err(DownloadError::Expired(
            "the video URL expired while waiting for its answer".into(),
        )),
        Err(_) => Err(DownloadError::Retry(format!(
            "no answer from the video URL within {:.0?} (limits.download_stall)",
            limits.stall
        ))),
    }
}

/// Deletes the `.part` and downloads from byte 0.
async fn restart(
    client: &Client,
    url: &str,
    part: &Path,
    limits: &DownloadLimits,
) -> Result<Fetched, DownloadError> {
    let max_bytes = limits.max_bytes;
    let _ = tokio::fs::remove_file(part).await;
    let response = open(client, url, 0, limits).await?;
    let total = response.content_length();
    if let Some(total) = total.filter(|t| *t > max_bytes) {
        return Err(DownloadError::Fatal(format!(
            "video is {total} bytes, over the limit of {max_bytes} (limits.max_video_size)"
        )));
    }
    stream_to_part(response, part, 0, total, limits).await
}

/// How many received chunks may wait for each thread of a large video: enough
/// to keep the hash busy, few enough that a 1 GiB video stays well under 50 MB
/// of RSS (32 reached 54 MiB with mimalloc; 4 holds 33-36 MiB at the same speed).
const SINK_DEPTH: usize = 4;

/// A video of at most this many bytes is received whole, then written, hashed
/// and fsynced in one blocking step: one thread hand-off (a futex wake-up) per
/// small clip instead of one per chunk and thread. Each download in progress
/// holds at most this much in memory.
const WHOLE_BODY: u64 = 1 << 20;

/// The writer asks the kernel to start writing a large video back to disk every
/// this many bytes, so the closing fsync has little left to flush (a 1 GiB video
/// otherwise waits about a second and a half on it here).
const WRITEBACK_STEP: u64 = 8 << 20;

/// Receives on the async side while blocking threads write and hash, so the
/// hash (the costliest part) overlaps the network and the disk instead of adding
/// to them.
async fn stream_to_part(
    mut response: reqwest::Response,
    part: &Path,
    start: u64,
    total: Option<u64>,
    limits: &DownloadLimits,
) -> Result<Fetched, DownloadError> {
    let max_bytes = limits.max_bytes;
    let kind = content_type(&response);
    if !could_be_video(&kind) {
        let body = first_text(&mut response).await;
        return Err(not_a_video(&kind, &body));
    }
    // The first bytes of a fresh download decide whether it is a video before
    // anything reaches the disk (a resume's head was checked when it was written).
    let mut head: Vec<Bytes> = Vec::new();
    if start == 0 {
        let mut seen = 0usize;
        while seen < MAGIC_LEN {
            match tokio::time::timeout(limits.stall, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    seen += chunk.len();
                    head.push(chunk);
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    return Err(DownloadError::Retry(format!(
                        "download broke off at its start: {}",
                        e.without_url()
                    )));
                }
                Err(_) => {
                    return Err(DownloadError::Retry(format!(
                        "no bytes from the video URL within {:.0?} (limits.download_stall)",
                        limits.stall
                    )));
                }
            }
        }
        let first: Vec<u8> = head
            .iter()
            .flat_map(|c| c.iter().copied())
            .take(64)
            .collect();
        if !is_video(&first, limits.allow_gif) {
            let text = String::from_utf8_lossy(&head.concat()).into_owned();
            return Err(not_a_video(&kind, &text));
        }
    }
    let mut sink = Sink::new(part, start, total);
    let mut received = start;
    let mut failure = None;
    let mut pending = head.into_iter();
    let mut meter = Meter::new(limits);
    loop {
        let next = match pending.next() {
            Some(chunk) => Ok(Some(chunk)),
            None => match meter.next(&mut response).await {
                Ok(next) => next,
                Err(cut) => {
                    failure = Some(cut);
                    break;
                }
            },
        };
        match next {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                if received > max_bytes {
                    failure = Some(DownloadError::Fatal(format!(
                        "video passed the limit of {max_bytes} bytes (limits.max_video_size)"
                    )));
                    break;
                }
                if !sink.push(chunk).await {
                    break; // a writer stopped: its error says why
                }
            }
            Ok(None) => break,
            Err(e) => {
                let e: reqwest::Error = e;
                let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                failure = Some(DownloadError::Retry(format!(
                    "download broke off after {received}{of} bytes: {}",
                    e.without_url()
                )));
                break;
            }
        }
    }
    // What arrived is written even after a failure: a retry resumes from it.
    let written = sink
        .finish()
        .await
        .map_err(|e| DownloadError::Local(format!("cannot write {}: {e}", part.display())));
    if let Some(failure) = failure {
        if matches!(failure, DownloadError::Fatal(_)) {
            let _ = tokio::fs::remove_file(part).await;
        }
        return Err(failure);
    }
    let (bytes, sha256) = written?;
    if let Some(total) = total
        && bytes != total
    {
        return Err(DownloadError::Retry(format!(
            "download ended after {bytes} of {total} bytes"
        )));
    }
    Ok(Fetched { bytes, sha256 })
}

/// Where the received chunks of one `.part` go.
enum Sink {
    /// A small video, kept until it is whole (see [`WHOLE_BODY`]).
    Whole {
        part: PathBuf,
        start: u64,
        chunks: Vec<Bytes>,
    },
    /// A large one: a writer thread and a hasher thread, each sent every chunk
    /// (a `Bytes` clone shares the memory), so hashing and writing overlap.
    Threads {
        to_writer: mpsc::Sender<Bytes>,
        to_hasher: mpsc::Sender<Bytes>,
        writer: JoinHandle<std::io::Result<u64>>,
        hasher: JoinHandle<std::io::Result<String>>,
    },
}

impl Sink {
    fn new(part: &Path, start: u64, total: Option<u64>) -> Sink {
        let part = part.to_path_buf();
        if total.is_some_and(|t| t.saturating_sub(start) <= WHOLE_BODY) {
            return Sink::Whole {
                part,
                start,
                chunks: Vec::new(),
            };
        }
        let (to_writer, mut writes) = mpsc::channel::<Bytes>(SINK_DEPTH);
        let (to_hasher, mut hashes) = mpsc::channel::<Bytes>(SINK_DEPTH);
        let hasher = {
            let part = part.clone();
            spawn_blocking(move || {
                hash_part(&part, start, std::iter::from_fn(|| hashes.blocking_recv()))
            })
        };
        let writer = spawn_blocking(move || {
            let chunks = std::iter::from_fn(|| writes.blocking_recv());
            write_part(&part, start, 1 << 20, chunks)
        });
        Sink::Threads {
            to_writer,
            to_hasher,
            writer,
            hasher,
        }
    }

    /// Hands on a chunk; false once a thread has stopped (its error says why).
    async fn push(&mut self, chunk: Bytes) -> bool {
        match self {
            Sink::Whole { chunks, .. } => {
                chunks.push(chunk);
                true
            }
            Sink::Threads {
                to_writer,
                to_hasher,
                ..
            } => to_hasher.send(chunk.clone()).await.is_ok() && to_writer.send(chunk).await.is_ok(),
        }
    }

    /// Writes what is left, fsyncs, and returns the length and sha256 of the `.part`.
    async fn finish(self) -> Result<(u64, String), String> {
        let joined = |e: tokio::task::JoinError| format!("writer thread stopped: {e}");
        match self {
            Sink::Whole {
                part,
                start,
                chunks,
            } => spawn_blocking(move || {
                let sha256 = hash_part(&part, start, chunks.iter())?;
                // A buffer the size of the clip: one write, and no 1 MiB per clip.
                let size = chunks.iter().map(|c| c.len()).sum::<usize>().max(1);
                Ok((write_part(&part, start, size, chunks.into_iter())?, sha256))
            })
            .await
            .map_err(joined)?
            .map_err(|e: std::io::Error| e.to_string()),
            Sink::Threads {
                to_writer,
                to_hasher,
                writer,
                hasher,
            } => {
                drop((to_writer, to_hasher));
                let bytes = writer.await.map_err(joined)?.map_err(|e| e.to_string())?;
                let sha256 = hasher.await.map_err(joined)?.map_err(|e| e.to_string())?;
                Ok((bytes, sha256))
            }
        }
    }
}

/// Appends chunks to the `.part` (which holds `start` bytes), starting the
/// writeback as it goes, then fsyncs. Returns the length of the file.
fn write_part(
    part: &Path,
    start: u64,
    buffer: usize,
    chunks: impl Iterator<Item = Bytes>,
) -> std::io::Result<u64> {
    use std::fs::OpenOptions;
    use std::io::Write;
    let file = if start > 0 {
        OpenOptions::new().append(true).open(part)?
    } else {
        create_part(part)?
    };
    let mut out = std::io::BufWriter::with_capacity(buffer, file);
    let (mut written, mut flushed) = (start, start);
    for chunk in chunks {
        out.write_all(&chunk)?;
        written += chunk.len() as u64;
        if written - flushed >= WRITEBACK_STEP {
            out.flush()?;
            start_writeback(out.get_ref(), flushed, written - flushed);
            flushed = written;
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(written)
}

/// Creates (or empties) the `.part`, making its folder first if there is none:
/// the folder is looked at only when the create says it is missing.
fn create_part(part: &Path) -> std::io::Result<std::fs::File> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(part)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = part.parent() {
                crate::util::create_dir_all_durable(parent)?;
            }
            open()
        }
        other => other,
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` to disk now rather
/// than leave them all to the closing fsync. On Linux, `POSIX_FADV_DONTNEED`
/// starts the writeback of dirty pages (without waiting for it) and drops the
/// pages already written, which a downloaded video does not need in the cache.
/// Only advice: an error changes nothing, since the fsync still decides.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(unix)]
    let _ = rustix::fs::fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len),
        rustix::fs::Advice::DontNeed,
    );
    #[cfg(not(unix))]
    let _ = (file, offset, len);
}

/// The sha256 of the `.part`'s first `start` bytes followed by the chunks.
fn hash_part<C: AsRef<[u8]>>(
    part: &Path,
    start: u64,
    chunks: impl Iterator<Item = C>,
) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    if start > 0 {
        hash_existing(part, start, &mut hasher)?;
    }
    for chunk in chunks {
        hasher.update(chunk.as_ref());
    }
    Ok(crate::util::hex(hasher.finish().as_ref()))
}

/// Feeds the first `len` bytes of an existing `.part` to the hasher.
fn hash_existing(part: &Path, len: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(part)?;
    let mut buf = vec![
        0u8;
        (1 << 20)
            .min(usize::try_from(len).unwrap_or(1 << 20))
            .max(1)
    ];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other("file shorter than expected"));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL if known).
fn content_range(response: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    parse_content_range(value)
}

fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    Some((start.parse().ok()?, total))
}

/// Bytes enough to tell a video's container by its start.
const MAGIC_LEN: usize = 12;

/// The response's `Content-Type`, lower-cased, without parameters.
fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// A type that cannot carry a video: text, HTML, JSON, XML.
fn could_be_video(kind: &str) -> bool {
    !(kind.starts_with("text/")
        || kind.contains("json")
        || kind.contains("xml")
        || kind.contains("html"))
}

/// MP4/MOV/3GP (`ftyp` box first), WebM/Matroska (EBML magic), or GIF when asked for.
fn is_video(first: &[u8], allow_gif: bool) -> bool {
    let ftyp = first.get(4..8) == Some(b"ftyp".as_slice());
    let ebml = first.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]);
    let gif = first.starts_with(b"GIF87a") || first.starts_with(b"GIF89a");
    ftyp || ebml || (allow_gif && gif)
}

/// Up to a few kilobytes of a body that is not a video, to say what it was.
async fn first_text(response: &mut reqwest::Response) -> String {
    let mut text = Vec::new();
    while text.len() < 4096 {
        match tokio::time::timeout(std::time::Duration::from_secs(2), response.chunk()).await {
            Ok(Ok(Some(chunk))) => text.extend_from_slice(&chunk),
            _ => break,
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// What came instead of a video, summarised (an HTML page by its title), never saved.
fn not_a_video(kind: &str, body: &str) -> DownloadError {
    let what = crate::api::html_title(body)
        .map(|t| format!("an HTML page \"{t}\""))
        .or_else(|| crate::api::types::error_message(body).map(|m| format!("\"{m}\"")))
        .unwrap_or_else(|| {
            let clip: String = body.chars().filter(|c| !c.is_control()).take(60).collect();
            format!("{} bytes starting {clip:?}", body.len())
        });
    let kind = if kind.is_empty() { "no type" } else { kind };
    DownloadError::Retry(format!(
        "the video URL answered with {what} ({kind}), not a video; not saved"
    ))
}

/// Reads the body while judging its pace: fewer than `min_rate × stall`
/// bytes in a `stall` window cut it (the `.part` keeps what came, for a
/// resume), and so does the URL's expiry.
struct Meter {
    min_bytes: u64,
    stall: std::time::Duration,
    deadline: Option<tokio::time::Instant>,
    window_start: tokio::time::Instant,
    window_bytes: u64,
}

impl Meter {
    fn new(limits: &DownloadLimits) -> Meter {
        Meter {
            min_bytes: (limits.min_rate as f64 * limits.stall.as_secs_f64()) as u64,
            stall: limits.stall,
            deadline: limits.deadline,
            window_start: tokio::time::Instant::now(),
            window_bytes: 0,
        }
    }

    async fn next(
        &mut self,
        response: &mut reqwest::Response,
    ) -> Result<Result<Option<Bytes>, reqwest::Error>, DownloadError> {
        loop {
            let window_end = self.window_start + self.stall;
            let until = self.deadline.map_or(window_end, |d| d.min(window_end));
            match tokio::time::timeout_at(until, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    self.window_bytes += chunk.len() as u64;
                    self.roll(tokio::time::Instant::now())?;
                    return Ok(Ok(Some(chunk)));
                }
                Ok(other) => return Ok(other),
                Err(_) => {
                    if self
                        .deadline
                        .is_some_and(|d| tokio::time::Instant::now() >= d)
                    {
                        return Err(DownloadError::Expired(
                            "the video URL expired while it was downloading".into(),
                        ));
                    }
                    self.roll(tokio::time::Instant::now())?;
                }
            }
        }
    }

    /// At the end of a window: too few bytes in it is a stall; else a new window.
    fn roll(&mut self, now: tokio::time::Instant) -> Result<(), DownloadError> {
        if now < self.window_start + self.stall {
            return Ok(());
        }
        if self.min_bytes > 0 && self.window_bytes < self.min_bytes {
            return Err(DownloadError::Retry(format!(
                "stalled: {} bytes in the last {:.0?}, below limits.download_min_rate; resuming from the .part",
                self.window_bytes, self.stall
            )));
        }
        self.window_start = now;
        self.window_bytes = 0;
        Ok(())
    }
}

fn classify(e: ApiError) -> DownloadError {
    match e.status() {
        Some(403 | 404 | 410) => DownloadError::Expired(e.to_string()),
        _ if e.is_transient() => DownloadError::Retry(e.to_string()),
        _ => DownloadError::Fatal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_video_by_its_first_bytes() {
        assert!(is_video(b"\0\0\0\x18ftypmp42\0\0", false));
        assert!(is_video(&[0x1A, 0x45, 0xDF, 0xA3, 1, 2], false));
        assert!(!is_video(b"GIF89a....", false));
        assert!(is_video(b"GIF89a....", true));
        assert!(!is_video(b"<html><head>", false));
        assert!(!is_video(b"", false));
        assert!(could_be_video("video/mp4") && could_be_video("application/octet-stream"));
        assert!(could_be_video(""));
        assert!(!could_be_video("text/html") && !could_be_video("application/json"));
    }

    /// Serves one crafted answer to every connection: `head`, then `body`
    /// in pieces of `piece` bytes every `gap`.
    async fn serve(head: String, body: Vec<u8>, piece: usize, gap: std::time::Duration) -> String {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let head = head.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                    let _ = socket.write_all(head.as_bytes()).await;
                    for chunk in body.chunks(piece.max(1)) {
                        if socket.write_all(chunk).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(gap).await;
                    }
                });
            }
        });
        format!("http://{addr}/v.mp4")
    }

    fn limits() -> DownloadLimits {
        DownloadLimits {
            max_bytes: 1 << 30,
            min_rate: 1000,
            stall: std::time::Duration::from_millis(200),
            deadline: None,
            allow_gif: false,
        }
    }

    fn client() -> Client {
        Client::new("http://127.0.0.1:1", crate::api::ApiKey::new("k".into())).unwrap()
    }

    #[tokio::test]
    async fn an_html_page_is_never_saved_as_the_video() {
        let page = b"<html><head><title>502 Bad Gateway</title></head></html>".to_vec();
        for kind in ["text/html", "application/octet-stream"] {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n",
                page.len()
            );
            let url = serve(head, page.clone(), 4096, std::time::Duration::ZERO).await;
            let dir = tempfile::tempdir().unwrap();
            let part = dir.path().join("v.mp4.part");
            let err = fetch(&client(), &url, &part, &limits(), Start::Fresh)
                .await
                .unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, DownloadError::Retry(_)), "{text}");
            assert!(
                text.contains("502 Bad Gateway") && text.contains("not a video"),
                "{text}"
            );
            assert!(!part.exists(), "{kind}: nothing written");
        }
    }

    #[tokio::test]
    async fn a_trickle_is_cut_and_what_came_is_kept_for_the_resume() {
        let mut body = b"\0\0\0\x18ftypmp42\0\0\0\0".to_vec();
        body.extend(std::iter::repeat_n(7u8, 10_000));
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let url = serve(head, body, 16, std::time::Duration::from_millis(50)).await;
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("v.mp4.part");
        let started = std::time::Instant::now();
        let err = fetch(&client(), &url, &part, &limits(), Start::Fresh)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("stalled"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        let kept = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        assert!(kept >= 16, "the bytes that came are kept: {kept}");
    }

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    fn chunks(data: &[u8], size: usize) -> Vec<Bytes> {
        data.chunks(size).map(Bytes::copy_from_slice).collect()
    }

    #[test]
    fn a_resumed_part_is_appended_to_and_hashed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("v.mp4.part");
        // Past two writeback steps, in chunks that do not divide them.
        let data: Vec<u8> = (0..2 * WRITEBACK_STEP + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        let cut = WRITEBACK_STEP as usize + 777;
        let first = write_part(&part, 0, 4096, chunks(&data[..cut], 65_000).into_iter()).unwrap();
        assert_eq!(first, cut as u64);
        let rest = chunks(&data[cut..], 70_001);
        let sha256 = hash_part(&part, first, rest.iter()).unwrap();
        let total = write_part(&part, first, 1 << 20, rest.into_iter()).unwrap();
        assert_eq!(total, data.len() as u64);
        assert_eq!(std::fs::read(&part).unwrap(), data);
        assert_eq!(sha256, crate::util::sha256_hex(&data));
    }

    #[test]
    fn a_part_shorter_than_its_resume_point_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("v.mp4.part");
        std::fs::write(&part, b"abc").unwrap();
        let none: [Bytes; 0] = [];
        assert!(hash_part(&part, 10, none.iter()).is_err());
    }

    #[test]
    fn an_existing_part_is_measured_and_a_missing_folder_made() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("a/b/v.mp4.part");
        assert_eq!(existing_part(&part), 0);
        // A resume that finds nothing writes from byte 0, which makes the folder.
        write_part(&part, 0, 16, chunks(b"12", 1).into_iter()).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        std::fs::write(&part, b"12345").unwrap();
        assert_eq!(existing_part(&part), 5);
    }

    #[test]
    fn a_fresh_part_replaces_another_and_makes_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("new/folder/v.mp4.part");
        let written = write_part(&part, 0, 16, chunks(b"first", 2).into_iter()).unwrap();
        assert_eq!(written, 5);
        let written = write_part(&part, 0, 16, chunks(b"xy", 2).into_iter()).unwrap();
        assert_eq!(written, 2);
        assert_eq!(std::fs::read(&part).unwrap(), b"xy");
    }

    #[test]
    fn a_part_written_before_the_last_boot_is_not_resumed() {
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("v.mp4.part");
        std::fs::write(&part, b"12345").unwrap();
        let now = SystemTime::now();
        assert_eq!(resumable_len(&part, None), 5);
        assert_eq!(resumable_len(&part, Some(now - Duration::from_secs(60))), 5);
        let file = std::fs::File::options().write(true).open(&part).unwrap();
        file.set_modified(now - Duration::from_secs(3600)).unwrap();
        assert_eq!(resumable_len(&part, Some(now - Duration::from_secs(60))), 0);
        // This machine's own boot time is readable on Linux, and before now.
        #[cfg(target_os = "linux")]
        assert!(booted_at().is_some_and(|b| b < now));
    }

    #[test]
    fn part_names() {
        assert_eq!(
            part_path(Path::new("out/a.mp4")),
            PathBuf::from("out/a.mp4.part")
        );
    }
}
