//! Video `src`s relative to the page's folder, percent-encoded, so the page
//! plays its videos opened from disk (`file://`) and served over HTTP.

use std::path::{Path, PathBuf};

use crate::util::{relative_path, url_path};

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
            return url_path(&rel);
        }
        let encoded = url_path(&video_abs);
        if encoded.starts_with('/') {
            format!("file://{encoded}")
        } else {
            format!("file:///{encoded}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
