//! Video `src`s relative to the page's folder, percent-encoded, so the page
//! plays its videos opened from disk (`file://`) and served over HTTP.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// The path from folder `from_dir` to `to`, both absolute; `None` when they
/// share no root (another drive on Windows) or one is relative. `.` and `..`
/// are resolved lexically, without looking at the disk.
pub fn relative_path(from_dir: &Path, to: &Path) -> Option<PathBuf> {
    if !from_dir.is_absolute() || !to.is_absolute() {
        return None;
    }
    let from = normalize(from_dir);
    let to = normalize(to);
    // Roots and prefixes must match: they are the first components.
    let root_len = |p: &[Component<'_>]| {
        p.iter()
            .take_while(|c| matches!(c, Component::Prefix(_) | Component::RootDir))
            .count()
    };
    if from[..root_len(&from)] != to[..root_len(&to)] {
        return None;
    }
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c.as_os_str());
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    Some(rel)
}

fn normalize(path: &Path) -> Vec<Component<'_>> {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.last(), Some(Component::Normal(_))) {
                    out.pop();
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The URL of `video` for a page in folder `page_dir`: a relative, percent-encoded
/// URL when one exists (relative paths are taken from the current folder), else a
/// `file://` URL.
pub fn video_src(page_dir: &Path, video: &Path) -> String {
    Srcs::new(page_dir).src(video)
}

/// [`video_src`] for many videos of one page: the folders are made absolute once.
#[derive(Debug)]
pub struct Srcs {
    page_dir: PathBuf,
    cwd: Option<PathBuf>,
}

impl Srcs {
    pub fn new(page_dir: &Path) -> Srcs {
        Srcs {
            page_dir: std::path::absolute(page_dir).unwrap_or_else(|_| page_dir.to_path_buf()),
            cwd: std::env::current_dir().ok(),
        }
    }

    /// The URL of `video`, as [`video_src`] gives it.
    pub fn src(&self, video: &Path) -> String {
        let video_abs = match &self.cwd {
            Some(cwd) if !video.is_absolute() => cwd.join(video),
            _ => video.to_path_buf(),
        };
        if let Some(rel) = relative_path(&self.page_dir, &video_abs) {
            return encode_path(&rel);
        }
        let encoded = encode_path(&video_abs);
        if encoded.starts_with('/') {
            format!("file://{encoded}")
        } else {
            format!("file:///{encoded}")
        }
    }
}

/// Joins a path's components with `/`, percent-encoding each one (a `:` or `#`
/// in a file name must not read as a URL scheme or fragment).
fn encode_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.components() {
        match c {
            Component::RootDir => out.push('/'),
            Component::Prefix(p) => {
                out.push_str(&p.as_os_str().to_string_lossy());
                continue;
            }
            c => {
                if !out.is_empty() && !out.ends_with('/') {
                    out.push('/');
                }
                for b in os_bytes(c.as_os_str()).iter() {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                        out.push(char::from(*b));
                    } else {
                        let _ = write!(out, "%{b:02X}");
                    }
                }
            }
        }
    }
    out
}

#[cfg(unix)]
fn os_bytes(s: &std::ffi::OsStr) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    std::borrow::Cow::Borrowed(s.as_bytes())
}

#[cfg(not(unix))]
fn os_bytes(s: &std::ffi::OsStr) -> std::borrow::Cow<'_, [u8]> {
    match s.to_string_lossy() {
        std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(s.as_bytes()),
        std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(rel("/", "/x.mp4").as_deref(), Some("x.mp4"));
        assert_eq!(rel("/a/out", "/a/out").as_deref(), Some("."));
        assert_eq!(rel("out", "/a/x.mp4"), None, "relative input");
    }

    #[cfg(unix)]
    #[test]
    fn video_src_is_relative_and_percent_encoded() {
        assert_eq!(
            video_src(Path::new("/srv/out"), Path::new("/srv/out/a.mp4")),
            "a.mp4"
        );
        assert_eq!(
            video_src(Path::new("/srv/out"), Path::new("/srv/my clips/#1?:x%.mp4")),
            "../my%20clips/%231%3F%3Ax%25.mp4"
        );
        assert_eq!(
            video_src(Path::new("/srv/out"), Path::new("/srv/out/é.mp4")),
            "%C3%A9.mp4"
        );
        // Relative paths are taken from the current folder, like the runner's own.
        assert_eq!(
            video_src(Path::new("out"), Path::new("out/v/a.mp4")),
            "v/a.mp4"
        );
    }
}
