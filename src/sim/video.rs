//! Deterministic video content, generated on the fly so any size streams in constant memory.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use sha2::{Digest, Sha256};

/// Bytes generated per body chunk.
const CHUNK: usize = 64 * 1024;

/// splitmix64's increment; word `i` of a video is splitmix64's output at step `i`.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// FNV-1a of the task ID: the seed of its content.
fn seed_of(task_id: &str) -> u64 {
    task_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn word(seed: u64, index: u64) -> [u8; 8] {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).to_le_bytes()
}

/// Fills `buf` with the content of `task_id`'s video starting at byte `offset`.
///
/// The content depends only on the task ID and the position, so a resumed
/// download can be checked against a whole one.
pub fn video_bytes(task_id: &str, offset: u64, buf: &mut [u8]) {
    noise(task_id, offset, buf);
    // Every video starts with a real clip, so browsers play what the simulator serves;
    // the per-task noise after it sits in a `free` box (size 0: to the end of the file).
    let prefix_len = SAMPLE.len() as u64 + FREE_BOX.len() as u64;
    if offset >= prefix_len {
        return;
    }
    for (i, byte) in buf.iter_mut().enumerate() {
        let at = offset + i as u64;
        if at >= prefix_len {
            break;
        }
        let at = at as usize;
        *byte = match SAMPLE.get(at) {
            Some(b) => *b,
            None => FREE_BOX[at - SAMPLE.len()],
        };
    }
}

/// A one-second 160×90 H.264 test pattern (ffmpeg `testsrc`, faststart): the start of every video.
const SAMPLE: &[u8] = include_bytes!("sample.mp4");
/// An ISO BMFF `free` box header with size 0, "extends to the end of the file".
const FREE_BOX: [u8; 8] = *b"\0\0\0\0free";

/// Deterministic bytes of a task, by absolute offset.
fn noise(task_id: &str, offset: u64, buf: &mut [u8]) {
    let seed = seed_of(task_id);
    let mut pos = offset;
    let mut rest = buf;
    // Head: up to the next 8-byte boundary.
    let skip = (pos % 8) as usize;
    if skip != 0 {
        let w = word(seed, pos / 8);
        let n = (8 - skip).min(rest.len());
        let (head, tail) = rest.split_at_mut(n);
        head.copy_from_slice(&w[skip..skip + n]);
        rest = tail;
        pos += n as u64;
    }
    let mut index = pos / 8;
    let mut chunks = rest.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(seed, index));
        index += 1;
    }
    let tail = chunks.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&word(seed, index)[..n]);
}

/// Lowercase hex SHA-256 of the first `len` bytes of `task_id`'s video.
pub fn video_sha256_hex(task_id: &str, len: u64) -> String {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0;
    while pos < len {
        let n = (len - pos).min(CHUNK as u64) as usize;
        video_bytes(task_id, pos, &mut buf[..n]);
        hasher.update(&buf[..n]);
        pos += n as u64;
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A slow body: `chunk` bytes at a time, `delay` between chunks (`trickle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    pub chunk: usize,
    pub delay: Duration,
}

/// The bytes `start..end` of a video as a body stream; with `cut_at`, the
/// stream stops there with an error, which makes hyper abort the connection.
/// With `pace`, the first chunk goes out with the headers and every later one
/// waits `pace.delay`.
pub(crate) fn body_stream(
    task_id: String,
    start: u64,
    end: u64,
    cut_at: Option<u64>,
    pace: Option<Pace>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let stop = cut_at.map_or(end, |c| c.clamp(start, end));
    let chunk = pace.map_or(CHUNK, |p| p.chunk.clamp(1, CHUNK)) as u64;
    let delay = pace.map_or(Duration::ZERO, |p| p.delay);
    futures::stream::unfold(Some(start), move |pos| {
        let task_id = task_id.clone();
        async move {
            let pos = pos?;
            if pos > start && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if pos >= stop {
                cut_at?;
                // Pending once before failing lets hyper flush the headers and
                // the bytes so far: the client sees a truncated body, not a
                // failed request.
                tokio::task::yield_now().await;
                let err =
                    io::Error::new(io::ErrorKind::ConnectionAborted, "download cut (simulated)");
                return Some((Err(err), None));
            }
            let n = (stop - pos).min(chunk) as usize;
            let mut buf = vec![0u8; n];
            video_bytes(&task_id, pos, &mut buf);
            Some((Ok(Bytes::from(buf)), Some(pos + n as u64)))
        }
    })
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable range: send everything with 200.
    Full,
    /// Send `start..end` with 206.
    Partial { start: u64, end: u64 },
    /// The range starts at or past the end: 416.
    Unsatisfiable,
}

/// Parses a single `bytes=N-` or `bytes=N-M` range; anything else (several
/// ranges, suffix ranges, garbage) is ignored like many servers do, which a
/// careful client must notice from the 200.
pub(crate) fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let Ok(start) = first.trim().parse::<u64>() else {
        return RangeRequest::Full;
    };
    let end = match last.trim() {
        "" => len,
        last => match last.parse::<u64>() {
            Ok(l) if l >= start => l.saturating_add(1).min(len),
            _ => return RangeRequest::Full,
        },
    };
    if start >= len {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Partial { start, end }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn every_video_starts_with_the_playable_clip() {
        let mut head = vec![0u8; SAMPLE.len() + 16];
        video_bytes("video_a", 0, &mut head);
        assert_eq!(&head[..SAMPLE.len()], SAMPLE);
        assert_eq!(&head[SAMPLE.len()..SAMPLE.len() + 8], b"\0\0\0\0free");
    }

    #[test]
    fn content_is_position_independent() {
        let mut whole = vec![0u8; 10_000];
        video_bytes("video_a", 0, &mut whole);
        let cases = [
            (0, 3),
            (1, 7),
            (3, 20),
            (7, 1),
            (8, 8),
            (13, 987),
            (3230, 20),
            (3236, 9),
            (9_000, 999),
        ];
        for (offset, len) in cases {
            let mut part = vec![0u8; len];
            video_bytes("video_a", offset as u64, &mut part);
            assert_eq!(part, whole[offset..offset + len], "{offset}+{len}");
        }
        let mut other = vec![0u8; 10_000];
        video_bytes("video_b", 0, &mut other);
        assert_ne!(whole, other, "videos differ after the shared clip");
    }

    #[test]
    fn sha256_of_known_input() {
        // SHA-256 of the empty string.
        assert_eq!(
            video_sha256_hex("x", 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut buf = vec![0u8; 100_000];
        video_bytes("t", 0, &mut buf);
        let direct: String = Sha256::digest(&buf)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(video_sha256_hex("t", 100_000), direct);
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(
            parse_range(Some("bytes=4-"), 10),
            Partial { start: 4, end: 10 }
        );
        assert_eq!(
            parse_range(Some("bytes=0-"), 10),
            Partial { start: 0, end: 10 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-5"), 10),
            Partial { start: 2, end: 6 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-50"), 10),
            Partial { start: 2, end: 10 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=-5"), 10), Full);
        assert_eq!(parse_range(Some("items=1-"), 10), Full);
    }

    #[tokio::test]
    async fn stream_matches_and_cuts() {
        let chunks: Vec<_> = body_stream("v".into(), 5, 200_005, None, None)
            .collect()
            .await;
        let body: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.map(|b| b.to_vec()).unwrap_or_default())
            .collect();
        let mut want = vec![0u8; 200_000];
        video_bytes("v", 5, &mut want);
        assert_eq!(body, want);

        let chunks: Vec<_> = body_stream("v".into(), 0, 200_000, Some(70_000), None)
            .collect()
            .await;
        let sent: usize = chunks
            .iter()
            .map(|c| c.as_ref().map_or(0, |b| b.len()))
            .sum();
        assert_eq!(sent, 70_000);
        assert!(chunks.last().is_some_and(|c| c.is_err()));
    }
}
