//! Defaults × matrix × rows → concrete, validated jobs with stable ids and file names.
//!
//! Layering, lowest first: `[defaults]`, one combination of `[matrix]`, the job's
//! own entry (`[[job]]` or CSV row). `metadata` merges key by key.
//!
//! Matrix: every job is expanded into every combination of the `[matrix]` values.
//! The varied values are appended to the job's id in the fixed order `model`,
//! `aspect_ratio`, `duration`, `resolution` (whatever the order in the file, so that
//! reordering `[matrix]` never renames jobs), sanitised to id characters: `16:9` →
//! `16x9`, duration `10` → `10s`. A job that sets a key itself pins it: its value
//! wins, that key is not expanded for that job and adds no suffix.
//!
//! Ids: a job without an `id` gets `<slug of its prompt>-<8 hex>`, the hex from a
//! hash of the fields of its own entry as written (not the defaults or the matrix),
//! so changing defaults, reordering rows or appending rows never renames a job.
//! A prompt template counts as the prompt it fills in for the job (two rows that
//! fill one template differently are two jobs), whether it is the job's own or the
//! one from `[defaults]`; so editing a template renames the jobs that use it, as it
//! changes what they generate.
//!
//! Prompt templates are filled from, first to last: the job's own `vars` (for a CSV
//! row, its extra columns), the job's own `id`, `model`, `aspect_ratio`, `duration`,
//! `resolution` and `metadata.KEY` as written in its entry, and `[defaults]` `vars`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::diag::{Diags, Loc, Located, quoted, suggest};
use super::parse::{
    self, JobFields, MatrixDim, RawJob, RawManifest, Template, TemplateValues, filename_problem,
};
use super::prompt::PromptTemplate;
use super::{ImageRef, Job, Origin, Output, RequestParts, request_map};
use crate::models::{self, Catalogue, Model};
use std::sync::Arc;

/// The most jobs one manifest may expand to (a guard against a runaway matrix).
pub const MAX_JOBS: usize = 100_000;

/// The longest id accepted (ids name files).
pub const MAX_ID_LEN: usize = 128;
const SLUG_MAX: usize = 32;

/// Why `id` is not a valid job id, if it is not.
pub fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        Some("job id must not be empty".into())
    } else if id.starts_with('.') {
        Some(format!("job id {} must not start with `.`", quoted(id)))
    } else if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(format!(
            "job id {} may only contain letters, digits, `-`, `_` and `.` (found {bad:?})",
            quoted(id)
        ))
    } else if id.len() > MAX_ID_LEN {
        Some(format!(
            "job id {} is {} characters long, at most {MAX_ID_LEN} are allowed",
            quoted(id),
            id.len()
        ))
    } else {
        None
    }
}

/// Lowercase ASCII words of the prompt joined by `-`, at most 32 characters; `job` if none.
pub fn slug(prompt: &str) -> String {
    let mut out = String::new();
    for word in prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_ascii_lowercase();
        if out.is_empty() {
            out = word.chars().take(SLUG_MAX).collect();
        } else if out.len() + 1 + word.len() <= SLUG_MAX {
            out.push('-');
            out.push_str(&word);
        } else {
            break;
        }
    }
    if out.is_empty() { "job".into() } else { out }
}

/// The id of a job that has none: a slug of its prompt and a hash of its own fields.
/// `filled` is the job's prompt with its template filled in, when it has a template
/// (its own or the inherited one); it stands for the prompt as written.
pub fn derived_id(own: &JobFields, filled: Option<&str>) -> String {
    let mut canonical: BTreeMap<&str, Value> = BTreeMap::new();
    let prompt = match filled {
        Some(filled) => filled.trim(),
        None => own
            .prompt
            .as_ref()
            .map(|p| p.value.trim())
            .unwrap_or_default(),
    };
    canonical.insert("prompt", Value::from(prompt));
    if let Some(model) = &own.model {
        let written = own.model_alias.as_deref().unwrap_or(model.value.as_str());
        canonical.insert("model", Value::from(written));
    }
    if let Some(aspect) = &own.aspect_ratio {
        canonical.insert("aspect_ratio", Value::from(aspect.value.as_str()));
    }
    if let Some(duration) = &own.duration {
        canonical.insert("duration", Value::from(duration.value));
    }
    if let Some(resolution) = &own.resolution {
        canonical.insert("resolution", Value::from(resolution.value.as_str()));
    }
    if let Some(urls) = &own.image_urls {
        let urls: Vec<Value> = urls
            .value
            .iter()
            .map(|u| Value::from(u.value.as_str()))
            .collect();
        canonical.insert("image_urls", Value::Array(urls));
    }
    if !own.metadata.is_empty() {
        let metadata: Map<String, Value> = own
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        canonical.insert("metadata", Value::Object(metadata));
    }
    for (key, value) in &own.extra {
        // Beside the fixed keys, so a field named like one cannot collide with it.
        canonical.insert(key.as_str(), value.value.clone());
    }
    let text = serde_json::to_string(&canonical).unwrap_or_default();
    let hash = crate::util::sha256_hex(text.as_bytes());
    format!("{}-{}", slug(prompt), hash.get(..8).unwrap_or(&hash))
}

/// The id suffix a matrix layer adds: its one value, sanitised to id characters.
fn suffix(layer: &JobFields) -> String {
    let raw = if let Some(model) = &layer.model {
        // As written: an alias keeps the ids it always gave.
        layer
            .model_alias
            .clone()
            .unwrap_or_else(|| model.value.as_str().to_owned())
    } else if let Some(aspect) = &layer.aspect_ratio {
        aspect.value.clone()
    } else if let Some(duration) = &layer.duration {
        format!("{}s", duration.value)
    } else if let Some(resolution) = &layer.resolution {
        resolution.value.clone()
    } else {
        String::new()
    };
    raw.chars()
        .map(|c| match c {
            ':' => 'x',
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => c,
            _ => '-',
        })
        .collect()
}

/// Where paths are resolved and what templates are filled with.
#[derive(Debug, Clone, Copy)]
struct Context<'a> {
    /// The campaign name (`{name}`).
    pub name: &'a str,
    /// The manifest's folder.
    pub base_dir: &'a Path,
    /// `output.filename`; `None` when it was invalid (already reported).
    pub filename: Option<&'a Template>,
    /// What each model accepts (the manifest's `[models]` applied).
    pub catalogue: &'a Catalogue,
}

/// Turns `[[job]]` entries and CSV rows, fed one at a time in manifest order,
/// into concrete jobs, and resolves `[output]`. Rows are expanded in batches,
/// on every core, and then dropped, so a 100k-row CSV never holds all its rows
/// and all its jobs at once. Problems go to the `Diags` given to `finish`;
/// the jobs returned are the valid ones.
#[derive(Debug)]
pub struct Expander<'a> {
    raw: &'a RawManifest,
    ctx: Context<'a>,
    /// Jobs per row: the product of the `[matrix]` sizes (`None` past `usize`).
    per_job: Option<usize>,
    batch: Vec<RawJob>,
    jobs: Vec<Job>,
    /// Problems found expanding, in row order (joined after the parser's own).
    diags: Diags,
    rows: usize,
    first_row: Option<Loc>,
}

impl<'a> Expander<'a> {
    /// Rows expanded together: both cores busy, a few megabytes of rows held.
    const BATCH: usize = 16 * 1024;

    pub fn new(raw: &'a RawManifest, name: &'a str, base_dir: &'a Path) -> Expander<'a> {
        Expander {
            raw,
            ctx: Context {
                name,
                base_dir,
                filename: raw.output.filename.as_ref(),
                catalogue: &raw.catalogue,
            },
            per_job: raw
                .matrix
                .iter()
                .try_fold(1usize, |n, dim| n.checked_mul(dim.values.len())),
            batch: Vec::new(),
            jobs: Vec::new(),
            diags: Diags::new(),
            rows: 0,
            first_row: None,
        }
    }

    /// Every row of the CSV `text` (see [`parse::for_each_csv_row`]).
    pub fn push_csv(&mut self, text: &str, path: &Path, placeholders: &[&str], diags: &mut Diags) {
        // At most one row per line: the job list is sized once, not copied as it grows.
        self.reserve(text.bytes().filter(|&b| b == b'\n').count() + 1);
        let catalogue = Arc::clone(&self.raw.catalogue);
        parse::for_each_csv_row(text, path, placeholders, &catalogue, diags, |row| {
            self.push(row)
        });
    }

    /// Room for `rows` more rows' jobs.
    fn reserve(&mut self, rows: usize) {
        let jobs = self.per_job.and_then(|n| n.checked_mul(rows)).unwrap_or(0);
        self.jobs
            .reserve(jobs.min(MAX_JOBS.saturating_sub(self.jobs.len())));
    }

    /// The next row, in manifest order.
    pub fn push(&mut self, row: RawJob) {
        if self.first_row.is_none() {
            self.first_row = Some(row.origin.clone());
        }
        self.rows += 1;
        if self.too_many() {
            // Reported once, in `finish`; nothing more is expanded.
            self.batch.clear();
            return;
        }
        self.batch.push(row);
        if self.batch.len() >= Self::BATCH {
            self.flush();
        }
    }

    fn too_many(&self) -> bool {
        self.per_job
            .and_then(|n| n.checked_mul(self.rows))
            .is_none_or(|total| total > MAX_JOBS)
    }

    /// Expands the rows held, on every core; the parts and their problems
    /// are joined back in row order.
    fn flush(&mut self) {
        let (raw, ctx, per_job) = (self.raw, self.ctx, self.per_job.unwrap_or(1));
        let parts = crate::util::par_chunks(&self.batch, |rows| {
            let mut diags = Diags::new();
            let mut part = Vec::with_capacity(rows.len() * per_job);
            for job in rows {
                expand_one(raw, job, ctx, &mut diags, &mut part);
            }
            (part, diags)
        });
        for (mut part, diags) in parts {
            self.jobs.append(&mut part);
            self.diags.append(diags);
        }
        self.batch.clear();
    }

    /// The resolved `[output]`, the valid jobs and the number of rows read;
    /// problems are added to `diags`.
    pub fn finish(mut self, diags: &mut Diags) -> (Output, Vec<Job>, usize) {
        let output = resolve_output(self.raw, self.ctx);
        if self.too_many() {
            let loc = self.first_row.unwrap_or_else(|| Loc::file(&self.raw.file));
            diags.error(
                &loc,
                format!(
                    "{} jobs × the [matrix] combinations is more than {MAX_JOBS} jobs",
                    self.rows
                ),
            );
            return (output, Vec::new(), self.rows);
        }
        self.flush();
        check_unique(&self.jobs, &mut self.diags);
        diags.append(self.diags);
        (output, self.jobs, self.rows)
    }
}

fn resolve_output(raw: &RawManifest, ctx: Context<'_>) -> Output {
    let dir = raw
        .output
        .dir
        .as_ref()
        .map(|t| {
            t.render(&TemplateValues {
                id: "",
                model: "",
                name: ctx.name,
                aspect_ratio: "",
                duration: 0,
            })
        })
        .unwrap_or_else(|| format!("out/{}", ctx.name));
    let resolve =
        |p: &Option<Located<String>>| p.as_ref().map(|p| ctx.base_dir.join(p.value.trim()));
    Output {
        dir: ctx.base_dir.join(dir),
        state: resolve(&raw.output.state),
        report: resolve(&raw.output.report),
    }
}

fn expand_one(
    raw: &RawManifest,
    job: &RawJob,
    ctx: Context<'_>,
    diags: &mut Diags,
    out: &mut Vec<Job>,
) {
    let own = &job.fields;
    let base = raw.defaults.merged(own);

    // `None` when the template could not be filled (reported).
    let filled: Option<Option<Located<String>>> = match (&base.prompt, &base.prompt_template) {
        // A prompt written wrong (reported) must not fall back to the inherited one.
        _ if base.invalid.contains("prompt") => None,
        (Some(written), Some(template)) => fill_prompt(template, &written.loc, raw, job, diags)
            .map(|text| Some(Located::new(text, written.loc.clone()))),
        (written, _) => Some(written.clone()),
    };
    let template_used = base.prompt_template.is_some();

    let base_id = match &own.id {
        Some(id) => {
            if let Some(problem) = id_problem(&id.value) {
                diags.error(&id.loc, problem);
                None
            } else {
                Some(id.value.clone())
            }
        }
        None if own.invalid.contains("id") => None,
        None => match &filled {
            None => None,
            Some(prompt) if template_used => Some(derived_id(
                own,
                Some(prompt.as_ref().map_or("", |p| p.value.as_str())),
            )),
            Some(_) => Some(derived_id(own, None)),
        },
    };
    // Messages about a job with a bad id still need a name for it.
    let label = base_id
        .clone()
        .or_else(|| own.id.as_ref().map(|id| id.value.clone()))
        .unwrap_or_else(|| "?".into());

    let prompt = match &filled {
        None => None,
        Some(Some(p)) if !p.value.trim().is_empty() => Some(p.value.trim().to_owned()),
        Some(Some(p)) => {
            let what = if template_used {
                "`prompt` is empty once its template is filled"
            } else {
                "`prompt` is empty"
            };
            diags.job_error(&p.loc, &label, what);
            None
        }
        Some(None) if base.invalid.contains("prompt") => None,
        Some(None) => {
            diags.job_error(&job.origin, &label, "no `prompt`: every job needs one");
            None
        }
    };

    let images = base
        .image_urls
        .as_ref()
        .map(|urls| {
            urls.value
                .iter()
                .filter_map(|url| image_ref(url, ctx.base_dir, &label, diags))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let images_ok = base
        .image_urls
        .as_ref()
        .is_none_or(|urls| urls.value.len() == images.len());

    let dims: Vec<&MatrixDim> = raw.matrix.iter().filter(|d| !own.sets(d.key)).collect();
    let mut pick = vec![0usize; dims.len()];
    loop {
        let mut layered = raw.defaults.clone();
        let mut id = base_id.clone();
        for (dim, &i) in dims.iter().zip(&pick) {
            if let Some(layer) = dim.values.get(i) {
                layered = layered.merged(layer);
                if let Some(id) = &mut id {
                    id.push('-');
                    id.push_str(&suffix(layer));
                }
            }
        }
        let layered = layered.merged(own);
        let label = id.clone().unwrap_or_else(|| label.clone());
        let finished = finish(
            &layered,
            id.as_deref(),
            &label,
            job,
            prompt.as_deref(),
            &images,
            ctx,
            diags,
        );
        if let (Some(job), true) = (finished, images_ok) {
            out.push(job);
        }
        // Next combination, last dimension fastest.
        let mut advanced = false;
        for d in (0..dims.len()).rev() {
            let (Some(slot), Some(dim)) = (pick.get_mut(d), dims.get(d)) else {
                break;
            };
            *slot += 1;
            if *slot < dim.values.len() {
                advanced = true;
                break;
            }
            *slot = 0;
        }
        if !advanced {
            break;
        }
    }
}

/// `template` filled for `job` (see the module docs for where values come from). Every
/// placeholder without a value is reported, with the names that were available.
fn fill_prompt(
    template: &PromptTemplate,
    template_loc: &Loc,
    raw: &RawManifest,
    job: &RawJob,
    diags: &mut Diags,
) -> Option<String> {
    let own = &job.fields;
    let value = |name: &str| -> Option<String> {
        if let Some(v) = own.vars.get(name) {
            return Some(v.value.clone());
        }
        let field = match name {
            "id" => own.id.as_ref().map(|v| v.value.clone()),
            "model" => own.model.as_ref().map(|v| v.value.as_str().to_owned()),
            "aspect_ratio" => own.aspect_ratio.as_ref().map(|v| v.value.clone()),
            "duration" => own.duration.as_ref().map(|v| v.value.to_string()),
            "resolution" => own.resolution.as_ref().map(|v| v.value.clone()),
            _ => name
                .strip_prefix("metadata.")
                .and_then(|key| own.metadata.get(key))
                .map(|v| match &v.value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
        };
        field.or_else(|| raw.defaults.vars.get(name).map(|v| v.value.clone()))
    };
    let missing = match template.fill(value) {
        Ok(text) => return Some(text),
        Err(missing) => missing,
    };
    let label = own.id.as_ref().map(|id| id.value.as_str());
    let report = |diags: &mut Diags, loc: &Loc, message: String| match label {
        Some(label) => diags.job_error(loc, label, message),
        None => diags.error(loc, message),
    };
    let defaults_vars = raw.defaults.vars.keys().map(String::as_str);
    match &job.csv {
        Some(header) => {
            let mut available: Vec<&str> = header
                .columns
                .iter()
                .map(String::as_str)
                .filter(|c| !matches!(*c, "prompt" | "image_urls"))
                .chain(defaults_vars)
                .collect();
            available.sort_unstable();
            available.dedup();
            for name in missing {
                if header.columns.contains(&name) {
                    report(
                        diags,
                        &job.origin,
                        format!(
                            "`{{{name}}}` in the prompt template (at {template_loc}) has no value: this row's `{name}` cell is empty"
                        ),
                    );
                } else {
                    // Once per CSV, at its header, whichever rows need it.
                    diags.error(
                        &header.loc,
                        format!(
                            "the prompt template (at {template_loc}) uses `{{{name}}}`, but this CSV has no `{name}` column{}",
                            hint(&name, &available, "columns")
                        ),
                    );
                }
            }
        }
        None => {
            let mut available: Vec<&str> = own.vars.keys().map(String::as_str).collect();
            for (key, set) in [
                ("id", own.id.is_some()),
                ("model", own.model.is_some()),
                ("aspect_ratio", own.aspect_ratio.is_some()),
                ("duration", own.duration.is_some()),
                ("resolution", own.resolution.is_some()),
            ] {
                if set {
                    available.push(key);
                }
            }
            let metadata: Vec<String> = own
                .metadata
                .keys()
                .map(|k| format!("metadata.{k}"))
                .collect();
            available.extend(metadata.iter().map(String::as_str));
            available.extend(defaults_vars);
            for name in missing {
                report(
                    diags,
                    &job.origin,
                    format!(
                        "`{{{name}}}` in the prompt template (at {template_loc}) has no value: set it in the job's `vars` (or in [defaults] `vars`){}",
                        hint(&name, &available, "available")
                    ),
                );
            }
        }
    }
    None
}

/// "; did you mean `x`?" or " (columns: a, b)" for a placeholder without a value.
fn hint(name: &str, available: &[&str], what: &str) -> String {
    if let Some(best) = suggest(name, available) {
        return format!("; did you mean `{best}`?");
    }
    if available.is_empty() {
        return String::new();
    }
    let list: Vec<String> = available.iter().map(|a| format!("`{a}`")).collect();
    format!(" ({what}: {})", list.join(", "))
}

/// One expanded job, validated against its model. `None` when it has problems (reported).
/// `id` is `None` when the job's own id is invalid; `label` names it in messages.
#[expect(
    clippy::too_many_arguments,
    reason = "private; the pieces of one job in the making"
)]
fn finish(
    fields: &JobFields,
    id: Option<&str>,
    label: &str,
    raw: &RawJob,
    prompt: Option<&str>,
    images: &[ImageRef],
    ctx: Context<'_>,
    diags: &mut Diags,
) -> Option<Job> {
    let origin = &raw.origin;
    let Some(model) = &fields.model else {
        if !fields.invalid.contains("model") {
            diags.job_error(
                origin,
                label,
                "no model: set `model` in [defaults] or on the job",
            );
        }
        return None;
    };
    let model: Model = model.value;
    let mut ok = true;
    let Some(entry) = ctx.catalogue.entry(model.as_str()) else {
        diags.job_error(origin, label, ctx.catalogue.unknown_message(model.as_str()));
        return None;
    };

    let duration = match (&fields.duration, entry.default_duration()) {
        (Some(d), _) => d.value,
        (None, Some(d)) => d,
        (None, None) => {
            diags.job_error(
                origin,
                label,
                format!(
                    "{model} has no default duration: set `duration` ({})",
                    entry.describe_field("duration")
                ),
            );
            ok = false;
            0
        }
    };
    let aspect_ratio: String = match &fields.aspect_ratio {
        Some(a) => a.value.clone(),
        None => entry
            .default_of("aspect_ratio")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    };
    let aspect_ratio = aspect_ratio.as_str();
    let mut metadata: Map<String, Value> = fields
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();

    // A model that takes its resolution in metadata (veo) gets a job-level one there.
    let mut resolution = fields.resolution.as_ref().map(|r| r.value.clone());
    if entry.field("resolution").is_none()
        && entry.field("metadata.resolution").is_some()
        && let Some(r) = fields.resolution.as_ref()
    {
        match metadata.get("resolution") {
            Some(existing) if existing.as_str() != Some(r.value.as_str()) => {
                diags.job_error(
                    &r.loc,
                    label,
                    format!(
                        "`resolution` {} and `metadata.resolution` {} disagree; for {model} set only one",
                        quoted(&r.value),
                        models::describe_json(existing)
                    ),
                );
                ok = false;
            }
            _ => {
                metadata.insert("resolution".into(), Value::from(r.value.clone()));
            }
        }
        resolution = None;
    }

    let extra: Map<String, Value> = fields
        .extra
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    let image_count = fields.image_urls.as_ref().map_or(0, |u| u.value.len());
    if image_count > 0
        && let Some(own) = fields.extra.get(&entry.images)
    {
        diags.job_error(
            &own.loc,
            label,
            format!(
                "for {model} `image_urls` are sent as `{}`: set one of them, not both",
                entry.images
            ),
        );
        ok = false;
    }

    // The request as it will be sent (images as placeholders: they may be uploads).
    let request = request_map(RequestParts {
        model,
        prompt: "",
        duration: Some(duration),
        aspect_ratio,
        resolution: resolution.as_deref(),
        image_field: &entry.images,
        images: vec![String::new(); image_count],
        metadata: &metadata,
        extra: &extra,
    });
    let duration_missing = fields.duration.is_none() && entry.default_duration().is_none();
    for violation in entry.check(&request) {
        let path = violation.field.as_str();
        if duration_missing && path == "duration" {
            // Already said: "has no default duration: set `duration`".
            continue;
        }
        let loc = match path {
            "duration" => fields.duration.as_ref().map(|d| &d.loc),
            "aspect_ratio" => fields.aspect_ratio.as_ref().map(|a| &a.loc),
            "resolution" => fields.resolution.as_ref().map(|r| &r.loc),
            _ if path == entry.images => fields.image_urls.as_ref().map(|u| &u.loc),
            _ => match path.strip_prefix("metadata.") {
                Some(key) => fields
                    .metadata
                    .get(key)
                    .map(|m| &m.loc)
                    .or_else(|| fields.resolution.as_ref().map(|r| &r.loc)),
                None => fields.extra.get(path).map(|e| &e.loc),
            },
        };
        diags.job_error(loc.unwrap_or(origin), label, violation.message);
        ok = false;
    }

    let id = id?;
    if id.len() > MAX_ID_LEN {
        diags.job_error(
            origin,
            id,
            format!("the id with its matrix suffixes is longer than {MAX_ID_LEN} characters"),
        );
        ok = false;
    }

    // Automatic lengths (0, -1) count as no seconds in plans; a negative one is
    // still sent as written (it rides with the other fields).
    let mut extra = extra;
    if duration < 0 {
        extra.insert("duration".into(), Value::from(duration));
    }
    let duration = u32::try_from(duration.max(0)).ok()?;
    let prompt = prompt?;
    if !ok {
        return None;
    }

    // An invalid template was reported when it was read.
    let template = ctx.filename?;
    let filename = template.render(&TemplateValues {
        id,
        // As written: an alias keeps the file names it always had.
        model: fields.model_alias.as_deref().unwrap_or(model.as_str()),
        name: ctx.name,
        aspect_ratio,
        duration,
    });
    if let Some(problem) = filename_problem(&filename) {
        diags.job_error(&template.loc, id, format!("output file name: {problem}"));
        return None;
    }
    Some(Job {
        id: id.to_owned(),
        model,
        prompt: prompt.to_owned(),
        duration,
        aspect_ratio: aspect_ratio.to_owned(),
        resolution,
        images: images.to_vec(),
        image_field: entry.images.clone(),
        metadata,
        extra,
        filename,
        origin: Origin {
            file: origin.file.clone(),
            line: origin.line.unwrap_or(1),
        },
        fingerprint_cache: Default::default(),
    })
}

/// An `image_urls` entry: an http(s) URL, or a local file that exists and fits.
fn image_ref(
    entry: &Located<String>,
    base_dir: &Path,
    job: &str,
    diags: &mut Diags,
) -> Option<ImageRef> {
    let text = entry.value.trim();
    let lower = text.to_ascii_lowercase();
    let mut error = |message: String| {
        diags.job_error(&entry.loc, job, message);
        None
    };
    let accepted = ".jpeg, .jpg, .png or .webp";
    if lower.starts_with("data:") {
        return error(
            "base64/data URIs are not accepted; save the image to a file and list its path".into(),
        );
    }
    if let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    {
        let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if rest.get(..host_end).is_none_or(str::is_empty) || text.contains(char::is_whitespace) {
            return error(format!("{} is not a valid URL", quoted(text)));
        }
        let path = rest.get(host_end..).unwrap_or_default();
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let last = path.rsplit('/').next().unwrap_or_default();
        if let Some((_, ext)) = last.rsplit_once('.')
            && !models::IMAGE_EXTENSIONS.contains(&ext)
        {
            return error(format!(
                "image URL {} must end in {accepted} (or have no extension), got `.{ext}`",
                quoted(text)
            ));
        }
        return Some(ImageRef::Url(text.to_owned()));
    }
    if let Some((scheme, _)) = text.split_once("://")
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return error(format!(
            "unsupported URL scheme `{scheme}://` in {}: use an http:// or https:// URL, or a local file path",
            quoted(text)
        ));
    }

    let path = base_dir.join(text);
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext {
        Some(ext) if models::IMAGE_EXTENSIONS.contains(&ext.as_str()) => {}
        Some(ext) => {
            return error(format!(
                "image file {} must be {accepted}, got `.{ext}`",
                quoted(text)
            ));
        }
        None => {
            return error(format!(
                "image file {} has no extension; it must be {accepted}",
                quoted(text)
            ));
        }
    }
    match std::fs::metadata(&path) {
        Err(e) => error(format!("cannot read image file `{}`: {e}", path.display())),
        Ok(meta) if !meta.is_file() => {
            error(format!("image path `{}` is not a file", path.display()))
        }
        Ok(meta) if meta.len() > models::MAX_IMAGE_BYTES => error(format!(
            "image file `{}` is {} bytes; at most 10 MB ({} bytes) is accepted",
            path.display(),
            meta.len(),
            models::MAX_IMAGE_BYTES
        )),
        Ok(_) => Some(ImageRef::Local(path)),
    }
}

/// Ids unique; file names unique (case-insensitively: they may land on macOS or Windows).
fn check_unique(jobs: &[Job], diags: &mut Diags) {
    let mut ids: foldhash::HashMap<&str, &Origin> =
        foldhash::HashMap::with_capacity_and_hasher(jobs.len(), Default::default());
    let mut files: foldhash::HashMap<std::borrow::Cow<'_, str>, &Job> =
        foldhash::HashMap::with_capacity_and_hasher(jobs.len(), Default::default());
    for job in jobs {
        let loc = Loc {
            file: job.origin.file.clone(),
            line: Some(job.origin.line),
            column: None,
        };
        if let Some(first) = ids.get(job.id.as_str()) {
            diags.error(
                &loc,
                format!("duplicate job id `{}` (also at {first})", job.id),
            );
            continue;
        }
        ids.insert(&job.id, &job.origin);
        // Lower-cased without a copy in the common case (ASCII, no capitals).
        let name = job.filename.as_str();
        let key = if name.is_ascii() && !name.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Borrowed(name)
        } else {
            std::borrow::Cow::Owned(name.to_lowercase())
        };
        if let Some(first) = files.get(&key) {
            diags.job_error(
                &loc,
                &job.id,
                format!(
                    "output file `{}` is also written by job `{}` ({}); put `{{id}}` in `output.filename`",
                    job.filename, first.id, first.origin
                ),
            );
            continue;
        }
        files.insert(key, job);
    }
}
