//! The campaign manifest: TOML or CSV in, a validated [`Campaign`] of concrete [`Job`]s out.
//!
//! Layout:
//! - `parse`: TOML and CSV into spanned raw tables, unknown keys caught with a suggestion.
//! - `expand`: defaults × matrix × rows → jobs with stable ids, prompt templates filled.
//! - `prompt`: prompt templates (`"A {style} shot of {subject}"`).
//! - `diag`: [`Diagnostic`]s that name file, line and column; every problem is collected.
//!
//! What each model accepts lives in [`crate::models`].

pub mod diag;
pub mod expand;
pub mod parse;
pub mod prompt;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::models::Model;

pub use diag::{Diagnostic, ManifestError};
use diag::{Diags, Loc};

/// Default `api.base_url`.
pub const DEFAULT_BASE_URL: &str = "https://toapis.com";
/// Default `api.api_key_env`.
pub const DEFAULT_API_KEY_ENV: &str = "TOAPIS_API_KEY";

/// Reads, expands and validates a manifest: a `.toml` campaign, or a `.csv` job list
/// (a manifest of its own: named after the file, every setting at its default).
///
/// Every problem found is returned, each with its file, line and job; only a TOML
/// syntax error stops reading early.
pub fn load(path: &Path) -> Result<Campaign, ManifestError> {
    let text = match read_text(path) {
        Ok(text) => text,
        Err(message) => {
            let mut diags = Diags::new();
            diags.error(&Loc::file(&Arc::from(path)), message);
            return Err(ManifestError {
                manifest: path.to_path_buf(),
                diagnostics: diags.finish(path),
            });
        }
    };
    load_str(&text, path)
}

/// [`load`] with the manifest's text already read. `path` still decides the kind
/// (by extension), the default name and the folder relative paths start from.
pub fn load_str(text: &str, path: &Path) -> Result<Campaign, ManifestError> {
    let mut diags = Diags::new();
    let file: Arc<Path> = Arc::from(path);
    let base_dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Absolute, so that every path derived from it (videos, state, uploads, request
    // fingerprints) is the same whichever folder the runner is started from.
    let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());

    let raw = match extension.as_deref() {
        Some("toml") => match parse::parse_toml_str(text, path, &mut diags) {
            Some(raw) => raw,
            None => return Err(fail(diags, path)),
        },
        Some("csv") => parse::RawManifest::empty(&file),
        _ => {
            diags.error(
                &Loc::file(&file),
                "a manifest must be a `.toml` campaign or a `.csv` job list",
            );
            return Err(fail(diags, path));
        }
    };

    let name = match &raw.name {
        Some(name) => name.value.clone(),
        None => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(problem) = parse::name_problem(&stem) {
                diags.error(
                    &Loc::file(&file),
                    format!("the campaign name comes from the file name, which {problem}"),
                );
            }
            stem
        }
    };

    // Rows are expanded as they are read (a 100k-row CSV is never held as rows).
    let mut expander = expand::Expander::new(&raw, &name, &base_dir);
    if extension.as_deref() == Some("csv") {
        expander.push_csv(text, path, &[], &mut diags);
    } else {
        for job in &raw.jobs {
            expander.push(job.clone());
        }
        // CSV rows inherit only the [defaults] prompt: its placeholders may be columns.
        let placeholders = raw
            .defaults
            .prompt_template
            .as_ref()
            .map(|t| t.names())
            .unwrap_or_default();
        for source in &raw.sources {
            let csv_path = base_dir.join(source.value.trim());
            match read_text(&csv_path) {
                Ok(csv) => expander.push_csv(&csv, &csv_path, &placeholders, &mut diags),
                Err(message) => diags.error(
                    &source.loc,
                    format!("[[source]] csv {}: {message}", diag::quoted(&source.value)),
                ),
            }
        }
    }
    let (output, jobs, rows) = expander.finish(&mut diags);
    if rows == 0 && diags.is_empty() {
        diags.error(
            &Loc::file(&file),
            "no jobs: add [[job]] entries or a [[source]] csv with at least one row",
        );
    }
    if raw.limits.budget.is_some() {
        check_budget_prices(&raw, &jobs, &mut diags);
    }
    if !diags.is_empty() {
        return Err(fail(diags, path));
    }
    Ok(Campaign {
        name,
        manifest_path: path.to_path_buf(),
        base_dir,
        api: raw.api,
        limits: raw.limits,
        pricing: raw.pricing,
        output,
        jobs,
        catalogue: raw.catalogue,
        model_overrides: raw.model_overrides,
    })
}

/// A budget can only be kept if every job has a price: a model without one is an error.
fn check_budget_prices(raw: &parse::RawManifest, jobs: &[Job], diags: &mut Diags) {
    let mut unpriced: BTreeMap<Model, usize> = BTreeMap::new();
    for job in jobs {
        if raw.pricing.price(job.model).is_none() {
            *unpriced.entry(job.model).or_default() += 1;
        }
    }
    let loc = raw
        .budget_loc
        .clone()
        .unwrap_or_else(|| Loc::file(&raw.file));
    for (model, count) in unpriced {
        let jobs = if count == 1 { "job" } else { "jobs" };
        diags.error(
            &loc,
            format!(
                "`budget` in [limits] needs a price for every model, and [pricing] has none for {model} ({count} {jobs}): add `\"{model}\" = {{ per_second = … }}` or `{{ per_video = … }}` to [pricing]"
            ),
        );
    }
}

fn fail(diags: Diags, path: &Path) -> ManifestError {
    ManifestError {
        manifest: path.to_path_buf(),
        diagnostics: diags.finish(path),
    }
}

/// A file as UTF-8 text, or the message saying why not.
fn read_text(path: &Path) -> Result<String, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "`{}` is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

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
    /// `[pricing]`: what each model costs, for plans and `limits.budget`.
    pub pricing: Pricing,
    pub output: Output,
    /// In manifest order: `[[job]]` entries first, then `[[source]]` rows, each × matrix.
    pub jobs: Vec<Job>,
    /// What each model accepts: the built-in catalogue with the manifest's `[models]` applied.
    pub catalogue: Arc<crate::models::Catalogue>,
    /// The `[models."NAME"]` tables of the manifest and where they are.
    pub model_overrides: Vec<(String, Loc)>,
}

impl Campaign {
    /// Where a job's video goes. Computed from the manifest each time, never read
    /// back from the journal, so a run from another folder finds the same files.
    pub fn video_path(&self, job: &Job) -> PathBuf {
        self.output.dir.join(&job.filename)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Without a trailing slash.
    pub base_url: String,
    /// Name of the environment variable holding the key (never the key itself).
    pub api_key_env: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            base_url: DEFAULT_BASE_URL.into(),
            api_key_env: DEFAULT_API_KEY_ENV.into(),
        }
    }
}

/// The provider's rate-limit groups (its "Async task rate limits" page): each
/// gives the submit and the query bucket a rate and a 10-second burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tier {
    #[default]
    Default,
    Vip,
    Svip,
}

impl Tier {
    pub const NAMES: [&'static str; 3] = ["default", "vip", "svip"];

    pub fn parse(name: &str) -> Option<Tier> {
        match name {
            "default" => Some(Tier::Default),
            "vip" => Some(Tier::Vip),
            "svip" => Some(Tier::Svip),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Default => "default",
            Tier::Vip => "vip",
            Tier::Svip => "svip",
        }
    }

    /// The submit bucket as documented: RPM / 60 per second, and the page's 10 s burst.
    pub fn submit(self) -> Budget {
        match self {
            Tier::Default => Budget::new(300.0 / 60.0, 50),
            Tier::Vip => Budget::new(1000.0 / 60.0, 167),
            Tier::Svip => Budget::new(2000.0 / 60.0, 334),
        }
    }

    /// The status-query bucket as documented.
    pub fn query(self) -> Budget {
        match self {
            Tier::Default => Budget::new(3000.0 / 60.0, 500),
            Tier::Vip => Budget::new(10_000.0 / 60.0, 1667),
            Tier::Svip => Budget::new(30_000.0 / 60.0, 5000),
        }
    }
}

/// One of the provider's token buckets: a steady rate and how many calls may go at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub per_second: f64,
    pub burst: u32,
}

impl Budget {
    pub const fn new(per_second: f64, burst: u32) -> Budget {
        Budget { per_second, burst }
    }

    /// The provider's bursts are 10 seconds of the rate.
    pub fn ten_seconds_of(per_second: f64) -> u32 {
        (per_second * 10.0).round().clamp(1.0, f64::from(u32::MAX)) as u32
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// An optional cap on every API call (submit, poll, upload) together, on
    /// top of the submit and query budgets (`requests_per_second`, `--rate`).
    pub requests_per_second: Option<f64>,
    /// How many calls the cap lets go at once after an idle spell.
    pub burst: u32,
    /// `limits.tier`: where `submit` and `query` come from unless set one by one.
    pub tier: Tier,
    /// Submits and uploads: the provider's `async_submit` bucket.
    pub submit: Budget,
    /// Status polls: the provider's `async_query` bucket.
    pub query: Budget,
    /// Tasks submitted and not yet finished.
    pub max_in_flight: usize,
    /// Submit requests awaiting their answer at once. Each one may end `unknown`
    /// if the process dies, so this bounds what a crash can cost.
    pub submit_concurrency: usize,
    /// A paid run that would submit more jobs than this asks first (`--yes` skips; 0: never ask).
    pub confirm_above: usize,
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
    /// How long the service may stay unreachable (the run paused) before the run
    /// stops with exit 75, every unsent job still pending.
    pub outage_timeout: Duration,
    /// A download slower than this (bytes per second) for `download_stall` is cut
    /// and resumed from its `.part`.
    pub download_min_rate: u64,
    /// How long a download may stay below `download_min_rate`.
    pub download_stall: Duration,
    /// Stop submitting before the estimated cost (by [`Pricing`], in its currency)
    /// would pass this. Every job then has a known price (checked by [`load`]).
    pub budget: Option<f64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_second: None,
            burst: 2,
            tier: Tier::Default,
            submit: Tier::Default.submit(),
            query: Tier::Default.query(),
            max_in_flight: 10,
            submit_concurrency: 2,
            confirm_above: 500,
            downloads: 4,
            task_timeout: Duration::from_secs(30 * 60),
            max_attempts: 2,
            poll_queued: Duration::from_secs(5),
            poll_in_progress: Duration::from_secs(10),
            max_video_bytes: 2 << 30,
            outage_timeout: Duration::from_secs(10 * 60),
            download_min_rate: 16 * 1024,
            download_stall: Duration::from_secs(30),
            budget: None,
        }
    }
}

/// Default `pricing.currency`.
pub const DEFAULT_CURRENCY: &str = "USD";

/// `[pricing]`: what a video costs, per model. A model without an entry has an unknown
/// price (never taken as free).
#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    /// A three-letter code (`USD` unless the manifest says otherwise).
    pub currency: String,
    pub per_model: BTreeMap<Model, Price>,
}

impl Default for Pricing {
    fn default() -> Self {
        Pricing {
            currency: DEFAULT_CURRENCY.into(),
            per_model: BTreeMap::new(),
        }
    }
}

impl Pricing {
    /// The price of `model`, if the manifest gives one.
    pub fn price(&self, model: Model) -> Option<Price> {
        self.per_model.get(&model).copied()
    }
}

/// The price of one model: per second of video, or per video whatever its length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Price {
    PerSecond(f64),
    PerVideo(f64),
}

impl Price {
    /// What one video of `duration` seconds costs.
    pub fn cost(self, duration: u32) -> f64 {
        match self {
            Price::PerSecond(rate) => rate * f64::from(duration),
            Price::PerVideo(price) => price,
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
    /// As written, else the model's default; empty (and not sent) for a model without one.
    pub aspect_ratio: String,
    /// Top-level `resolution`, as written (the provider's default when `None`). For a
    /// model that takes it in metadata (veo) it is moved into `metadata.resolution`.
    pub resolution: Option<String>,
    /// Start frame, end frame: URLs or local files to upload.
    pub images: Vec<ImageRef>,
    /// The request field `images` are sent in (`image_urls`, `reference_images`, ...).
    pub image_field: String,
    /// Model-specific extras (veo: `resolution`, `generation_type`, `enable_gif`).
    pub metadata: Map<String, Value>,
    /// Other top-level request fields, as the provider names them (`mode`, `audio`, ...).
    pub extra: Map<String, Value>,
    /// File name of the video inside `Output::dir` (the `filename` template filled).
    pub filename: String,
    /// Where the job came from, for messages.
    pub origin: Origin,
    /// [`Job::fingerprint`], worked out once (a resume checks every job twice).
    pub fingerprint_cache: FingerprintCache,
}

/// A job's fingerprint once computed. Ignored by `==` (two jobs are equal by
/// what they ask for, whether or not either was hashed yet) and not carried
/// by `clone()`, so a copy whose fields are then changed cannot keep a stale hash.
#[derive(Debug, Default)]
pub struct FingerprintCache(std::sync::OnceLock<u64>);

impl Clone for FingerprintCache {
    fn clone(&self) -> Self {
        FingerprintCache::default()
    }
}

impl PartialEq for FingerprintCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
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
    /// Shared by every job of the file.
    pub file: std::sync::Arc<Path>,
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
        Value::Object(request_map(RequestParts {
            model: self.model,
            prompt: &self.prompt,
            duration: Some(i64::from(self.duration)),
            aspect_ratio: &self.aspect_ratio,
            resolution: self.resolution.as_deref(),
            image_field: &self.image_field,
            images: image_urls.to_vec(),
            metadata: &self.metadata,
            extra: &self.extra,
        }))
    }

    /// A hash of everything that decides what is generated. Stored in the
    /// journal so that a job whose request changed since it was submitted is
    /// reported instead of silently resubmitted or silently kept.
    ///
    /// The hash of the canonical JSON object (keys sorted, no spaces) of the
    /// request without `image_urls`, plus `images` (URLs, or `file:` and the
    /// path). Serialized straight from the job, without building a `Value`:
    /// a resume checks every job.
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", self.fingerprint_hash())
    }

    /// [`Job::fingerprint`] as a number, hashed on the first call only.
    pub fn fingerprint_hash(&self) -> u64 {
        *self.fingerprint_cache.0.get_or_init(|| self.hash())
    }

    /// The first 8 bytes of the hash, as [`Job::fingerprint`] shows them.
    fn hash(&self) -> u64 {
        let spec = FingerprintSpec {
            aspect_ratio: &self.aspect_ratio,
            duration: self.duration,
            extra: &self.extra,
            images: FingerprintImages(&self.images),
            metadata: &self.metadata,
            model: self.model.as_str(),
            prompt: &self.prompt,
            resolution: self.resolution.as_deref(),
        };
        // One buffer and one hash call: serde_json writes token by token, and
        // a hash update per token cost more than the hashing. Serializing
        // strings, numbers and a string-keyed map cannot fail.
        let json = serde_json::to_vec(&spec).unwrap_or_default();
        let digest = crate::util::sha256(&json);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        u64::from_be_bytes(first)
    }
}

/// The pieces of a request body (see [`request_map`]).
#[derive(Debug)]
pub struct RequestParts<'a> {
    pub model: Model,
    pub prompt: &'a str,
    pub duration: Option<i64>,
    /// Not sent when empty (a model without the field).
    pub aspect_ratio: &'a str,
    pub resolution: Option<&'a str>,
    /// `image_urls`, or the field the model takes its images in (`metadata.X` nests).
    pub image_field: &'a str,
    pub images: Vec<String>,
    pub metadata: &'a Map<String, Value>,
    pub extra: &'a Map<String, Value>,
}

/// The JSON object of a submit: what validation checks and what is sent are one shape.
pub fn request_map(parts: RequestParts<'_>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("model".into(), Value::from(parts.model.as_str()));
    body.insert("prompt".into(), Value::from(parts.prompt));
    if let Some(duration) = parts.duration {
        body.insert("duration".into(), Value::from(duration));
    }
    if !parts.aspect_ratio.is_empty() {
        body.insert("aspect_ratio".into(), Value::from(parts.aspect_ratio));
    }
    if let Some(resolution) = parts.resolution {
        body.insert("resolution".into(), Value::from(resolution));
    }
    let mut metadata = parts.metadata.clone();
    if !parts.images.is_empty() {
        let images = Value::from(parts.images);
        match parts.image_field.strip_prefix("metadata.") {
            Some(key) => {
                metadata.insert(key.to_owned(), images);
            }
            None => {
                body.insert(parts.image_field.to_owned(), images);
            }
        }
    }
    for (key, value) in parts.extra {
        body.insert(key.clone(), value.clone());
    }
    if !metadata.is_empty() {
        body.insert("metadata".into(), Value::Object(metadata));
    }
    body
}

/// What [`Job::fingerprint`] hashes, fields in key order (the order of
/// serde_json's sorted maps, which earlier versions hashed).
#[derive(Serialize)]
struct FingerprintSpec<'a> {
    aspect_ratio: &'a str,
    duration: u32,
    #[serde(skip_serializing_if = "Map::is_empty")]
    extra: &'a Map<String, Value>,
    images: FingerprintImages<'a>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: &'a Map<String, Value>,
    model: &'a str,
    prompt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution: Option<&'a str>,
}

struct FingerprintImages<'a>(&'a [ImageRef]);

impl Serialize for FingerprintImages<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for image in self.0 {
            match image {
                ImageRef::Url(url) => seq.serialize_element(url)?,
                ImageRef::Local(path) => {
                    seq.serialize_element(&format!("file:{}", path.display()))?
                }
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// A folder with a manifest and its neighbours.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(&path, text).unwrap();
            path
        }

        fn load(&self, name: &str, text: &str) -> Result<Campaign, ManifestError> {
            load(&self.write(name, text))
        }
    }

    fn ok(text: &str) -> Campaign {
        match Fixture::new().load("campaign.toml", text) {
            Ok(campaign) => campaign,
            Err(e) => panic!("expected no problems, got:\n{e}"),
        }
    }

    /// Each problem as `line:col: message` (the temp folder left out).
    fn problems(result: Result<Campaign, ManifestError>) -> Vec<String> {
        match result {
            Ok(_) => panic!("expected problems, the manifest loaded"),
            Err(e) => e
                .diagnostics
                .iter()
                .map(|d| {
                    let name = d.file.file_name().unwrap().to_string_lossy();
                    let full = d.to_string();
                    let rest = full
                        .split_once(&*format!("{name}:"))
                        .map_or(full.as_str(), |(_, r)| r);
                    format!("{name}:{rest}")
                })
                .collect(),
        }
    }

    #[test]
    fn rows_across_expansion_batches_keep_their_order_and_their_problems() {
        // More rows than one batch, with a bad row in each of three batches.
        let bad = [7usize, 20_000, 39_999];
        let mut csv = String::from("id,model,prompt,duration\n");
        for i in 0..40_000 {
            let duration = if bad.contains(&i) { "x" } else { "8" };
            csv.push_str(&format!("j{i},veo3.1-fast,p {i},{duration}\n"));
        }
        let fixture = Fixture::new();
        fixture.write("jobs.csv", &csv);
        let toml = "[[source]]\ncsv = \"jobs.csv\"\n";
        let found = problems(fixture.load("c.toml", toml));
        let lines: Vec<&str> = found.iter().map(|p| p.split(' ').next().unwrap()).collect();
        assert_eq!(
            lines,
            ["jobs.csv:9:", "jobs.csv:20002:", "jobs.csv:40001:"],
            "{found:?}"
        );

        let good = Fixture::new();
        good.write("jobs.csv", &csv.replace(",x\n", ",8\n"));
        let campaign = good.load("c.toml", toml).unwrap();
        assert_eq!(campaign.jobs.len(), 40_000);
        assert!(
            campaign
                .jobs
                .iter()
                .enumerate()
                .all(|(i, job)| job.id == format!("j{i}") && job.origin.line == i + 2)
        );
    }

    /// How fingerprints were computed before they were streamed: state files
    /// written then must still match.
    fn reference_fingerprint(job: &Job) -> String {
        let images: Vec<Value> = job
            .images
            .iter()
            .map(|image| match image {
                ImageRef::Url(url) => Value::from(url.clone()),
                ImageRef::Local(path) => Value::from(format!("file:{}", path.display())),
            })
            .collect();
        let mut spec = job.request_body(&[]);
        if let Value::Object(map) = &mut spec {
            map.insert("images".into(), Value::Array(images));
        }
        crate::util::sha256_hex(spec.to_string().as_bytes())[..16].to_string()
    }

    #[test]
    fn fingerprints_match_the_earlier_canonical_json() {
        let base = Job {
            id: "a".into(),
            model: Model::from_static("gemini-omni-flash"),
            prompt: "A \"quoted\" fox,\nin snow — naïve \u{1F98A}".into(),
            duration: 8,
            aspect_ratio: "16:9".into(),
            resolution: None,
            images: Vec::new(),
            image_field: "image_urls".into(),
            metadata: Map::new(),
            extra: Map::new(),
            filename: "a.mp4".into(),
            origin: Origin {
                file: Arc::from(Path::new("c.toml")),
                line: 1,
            },
            fingerprint_cache: FingerprintCache::default(),
        };
        let mut metadata = Map::new();
        metadata.insert("resolution".into(), Value::from("1080p"));
        metadata.insert("enable_gif".into(), Value::from(true));
        metadata.insert("seed".into(), Value::from(-3.5));
        let variants = [
            base.clone(),
            Job {
                resolution: Some("720P".into()),
                ..base.clone()
            },
            Job {
                model: Model::from_static("veo3.1-fast"),
                metadata,
                images: vec![
                    ImageRef::Url("https://x/a.png?b=\"c\"".into()),
                    ImageRef::Local(PathBuf::from("/in/b c.png")),
                ],
                ..base.clone()
            },
        ];
        for job in &variants {
            assert_eq!(job.fingerprint(), reference_fingerprint(job), "{job:?}");
        }
        assert_ne!(variants[0].fingerprint(), variants[1].fingerprint());
    }

    fn toml_problems(text: &str) -> Vec<String> {
        problems(Fixture::new().load("campaign.toml", text))
    }

    fn ids(campaign: &Campaign) -> Vec<&str> {
        campaign.jobs.iter().map(|j| j.id.as_str()).collect()
    }

    fn assert_has(problems: &[String], needle: &str) {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "no problem contains {needle:?}; got:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn minimal_manifest_gets_defaults() {
        let c = ok(r#"
[[job]]
id = "a"
prompt = "  A cat  "
model = "veo3.1-fast"
"#);
        assert_eq!(c.name, "campaign");
        assert_eq!(c.api, ApiConfig::default());
        assert_eq!(c.limits, Limits::default());
        let job = &c.jobs[0];
        assert_eq!(job.prompt, "A cat");
        assert_eq!((job.duration, job.aspect_ratio.as_str()), (8, "16:9"));
        assert_eq!(job.resolution, None);
        assert_eq!(job.filename, "a.mp4");
        assert_eq!(job.origin.line, 2);
        assert!(c.output.dir.ends_with("out/campaign"));
        assert_eq!(c.output.state_path(), c.output.dir.join("state.jsonl"));
    }

    #[test]
    fn settings_are_read() {
        let c = ok(r#"
name = "spring"
[api]
base_url = "http://127.0.0.1:8080/"
api_key_env = "MY_KEY"
[limits]
requests_per_second = 20
burst = 3
max_in_flight = 5
downloads = 2
task_timeout = "45m"
max_attempts = 3
poll_queued = 7
poll_in_progress = "12s"
max_video_size = "500MB"
[output]
dir = "videos/{name}"
filename = "{model}/{aspect_ratio}/{id}-{duration}s.mp4"
state = "state/s.jsonl"
report = "r.csv"
[[job]]
id = "a"
prompt = "p"
model = "gemini_omni_flash"
aspect_ratio = "9:16"
"#);
        assert_eq!(c.name, "spring");
        assert_eq!(c.api.base_url, "http://127.0.0.1:8080");
        assert_eq!(c.api.api_key_env, "MY_KEY");
        assert_eq!(c.limits.requests_per_second, Some(20.0));
        assert_eq!(c.limits.burst, 3);
        assert_eq!(c.limits.max_in_flight, 5);
        assert_eq!(c.limits.downloads, 2);
        assert_eq!(c.limits.task_timeout, Duration::from_secs(45 * 60));
        assert_eq!(c.limits.max_attempts, 3);
        assert_eq!(c.limits.poll_queued, Duration::from_secs(7));
        assert_eq!(c.limits.poll_in_progress, Duration::from_secs(12));
        assert_eq!(c.limits.max_video_bytes, 500_000_000);
        assert!(c.output.dir.ends_with("videos/spring"));
        assert!(c.output.state_path().ends_with("state/s.jsonl"));
        assert!(c.output.report_path().ends_with("r.csv"));
        let job = &c.jobs[0];
        assert_eq!(job.filename, "gemini_omni_flash/9x16/a-6s.mp4");
        // Defaults are the provider's: not written into the request.
        assert_eq!(job.resolution, None);
    }

    const ONE_JOB: &str = "[[job]]\nid = \"a\"\nprompt = \"p\"\nmodel = \"gemini_omni_flash\"\n";

    #[test]
    fn rate_budgets_default_to_the_providers_default_tier() {
        let c = ok(ONE_JOB);
        assert_eq!(c.limits.tier, Tier::Default);
        assert_eq!(c.limits.submit, Budget::new(5.0, 50));
        assert_eq!(c.limits.query, Budget::new(50.0, 500));
        assert_eq!(c.limits.requests_per_second, None);
    }

    #[test]
    fn a_tier_is_a_shorthand_and_keys_set_one_by_one_win() {
        let c = ok(&format!("[limits]\ntier = \"vip\"\n{ONE_JOB}"));
        assert_eq!(c.limits.submit.burst, 167);
        assert!((c.limits.submit.per_second - 16.67).abs() < 0.01);
        assert_eq!(c.limits.query.burst, 1667);
        assert!((c.limits.query.per_second - 166.7).abs() < 0.1);
        let c = ok(&format!("[limits]\ntier = \"svip\"\n{ONE_JOB}"));
        assert_eq!(c.limits.submit.burst, 334);
        assert!((c.limits.submit.per_second - 33.33).abs() < 0.01);
        assert_eq!(c.limits.query, Budget::new(500.0, 5000));
        // A rate without its burst gets 10 s of it; a burst alone keeps the tier's rate.
        let c = ok(&format!(
            "[limits]\ntier = \"svip\"\nsubmit_per_second = 2\nquery_burst = 7\nrequests_per_second = 40\n{ONE_JOB}"
        ));
        assert_eq!(c.limits.submit, Budget::new(2.0, 20));
        assert_eq!(c.limits.query, Budget::new(500.0, 7));
        assert_eq!(c.limits.requests_per_second, Some(40.0));
        let c = ok(&format!(
            "[limits]\nsubmit_per_second = 0.5\nsubmit_burst = 3\nquery_per_second = 12.5\n{ONE_JOB}"
        ));
        assert_eq!(c.limits.submit, Budget::new(0.5, 3));
        assert_eq!(c.limits.query, Budget::new(12.5, 125));
    }

    #[test]
    fn bad_budget_keys_are_reported_where_they_are() {
        let p = toml_problems(&format!(
            "[limits]\ntier = \"vpi\"\nsubmit_per_second = 0\nquery_burst = 0\nquery_per_second = \"fast\"\nsubmit_brust = 5\n{ONE_JOB}"
        ));
        assert_has(
            &p,
            "campaign.toml:2:8: `tier` in [limits] must be \"default\", \"vip\" or \"svip\" (the provider's rate-limit groups), got \"vpi\"; did you mean `vip`?",
        );
        assert_has(
            &p,
            "campaign.toml:3:21: `submit_per_second` in [limits] must be a number greater than 0, got integer 0",
        );
        assert_has(
            &p,
            "campaign.toml:4:15: `query_burst` in [limits] must be at least 1, got 0",
        );
        assert_has(
            &p,
            "campaign.toml:5:20: `query_per_second` in [limits] must be a number, got string \"fast\"",
        );
        assert_has(
            &p,
            "campaign.toml:6:1: unknown key `submit_brust` in [limits]; did you mean `submit_burst`?",
        );
        let p = toml_problems(&format!("[limits]\ntier = 2\n{ONE_JOB}"));
        assert_has(
            &p,
            "campaign.toml:2:8: `tier` in [limits] must be a string, got integer 2",
        );
    }

    #[test]
    fn unknown_keys_everywhere_are_reported_together_with_suggestions() {
        let p = toml_problems(
            r#"nmae = "x"
[api]
api_key = "sk-123"
[limits]
request_per_second = 2
[output]
filname = "{id}.mp4"
[defaults]
model = "veo3.1-fast"
aspect_ratoi = "16:9"
[matrix]
aspect_ratios = ["16:9"]
[[job]]
id = "a"
promt = "x"
[[job]]
id = "b"
prompt = "y"
metadata = { resolutoin = "1080p" }
[[source]]
cvs = "x.csv"
"#,
        );
        assert_has(
            &p,
            "campaign.toml:1:1: unknown key `nmae` at top level; did you mean `name`?",
        );
        assert_has(
            &p,
            "campaign.toml:3:1: unknown key `api_key` in [api]; did you mean `api_key_env`?",
        );
        assert_has(&p, "the API key itself never goes in the manifest");
        assert_has(
            &p,
            "campaign.toml:5:1: unknown key `request_per_second` in [limits]; did you mean `requests_per_second`?",
        );
        assert_has(
            &p,
            "campaign.toml:7:1: unknown key `filname` in [output]; did you mean `filename`?",
        );
        assert_has(
            &p,
            "campaign.toml:10:1: unknown key `aspect_ratoi` in [defaults]; did you mean `aspect_ratio`?",
        );
        assert_has(
            &p,
            "campaign.toml:12:1: unknown key `aspect_ratios` in [matrix]; did you mean `aspect_ratio`?",
        );
        assert_has(
            &p,
            "campaign.toml:15:1: unknown key `promt` in [[job]]; did you mean `prompt`?",
        );
        assert_has(
            &p,
            "campaign.toml:19:14: job `b`: unknown metadata key `resolutoin` for veo3.1-fast; did you mean `resolution`?",
        );
        assert_has(
            &p,
            "campaign.toml:21:1: unknown key `cvs` in [[source]]; did you mean `csv`?",
        );
        // A typo is reported once, not again as the key it was meant to be missing.
        assert!(
            !p.iter()
                .any(|l| l.contains("no `prompt`") || l.contains("needs `csv")),
            "{p:?}"
        );
        // In file order.
        let lines: Vec<usize> = p
            .iter()
            .filter_map(|l| l.split(':').nth(1)?.parse().ok())
            .collect();
        let mut sorted = lines.clone();
        sorted.sort();
        assert_eq!(lines, sorted);
    }

    #[test]
    fn wrong_types_name_key_and_expected_type() {
        let p = toml_problems(
            r#"name = 3
[limits]
burst = "3"
requests_per_second = "fast"
task_timeout = "soon"
max_in_flight = 0
max_video_size = true
[defaults]
model = "veo3.1-fast"
duration = "8"
[[job]]
id = "a"
prompt = "x"
image_urls = "https://e.com/a.png"
metadata = 3
"#,
        );
        assert_has(
            &p,
            "campaign.toml:1:8: `name` must be a string, got integer 3",
        );
        assert_has(
            &p,
            "campaign.toml:3:9: `burst` in [limits] must be an integer, got string \"3\"",
        );
        assert_has(
            &p,
            "`requests_per_second` in [limits] must be a number, got string \"fast\"",
        );
        assert_has(&p, "`task_timeout` in [limits] must be a duration like");
        assert_has(&p, "`max_in_flight` in [limits] must be at least 1, got 0");
        assert_has(
            &p,
            "`max_video_size` in [limits] must be integer bytes or a size like",
        );
        assert_has(
            &p,
            "campaign.toml:10:12: `duration` in [defaults] must be an integer, got string \"8\"",
        );
        assert_has(
            &p,
            "`image_urls` in [[job]] must be an array of strings, got string",
        );
        assert_has(&p, "`metadata` in [[job]] must be a table, got integer 3");
        assert!(p.iter().all(|l| !l.contains("no model")), "{p:?}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let p = toml_problems("name = \"x\"\n[limits\nburst = 1\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("campaign.toml:2:"), "{p:?}");
        assert!(p[0].contains("TOML syntax error"), "{p:?}");
    }

    #[test]
    fn job_table_instead_of_array_is_explained() {
        let p = toml_problems("[job]\nid = \"a\"\n");
        assert_has(
            &p,
            "`job` must be an array of tables: write [[job]], not [job]",
        );
    }

    #[test]
    fn matrix_expands_every_job_with_suffixes_in_fixed_key_order() {
        let c = ok(r#"
[defaults]
model = "veo3.1-fast"
[matrix]
aspect_ratio = ["16:9", "9:16"]
model = ["veo3.1-fast", "veo3.1-quality"]
[[job]]
id = "dolphins"
prompt = "Dolphins"
[[job]]
id = "owls"
prompt = "Owls"
"#);
        assert_eq!(
            ids(&c),
            [
                "dolphins-veo3.1-fast-16x9",
                "dolphins-veo3.1-fast-9x16",
                "dolphins-veo3.1-quality-16x9",
                "dolphins-veo3.1-quality-9x16",
                "owls-veo3.1-fast-16x9",
                "owls-veo3.1-fast-9x16",
                "owls-veo3.1-quality-16x9",
                "owls-veo3.1-quality-9x16",
            ]
        );
        let job = &c.jobs[3];
        assert_eq!(
            (job.model, job.aspect_ratio.as_str()),
            (Model::from_static("veo3.1-quality"), "9:16")
        );
        assert_eq!(job.filename, "dolphins-veo3.1-quality-9x16.mp4");
    }

    #[test]
    fn matrix_duration_suffix_and_single_dimension() {
        let c = ok(r#"
[defaults]
model = "gemini_omni_flash"
[matrix]
aspect_ratio = ["16:9", "9:16"]
duration = [6, 10]
[[job]]
id = "dolphins"
prompt = "Dolphins"
"#);
        assert_eq!(
            ids(&c),
            [
                "dolphins-16x9-6s",
                "dolphins-16x9-10s",
                "dolphins-9x16-6s",
                "dolphins-9x16-10s"
            ]
        );
        assert_eq!(c.jobs[1].duration, 10);
    }

    #[test]
    fn a_job_that_sets_a_matrix_key_pins_it() {
        let c = ok(r#"
[defaults]
model = "veo3.1-fast"
aspect_ratio = "9:16"
[matrix]
aspect_ratio = ["16:9", "9:16"]
model = ["veo3.1-fast", "veo3.1-quality"]
[[job]]
id = "tall"
prompt = "Tall"
aspect_ratio = "9:16"
[[job]]
id = "free"
prompt = "Free"
"#);
        assert_eq!(
            ids(&c),
            [
                "tall-veo3.1-fast",
                "tall-veo3.1-quality",
                "free-veo3.1-fast-16x9",
                "free-veo3.1-fast-9x16",
                "free-veo3.1-quality-16x9",
                "free-veo3.1-quality-9x16",
            ]
        );
        assert!(c.jobs[..2].iter().all(|j| j.aspect_ratio == "9:16"));
        // The matrix beats [defaults].
        assert_eq!(c.jobs[2].aspect_ratio, "16:9");
    }

    #[test]
    fn a_runaway_matrix_is_refused() {
        let ratios: Vec<String> = (0..400).map(|i| format!("\"{i}:1\"")).collect();
        let resolutions: Vec<String> = (0..300).map(|i| format!("\"{i}p\"")).collect();
        let p = toml_problems(&format!(
            "[matrix]\naspect_ratio = [{}]\nresolution = [{}]\n[[job]]\nid = \"a\"\nprompt = \"p\"\nmodel = \"veo3.1-fast\"\n",
            ratios.join(","),
            resolutions.join(",")
        ));
        assert_eq!(
            p,
            ["campaign.toml:4:1: 1 jobs × the [matrix] combinations is more than 100000 jobs"]
        );
    }

    #[test]
    fn matrix_problems() {
        let p = toml_problems(
            r#"
[matrix]
aspect_ratio = []
model = ["veo3.1-fast", "veo3.1-fast"]
duration = "8"
[[job]]
id = "a"
prompt = "x"
"#,
        );
        assert_has(
            &p,
            "campaign.toml:3:16: `aspect_ratio` in [matrix] must list at least one value",
        );
        assert_has(
            &p,
            "campaign.toml:4:25: `model` in [matrix] lists \"veo3.1-fast\" twice",
        );
        assert_has(
            &p,
            "`duration` in [matrix] must be a non-empty array, got string \"8\"",
        );
    }

    const ROWS: [&str; 3] = [
        "Dolphins jumping in the blue ocean,gemini_omni_flash,",
        "A red fox in fresh snow,,9:16",
        "\"Rain, on a tin roof\",,",
    ];

    fn csv_ids(rows: &[&str], defaults: &str) -> Vec<(String, String)> {
        let fixture = Fixture::new();
        let mut csv = String::from("prompt,model,aspect_ratio\n");
        for row in rows {
            csv.push_str(row);
            csv.push('\n');
        }
        fixture.write("prompts.csv", &csv);
        let toml = format!("[defaults]\n{defaults}\n[[source]]\ncsv = \"prompts.csv\"\n");
        match fixture.load("c.toml", &toml) {
            Ok(c) => c.jobs.into_iter().map(|j| (j.prompt, j.id)).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn derived_ids_are_stable_under_reorder_append_and_new_defaults() {
        let first = csv_ids(&ROWS, "model = \"gemini_omni_flash\"");
        assert_eq!(first.len(), 3);
        assert!(
            first[0].1.starts_with("dolphins-jumping-in-the-blue-"),
            "{first:?}"
        );
        assert!(first[2].1.starts_with("rain-on-a-tin-roof-"), "{first:?}");
        for (_, id) in &first {
            let hash = id.rsplit('-').next().unwrap();
            assert_eq!(hash.len(), 8);
            assert!(expand::id_problem(id).is_none());
        }

        let reordered = csv_ids(
            &[ROWS[2], ROWS[0], ROWS[1]],
            "model = \"gemini_omni_flash\"",
        );
        let appended = csv_ids(
            &[ROWS[0], ROWS[1], ROWS[2], "Something new,,"],
            "model = \"gemini_omni_flash\"",
        );
        let other_defaults = csv_ids(&ROWS, "model = \"gemini_omni_flash\"\nduration = 10");
        for (prompt, id) in &first {
            for other in [&reordered, &appended, &other_defaults] {
                assert!(
                    other.contains(&(prompt.clone(), id.clone())),
                    "{id} changed: {other:?}"
                );
            }
        }
        // Different content, different id.
        let changed = csv_ids(
            &["A red fox in fresh snow,,16:9"],
            "model = \"gemini_omni_flash\"",
        );
        assert_ne!(changed[0].1, first[1].1);
    }

    #[test]
    fn toml_jobs_without_id_get_derived_ids() {
        let c = ok(r#"
[defaults]
model = "veo3.1-fast"
[[job]]
prompt = "Über   the moon!!"
[[job]]
prompt = "日本"
"#);
        assert!(c.jobs[0].id.starts_with("ber-the-moon-"), "{:?}", ids(&c));
        assert!(c.jobs[1].id.starts_with("job-"), "{:?}", ids(&c));
    }

    #[test]
    fn duplicate_ids_name_both_origins() {
        let fixture = Fixture::new();
        fixture.write("prompts.csv", "id,prompt\nx,From CSV\ny,One\ny,Two\n");
        let p = problems(fixture.load(
            "c.toml",
            r#"[defaults]
model = "veo3.1-fast"
[[job]]
id = "x"
prompt = "From TOML"
[[source]]
csv = "prompts.csv"
"#,
        ));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("prompts.csv:2: duplicate job id `x` (also at "),
            "{p:?}"
        );
        assert!(p[0].ends_with("c.toml:3)"), "{p:?}");
        assert!(
            p[1].starts_with("prompts.csv:4: duplicate job id `y` (also at "),
            "{p:?}"
        );
        assert!(p[1].ends_with("prompts.csv:3)"), "{p:?}");
    }

    #[test]
    fn bad_ids_are_rejected() {
        let long = "a".repeat(129);
        let p = toml_problems(&format!(
            r#"[defaults]
model = "veo3.1-fast"
[[job]]
id = "../x"
prompt = "p"
[[job]]
id = ".hidden"
prompt = "p"
[[job]]
id = "a b"
prompt = "p"
[[job]]
id = "{long}"
prompt = "p"
[[job]]
id = ""
prompt = "p"
"#
        ));
        assert_has(
            &p,
            "campaign.toml:4:6: job id \"../x\" must not start with `.`",
        );
        assert_has(
            &p,
            "campaign.toml:7:6: job id \".hidden\" must not start with `.`",
        );
        assert_has(
            &p,
            "job id \"a b\" may only contain letters, digits, `-`, `_` and `.` (found ' ')",
        );
        assert_has(&p, "is 129 characters long, at most 128 are allowed");
        assert_has(&p, "job id must not be empty");
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(expand::id_problem("a/../b").is_some());
        assert!(expand::id_problem("ok-1_2.v3").is_none());
    }

    #[test]
    fn model_rules_name_the_job() {
        let p = toml_problems(
            r#"[[job]]
id = "dolphins"
prompt = "p"
model = "veo3.1-fast"
duration = 10
aspect_ratio = "4:3"
[[job]]
id = "g"
prompt = "p"
model = "gemini_omni_flash"
duration = 8
resolution = "1080p"
aspect_ratio = "9:16"
image_urls = ["https://e.com/a.png", "https://e.com/b.png", "https://e.com/c.png", "https://e.com/d.png"]
metadata = { enable_gif = true }
[[job]]
id = "nomodel"
prompt = "p"
[[job]]
id = "typo"
prompt = "p"
model = "veo3.1-fats"
[[job]]
id = "noprompt"
model = "veo3.1-fast"
"#,
        );
        assert_has(
            &p,
            "campaign.toml:5:12: job `dolphins`: veo3.1-fast accepts duration 8 only, got 10",
        );
        assert_has(
            &p,
            "campaign.toml:6:16: job `dolphins`: veo3.1-fast accepts aspect_ratio \"16:9\" or \"9:16\", got \"4:3\"",
        );
        assert_has(
            &p,
            "job `g`: gemini-omni-flash accepts duration 4, 6 or 10, got 8",
        );
        assert_has(
            &p,
            "campaign.toml:13:16: job `g`: gemini-omni-flash: 1080p is landscape only (aspect_ratio must be \"16:9\", got \"9:16\")",
        );
        assert_has(
            &p,
            "campaign.toml:14:14: job `g`: gemini-omni-flash accepts at most 3 image_urls, got 4 (reference images)",
        );
        assert_has(
            &p,
            "job `g`: gemini-omni-flash accepts no metadata, got `metadata.enable_gif`",
        );
        assert_has(
            &p,
            "campaign.toml:16:1: job `nomodel`: no model: set `model` in [defaults] or on the job",
        );
        assert_has(
            &p,
            "campaign.toml:22:9: unknown model `veo3.1-fats`; did you mean `veo3.1-fast`?",
        );
        assert_has(
            &p,
            "campaign.toml:23:1: job `noprompt`: no `prompt`: every job needs one",
        );
        assert!(!p.iter().any(|l| l.contains("job `typo`")), "{p:?}");
    }

    #[test]
    fn a_problem_shared_by_many_jobs_is_reported_once() {
        let p = toml_problems(
            r#"[defaults]
model = "veo3.1-fast"
duration = 6
[[job]]
id = "a"
prompt = "p"
[[job]]
id = "b"
prompt = "p"
[[job]]
id = "c"
prompt = "p"
"#,
        );
        assert_eq!(
            p,
            [
                "campaign.toml:3:12: job `a`: veo3.1-fast accepts duration 8 only, got 6 (and 2 more jobs)"
            ]
        );
    }

    #[test]
    fn veo_resolution_moves_into_metadata() {
        let c = ok(r#"
[defaults]
model = "veo3.1-fast"
resolution = "1080p"
[[job]]
id = "a"
prompt = "p"
[[job]]
id = "b"
prompt = "p"
metadata = { resolution = "1080p", generation_type = "frame" }
[[job]]
id = "g"
prompt = "p"
model = "gemini_omni_flash"
resolution = "720P"
"#);
        let a = &c.jobs[0];
        assert_eq!(a.resolution, None);
        assert_eq!(a.metadata.get("resolution"), Some(&Value::from("1080p")));
        let body = a.request_body(&[]);
        assert_eq!(body["metadata"]["resolution"], "1080p");
        assert!(body.get("resolution").is_none());
        assert_eq!(c.jobs[1].metadata.len(), 2);
        assert_eq!(c.jobs[2].resolution.as_deref(), Some("720P"));
        assert!(c.jobs[2].metadata.is_empty());

        let p = toml_problems(
            r#"[[job]]
id = "a"
prompt = "p"
model = "veo3.1-fast"
resolution = "720p"
metadata = { resolution = "1080p" }
"#,
        );
        assert_eq!(
            p,
            [
                "campaign.toml:5:14: job `a`: `resolution` \"720p\" and `metadata.resolution` string \"1080p\" disagree; for veo3.1-fast set only one"
            ]
        );
    }

    #[test]
    fn image_urls_forms() {
        let fixture = Fixture::new();
        let png = fixture.write("frames/start.png", "not really a png");
        fixture.write("frames/notes.txt", "x");
        let big = fixture.write("frames/big.jpg", "");
        std::fs::File::options()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(10 * 1024 * 1024 + 1)
            .unwrap();
        std::fs::create_dir_all(fixture.dir.path().join("frames/dir.png")).unwrap();
        let p = problems(fixture.load(
            "c.toml",
            r#"[defaults]
model = "veo3.1-fast"
[[job]]
id = "ok"
prompt = "p"
image_urls = ["frames/start.png", "HTTPS://e.com/x/end.JPG?sig=1"]
[[job]]
id = "data"
prompt = "p"
image_urls = ["data:image/png;base64,AAAA"]
[[job]]
id = "ftp"
prompt = "p"
image_urls = ["ftp://e.com/a.png"]
[[job]]
id = "gif"
prompt = "p"
image_urls = ["https://e.com/a.gif", "https://e.com/noext"]
[[job]]
id = "missing"
prompt = "p"
image_urls = ["frames/missing.png", "frames/notes.txt", "frames/big.jpg", "frames/dir.png"]
[[job]]
id = "three"
prompt = "p"
image_urls = ["https://e.com/1", "https://e.com/2", "https://e.com/3"]
"#,
        ));
        assert_has(
            &p,
            "c.toml:10:15: job `data`: base64/data URIs are not accepted; save the image to a file and list its path",
        );
        assert_has(&p, "job `ftp`: unsupported URL scheme `ftp://`");
        assert_has(
            &p,
            "job `gif`: image URL \"https://e.com/a.gif\" must end in .jpeg, .jpg, .png or .webp (or have no extension), got `.gif`",
        );
        assert_has(&p, "job `missing`: cannot read image file");
        assert_has(
            &p,
            "job `missing`: image file \"frames/notes.txt\" must be .jpeg, .jpg, .png or .webp, got `.txt`",
        );
        assert_has(
            &p,
            "is 10485761 bytes; at most 10 MB (10485760 bytes) is accepted",
        );
        assert_has(&p, "dir.png` is not a file");
        // Three images: reference mode, which veo3.1-fast has (the count decides).
        assert!(!p.iter().any(|l| l.contains("job `three`")), "{p:?}");
        assert_has(
            &p,
            "job `missing`: veo3.1-fast accepts at most 3 image_urls, got 4",
        );
        assert!(!p.iter().any(|l| l.contains("job `ok`")), "{p:?}");
        assert_eq!(p.len(), 8, "{p:?}");

        let c = load(&fixture.write(
            "good.toml",
            r#"[[job]]
id = "ok"
prompt = "p"
model = "veo3.1-fast"
image_urls = ["frames/start.png", "https://e.com/end.webp"]
"#,
        ))
        .unwrap();
        assert_eq!(
            c.jobs[0].images,
            [
                ImageRef::Local(fixture.dir.path().join("frames/start.png")),
                ImageRef::Url("https://e.com/end.webp".into())
            ]
        );
        assert_eq!(c.jobs[0].images[0], ImageRef::Local(png));
    }

    #[test]
    fn filename_templates() {
        let p = toml_problems(
            r#"[output]
filename = "{id}-{ratio}.mp4"
dir = "out/{id}"
[[job]]
id = "a"
prompt = "p"
model = "veo3.1-fast"
"#,
        );
        assert_has(
            &p,
            "campaign.toml:2:12: `filename` in [output]: unknown placeholder `{ratio}` in \"{id}-{ratio}.mp4\" (known: {id}, {model}, {name}, {aspect_ratio}, {duration})",
        );
        assert_has(
            &p,
            "campaign.toml:3:7: `dir` in [output]: unknown placeholder `{id}`",
        );

        for (template, needle) in [
            ("../{id}.mp4", "leaves the output folder"),
            (
                "/tmp/{id}.mp4",
                "must be a path relative to the output folder",
            ),
            ("{id", "unclosed `{`"),
            ("{id}}", "unmatched `}`"),
        ] {
            let p = toml_problems(&format!(
                "[output]\nfilename = \"{template}\"\n[[job]]\nid = \"a\"\nprompt = \"p\"\nmodel = \"veo3.1-fast\"\n"
            ));
            assert_has(&p, needle);
        }

        let p = toml_problems(
            r#"[output]
filename = "{model}.mp4"
[defaults]
model = "veo3.1-fast"
[[job]]
id = "a"
prompt = "p"
[[job]]
id = "b"
prompt = "q"
"#,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("campaign.toml:8: job `b`: output file `veo3.1-fast.mp4` is also written by job `a` ("),
            "{p:?}"
        );
        assert_has(&p, "campaign.toml:5); put `{id}` in `output.filename`");
    }

    #[test]
    fn csv_manifest_unknown_columns_and_line_numbers() {
        let fixture = Fixture::new();
        let p = problems(fixture.load(
            "prompts.csv",
            "id,promt,modle,metadata,duration\na,x,veo3.1-fast,,8\n",
        ));
        assert_has(
            &p,
            "prompts.csv:1: unknown column `promt`; did you mean `prompt`?",
        );
        assert_has(
            &p,
            "prompts.csv:1: unknown column `modle`; did you mean `model`?",
        );
        assert_has(&p, "prompts.csv:1: column `metadata` needs a key");
        assert_has(&p, "prompts.csv:1: missing the required column `prompt`");

        let p = problems(fixture.load(
            "lines.csv",
            "prompt,model,duration,metadata.enable_gif,image_urls\n\
             \"A prompt\nover two lines\",veo3.1-fast,8,true,\n\
             fine,veo3.1-fast,eight,,\n\
             short row\n\
             ,veo3.1-fast,8,,\n\
             g,gemini_omni_flash,6,maybe,https://e.com/a.png|https://e.com/b.png\n",
        ));
        assert_eq!(
            p,
            [
                "lines.csv:4: `duration` must be an integer, got \"eight\"",
                "lines.csv:5: this row has 1 fields but the header has 5 (quote cells that contain commas)",
                &format!(
                    "lines.csv:6: job `{}`: no `prompt`: every job needs one",
                    p.get(2).and_then(|l| l.split('`').nth(1)).unwrap_or("?")
                ),
                &format!(
                    "lines.csv:7: job `{}`: gemini-omni-flash accepts no metadata, got `metadata.enable_gif`",
                    p.get(3).and_then(|l| l.split('`').nth(1)).unwrap_or("?")
                ),
            ],
        );

        let c = fixture
            .load(
                "good.csv",
                "\u{feff}id,prompt,model,metadata.enable_gif,metadata.generation_type,image_urls\n\
                 ,\"Multi\nline\",veo3.1-fast,true,frame,https://e.com/a.png | https://e.com/b.png\n",
            )
            .unwrap();
        assert_eq!(c.name, "good");
        let job = &c.jobs[0];
        assert_eq!(job.origin.line, 2);
        assert_eq!(job.metadata.get("enable_gif"), Some(&Value::Bool(true)));
        assert_eq!(job.images.len(), 2);
    }

    #[test]
    fn sources_are_resolved_and_missing_ones_reported() {
        let p = toml_problems(
            "[defaults]\nmodel = \"veo3.1-fast\"\n[[source]]\ncsv = \"nope.csv\"\n[[job]]\nid = \"a\"\nprompt = \"p\"\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("campaign.toml:4:7: [[source]] csv \"nope.csv\": cannot read `"),
            "{p:?}"
        );
        assert!(p[0].contains("nope.csv`"), "{p:?}");
    }

    #[test]
    fn empty_and_odd_manifests() {
        assert_eq!(
            toml_problems("name = \"x\"\n"),
            [
                "campaign.toml: no jobs: add [[job]] entries or a [[source]] csv with at least one row"
            ]
        );
        let p = problems(Fixture::new().load("x.yaml", "a: b"));
        assert_has(
            &p,
            "a manifest must be a `.toml` campaign or a `.csv` job list",
        );
        let p = problems(load(Path::new("/definitely/not/here.toml")));
        assert_has(&p, "cannot read `/definitely/not/here.toml`");
        let p = toml_problems(
            "[api]\nbase_url = \"ftp://x\"\napi_key_env = \"sk-abc\"\n[[job]]\nid = \"a\"\nprompt = \"p\"\nmodel = \"veo3.1-fast\"\n",
        );
        assert_has(
            &p,
            "`base_url` in [api] must be an http:// or https:// URL, got \"ftp://x\"",
        );
        assert_has(
            &p,
            "`api_key_env` in [api] must be the name of an environment variable",
        );
    }

    fn prompts(campaign: &Campaign) -> Vec<(&str, &str)> {
        campaign
            .jobs
            .iter()
            .map(|j| (j.id.as_str(), j.prompt.as_str()))
            .collect()
    }

    const TEMPLATE_DEFAULTS: &str = r#"[defaults]
model = "veo3.1-fast"
prompt = "A {style} shot of {subject}"
vars = { style = "wide" }
[[source]]
csv = "rows.csv"
"#;

    #[test]
    fn csv_columns_fill_the_defaults_template() {
        let fixture = Fixture::new();
        fixture.write(
            "rows.csv",
            "prompt,subject,style\n,a cat,noir\n,a dog,\n,a dog,noir\nOwn prompt {x},a cat,\n",
        );
        let c = match fixture.load("c.toml", TEMPLATE_DEFAULTS) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let got = prompts(&c);
        assert_eq!(got[0].1, "A noir shot of a cat");
        // An empty cell takes [defaults] vars.
        assert_eq!(got[1].1, "A wide shot of a dog");
        assert_eq!(got[2].1, "A noir shot of a dog");
        // A prompt cell is not a template.
        assert_eq!(got[3].1, "Own prompt {x}");
        // Ids come from the filled prompt: same template, different columns, different ids.
        assert!(got[0].0.starts_with("a-noir-shot-of-a-cat-"), "{got:?}");
        assert!(got[1].0.starts_with("a-wide-shot-of-a-dog-"), "{got:?}");
        assert_ne!(got[1].0, got[2].0);

        // Reordering rows and columns keeps every id.
        fixture.write(
            "rows.csv",
            "style,subject,prompt\nnoir,a dog,\n,a dog,\nnoir,a cat,\n",
        );
        let again = match fixture.load("c.toml", TEMPLATE_DEFAULTS) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let mut before: Vec<&str> = ids(&c)[..3].to_vec();
        let mut after = ids(&again);
        before.sort_unstable();
        after.sort_unstable();
        assert_eq!(before, after);
    }

    #[test]
    fn unused_csv_columns_are_still_unknown() {
        let fixture = Fixture::new();
        fixture.write(
            "rows.csv",
            "prompt,subject,styel,camera\n,a cat,noir,calm\n",
        );
        let p = problems(fixture.load("c.toml", TEMPLATE_DEFAULTS));
        assert_has(
            &p,
            "rows.csv:1: unknown column `styel`; did you mean `style`?",
        );
        assert_has(
            &p,
            "rows.csv:1: unknown column `camera`; expected one of `id`, `prompt`, `model`, `aspect_ratio`, `duration`, `resolution`, `image_urls`, `metadata.KEY`, `style`, `subject` (a column that is not a job key must be a placeholder of the prompt template in [defaults])",
        );
        // Without a template, extra columns are refused as before.
        let p = problems(fixture.load("plain.csv", "prompt,model,style\nx,veo3.1-fast,noir\n"));
        assert_has(&p, "plain.csv:1: unknown column `style`; expected one of");
    }

    #[test]
    fn a_placeholder_without_a_column_is_reported_at_the_header() {
        let fixture = Fixture::new();
        fixture.write("rows.csv", "prompt,subjct\n,a cat\n,a dog\n");
        let toml = TEMPLATE_DEFAULTS.replace("vars = { style = \"wide\" }\n", "");
        let p = problems(fixture.load("c.toml", &toml));
        let missing: Vec<&String> = p.iter().filter(|l| l.contains("no `")).collect();
        assert_eq!(missing.len(), 2, "{p:?}");
        assert!(
            missing[0].starts_with("rows.csv:1: the prompt template (at "),
            "{p:?}"
        );
        assert!(
            missing[0].ends_with(
                "c.toml:3) uses `{style}`, but this CSV has no `style` column (columns: `subjct`)"
            ),
            "{p:?}"
        );
        assert!(
            missing[1].ends_with(
                "uses `{subject}`, but this CSV has no `subject` column; did you mean `subjct`?"
            ),
            "{p:?}"
        );
        assert_has(
            &p,
            "rows.csv:1: unknown column `subjct`; did you mean `subject`?",
        );

        // A column that is there but empty in a row is that row's problem.
        fixture.write("rows.csv", "prompt,subject,style\n,a cat,\n");
        let p = problems(fixture.load("c.toml", &toml));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("rows.csv:2: `{style}` in the prompt template (at "),
            "{p:?}"
        );
        assert!(
            p[0].ends_with("has no value: this row's `style` cell is empty"),
            "{p:?}"
        );
    }

    #[test]
    fn toml_jobs_fill_templates_from_vars_and_own_fields() {
        let c = ok(r#"
[defaults]
model = "veo3.1-fast"
prompt = "{subject} in {aspect_ratio}, {style}"
vars = { style = "noir", subject = "nobody" }
[[job]]
id = "a"
aspect_ratio = "9:16"
vars = { subject = "A cat" }
[[job]]
id = "b"
aspect_ratio = "16:9"
[[job]]
id = "c"
prompt = "{{literal}} {n} {metadata.generation_type}"
vars = { n = 3 }
metadata = { generation_type = "frame" }
[[job]]
aspect_ratio = "16:9"
vars = { subject = "A dog" }
[[job]]
aspect_ratio = "16:9"
vars = { subject = "A fox" }
"#);
        let got = prompts(&c);
        assert_eq!(got[0], ("a", "A cat in 9:16, noir"));
        assert_eq!(got[1], ("b", "nobody in 16:9, noir"));
        assert_eq!(got[2], ("c", "{literal} 3 frame"));
        assert!(got[3].0.starts_with("a-dog-in-16-9-noir-"), "{got:?}");
        assert!(got[4].0.starts_with("a-fox-in-16-9-noir-"), "{got:?}");
    }

    #[test]
    fn template_problems() {
        let p = toml_problems(
            r#"[defaults]
model = "veo3.1-fast"
prompt = "A {style} shot of {subject}"
[[job]]
id = "a"
vars = { styel = "noir", subject = "x" }
[[job]]
id = "b"
prompt = "unclosed {brace"
[[job]]
id = "c"
prompt = "{prompt}"
[[job]]
vars = { style = ["a"] }
"#,
        );
        assert_has(
            &p,
            "campaign.toml:4:1: job `a`: `{style}` in the prompt template (at ",
        );
        assert_has(
            &p,
            "campaign.toml:3) has no value: set it in the job's `vars` (or in [defaults] `vars`); did you mean `styel`?",
        );
        assert_has(
            &p,
            "campaign.toml:9:10: `prompt` in [[job]]: unclosed `{` in prompt \"unclosed {brace\"",
        );
        assert_has(
            &p,
            "campaign.toml:12:10: `prompt` in [[job]]: `{prompt}` cannot be used",
        );
        assert_has(
            &p,
            "campaign.toml:14:18: `vars.style` in [[job]] must be a string (or a number or boolean), got an array",
        );
        // The invalid prompts are not also reported missing.
        assert!(!p.iter().any(|l| l.contains("no `prompt`")), "{p:?}");
    }

    #[test]
    fn pricing_and_budget_are_read() {
        let c = ok(r#"
[limits]
budget = 25
[pricing]
currency = "EUR"
"veo3.1-fast" = { per_second = 0.05 }
gemini_omni_flash = { per_video = 0.4 }
[[job]]
id = "a"
prompt = "p"
model = "veo3.1-fast"
"#);
        assert_eq!(c.limits.budget, Some(25.0));
        assert_eq!(c.pricing.currency, "EUR");
        assert_eq!(
            c.pricing.price(Model::from_static("veo3.1-fast")),
            Some(Price::PerSecond(0.05))
        );
        assert_eq!(
            c.pricing.price(Model::from_static("gemini-omni-flash")),
            Some(Price::PerVideo(0.4))
        );
        assert_eq!(c.pricing.price(Model::from_static("veo3.1-quality")), None);
        assert_eq!(ok(JOB).pricing, Pricing::default());
        assert_eq!(Pricing::default().currency, "USD");
    }

    const JOB: &str = "[[job]]\nid = \"a\"\nprompt = \"p\"\nmodel = \"veo3.1-fast\"\n";

    #[test]
    fn pricing_problems() {
        let p = toml_problems(&format!(
            r#"[limits]
budget = 0
[pricing]
currency = "euro"
"veo3.1-fats" = {{ per_second = 0.05 }}
sora = {{ per_video = 1 }}
curency = "EUR"
"veo3.1-quality" = {{ per_secnd = 0.05 }}
gemini_omni_flash = {{ per_second = -1 }}
[pricing."veo3.1-fast"]
per_second = 0.1
per_video = 1
{JOB}"#
        ));
        assert_has(
            &p,
            "campaign.toml:2:10: `budget` in [limits] must be a number greater than 0, got integer 0",
        );
        assert_has(
            &p,
            "campaign.toml:4:12: `currency` in [pricing] must be a three-letter currency code like \"USD\" or \"EUR\", got \"euro\"",
        );
        assert_has(
            &p,
            "campaign.toml:5:1: unknown model `veo3.1-fats` in [pricing]; did you mean `veo3.1-fast`?",
        );
        assert_has(
            &p,
            "campaign.toml:6:1: unknown model `sora` in [pricing]; did you mean `sora-2-vvip`?",
        );
        assert_has(
            &p,
            "campaign.toml:7:1: unknown key `curency` in [pricing]; did you mean `currency`?",
        );
        assert_has(
            &p,
            "campaign.toml:8:22: unknown key `per_secnd` in [pricing] veo3.1-quality; did you mean `per_second`?",
        );
        assert_has(
            &p,
            "campaign.toml:9:36: `per_second` in [pricing] gemini_omni_flash must be 0 or more, got -1",
        );
        assert_has(
            &p,
            "`veo3.1-fast` in [pricing] sets both `per_second` and `per_video`: give one",
        );
        let p = toml_problems(&format!("[pricing]\n\"veo3.1-fast\" = {{}}\n{JOB}"));
        assert_has(
            &p,
            "campaign.toml:2:17: `veo3.1-fast` in [pricing] needs a price: `{ per_second = 0.05 }` or `{ per_video = 0.40 }`",
        );
        let p = toml_problems(&format!("[pricing]\n\"veo3.1-fast\" = 3\n{JOB}"));
        assert_has(
            &p,
            "`veo3.1-fast` in [pricing] must be a table, got integer 3",
        );
    }

    #[test]
    fn a_budget_needs_every_price() {
        let p = toml_problems(&format!(
            "[limits]\nbudget = 10.5\n[pricing]\ngemini_omni_flash = {{ per_video = 1 }}\n{JOB}[[job]]\nid = \"b\"\nprompt = \"p\"\nmodel = \"veo3.1-fast\"\n"
        ));
        assert_eq!(
            p,
            [
                "campaign.toml:2:10: `budget` in [limits] needs a price for every model, and [pricing] has none for veo3.1-fast (2 jobs): add `\"veo3.1-fast\" = { per_second = … }` or `{ per_video = … }` to [pricing]"
            ]
        );
        let c = ok(&format!(
            "[limits]\nbudget = 10.5\n[pricing]\n\"veo3.1-fast\" = {{ per_video = 1 }}\n{JOB}"
        ));
        assert_eq!(c.limits.budget, Some(10.5));
        let plan = crate::plan::plan(&c);
        assert_eq!(plan.total_cost, crate::plan::Cost::Known(1.0));
    }

    #[test]
    fn error_display_ends_with_a_count() {
        let fixture = Fixture::new();
        let err = fixture
            .load(
                "campaign.toml",
                "nmae = 1\nfoo = 2\n[[job]]\nid = \"a\"\nprompt = \"p\"\nmodel = \"veo3.1-fast\"\n",
            )
            .unwrap_err();
        let text = err.to_string();
        let last = text.lines().last().unwrap();
        assert!(last.starts_with("2 problems in "), "{text}");
        assert!(last.ends_with("campaign.toml"), "{text}");
        assert_eq!(text.lines().count(), 3);
    }
}
