//! Streams one video to `<file>.part`: resumes with a Range request, checks the
//! length, hashes while streaming, fsyncs. Never holds a video in memory.
//!
//! Renaming `.part` to the final name is the dispatcher's job, after the
//! journal records the download, so a crash can never leave a partial file
//! under the final name.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use reqwest::header::CONTENT_RANGE;

use crate::api::{ApiError, Client};

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
}

/// Streaming SHA-256. aws-lc's assembly runs several times faster than the
/// portable code on CPUs without SHA extensions, which decides download speed.
struct Hasher(aws_lc_rs::digest::Context);

impl Hasher {
    fn new() -> Hasher {
        Hasher(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finish(self) -> aws_lc_rs::digest::Digest {
        self.0.finish()
    }
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

/// Downloads `url` into `part`, resuming what is already there.
pub async fn fetch(
    client: &Client,
    url: &str,
    part: &Path,
    max_bytes: u64,
) -> Result<Fetched, DownloadError> {
    let io = |what: &str, e: std::io::Error| {
        DownloadError::Retry(format!("{what} {}: {e}", part.display()))
    };
    if let Some(parent) = part.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io("cannot create folder for", e))?;
    }
    let mut offset = match tokio::fs::metadata(part).await {
        Ok(meta) => meta.len(),
        Err(_) => 0,
    };
    if offset > max_bytes {
        offset = 0;
    }
    let response = match client.open_download(url, offset).await {
        Ok(response) => response,
        // The range runs past the end: what we have may be the whole file, or junk.
        Err(ApiError::Status { status: 416, .. }) if offset > 0 => {
            return restart(client, url, part, max_bytes).await;
        }
        Err(e) => return Err(classify(e)),
    };
    let (start, total) = match (offset, response.status()) {
        (0, _) => (0, response.content_length()),
        (_, StatusCode::PARTIAL_CONTENT) => match content_range(&response) {
            Some((start, total)) if start == offset => (start, total),
            _ => (0, None), // a range we did not ask for: start over
        },
        // The server ignored the range and sent everything.
        _ => (0, response.content_length()),
    };
    if start == 0 && offset > 0 && response.status() == StatusCode::PARTIAL_CONTENT {
        return restart(client, url, part, max_bytes).await;
    }
    if let Some(total) = total.filter(|t| *t > max_bytes) {
        return Err(DownloadError::Fatal(format!(
            "video is {total} bytes, over the limit of {max_bytes} (limits.max_video_size)"
        )));
    }
    stream_to_part(response, part, start, total, max_bytes).await
}

/// Deletes the `.part` and downloads from byte 0.
async fn restart(
    client: &Client,
    url: &str,
    part: &Path,
    max_bytes: u64,
) -> Result<Fetched, DownloadError> {
    let _ = tokio::fs::remove_file(part).await;
    let response = client.open_download(url, 0).await.map_err(classify)?;
    let total = response.content_length();
    if let Some(total) = total.filter(|t| *t > max_bytes) {
        return Err(DownloadError::Fatal(format!(
            "video is {total} bytes, over the limit of {max_bytes} (limits.max_video_size)"
        )));
    }
    stream_to_part(response, part, 0, total, max_bytes).await
}

/// How many received chunks may wait for the writer thread: enough to keep the
/// hash busy, few enough that a 1 GiB video stays well under 50 MB of RSS
/// (32 reached 54 MiB with mimalloc; 4 holds 33-36 MiB at the same speed, within noise).
const SINK_DEPTH: usize = 4;

/// Receives on the async side while a blocking thread writes and hashes, so the
/// hash (the costliest part) overlaps the network instead of adding to it.
async fn stream_to_part(
    mut response: reqwest::Response,
    part: &Path,
    start: u64,
    total: Option<u64>,
    max_bytes: u64,
) -> Result<Fetched, DownloadError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(SINK_DEPTH);
    let sink_path = part.to_path_buf();
    // A buffer no bigger than the video: thousands of small clips must not cost 1 MiB each.
    let buffer = total.map_or(1 << 20, |t| t.saturating_sub(start).clamp(4096, 1 << 20)) as usize;
    let sink = tokio::task::spawn_blocking(move || write_and_hash(&sink_path, start, buffer, rx));
    let mut received = start;
    let mut failure = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                if received > max_bytes {
                    failure = Some(DownloadError::Fatal(format!(
                        "video passed the limit of {max_bytes} bytes (limits.max_video_size)"
                    )));
                    break;
                }
                if tx.send(chunk).await.is_err() {
                    break; // the writer stopped: its error says why
                }
            }
            Ok(None) => break,
            Err(e) => {
                let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                failure = Some(DownloadError::Retry(format!(
                    "download broke off after {received}{of} bytes: {}",
                    e.without_url()
                )));
                break;
            }
        }
    }
    drop(tx);
    // The writer flushes what arrived even after a failure: a retry resumes from it.
    let written = sink
        .await
        .map_err(|e| DownloadError::Retry(format!("writer of {} stopped: {e}", part.display())))?
        .map_err(|e| DownloadError::Retry(format!("cannot write {}: {e}", part.display())));
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

/// The writer thread: appends chunks to the `.part` (after hashing what it
/// already holds), then flushes and fsyncs. Returns the length and sha256.
fn write_and_hash(
    part: &Path,
    start: u64,
    buffer: usize,
    mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) -> std::io::Result<(u64, String)> {
    use std::fs::OpenOptions;
    use std::io::Write;
    let mut hasher = Hasher::new();
    let file = if start > 0 {
        hash_existing(part, start, &mut hasher)?;
        OpenOptions::new().append(true).open(part)?
    } else {
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(part)?
    };
    let mut out = std::io::BufWriter::with_capacity(buffer, file);
    let mut written = start;
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
        out.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((written, crate::util::hex(hasher.finish().as_ref())))
}

/// Feeds the first `len` bytes of an existing `.part` to the hasher.
fn hash_existing(part: &Path, len: u64, hasher: &mut Hasher) -> std::io::Result<()> {
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
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn hasher_matches_sha2() {
        let data = vec![7u8; 100_000];
        let mut h = Hasher::new();
        h.update(&data[..1234]);
        h.update(&data[1234..]);
        assert_eq!(
            crate::util::hex(h.finish().as_ref()),
            crate::util::sha256_hex(&data)
        );
    }

    #[test]
    fn part_names() {
        assert_eq!(
            part_path(Path::new("out/a.mp4")),
            PathBuf::from("out/a.mp4.part")
        );
    }
}
