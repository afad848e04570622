//! Small helpers shared across modules.

use std::path::{Component, Path, PathBuf};

/// Makes the entries of `dir` durable: a new or renamed file survives a power
/// loss only once its folder is synced too. Best effort: not every
/// filesystem can sync a folder.
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// `create_dir_all`, then syncs the parent of every folder it made, so the
/// new folders survive a power loss along with what goes in them.
/// A temp file beside `target`, named `.<target name>.<random>.tmp` so a
/// later start can tell it from anything else, with the usual file mode
/// (0666 less the umask, as `File::create` gives) rather than tempfile's 0600:
/// a report is for people to read.
pub fn temp_file_in(dir: &Path, target: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// What [`temp_file_in`] names end with.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Deletes the temp files a killed run left in `dir` for `targets` (see
/// [`temp_file_in`]); call it only while holding the state lock.
pub fn remove_stale_temp_files(dir: &Path, targets: &[&Path]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefixes: Vec<String> = targets
        .iter()
        .filter_map(|t| t.file_name())
        .map(|n| format!(".{}.", n.to_string_lossy()))
        .collect();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TEMP_SUFFIX) && prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

pub fn create_dir_all_durable(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d);
        at = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    for d in missing {
        if let Some(parent) = d.parent() {
            sync_dir(parent);
        }
    }
    Ok(())
}

/// The sha256 of `data`, by aws-lc's assembly: every job's fingerprint is
/// hashed on every resume, and sha2's portable code was a tenth of a 100k-job
/// resume.
pub fn sha256(data: &[u8]) -> aws_lc_rs::digest::Digest {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
}

/// Streaming SHA-256, by the same assembly as [`sha256`]: on CPUs without SHA
/// extensions it runs several times faster than portable code, and it decides
/// download speed.
pub struct Sha256(aws_lc_rs::digest::Context);

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> aws_lc_rs::digest::Digest {
        self.0.finish()
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256")
    }
}

impl Default for Sha256 {
    fn default() -> Sha256 {
        Sha256::new()
    }
}

/// Lower-case hex of the sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(sha256(data).as_ref())
}

/// `f` applied to consecutive chunks of `items`, one chunk per core (at most
/// 8, of about 4096 items or more each), the results in order. Small inputs
/// are one chunk on the calling thread. A panic in `f` is passed on as it is.
pub fn par_chunks<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    const MIN_CHUNK: usize = 4096;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len() / MIN_CHUNK)
        .min(8);
    if threads <= 1 {
        return vec![f(items)];
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|chunk| scope.spawn(move || f(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle.join() {
                Ok(part) => part,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Lower-case hex of any byte slice (sha2 0.11 digests have no `{:x}`).
pub fn hex(bytes: &[u8]) -> String {
    // A table, not `write!("{:02x}")`: ids derived from prompts hash every job of a load.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// `31.4 MB`: decimal units, as the manifest's `max_video_size` reads them (by
/// bytesize, which also parses them: see `manifest::parse::parse_size`).
pub fn human_bytes(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().si().to_string()
}

/// The path from folder `from_dir` to `to`, both absolute; `None` when they
/// share no root (another drive on Windows) or one is relative. `.` and `..`
/// are resolved lexically, without looking at the disk (pathdiff keeps a `..`
/// it is given, so they are resolved first).
pub fn relative_path(from_dir: &Path, to: &Path) -> Option<PathBuf> {
    if !from_dir.is_absolute() || !to.is_absolute() {
        return None;
    }
    let (from, to) = (lexical(from_dir), lexical(to));
    let root = |p: &Path| {
        p.components()
            .take_while(|c| !matches!(c, Component::Normal(_)))
            .count()
    };
    if from
        .components()
        .take(root(&from))
        .ne(to.components().take(root(&to)))
    {
        return None;
    }
    let rel = pathdiff::diff_paths(&to, &from)?;
    Some(if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    })
}

/// `path` with `.` dropped and each `..` taking off the folder before it.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.file_name().is_some() {
                    out.pop();
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// What a URL path segment keeps as it is: letters, digits and `-._~`
/// (RFC 3986's unreserved characters); a `:` or `#` in a file name must not
/// read as a URL scheme or fragment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path as a URL path: its components joined with `/`, each percent-encoded.
pub fn url_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.components() {
        match c {
            Component::RootDir => out.push('/'),
            Component::Prefix(p) => out.push_str(&p.as_os_str().to_string_lossy()),
            c => {
                if !out.is_empty() && !out.ends_with('/') {
                    out.push('/');
                }
                out.extend(percent_encoding::percent_encode(
                    c.as_os_str().as_encoded_bytes(),
                    SEGMENT,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_folders_are_made_whole_and_again_without_harm() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_all_durable(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all_durable(&deep).unwrap();
        std::fs::write(dir.path().join("a/file"), b"x").unwrap();
        assert!(create_dir_all_durable(&dir.path().join("a/file/d")).is_err());
        sync_dir(Path::new(""));
    }

    #[test]
    fn streaming_sha256_matches_the_one_shot() {
        let data = vec![7u8; 100_000];
        let mut h = Sha256::new();
        h.update(&data[..1234]);
        h.update(&data[1234..]);
        assert_eq!(hex(h.finish().as_ref()), sha256_hex(&data));
    }

    #[test]
    fn par_chunks_covers_every_item_in_order() {
        for n in [0, 1, 4095, 4096 * 3 + 7] {
            let items: Vec<usize> = (0..n).collect();
            let parts = par_chunks(&items, |c| c.to_vec());
            assert_eq!(parts.concat(), items);
        }
    }

    #[test]
    fn hex_and_sha256_match_the_known_digest() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn human_bytes_are_decimal() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(31_400_000), "31.4 MB");
    }

    #[cfg(unix)]
    #[test]
    fn relative_paths() {
        let rel = |from: &str, to: &str| {
            relative_path(Path::new(from), Path::new(to)).map(|p| p.display().to_string())
        };
        assert_eq!(rel("/a/out", "/a/out/x.mp4").as_deref(), Some("x.mp4"));
        assert_eq!(
            rel("/a/out", "/a/out/sub/x.mp4").as_deref(),
            Some("sub/x.mp4")
        );
        assert_eq!(
            rel("/a/out/", "/a/other/x.mp4").as_deref(),
            Some("../other/x.mp4")
        );
        assert_eq!(
            rel("/a/out/deep", "/b/x.mp4").as_deref(),
            Some("../../../b/x.mp4")
        );
        assert_eq!(
            rel("/a/./out/../out", "/a/out/./x.mp4").as_deref(),
            Some("x.mp4")
        );
        assert_eq!(rel("/a/../../out", "/out/x.mp4").as_deref(), Some("x.mp4"));
        assert_eq!(rel("/", "/x.mp4").as_deref(), Some("x.mp4"));
        assert_eq!(rel("/a/out", "/a/out").as_deref(), Some("."));
        assert_eq!(rel("out", "/a/x.mp4"), None, "relative input");
    }

    #[cfg(unix)]
    #[test]
    fn url_paths_are_percent_encoded_per_component() {
        assert_eq!(
            url_path(Path::new("../my clips/#1?:x%.mp4")),
            "../my%20clips/%231%3F%3Ax%25.mp4"
        );
        assert_eq!(url_path(Path::new("/srv/é.mp4")), "/srv/%C3%A9.mp4");
        assert_eq!(url_path(Path::new("a-b_c~d.e")), "a-b_c~d.e");
    }
}
