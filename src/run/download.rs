//! Streams one video to `<file>.part`: resumes with a Range request, checks the
//! length, hashes while streaming, fsyncs. Never holds a video in memory.
//!
//! Renaming `.part` to the final name is the dispatcher's job, after the
//! journal records the download, so a crash can never leave a partial file
//! under the final name.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use reqwest::header::CONTENT_RANGE;
use sha2::{Digest, Sha256};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

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

async fn stream_to_part(
    mut response: reqwest::Response,
    part: &Path,
    start: u64,
    total: Option<u64>,
    max_bytes: u64,
) -> Result<Fetched, DownloadError> {
    let io = |what: &str, e: std::io::Error| {
        DownloadError::Retry(format!("{what} {}: {e}", part.display()))
    };
    let mut hasher = Sha256::new();
    let file = if start > 0 {
        hash_existing(part, start, &mut hasher)
            .await
            .map_err(|e| io("cannot read", e))?;
        OpenOptions::new().append(true).open(part).await
    } else {
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(part)
            .await
    }
    .map_err(|e| io("cannot open", e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut written = start;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                out.flush().await.map_err(|e| io("cannot write", e))?;
                let got = written;
                let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                return Err(DownloadError::Retry(format!(
                    "download broke off after {got}{of} bytes: {}",
                    e.without_url()
                )));
            }
        };
        written += chunk.len() as u64;
        if written > max_bytes {
            drop(out);
            let _ = tokio::fs::remove_file(part).await;
            return Err(DownloadError::Fatal(format!(
                "video passed the limit of {max_bytes} bytes (limits.max_video_size)"
            )));
        }
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| io("cannot write", e))?;
    }
    out.flush().await.map_err(|e| io("cannot write", e))?;
    let file = out.into_inner();
    file.sync_all().await.map_err(|e| io("cannot sync", e))?;
    if let Some(total) = total
        && written != total
    {
        return Err(DownloadError::Retry(format!(
            "download ended after {written} of {total} bytes"
        )));
    }
    Ok(Fetched {
        bytes: written,
        sha256: crate::util::hex(&hasher.finalize()),
    })
}

/// Feeds the first `len` bytes of an existing `.part` to the hasher.
async fn hash_existing(part: &Path, len: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut file = File::open(part).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want]).await?;
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
    fn part_names() {
        assert_eq!(
            part_path(Path::new("out/a.mp4")),
            PathBuf::from("out/a.mp4.part")
        );
    }
}
