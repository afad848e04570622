//! The campaign manifest: TOML or CSV in, a validated [`Campaign`] of concrete [`Job`]s out.
//!
//! Layout:
//! - `parse`: TOML and CSV into spanned raw tables, unknown keys caught with a suggestion.
//! - `expand`: defaults × matrix × rows → jobs with stable ids.
//! - `diag`: [`Diagnostic`]s that name file, line and column; every problem is collected.
//!
//! What each model accepts lives in [`crate::models`].

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::models::Model;

/// Everything one `runner run` needs to know, resolved and validated.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// `name` from the manifest, or the file's stem.
    pub name: String,
    /// The manifest as given on the command line.
    pub manifest_path: PathBuf,
    /// The manifest's folder: relative paths in the manifest are taken from here.
    pub base_dir: PathBuf,
    pub api: ApiConfig,
    pub limits: Limits,
    pub output: Output,
    /// In manifest order: `[[job]]` entries first, then `[[source]]` rows, each × matrix.
    pub jobs: Vec<Job>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Without a trailing slash.
    pub base_url: String,
    /// Name of the environment variable holding the key (never the key itself).
    pub api_key_env: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Every API call (submit, poll, upload) together.
    pub requests_per_second: f64,
    /// How many requests may go at once after an idle spell.
    pub burst: u32,
    /// Tasks submitted and not yet finished.
    pub max_in_flight: usize,
    /// Concurrent downloads.
    pub downloads: usize,
    /// Give up polling a task this long after it was submitted.
    pub task_timeout: Duration,
    /// Generation attempts per job when a task ends `failed`.
    pub max_attempts: u32,
    /// Poll cadence while a task is queued.
    pub poll_queued: Duration,
    /// Poll cadence while a task is in progress.
    pub poll_in_progress: Duration,
    /// Largest video accepted, in bytes.
    pub max_video_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_second: 2.0,
            burst: 1,
            max_in_flight: 10,
            downloads: 4,
            task_timeout: Duration::from_secs(30 * 60),
            max_attempts: 2,
            poll_queued: Duration::from_secs(5),
            poll_in_progress: Duration::from_secs(10),
            max_video_bytes: 2 << 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Resolved folder for videos (templates filled, relative to `base_dir`).
    pub dir: PathBuf,
    /// `output.state` when the manifest sets it (resolved against `base_dir`).
    pub state: Option<PathBuf>,
    /// `output.report` when the manifest sets it (resolved against `base_dir`).
    pub report: Option<PathBuf>,
}

impl Output {
    /// The state journal: `output.state`, else `<dir>/state.jsonl`.
    pub fn state_path(&self) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| self.dir.join("state.jsonl"))
    }

    /// The CSV report: `output.report`, else `<dir>/report.csv`.
    pub fn report_path(&self) -> PathBuf {
        self.report
            .clone()
            .unwrap_or_else(|| self.dir.join("report.csv"))
    }
}

/// One concrete generation: what is sent, and where its video goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Unique, file-safe: letters, digits, `-`, `_`, `.`, not starting with `.`.
    pub id: String,
    pub model: Model,
    pub prompt: String,
    /// Seconds; always filled (the model's default when the manifest says nothing).
    pub duration: u32,
    /// Always filled (`16:9` when the manifest says nothing).
    pub aspect_ratio: String,
    /// Top-level `resolution` (gemini only; `720P`). For veo a `resolution`
    /// given in the manifest is moved into `metadata.resolution`.
    pub resolution: Option<String>,
    /// Start frame, end frame: URLs or local files to upload.
    pub images: Vec<ImageRef>,
    /// Model-specific extras (veo: `resolution`, `generation_type`, `enable_gif`).
    pub metadata: Map<String, Value>,
    /// File name of the video inside `Output::dir` (the `filename` template filled).
    pub filename: String,
    /// Where the job came from, for messages.
    pub origin: Origin,
}

/// An `image_urls` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageRef {
    /// `http://` or `https://`, sent as is.
    Url(String),
    /// A local file, uploaded once per campaign; the path is resolved against the manifest's folder.
    Local(PathBuf),
}

/// Where a job was defined: `campaign.toml:12` or `prompts.csv:7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

impl Job {
    /// The JSON body of `POST /v1/videos/generations`, with `image_urls` the
    /// URLs to send (local files already replaced by their uploaded URLs, in order).
    pub fn request_body(&self, image_urls: &[String]) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), Value::from(self.model.as_str()));
        body.insert("prompt".into(), Value::from(self.prompt.clone()));
        body.insert("duration".into(), Value::from(self.duration));
        body.insert(
            "aspect_ratio".into(),
            Value::from(self.aspect_ratio.clone()),
        );
        if let Some(resolution) = &self.resolution {
            body.insert("resolution".into(), Value::from(resolution.clone()));
        }
        if !image_urls.is_empty() {
            body.insert("image_urls".into(), Value::from(image_urls.to_vec()));
        }
        if !self.metadata.is_empty() {
            body.insert("metadata".into(), Value::Object(self.metadata.clone()));
        }
        Value::Object(body)
    }

    /// A hash of everything that decides what is generated. Stored in the
    /// journal so that a job whose request changed since it was submitted is
    /// reported instead of silently resubmitted or silently kept.
    pub fn fingerprint(&self) -> String {
        let images: Vec<Value> = self
            .images
            .iter()
            .map(|image| match image {
                ImageRef::Url(url) => Value::from(url.clone()),
                ImageRef::Local(path) => Value::from(format!("file:{}", path.display())),
            })
            .collect();
        let mut spec = self.request_body(&[]);
        if let Value::Object(map) = &mut spec {
            map.insert("images".into(), Value::Array(images));
        }
        // serde_json's Map is a BTreeMap here (no preserve_order), so this is canonical.
        crate::util::sha256_hex(spec.to_string().as_bytes())
            .chars()
            .take(16)
            .collect()
    }
}

/// TEMPORARY STUB.
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct ManifestError;
/// TEMPORARY STUB.
pub fn load(_p: &std::path::Path) -> Result<Campaign, ManifestError> {
    Err(ManifestError)
}
