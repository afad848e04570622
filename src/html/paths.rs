//! Video `src`s relative to the page's folder, percent-encoded, so the page
//! plays its videos opened from disk (`file://`) and served over HTTP.

use std::path::{Path, PathBuf};

pub use crate::util::relative_path;

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

use crate::util::url_path as encode_path;

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
