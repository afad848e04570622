//! TOML and CSV text into raw, located values: unknown keys and wrong types are reported here, nothing is defaulted.
//!
//! The TOML document is walked by hand as a spanned tree (`toml::de::DeTable`)
//! rather than deserialised with serde, so that every unknown key and every
//! wrong type is reported, each with its line and column, instead of only the first.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diags, LineIndex, Loc, Located, quoted, unknown_key_message};
use super::prompt::PromptTemplate;
use super::{ApiConfig, Budget, Limits, Price, Pricing, Tier};
use crate::models::{Catalogue, Model};

/// Keys of a job: in `[defaults]`, `[[job]]` and as CSV columns (`metadata.KEY` there;
/// no `vars` column: a CSV's extra columns are its vars).
pub const JOB_KEYS: [&str; 9] = [
    "id",
    "prompt",
    "model",
    "aspect_ratio",
    "duration",
    "resolution",
    "image_urls",
    "metadata",
    "vars",
];

/// Keys `[matrix]` may vary, in the order their values are appended to ids.
pub const MATRIX_KEYS: [&str; 4] = ["model", "aspect_ratio", "duration", "resolution"];

const TOP_KEYS: [&str; 10] = [
    "name", "api", "limits", "output", "pricing", "defaults", "matrix", "job", "source", "models",
];
const API_KEYS: [&str; 2] = ["base_url", "api_key_env"];
const LIMIT_KEYS: [&str; 20] = [
    "requests_per_second",
    "burst",
    "tier",
    "submit_per_second",
    "submit_burst",
    "query_per_second",
    "query_burst",
    "max_in_flight",
    "submit_concurrency",
    "downloads",
    "task_timeout",
    "max_attempts",
    "poll_queued",
    "poll_in_progress",
    "max_video_size",
    "budget",
    "confirm_above",
    "outage_timeout",
    "download_min_rate",
    "download_stall",
];
const PRICE_KEYS: [&str; 2] = ["per_second", "per_video"];
const OUTPUT_KEYS: [&str; 4] = ["dir", "filename", "state", "report"];
const SOURCE_KEYS: [&str; 1] = ["csv"];

/// The job keys as written in one place (`[defaults]`, a `[[job]]`, a CSV row, one
/// `[matrix]` value). `None` means "not set here", so layers can be merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFields {
    pub id: Option<Located<String>>,
    pub prompt: Option<Located<String>>,
    pub model: Option<Located<Model>>,
    /// The model's name as written when it is an alias (derived ids hash what was written).
    pub model_alias: Option<String>,
    pub aspect_ratio: Option<Located<String>>,
    pub duration: Option<Located<i64>>,
    pub resolution: Option<Located<String>>,
    pub image_urls: Option<Located<Vec<Located<String>>>>,
    /// Each value located at its key.
    pub metadata: BTreeMap<String, Located<Value>>,
    /// Top-level request fields beyond the keys above, as the provider names them
    /// (`mode`, `size`, `audio`, `image_with_roles`, ...): any field some catalogue
    /// model takes; whether this job's model takes it is checked when it is expanded.
    pub extra: BTreeMap<String, Located<Value>>,
    /// What prompt placeholders are filled with: `vars = { … }` in TOML, the extra
    /// (non-key) columns of a CSV row. Each value located at its key (TOML) or row (CSV).
    pub vars: BTreeMap<String, Located<String>>,
    /// `prompt` parsed as a template; set together with `prompt` when it was written
    /// in TOML with a brace in it (a CSV cell is never a template).
    pub prompt_template: Option<PromptTemplate>,
    /// Keys that were written but could not be read (already reported), so that
    /// later stages do not also call them missing.
    pub invalid: BTreeSet<&'static str>,
}

impl JobFields {
    /// `self` with every key `over` sets replaced; `metadata` merges key by key.
    pub fn merged(&self, over: &JobFields) -> JobFields {
        let mut out = self.clone();
        fn take<T: Clone>(slot: &mut Option<T>, over: &Option<T>) {
            if over.is_some() {
                slot.clone_from(over);
            }
        }
        take(&mut out.id, &over.id);
        if over.prompt.is_some() {
            out.prompt_template.clone_from(&over.prompt_template);
        }
        take(&mut out.prompt, &over.prompt);
        if over.model.is_some() {
            out.model_alias.clone_from(&over.model_alias);
        }
        take(&mut out.model, &over.model);
        take(&mut out.aspect_ratio, &over.aspect_ratio);
        take(&mut out.duration, &over.duration);
        take(&mut out.resolution, &over.resolution);
        take(&mut out.image_urls, &over.image_urls);
        for (key, value) in &over.metadata {
            out.metadata.insert(key.clone(), value.clone());
        }
        for (key, value) in &over.extra {
            out.extra.insert(key.clone(), value.clone());
        }
        for (key, value) in &over.vars {
            out.vars.insert(key.clone(), value.clone());
        }
        out.invalid.extend(over.invalid.iter().copied());
        out
    }

    /// Whether this layer sets `key` (one of [`MATRIX_KEYS`]).
    pub fn sets(&self, key: &str) -> bool {
        match key {
            "model" => self.model.is_some() || self.invalid.contains("model"),
            "aspect_ratio" => self.aspect_ratio.is_some() || self.invalid.contains("aspect_ratio"),
            "duration" => self.duration.is_some() || self.invalid.contains("duration"),
            "resolution" => self.resolution.is_some() || self.invalid.contains("resolution"),
            _ => false,
        }
    }
}

/// A `[[job]]` entry or a CSV row.
#[derive(Debug, Clone, PartialEq)]
pub struct RawJob {
    /// The `[[job]]` header or the CSV record.
    pub origin: Loc,
    pub fields: JobFields,
    /// The header of the CSV the row comes from; `None` for a `[[job]]`.
    pub csv: Option<Arc<CsvHeader>>,
}

/// A CSV's header row: where it is and the columns it names (trimmed, in order).
#[derive(Debug, Clone, PartialEq)]
pub struct CsvHeader {
    pub loc: Loc,
    pub columns: Vec<String>,
}

/// One `[matrix]` key and its values, each a layer that sets only that key.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixDim {
    /// One of [`MATRIX_KEYS`].
    pub key: &'static str,
    pub values: Vec<JobFields>,
}

/// A placeholder of an `[output]` template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Id,
    Model,
    Name,
    AspectRatio,
    Duration,
}

impl Placeholder {
    const ALL: [(&'static str, Placeholder); 5] = [
        ("id", Placeholder::Id),
        ("model", Placeholder::Model),
        ("name", Placeholder::Name),
        ("aspect_ratio", Placeholder::AspectRatio),
        ("duration", Placeholder::Duration),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

/// A parsed `output.dir` or `output.filename`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub text: String,
    pub segments: Vec<Segment>,
    pub loc: Loc,
}

/// The values a [`Template`] is filled with.
#[derive(Debug, Clone, Copy)]
pub struct TemplateValues<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub name: &'a str,
    pub aspect_ratio: &'a str,
    pub duration: u32,
}

impl Template {
    /// Parses `text`, accepting only the placeholders in `allowed`; the error says why not.
    pub fn parse(text: &str, allowed: &[Placeholder], loc: Loc) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            let (before, after) = rest.split_at(i);
            literal.push_str(before);
            if after.starts_with('}') {
                return Err(format!("unmatched `}}` in {}", quoted(text)));
            }
            let Some(end) = after.find('}') else {
                return Err(format!("unclosed `{{` in {}", quoted(text)));
            };
            let name = after.get(1..end).unwrap_or_default();
            let known: Vec<&str> = allowed
                .iter()
                .filter_map(|p| {
                    Placeholder::ALL
                        .iter()
                        .find(|(_, q)| q == p)
                        .map(|(n, _)| *n)
                })
                .collect();
            let Some(&(_, placeholder)) = Placeholder::ALL
                .iter()
                .find(|(n, p)| *n == name && allowed.contains(p))
            else {
                let list: Vec<String> = known.iter().map(|k| format!("{{{k}}}")).collect();
                let hint = match super::diag::suggest(name, &known) {
                    Some(best) => format!("; did you mean `{{{best}}}`?"),
                    None => String::new(),
                };
                return Err(format!(
                    "unknown placeholder `{{{name}}}` in {} (known: {}){hint}",
                    quoted(text),
                    list.join(", ")
                ));
            };
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Placeholder(placeholder));
            rest = after.get(end + 1..).unwrap_or_default();
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template {
            text: text.to_owned(),
            segments,
            loc,
        })
    }

    /// The template filled in; `aspect_ratio`'s `:` becomes `x` (it names files).
    pub fn render(&self, values: &TemplateValues<'_>) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Placeholder(Placeholder::Id) => out.push_str(values.id),
                Segment::Placeholder(Placeholder::Model) => out.push_str(values.model),
                Segment::Placeholder(Placeholder::Name) => out.push_str(values.name),
                Segment::Placeholder(Placeholder::AspectRatio) => {
                    out.push_str(&values.aspect_ratio.replace(':', "x"))
                }
                Segment::Placeholder(Placeholder::Duration) => {
                    out.push_str(&values.duration.to_string())
                }
            }
        }
        out
    }
}

/// `[output]` as written; paths are resolved by `expand`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawOutput {
    /// `None` only when the written template was invalid (already reported).
    pub dir: Option<Template>,
    pub filename: Option<Template>,
    pub state: Option<Located<String>>,
    pub report: Option<Located<String>>,
}

/// A TOML manifest read but not yet expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct RawManifest {
    /// The manifest itself.
    pub file: Arc<Path>,
    pub name: Option<Located<String>>,
    pub api: ApiConfig,
    pub limits: Limits,
    pub output: RawOutput,
    pub pricing: Pricing,
    /// Where `limits.budget` was written, when it was.
    pub budget_loc: Option<Loc>,
    pub defaults: JobFields,
    /// In [`MATRIX_KEYS`] order, whatever the order in the file.
    pub matrix: Vec<MatrixDim>,
    pub jobs: Vec<RawJob>,
    /// `[[source]] csv` paths as written.
    pub sources: Vec<Located<String>>,
    /// The built-in catalogue with the manifest's `[models."NAME"]` applied.
    pub catalogue: Arc<Catalogue>,
    /// The models the manifest added or amended, with where (for `runner validate`).
    pub model_overrides: Vec<(String, Loc)>,
}

impl RawManifest {
    /// A manifest with every setting at its default and no jobs (what a CSV manifest gets).
    pub fn empty(file: &Arc<Path>) -> RawManifest {
        RawManifest {
            file: Arc::clone(file),
            name: None,
            api: ApiConfig::default(),
            limits: Limits::default(),
            output: RawOutput::default_for(file),
            pricing: Pricing::default(),
            budget_loc: None,
            defaults: JobFields::default(),
            matrix: Vec::new(),
            jobs: Vec::new(),
            sources: Vec::new(),
            catalogue: Arc::clone(Catalogue::builtin()),
            model_overrides: Vec::new(),
        }
    }
}

/// Default `output.dir`.
pub const DEFAULT_DIR: &str = "out/{name}";
/// Default `output.filename`.
pub const DEFAULT_FILENAME: &str = "{id}.mp4";
const DIR_PLACEHOLDERS: [Placeholder; 1] = [Placeholder::Name];
const FILENAME_PLACEHOLDERS: [Placeholder; 5] = [
    Placeholder::Id,
    Placeholder::Model,
    Placeholder::Name,
    Placeholder::AspectRatio,
    Placeholder::Duration,
];

impl RawOutput {
    fn default_for(file: &Arc<Path>) -> RawOutput {
        RawOutput {
            dir: Template::parse(DEFAULT_DIR, &DIR_PLACEHOLDERS, Loc::file(file)).ok(),
            filename: Template::parse(DEFAULT_FILENAME, &FILENAME_PLACEHOLDERS, Loc::file(file))
                .ok(),
            state: None,
            report: None,
        }
    }
}

/// Why `text` is not a usable file name inside the output folder, if it is not.
pub fn filename_problem(text: &str) -> Option<String> {
    use std::path::Component;
    if text.is_empty() {
        return Some("the file name is empty".into());
    }
    if text.ends_with('/') || text.ends_with('\\') {
        return Some(format!("{} names a folder, not a file", quoted(text)));
    }
    for component in Path::new(text).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Some(format!(
                    "{} leaves the output folder (`..` is not allowed)",
                    quoted(text)
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Some(format!(
                    "{} must be a path relative to the output folder",
                    quoted(text)
                ));
            }
        }
    }
    None
}

/// Parses a TOML manifest. Returns `None` only on a TOML syntax error (reported with
/// its line and column); every other problem is reported and parsing goes on.
pub fn parse_toml_str(text: &str, path: &Path, diags: &mut Diags) -> Option<RawManifest> {
    let file: Arc<Path> = Arc::from(path);
    let index = LineIndex::new(text);
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(error) => {
            let loc = match error.span() {
                Some(span) => {
                    let (line, column) = index.position(text, span.start);
                    Loc {
                        file: Arc::clone(&file),
                        line: Some(line),
                        column: Some(column),
                    }
                }
                None => Loc::file(&file),
            };
            diags.error(&loc, format!("TOML syntax error: {}", error.message()));
            return None;
        }
    };
    let mut walker = Walker {
        text,
        index,
        file: Arc::clone(&file),
        diags,
        catalogue: Arc::clone(Catalogue::builtin()),
        broken_models: Vec::new(),
    };
    let mut overrides = Vec::new();
    if let Some(models) = root.get_ref().get("models") {
        overrides = walker.models(models);
    }
    let mut manifest = walker.manifest(root.get_ref());
    manifest.catalogue = Arc::clone(&walker.catalogue);
    manifest.model_overrides = overrides;
    Some(manifest)
}

type Val<'i> = Spanned<DeValue<'i>>;

struct Walker<'a, 't> {
    text: &'t str,
    index: LineIndex,
    file: Arc<Path>,
    diags: &'a mut Diags,
    /// Model names resolve here: the built-in catalogue, then the manifest's `[models]`.
    catalogue: Arc<Catalogue>,
    /// `[models]` entries that had errors (reported): a job naming one is not also "unknown".
    broken_models: Vec<String>,
}

/// "string \"8\"", "integer 8", … for messages.
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("string {}", quoted(s)),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "an array".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

fn integer_of(value: &DeValue<'_>) -> Option<Result<i64, ()>> {
    match value {
        DeValue::Integer(i) => Some(i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| ())),
        _ => None,
    }
}

impl Walker<'_, '_> {
    fn loc(&self, span: Range<usize>) -> Loc {
        let (line, column) = self.index.position(self.text, span.start);
        Loc {
            file: Arc::clone(&self.file),
            line: Some(line),
            column: Some(column),
        }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let loc = self.loc(span);
        self.diags.error(&loc, message);
    }

    fn wrong_type(&mut self, key: &str, place: &str, expected: &str, value: &Val<'_>) {
        let got = describe(value.get_ref());
        self.error(
            value.span(),
            format!("`{key}`{place} must be {expected}, got {got}"),
        );
    }

    /// Reports every key of `table` not in `known`, with the nearest known key.
    fn unknown_keys(&mut self, table: &DeTable<'_>, known: &[&str], place: &str) {
        for key in table.keys() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let mut message = unknown_key_message("key", name, place, known);
            if place == " in [api]" && name.contains("key") && name != "api_key_env" {
                message.push_str(
                    " (the API key itself never goes in the manifest: set `api_key_env` to the name of the environment variable holding it)",
                );
            }
            self.error(key.span(), message);
        }
    }

    fn table<'v, 'i>(
        &mut self,
        key: &str,
        place: &str,
        value: &'v Val<'i>,
    ) -> Option<&'v DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            _ => {
                self.wrong_type(key, place, "a table", value);
                None
            }
        }
    }

    fn string(&mut self, key: &str, place: &str, value: &Val<'_>) -> Option<Located<String>> {
        match value.get_ref() {
            DeValue::String(s) => Some(Located::new(s.to_string(), self.loc(value.span()))),
            _ => {
                self.wrong_type(key, place, "a string", value);
                None
            }
        }
    }

    fn integer(&mut self, key: &str, place: &str, value: &Val<'_>) -> Option<Located<i64>> {
        match integer_of(value.get_ref()) {
            Some(Ok(i)) => Some(Located::new(i, self.loc(value.span()))),
            Some(Err(())) => {
                self.error(value.span(), format!("`{key}`{place} is out of range"));
                None
            }
            None => {
                self.wrong_type(key, place, "an integer", value);
                None
            }
        }
    }

    /// An integer of at least 1 that fits `T`.
    fn count<T: TryFrom<i64>>(&mut self, key: &str, place: &str, value: &Val<'_>) -> Option<T> {
        let n = self.integer(key, place, value)?;
        if n.value < 1 {
            self.error(
                value.span(),
                format!("`{key}`{place} must be at least 1, got {}", n.value),
            );
            return None;
        }
        match T::try_from(n.value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(
                    value.span(),
                    format!("`{key}`{place} is too large, got {}", n.value),
                );
                None
            }
        }
    }

    /// A humantime string ("30m", "1h 30m") or integer seconds, greater than zero.
    fn duration(&mut self, key: &str, place: &str, value: &Val<'_>) -> Option<Duration> {
        let parsed = match value.get_ref() {
            DeValue::String(s) => match humantime::parse_duration(s.trim()) {
                Ok(d) => d,
                Err(e) => {
                    self.error(
                        value.span(),
                        format!(
                            "`{key}`{place} must be a duration like \"30s\", \"10m\" or \"1h 30m\" (or integer seconds), got {}: {e}",
                            quoted(s)
                        ),
                    );
                    return None;
                }
            },
            DeValue::Integer(_) => {
                let n = self.integer(key, place, value)?;
                match u64::try_from(n.value) {
                    Ok(secs) => Duration::from_secs(secs),
                    Err(_) => {
                        self.error(
                            value.span(),
                            format!("`{key}`{place} must be greater than 0, got {}", n.value),
                        );
                        return None;
                    }
                }
            }
            _ => {
                self.wrong_type(
                    key,
                    place,
                    "a duration string like \"30m\" or integer seconds",
                    value,
                );
                return None;
            }
        };
        if parsed.is_zero() {
            self.error(
                value.span(),
                format!("`{key}`{place} must be greater than 0"),
            );
            return None;
        }
        Some(parsed)
    }

    /// A finite integer or float (wrong types and non-finite values reported).
    fn number(&mut self, key: &str, place: &str, value: &Val<'_>) -> Option<f64> {
        let number = match value.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(_) => self.integer(key, place, value).map(|n| n.value as f64),
            _ => {
                self.wrong_type(key, place, "a number", value);
                return None;
            }
        };
        match number {
            Some(n) if n.is_finite() => Some(n),
            _ => {
                self.error(
                    value.span(),
                    format!("`{key}`{place} must be a finite number"),
                );
                None
            }
        }
    }

    /// `[pricing]`: `currency`, and per model `{ per_second = x }` or `{ per_video = x }`.
    fn pricing(&mut self, table: &DeTable<'_>) -> Pricing {
        const PLACE: &str = " in [pricing]";
        let mut pricing = Pricing::default();
        let mut known: Vec<&str> = vec!["currency"];
        let catalogue = Arc::clone(&self.catalogue);
        known.extend(catalogue.names());
        for (key, value) in table {
            let name: &str = key.get_ref();
            if name == "currency" {
                if let Some(code) = self.string("currency", PLACE, value) {
                    let text = code.value.trim();
                    if text.len() == 3 && text.chars().all(|c| c.is_ascii_uppercase()) {
                        pricing.currency = text.to_owned();
                    } else {
                        self.diags.error(
                            &code.loc,
                            format!(
                                "`currency`{PLACE} must be a three-letter currency code like \"USD\" or \"EUR\", got {}",
                                quoted(&code.value)
                            ),
                        );
                    }
                }
                continue;
            }
            let Some(model) = catalogue.resolve(name) else {
                let meant = super::diag::suggest(name, &known);
                let what = if meant == Some("currency") {
                    "key"
                } else {
                    "model"
                };
                let mut message = unknown_key_message(what, name, PLACE, &known);
                if meant.is_none() {
                    message = format!(
                        "{} (keys are model names, and `currency`)",
                        catalogue.unknown_message(name)
                    );
                }
                self.error(key.span(), message);
                continue;
            };
            let place = format!(" in [pricing] {name}");
            let Some(price) = self.table(name, " in [pricing]", value) else {
                continue;
            };
            self.unknown_keys(price, &PRICE_KEYS, &place);
            let mut found: Vec<(&str, f64)> = Vec::new();
            for unit in PRICE_KEYS {
                if let Some(v) = price.get(unit) {
                    match self.number(unit, &place, v) {
                        Some(n) if n >= 0.0 => found.push((unit, n)),
                        Some(n) => self.error(
                            v.span(),
                            format!("`{unit}`{place} must be 0 or more, got {n}"),
                        ),
                        None => {}
                    }
                }
            }
            let written = PRICE_KEYS
                .iter()
                .filter(|k| price.get(**k).is_some())
                .count();
            if written > 1 {
                self.error(
                    value.span(),
                    format!("`{name}`{PLACE} sets both `per_second` and `per_video`: give one"),
                );
                continue;
            }
            if written == 0
                && !price
                    .keys()
                    .any(|k| super::diag::suggest(k.get_ref(), &PRICE_KEYS).is_some())
            {
                self.error(
                    value.span(),
                    format!(
                        "`{name}`{PLACE} needs a price: `{{ per_second = 0.05 }}` or `{{ per_video = 0.40 }}`"
                    ),
                );
            }
            match found.first() {
                Some(&("per_second", n)) => {
                    pricing.per_model.insert(model, Price::PerSecond(n));
                }
                Some(&(_, n)) => {
                    pricing.per_model.insert(model, Price::PerVideo(n));
                }
                None => {}
            }
        }
        pricing
    }

    fn manifest(&mut self, root: &DeTable<'_>) -> RawManifest {
        let mut manifest = RawManifest::empty(&self.file);
        self.unknown_keys(root, &TOP_KEYS, " at top level");
        for (key, value) in root {
            match key.get_ref().as_ref() {
                "models" => {}
                "name" => {
                    if let Some(name) = self.string("name", "", value) {
                        if let Some(problem) = name_problem(&name.value) {
                            self.diags.error(&name.loc, format!("`name` {problem}"));
                        } else {
                            manifest.name = Some(name);
                        }
                    }
                }
                "api" => {
                    if let Some(table) = self.table("api", "", value) {
                        manifest.api = self.api(table);
                    }
                }
                "limits" => {
                    if let Some(table) = self.table("limits", "", value) {
                        manifest.limits = self.limits(table);
                        manifest.budget_loc = table.get("budget").map(|b| self.loc(b.span()));
                    }
                }
                "output" => {
                    if let Some(table) = self.table("output", "", value) {
                        self.output(table, &mut manifest.output);
                    }
                }
                "pricing" => {
                    if let Some(table) = self.table("pricing", "", value) {
                        manifest.pricing = self.pricing(table);
                    }
                }
                "defaults" => {
                    if let Some(table) = self.table("defaults", "", value) {
                        manifest.defaults = self.job_fields(table, " in [defaults]", true);
                    }
                }
                "matrix" => {
                    if let Some(table) = self.table("matrix", "", value) {
                        manifest.matrix = self.matrix(table);
                    }
                }
                "job" => {
                    for entry in self.array_of_tables("job", value) {
                        let fields = self.job_fields(entry.get_ref(), " in [[job]]", false);
                        manifest.jobs.push(RawJob {
                            origin: self.loc(entry.span()),
                            fields,
                            csv: None,
                        });
                    }
                }
                "source" => {
                    for entry in self.array_of_tables("source", value) {
                        self.unknown_keys(entry.get_ref(), &SOURCE_KEYS, " in [[source]]");
                        match entry.get_ref().get("csv") {
                            Some(csv) => {
                                if let Some(csv) = self.string("csv", " in [[source]]", csv) {
                                    manifest.sources.push(csv);
                                }
                            }
                            // An unknown key (likely the typo) was reported already.
                            None if !entry.get_ref().is_empty() => {}
                            None => self.error(
                                entry.span(),
                                "[[source]] needs `csv = \"path/to/jobs.csv\"`",
                            ),
                        }
                    }
                }
                _ => {}
            }
        }
        manifest
    }

    /// The tables of `[[key]]`, reporting a plain `[key]` table or any non-table entry.
    fn array_of_tables<'v, 'i>(
        &mut self,
        key: &str,
        value: &'v Val<'i>,
    ) -> Vec<Spanned<&'v DeTable<'i>>> {
        match value.get_ref() {
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::Table(table) => out.push(Spanned::new(item.span(), table)),
                        _ => self.wrong_type(key, "", "an array of tables", item),
                    }
                }
                out
            }
            DeValue::Table(_) => {
                self.error(
                    value.span(),
                    format!("`{key}` must be an array of tables: write [[{key}]], not [{key}]"),
                );
                Vec::new()
            }
            _ => {
                let expected = format!("an array of tables ([[{key}]])");
                self.wrong_type(key, "", &expected, value);
                Vec::new()
            }
        }
    }

    /// `[models."NAME"]`: entries in the catalogue format that add models or amend
    /// built-in ones; applied to [`Walker::catalogue`] before any job names a model.
    fn models(&mut self, value: &Val<'_>) -> Vec<(String, Loc)> {
        use serde::Deserialize;
        use serde::de::IntoDeserializer;
        let Some(table) = self.table("models", "", value) else {
            return Vec::new();
        };
        let places: Vec<(String, Loc)> = table
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), self.loc(v.span())))
            .collect();
        // The catalogue format is read with serde, from the subtree already parsed
        // (any table deserialises as a `toml::Table`).
        let Ok(models) = toml::Table::deserialize(value.clone().into_deserializer()) else {
            return Vec::new();
        };
        let (catalogue, errors) = self.catalogue.with_overrides(&models);
        self.catalogue = Arc::new(catalogue);
        for (name, error) in errors {
            let loc = places
                .iter()
                .find(|(n, _)| *n == name)
                .map_or_else(|| self.loc(value.span()), |(_, l)| l.clone());
            self.diags
                .error(&loc, format!("[models.{}]: {error}", quoted(&name)));
            self.broken_models.push(name);
        }
        places
    }

    fn api(&mut self, table: &DeTable<'_>) -> ApiConfig {
        const PLACE: &str = " in [api]";
        let mut api = ApiConfig::default();
        self.unknown_keys(table, &API_KEYS, PLACE);
        if let Some(value) = table.get("base_url")
            && let Some(url) = self.string("base_url", PLACE, value)
        {
            let trimmed = url.value.trim().trim_end_matches('/');
            let lower = trimmed.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
                    api.base_url = trimmed.to_owned();
                }
                _ => self.diags.error(
                    &url.loc,
                    format!(
                        "`base_url`{PLACE} must be an http:// or https:// URL, got {}",
                        quoted(&url.value)
                    ),
                ),
            }
        }
        if let Some(value) = table.get("api_key_env")
            && let Some(name) = self.string("api_key_env", PLACE, value)
        {
            let valid = name
                .value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid {
                api.api_key_env = name.value;
            } else {
                self.diags.error(
                    &name.loc,
                    format!(
                        "`api_key_env`{PLACE} must be the name of an environment variable (letters, digits, `_`), got {}",
                        quoted(&name.value)
                    ),
                );
            }
        }
        api
    }

    fn limits(&mut self, table: &DeTable<'_>) -> Limits {
        const PLACE: &str = " in [limits]";
        let mut limits = Limits::default();
        let mut tier = Tier::Default;
        let (mut submit_rate, mut submit_burst) = (None, None);
        let (mut query_rate, mut query_burst) = (None, None);
        self.unknown_keys(table, &LIMIT_KEYS, PLACE);
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "requests_per_second" => {
                    if let Some(rate) = self.rate("requests_per_second", PLACE, value) {
                        limits.requests_per_second = Some(rate);
                    }
                }
                "submit_per_second" => submit_rate = self.rate("submit_per_second", PLACE, value),
                "query_per_second" => query_rate = self.rate("query_per_second", PLACE, value),
                "submit_burst" => submit_burst = self.count("submit_burst", PLACE, value),
                "query_burst" => query_burst = self.count("query_burst", PLACE, value),
                "tier" => {
                    let Some(name) = self.string("tier", PLACE, value) else {
                        continue;
                    };
                    match Tier::parse(&name.value) {
                        Some(t) => tier = t,
                        None => {
                            let nearest = Tier::NAMES
                                .iter()
                                .map(|n| (strsim::damerau_levenshtein(&name.value, n), n))
                                .filter(|(distance, _)| *distance <= 2)
                                .min_by_key(|(distance, _)| *distance)
                                .map(|(_, n)| format!("; did you mean `{n}`?"))
                                .unwrap_or_default();
                            self.error(
                                value.span(),
                                format!(
                                    "`tier`{PLACE} must be \"default\", \"vip\" or \"svip\" (the provider's rate-limit groups), got {}{nearest}",
                                    quoted(&name.value)
                                ),
                            );
                        }
                    }
                }
                "budget" => match self.number("budget", PLACE, value) {
                    Some(budget) if budget > 0.0 => limits.budget = Some(budget),
                    Some(_) => self.error(
                        value.span(),
                        format!(
                            "`budget`{PLACE} must be a number greater than 0, got {}",
                            describe(value.get_ref())
                        ),
                    ),
                    None => {}
                },
                "burst" => {
                    if let Some(n) = self.count("burst", PLACE, value) {
                        limits.burst = n;
                    }
                }
                "max_in_flight" => {
                    if let Some(n) = self.count("max_in_flight", PLACE, value) {
                        limits.max_in_flight = n;
                    }
                }
                "submit_concurrency" => {
                    if let Some(n) = self.count("submit_concurrency", PLACE, value) {
                        limits.submit_concurrency = n;
                    }
                }
                "confirm_above" => {
                    if let Some(n) = self.integer("confirm_above", PLACE, value) {
                        match usize::try_from(n.value) {
                            Ok(n) => limits.confirm_above = n,
                            Err(_) => self.diags.error(
                                &n.loc,
                                format!(
                                    "`confirm_above`{PLACE} must be 0 (never ask) or more, got {}",
                                    n.value
                                ),
                            ),
                        }
                    }
                }
                "downloads" => {
                    if let Some(n) = self.count("downloads", PLACE, value) {
                        limits.downloads = n;
                    }
                }
                "max_attempts" => {
                    if let Some(n) = self.count("max_attempts", PLACE, value) {
                        limits.max_attempts = n;
                    }
                }
                "task_timeout" => {
                    if let Some(d) = self.duration("task_timeout", PLACE, value) {
                        limits.task_timeout = d;
                    }
                }
                "poll_queued" => {
                    if let Some(d) = self.duration("poll_queued", PLACE, value) {
                        limits.poll_queued = d;
                    }
                }
                "poll_in_progress" => {
                    if let Some(d) = self.duration("poll_in_progress", PLACE, value) {
                        limits.poll_in_progress = d;
                    }
                }
                "outage_timeout" => {
                    if let Some(d) = self.duration("outage_timeout", PLACE, value) {
                        limits.outage_timeout = d;
                    }
                }
                "download_stall" => {
                    if let Some(d) = self.duration("download_stall", PLACE, value) {
                        limits.download_stall = d;
                    }
                }
                "download_min_rate" => {
                    let bytes = match value.get_ref() {
                        DeValue::Integer(_) => self
                            .integer("download_min_rate", PLACE, value)
                            .and_then(|n| u64::try_from(n.value).ok()),
                        DeValue::String(s) => parse_size(s.trim_end_matches("/s")),
                        _ => None,
                    };
                    match bytes {
                        Some(bytes) => limits.download_min_rate = bytes,
                        None => self.error(
                            value.span(),
                            format!(
                                "`download_min_rate`{PLACE} must be bytes per second, like 16384 or \"16KiB/s\" (0: no minimum), got {}",
                                describe(value.get_ref())
                            ),
                        ),
                    }
                }
                "max_video_size" => {
                    let bytes = match value.get_ref() {
                        DeValue::Integer(_) => self
                            .integer("max_video_size", PLACE, value)
                            .and_then(|n| u64::try_from(n.value).ok()),
                        DeValue::String(s) => parse_size(s),
                        _ => {
                            self.wrong_type(
                                "max_video_size",
                                PLACE,
                                "integer bytes or a size like \"500MB\" or \"2GiB\"",
                                value,
                            );
                            continue;
                        }
                    };
                    match bytes {
                        Some(bytes) if bytes > 0 => limits.max_video_bytes = bytes,
                        _ => self.error(
                            value.span(),
                            format!(
                                "`max_video_size`{PLACE} must be a positive size like 2147483648, \"500MB\" or \"2GiB\", got {}",
                                describe(value.get_ref())
                            ),
                        ),
                    }
                }
                _ => {}
            }
        }
        // Keys set one by one win over the tier; a rate set without its burst
        // gets 10 seconds' worth, as the provider's buckets do.
        let budget = |tiered: Budget, rate: Option<f64>, burst: Option<u32>| {
            let per_second = rate.unwrap_or(tiered.per_second);
            let burst = burst.unwrap_or(if rate.is_some() {
                Budget::ten_seconds_of(per_second)
            } else {
                tiered.burst
            });
            Budget { per_second, burst }
        };
        limits.tier = tier;
        limits.submit = budget(tier.submit(), submit_rate, submit_burst);
        limits.query = budget(tier.query(), query_rate, query_burst);
        limits
    }

    /// Calls per second: a finite number greater than 0.
    fn rate(&mut self, key: &str, place: &str, value: &Val<'_>) -> Option<f64> {
        let rate = self.number(key, place, value)?;
        if rate > 0.0 {
            Some(rate)
        } else {
            self.error(
                value.span(),
                format!(
                    "`{key}`{place} must be a number greater than 0, got {}",
                    describe(value.get_ref())
                ),
            );
            None
        }
    }

    fn output(&mut self, table: &DeTable<'_>, output: &mut RawOutput) {
        const PLACE: &str = " in [output]";
        self.unknown_keys(table, &OUTPUT_KEYS, PLACE);
        if let Some(value) = table.get("dir") {
            output.dir = None;
            if let Some(dir) = self.string("dir", PLACE, value) {
                match Template::parse(&dir.value, &DIR_PLACEHOLDERS, dir.loc.clone()) {
                    Ok(template) if !dir.value.trim().is_empty() => output.dir = Some(template),
                    Ok(_) => self.diags.error(&dir.loc, format!("`dir`{PLACE} is empty")),
                    Err(e) => self.diags.error(&dir.loc, format!("`dir`{PLACE}: {e}")),
                }
            }
        }
        if let Some(value) = table.get("filename") {
            output.filename = None;
            if let Some(name) = self.string("filename", PLACE, value) {
                match Template::parse(&name.value, &FILENAME_PLACEHOLDERS, name.loc.clone()) {
                    Ok(template) => {
                        // Placeholder values cannot add `/` or `..` (ids, models, aspect
                        // ratios and the name are all checked), so the literal parts decide.
                        let sample = template.render(&TemplateValues {
                            id: "id",
                            model: "model",
                            name: "name",
                            aspect_ratio: "16:9",
                            duration: 8,
                        });
                        match filename_problem(&sample) {
                            Some(problem) => self
                                .diags
                                .error(&name.loc, format!("`filename`{PLACE}: {problem}")),
                            None => output.filename = Some(template),
                        }
                    }
                    Err(e) => self
                        .diags
                        .error(&name.loc, format!("`filename`{PLACE}: {e}")),
                }
            }
        }
        for key in ["state", "report"] {
            if let Some(value) = table.get(key)
                && let Some(path) = self.string(key, PLACE, value)
            {
                if path.value.trim().is_empty() {
                    self.diags
                        .error(&path.loc, format!("`{key}`{PLACE} is empty"));
                } else if key == "state" {
                    output.state = Some(path);
                } else {
                    output.report = Some(path);
                }
            }
        }
    }

    /// The job keys of `[defaults]` or a `[[job]]`.
    fn job_fields(&mut self, table: &DeTable<'_>, place: &str, is_defaults: bool) -> JobFields {
        let mut fields = JobFields::default();
        for (key, value) in table {
            let name: &str = key.get_ref();
            match name {
                "id" if is_defaults => self.error(
                    key.span(),
                    "`id` cannot be set in [defaults]: every job needs its own (or none, for a derived one)",
                ),
                "id" => fields.id = self.string("id", place, value),
                "prompt" => {
                    fields.prompt = self.string("prompt", place, value);
                    if let Some(prompt) = &fields.prompt
                        && PromptTemplate::is_template(&prompt.value)
                    {
                        match PromptTemplate::parse(&prompt.value) {
                            Ok(template) => fields.prompt_template = Some(template),
                            Err(e) => {
                                self.diags.error(&prompt.loc, format!("`prompt`{place}: {e}"));
                                fields.prompt = None;
                            }
                        }
                    }
                }
                "vars" => {
                    if let Some(vars) = self.table("vars", place, value) {
                        for (key, value) in vars {
                            let name = key.get_ref().trim();
                            let text = match value.get_ref() {
                                DeValue::String(s) => Some(s.to_string()),
                                DeValue::Integer(_) => self
                                    .integer(&format!("vars.{name}"), place, value)
                                    .map(|n| n.value.to_string()),
                                DeValue::Float(f) => Some(f.as_str().to_owned()),
                                DeValue::Boolean(b) => Some(b.to_string()),
                                _ => {
                                    self.wrong_type(
                                        &format!("vars.{name}"),
                                        place,
                                        "a string (or a number or boolean)",
                                        value,
                                    );
                                    None
                                }
                            };
                            if let Some(text) = text {
                                let loc = self.loc(key.span());
                                fields
                                    .vars
                                    .insert(name.to_owned(), Located::new(text, loc));
                            }
                        }
                    }
                }
                "model" => {
                    if let Some(model) = self.string("model", place, value) {
                        match self.catalogue.resolve(&model.value) {
                            Some(m) => {
                                if m.as_str() != model.value {
                                    fields.model_alias = Some(model.value.clone());
                                }
                                fields.model = Some(Located::new(m, model.loc));
                            }
                            None => {
                                if !self.broken_models.contains(&model.value) {
                                    let message = self.catalogue.unknown_message(&model.value);
                                    self.diags.error(&model.loc, message);
                                }
                                fields.invalid.insert("model");
                            }
                        }
                    }
                }
                "aspect_ratio" => fields.aspect_ratio = self.string("aspect_ratio", place, value),
                "duration" => fields.duration = self.integer("duration", place, value),
                "resolution" => fields.resolution = self.string("resolution", place, value),
                "image_urls" => fields.image_urls = self.image_urls(place, value),
                "metadata" => {
                    if let Some(meta) = self.table("metadata", place, value) {
                        for (key, value) in meta {
                            let loc = self.loc(key.span());
                            if let Some(json) = self.json(&format!("metadata.{}", key.get_ref()), place, value) {
                                fields
                                    .metadata
                                    .insert(key.get_ref().to_string(), Located::new(json, loc));
                            }
                        }
                    }
                }
                _ if self.catalogue.all_top_level_fields().contains(&name) => {
                    if let Some(json) = self.json(name, place, value) {
                        let loc = self.loc(key.span());
                        fields.extra.insert(name.to_owned(), Located::new(json, loc));
                    }
                }
                _ => {
                    let mut known: Vec<&str> = JOB_KEYS.to_vec();
                    let catalogue = Arc::clone(&self.catalogue);
                    known.extend(catalogue.all_top_level_fields());
                    let message = match super::diag::suggest(name, &known) {
                        Some(_) => unknown_key_message("key", name, place, &known),
                        None => format!(
                            "{} (or a request field of a model: `runner models NAME` lists them)",
                            unknown_key_message("key", name, place, &JOB_KEYS)
                        ),
                    };
                    self.error(key.span(), message);
                    // A typo of a known key is not also reported as that key missing.
                    if let Some(meant) = super::diag::suggest(name, &JOB_KEYS)
                        && let Some(&meant) = JOB_KEYS.iter().find(|k| **k == meant)
                    {
                        fields.invalid.insert(meant);
                    }
                    continue;
                }
            }
            let read = match name {
                "id" => fields.id.is_some() || is_defaults,
                "prompt" => fields.prompt.is_some(),
                "model" => fields.model.is_some(),
                "aspect_ratio" => fields.aspect_ratio.is_some(),
                "duration" => fields.duration.is_some(),
                "resolution" => fields.resolution.is_some(),
                "image_urls" => fields.image_urls.is_some(),
                _ => true,
            };
            if !read && let Some(&key) = JOB_KEYS.iter().find(|k| **k == name) {
                fields.invalid.insert(key);
            }
        }
        fields
    }

    fn image_urls(
        &mut self,
        place: &str,
        value: &Val<'_>,
    ) -> Option<Located<Vec<Located<String>>>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type("image_urls", place, "an array of strings", value);
            return None;
        };
        let mut urls = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            match self.string("image_urls", place, item) {
                Some(url) => urls.push(url),
                None => ok = false,
            }
        }
        ok.then(|| Located::new(urls, self.loc(value.span())))
    }

    /// A metadata value as JSON (datetimes become strings).
    fn json(&mut self, key: &str, place: &str, value: &Val<'_>) -> Option<Value> {
        Some(match value.get_ref() {
            DeValue::String(s) => Value::from(s.to_string()),
            DeValue::Integer(_) => Value::from(self.integer(key, place, value)?.value),
            DeValue::Float(f) => match f
                .as_str()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                Some(n) => Value::Number(n),
                None => {
                    self.error(
                        value.span(),
                        format!("`{key}`{place} must be a finite number"),
                    );
                    return None;
                }
            },
            DeValue::Boolean(b) => Value::from(*b),
            DeValue::Datetime(d) => Value::from(d.to_string()),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    out.push(self.json(key, place, item)?);
                }
                Value::Array(out)
            }
            DeValue::Table(table) => {
                let mut out = serde_json::Map::new();
                for (k, v) in table {
                    out.insert(k.get_ref().to_string(), self.json(key, place, v)?);
                }
                Value::Object(out)
            }
        })
    }

    fn matrix(&mut self, table: &DeTable<'_>) -> Vec<MatrixDim> {
        const PLACE: &str = " in [matrix]";
        self.unknown_keys(table, &MATRIX_KEYS, PLACE);
        let mut dims = Vec::new();
        for key in MATRIX_KEYS {
            let Some(value) = table.get(key) else {
                continue;
            };
            let DeValue::Array(items) = value.get_ref() else {
                self.wrong_type(key, PLACE, "a non-empty array", value);
                continue;
            };
            if items.is_empty() {
                self.error(
                    value.span(),
                    format!("`{key}`{PLACE} must list at least one value"),
                );
                continue;
            }
            let mut values = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            for item in items.iter() {
                let mut layer = JobFields::default();
                let shown = match key {
                    "duration" => self.integer(key, PLACE, item).map(|d| {
                        let shown = d.value.to_string();
                        layer.duration = Some(d);
                        shown
                    }),
                    _ => self.string(key, PLACE, item).and_then(|s| {
                        let shown = s.value.clone();
                        match key {
                            "model" => match self.catalogue.resolve(&s.value) {
                                Some(m) => {
                                    if m.as_str() != s.value {
                                        layer.model_alias = Some(s.value.clone());
                                    }
                                    layer.model = Some(Located::new(m, s.loc));
                                }
                                None => {
                                    let message = self.catalogue.unknown_message(&s.value);
                                    self.diags.error(&s.loc, message);
                                    return None;
                                }
                            },
                            "aspect_ratio" => layer.aspect_ratio = Some(s),
                            _ => layer.resolution = Some(s),
                        }
                        Some(shown)
                    }),
                };
                let Some(shown) = shown else {
                    continue;
                };
                if seen.contains(&shown) {
                    self.error(
                        item.span(),
                        format!("`{key}`{PLACE} lists {} twice", quoted(&shown)),
                    );
                    continue;
                }
                seen.push(shown);
                values.push(layer);
            }
            if !values.is_empty() {
                dims.push(MatrixDim { key, values });
            }
        }
        dims
    }
}

/// Why `name` cannot be a campaign name (it names the output folder), if it cannot.
pub fn name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        Some("must not be empty".into())
    } else if name == "." || name == ".." {
        Some(format!("must not be {name:?}"))
    } else if name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        Some(format!(
            "must not contain `/`, `\\` or control characters (it names the output folder), got {}",
            quoted(name)
        ))
    } else {
        None
    }
}

/// "500MB", "2GiB", "1.5 GB", "1048576" → bytes, by bytesize: decimal units are
/// powers of 1000, binary (`KiB`, `MiB`, …) powers of 1024, in any case.
pub fn parse_size(text: &str) -> Option<u64> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .ok()
        .map(|size| size.0)
}

/// A CSV job list's rows (for tests): see [`for_each_csv_row`].
#[cfg(test)]
pub fn parse_csv_str(text: &str, path: &Path, diags: &mut Diags) -> Vec<RawJob> {
    let mut jobs = Vec::new();
    for_each_csv_row(text, path, &[], Catalogue::builtin(), diags, |row| {
        jobs.push(row)
    });
    jobs
}

/// Parses a CSV job list: a header row, then one job per record, each handed
/// to `each` as soon as it is read (a 100k-row CSV is never held as rows,
/// 600 bytes each). Never fails as a whole; every problem (unknown column,
/// bad cell) is reported with its line. A column that is not a job key is
/// read into the row's `vars` when `placeholders` names it (the placeholders
/// of the template the rows inherit), and is an unknown column otherwise.
pub fn for_each_csv_row(
    text: &str,
    path: &Path,
    placeholders: &[&str],
    catalogue: &Catalogue,
    diags: &mut Diags,
    mut each: impl FnMut(RawJob),
) {
    let extra_fields = catalogue.all_top_level_fields();
    let file: Arc<Path> = Arc::from(path);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = CsvLines {
        text,
        index: LineIndex::new(text),
        file: Arc::clone(&file),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();

    let header = match records.next() {
        Some(Ok(header)) => header,
        Some(Err(e)) => {
            diags.error(
                &lines.at(e.position()),
                format!("cannot read the CSV header: {e}"),
            );
            return;
        }
        None => {
            diags.error(
                &Loc::file(&file),
                "empty CSV: a header row naming the columns (at least `prompt`) is required",
            );
            return;
        }
    };
    let header_loc = lines.at(header.position());

    let mut columns: Vec<Option<Column>> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let known_columns: Vec<&str> = JOB_KEYS
        .iter()
        .copied()
        .filter(|k| !matches!(*k, "metadata" | "vars"))
        .collect();
    for raw in header.iter() {
        let name = raw.trim();
        let column = if let Some(key) = name.strip_prefix("metadata.") {
            if key.is_empty() {
                diags.error(
                    &header_loc,
                    "column `metadata.` needs a key, like `metadata.resolution`",
                );
                None
            } else {
                Some(Column::Metadata(key.to_owned()))
            }
        } else if let Some(&key) = known_columns.iter().find(|k| **k == name) {
            Some(Column::Key(key))
        } else if placeholders.contains(&name) {
            Some(Column::Var(name.to_owned()))
        } else if extra_fields.contains(&name) {
            Some(Column::Extra(name.to_owned()))
        } else {
            let mut known = known_columns.clone();
            known.push("metadata.KEY");
            known.extend(placeholders.iter().copied());
            let mut all = known.clone();
            all.extend(extra_fields.iter().copied());
            let mut message = match super::diag::suggest(name, &all) {
                Some(_) => unknown_key_message("column", name, "", &all),
                None => unknown_key_message("column", name, "", &known),
            };
            if name == "metadata" {
                message = "column `metadata` needs a key: name it `metadata.KEY`, like `metadata.resolution`".into();
            } else if !placeholders.is_empty() && !message.contains("did you mean") {
                message.push_str(
                    " (a column that is not a job key must be a placeholder of the prompt template in [defaults])",
                );
            }
            diags.error(&header_loc, message);
            None
        };
        if seen.iter().any(|s| s == name) {
            diags.error(&header_loc, format!("column `{name}` appears twice"));
        }
        seen.push(name.to_owned());
        columns.push(column);
    }
    if !seen.iter().any(|s| s == "prompt") {
        diags.error(&header_loc, "missing the required column `prompt`");
        return;
    }
    let header = Arc::new(CsvHeader {
        loc: header_loc,
        columns: seen,
    });

    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let stop = matches!(e.kind(), csv::ErrorKind::Io(_));
                diags.error(
                    &lines.at(e.position()),
                    format!("cannot read this CSV record: {e}"),
                );
                if stop {
                    break;
                }
                continue;
            }
        };
        let loc = lines.at(record.position());
        if record.len() != columns.len() {
            diags.error(
                &loc,
                format!(
                    "this row has {} fields but the header has {} (quote cells that contain commas)",
                    record.len(),
                    columns.len()
                ),
            );
            continue;
        }
        let mut fields = JobFields::default();
        for (column, cell) in columns.iter().zip(record.iter()) {
            let Some(column) = column else {
                continue;
            };
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            let at = |v: String| Some(Located::new(v, loc.clone()));
            match column {
                Column::Key("id") => fields.id = at(cell.to_owned()),
                Column::Key("prompt") => fields.prompt = at(cell.to_owned()),
                Column::Key("model") => match catalogue.resolve(cell) {
                    Some(m) => {
                        if m.as_str() != cell {
                            fields.model_alias = Some(cell.to_owned());
                        }
                        fields.model = Some(Located::new(m, loc.clone()));
                    }
                    None => {
                        diags.error(&loc, catalogue.unknown_message(cell));
                        fields.invalid.insert("model");
                    }
                },
                Column::Key("aspect_ratio") => fields.aspect_ratio = at(cell.to_owned()),
                Column::Key("duration") => match cell.parse::<i64>() {
                    Ok(d) => fields.duration = Some(Located::new(d, loc.clone())),
                    Err(_) => {
                        diags.error(
                            &loc,
                            format!("`duration` must be an integer, got {}", quoted(cell)),
                        );
                        fields.invalid.insert("duration");
                    }
                },
                Column::Key("resolution") => fields.resolution = at(cell.to_owned()),
                Column::Key("image_urls") => {
                    let urls = cell
                        .split('|')
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                        .map(|u| Located::new(u.to_owned(), loc.clone()))
                        .collect();
                    fields.image_urls = Some(Located::new(urls, loc.clone()));
                }
                Column::Key(_) => {}
                Column::Var(name) => {
                    fields
                        .vars
                        .insert(name.clone(), Located::new(cell.to_owned(), loc.clone()));
                }
                Column::Metadata(key) => {
                    let value = match catalogue.kind_of(&format!("metadata.{key}")) {
                        Some(kind) => kind.read_cell(cell),
                        None => crate::models::Kind::read_scalar(cell),
                    };
                    fields
                        .metadata
                        .insert(key.clone(), Located::new(value, loc.clone()));
                }
                Column::Extra(key) => {
                    let value = match catalogue.kind_of(key) {
                        Some(kind) => kind.read_cell(cell),
                        None => crate::models::Kind::read_scalar(cell),
                    };
                    fields
                        .extra
                        .insert(key.clone(), Located::new(value, loc.clone()));
                }
            }
        }
        each(RawJob {
            origin: loc,
            fields,
            csv: Some(Arc::clone(&header)),
        });
    }
}

#[derive(Debug)]
enum Column {
    Key(&'static str),
    /// Not a job key, named by the prompt template: a placeholder's value.
    Var(String),
    Metadata(String),
    /// A request field some catalogue model takes (`mode`, `audio`, ...).
    Extra(String),
}

/// Where CSV records start. The csv crate's own line count skips blank lines, so
/// the line is computed from the record's byte offset instead.
struct CsvLines<'t> {
    text: &'t str,
    index: LineIndex,
    file: Arc<Path>,
}

impl CsvLines<'_> {
    fn at(&self, position: Option<&csv::Position>) -> Loc {
        let Some(byte) = position.and_then(|p| usize::try_from(p.byte()).ok()) else {
            return Loc::file(&self.file);
        };
        // The offset is where the previous record ended: skip the line breaks between.
        let skipped = self.text.as_bytes().get(byte..).map_or(0, |rest| {
            rest.iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count()
        });
        let (line, _) = self.index.position(self.text, byte + skipped);
        Loc::line(&self.file, line)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500MB"), Some(500_000_000));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1.5 gb"), Some(1_500_000_000));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5 parsecs"), None);
        assert_eq!(parse_size("1e400"), None);
    }

    #[test]
    fn templates_render() {
        let loc = Loc::file(&Arc::from(Path::new("c.toml")));
        let t = Template::parse(
            "{model}/{id}-{aspect_ratio}-{duration}s.mp4",
            &FILENAME_PLACEHOLDERS,
            loc.clone(),
        );
        let values = TemplateValues {
            id: "a",
            model: "veo3.1-fast",
            name: "n",
            aspect_ratio: "9:16",
            duration: 8,
        };
        assert_eq!(
            t.map(|t| t.render(&values)),
            Ok("veo3.1-fast/a-9x16-8s.mp4".to_owned())
        );
        let err = Template::parse("{nmae}.mp4", &FILENAME_PLACEHOLDERS, loc)
            .err()
            .unwrap_or_default();
        assert!(err.contains("did you mean `{name}`?"), "{err}");
    }

    #[test]
    fn csv_records_keep_their_first_line() {
        let mut diags = Diags::new();
        let jobs = parse_csv_str(
            "prompt,id\n\"one\ntwo\nthree\",a\n\nnext,b\n",
            Path::new("p.csv"),
            &mut diags,
        );
        assert!(diags.is_empty(), "{:?}", diags.as_slice());
        let lines: Vec<Option<usize>> = jobs.iter().map(|j| j.origin.line).collect();
        assert_eq!(lines, [Some(2), Some(6)]);

        let jobs = parse_csv_str(
            "prompt\r\n\r\na\r\nb\r\n\r\n\r\nc\r\n",
            Path::new("p.csv"),
            &mut diags,
        );
        let lines: Vec<Option<usize>> = jobs.iter().map(|j| j.origin.line).collect();
        assert_eq!(lines, [Some(3), Some(4), Some(7)]);
    }

    /// Strings that look like manifests: TOML punctuation, known keys and values.
    fn tomlish() -> impl Strategy<Value = String> {
        let atoms = prop::sample::select(vec![
            "[",
            "]",
            "[[",
            "]]",
            "=",
            "\"",
            "'",
            "\n",
            " ",
            ",",
            "{",
            "}",
            ".",
            "#",
            "-",
            "1",
            "0x1f",
            "1e999",
            "-9223372036854775809",
            "nan",
            "true",
            "1979-05-27T07:32:00Z",
            "\"\"\"",
            "\\u00e9",
            "job",
            "source",
            "defaults",
            "matrix",
            "limits",
            "output",
            "api",
            "name",
            "id",
            "prompt",
            "model",
            "duration",
            "aspect_ratio",
            "resolution",
            "image_urls",
            "metadata",
            "csv",
            "\"veo3.1-fast\"",
            "\"gemini_omni_flash\"",
            "\"16:9\"",
            "\"{id}\"",
            "\"{x\"",
            "\"../a\"",
            "\"data:x\"",
            "\"ftp://x\"",
            "\"https://e.com/a.png\"",
            "\"30m\"",
            "\"2GiB\"",
            "é",
            "\u{0}",
        ]);
        prop::collection::vec(atoms, 0..60).prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn toml_parsing_never_panics(text in any::<String>()) {
            let mut diags = Diags::new();
            let _ = parse_toml_str(&text, Path::new("fuzz.toml"), &mut diags);
        }

        #[test]
        fn tomlish_manifests_never_panic(text in tomlish()) {
            let mut diags = Diags::new();
            let _ = parse_toml_str(&text, Path::new("fuzz.toml"), &mut diags);
            // The whole pipeline, too (relative paths point into a folder that does not exist).
            let _ = crate::manifest::load_str(&text, Path::new("/nonexistent-runner-fuzz/fuzz.toml"));
        }

        #[test]
        fn csv_parsing_never_panics(text in any::<String>()) {
            let mut diags = Diags::new();
            let _ = parse_csv_str(&text, Path::new("fuzz.csv"), &mut diags);
            let _ = crate::manifest::load_str(&text, Path::new("/nonexistent-runner-fuzz/fuzz.csv"));
        }

        #[test]
        fn csvish_job_lists_never_panic(
            header in prop::sample::subsequence(vec!["id", "prompt", "model", "duration", "aspect_ratio", "resolution", "image_urls", "metadata.enable_gif", "metadata.x", "metadata."], 0..10),
            cells in prop::collection::vec(prop::sample::select(vec!["", "a", "\"q,\nq\"", "veo3.1-fast", "gemini_omni_flash", "8", "-1", "99999999999999999999", "16:9", "true", "a|b", "data:x", "../x", "é"]), 0..40),
        ) {
            let mut text = header.join(",");
            text.push('\n');
            for (i, cell) in cells.iter().enumerate() {
                text.push_str(cell);
                text.push(if i % 4 == 3 { '\n' } else { ',' });
            }
            let _ = crate::manifest::load_str(&text, Path::new("/nonexistent-runner-fuzz/fuzz.csv"));
        }
    }
}
