//! The page's data: every job as one row of a JSON array, embedded in the page
//! and rendered by its script (`page.js`), a page of jobs at a time.
//!
//! Compact on purpose (a 100k-job campaign is one page): a job is an array, not
//! an object; statuses and models are indexes into small tables; times are
//! seconds since `base`. The column order is [`COLUMNS`], which `page.js`
//! reads from the data itself.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::paths::Srcs;
use crate::manifest::{Price, Pricing};
use crate::report::Row;
use crate::state::Status;

/// The names of a job's fields, in the order of its array.
pub const COLUMNS: &[&str] = &[
    "id",
    "status",
    "model",
    "prompt",
    "src",
    "bytes",
    "sha256",
    "error",
    "attempts",
    "aspect_ratio",
    "duration",
    "submitted",
    "finished",
    "downloaded",
    "task_id",
    "task_ids",
    "image_urls",
];

/// One job, in [`COLUMNS`] order (a tuple struct serialises as an array).
#[derive(Serialize)]
struct Job<'a>(
    &'a str,
    usize,
    usize,
    &'a str,
    String,
    Option<u64>,
    &'a str,
    &'a str,
    u32,
    &'a str,
    u32,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    &'a str,
    &'a str,
    &'a str,
);

/// A model and its price: `[name, "second" | "video" | null, amount]`.
#[derive(Serialize)]
struct ModelPrice<'a>(&'a str, Option<&'static str>, f64);

#[derive(Serialize)]
struct Data<'a> {
    columns: &'static [&'static str],
    /// Unix seconds the job times count from.
    base: i64,
    currency: &'a str,
    statuses: Vec<&'static str>,
    models: Vec<ModelPrice<'a>>,
    jobs: Vec<Job<'a>>,
}

/// The price of a model named `name` (rows carry the name, the table the model).
pub fn price_of(pricing: &Pricing, name: &str) -> Option<Price> {
    pricing
        .per_model
        .iter()
        .find(|(model, _)| model.as_str() == name)
        .map(|(_, price)| *price)
}

/// Unix seconds of an RFC 3339 time (the report's `*_at` columns).
fn unix_secs(t: &str) -> Option<i64> {
    if t.is_empty() {
        return None;
    }
    let at = humantime::parse_rfc3339_weak(t).ok()?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// The JSON of every row, safe inside a `<script>` element: every `<` is
/// written `\u003c`, so no `</script>` or `<!--` can occur in it (a `<` only
/// ever appears inside a JSON string, where the escape means the same).
pub fn json(rows: &[Row], pricing: &Pricing, page_dir: &Path, base: i64) -> String {
    let srcs = Srcs::new(page_dir);
    let mut models: Vec<ModelPrice> = Vec::new();
    let mut model_index: HashMap<&str, usize> = HashMap::new();
    let jobs = rows
        .iter()
        .map(|row| {
            let model = *model_index.entry(&row.model).or_insert_with(|| {
                let (unit, amount) = match price_of(pricing, &row.model) {
                    Some(Price::PerSecond(p)) => (Some("second"), p),
                    Some(Price::PerVideo(p)) => (Some("video"), p),
                    None => (None, 0.0),
                };
                models.push(ModelPrice(&row.model, unit, amount));
                models.len() - 1
            });
            let status = Status::ALL
                .iter()
                .position(|s| *s == row.status)
                .unwrap_or(0);
            let src = if row.output_path.is_empty() {
                String::new()
            } else {
                srcs.src(Path::new(&*row.output_path))
            };
            let at = |t: &str| unix_secs(t).map(|s| s - base);
            // The last task is `task_id`; the others are the earlier attempts.
            let earlier = match row.task_ids.rsplit_once('|') {
                Some((earlier, last)) if last == row.task_id => earlier,
                Some(_) => &*row.task_ids,
                None if *row.task_ids == *row.task_id => "",
                None => &*row.task_ids,
            };
            Job(
                &row.job_id,
                status,
                model,
                &row.prompt,
                src,
                row.bytes,
                &row.sha256,
                &row.error,
                row.attempts,
                &row.aspect_ratio,
                row.duration,
                at(&row.submitted_at),
                at(&row.completed_at),
                at(&row.downloaded_at),
                &row.task_id,
                earlier,
                &row.image_urls,
            )
        })
        .collect();
    let data = Data {
        columns: COLUMNS,
        base,
        currency: &pricing.currency,
        statuses: Status::ALL.iter().map(|s| s.as_str()).collect(),
        models,
        jobs,
    };
    // Serialising strings and numbers we own cannot fail.
    let text = serde_json::to_string(&data).unwrap_or_else(|_| "{}".into());
    if text.contains('<') {
        text.replace('<', "\\u003c")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Model;

    fn row(id: &str, prompt: &str) -> Row<'static> {
        Row {
            job_id: id.to_string().into(),
            status: Status::Succeeded,
            task_id: "t2".into(),
            model: "veo3.1-fast".into(),
            prompt: prompt.to_string().into(),
            output_path: "/srv/out/a.mp4".into(),
            bytes: Some(7),
            sha256: "ab".into(),
            error: "".into(),
            attempts: 2,
            aspect_ratio: "16:9".into(),
            duration: 8,
            image_urls: "".into(),
            submitted_at: "2026-01-01T10:00:10Z".into(),
            completed_at: "2026-01-01T10:01:00Z".into(),
            downloaded_at: "".into(),
            task_ids: "t1|t2".into(),
        }
    }

    #[test]
    fn the_json_cannot_close_its_script_and_reads_back() {
        let pricing = Pricing {
            currency: "USD".into(),
            per_model: [(Model::from_static("veo3.1-fast"), Price::PerSecond(0.05))]
                .into_iter()
                .collect(),
        };
        let rows = [row("a</script><script>x", "<!-- </SCRIPT> & \u{2028}")];
        let base = unix_secs("2026-01-01T10:00:00Z").unwrap();
        let text = json(&rows, &pricing, Path::new("/srv/out"), base);
        assert!(!text.contains('<'), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let job = &v["jobs"][0];
        assert_eq!(job[0], "a</script><script>x");
        assert_eq!(job[3], "<!-- </SCRIPT> & \u{2028}");
        assert_eq!(job[1], 0, "succeeded is status 0");
        assert_eq!(job[4], "a.mp4");
        assert_eq!(job[11], 10);
        assert_eq!(job[12], 60);
        assert_eq!(job[13], serde_json::Value::Null);
        assert_eq!(job[14], "t2");
        assert_eq!(job[15], "t1", "the earlier tasks only");
        assert_eq!(
            v["models"][0],
            serde_json::json!(["veo3.1-fast", "second", 0.05])
        );
        assert_eq!(
            v["columns"].as_array().unwrap().len(),
            job.as_array().unwrap().len()
        );
        assert_eq!(v["statuses"][5], "pending");
    }
}
