//! The CSV report: one row per manifest job, built from the journal alone.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::manifest::{Campaign, ImageRef, Job};
use crate::state::{CampaignState, JobState, Phase, Status};

/// The report's columns, in order. The first nine are fixed by SPEC §4.
pub const COLUMNS: &[&str] = &[
    "job_id",
    "status",
    "task_id",
    "model",
    "prompt",
    "output_path",
    "bytes",
    "sha256",
    "error",
    "attempts",
    "aspect_ratio",
    "duration",
    "image_urls",
    "submitted_at",
    "completed_at",
    "downloaded_at",
    "task_ids",
];

/// One job's line, borrowing from the manifest and the state where it can
/// (a 100k-job report is written at the end of every run).
///
/// The CSV row and each job of `status --json` are this struct serialized: its
/// fields are [`COLUMNS`], in order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row<'a> {
    pub job_id: Cow<'a, str>,
    pub status: Status,
    pub task_id: Cow<'a, str>,
    pub model: Cow<'a, str>,
    pub prompt: Cow<'a, str>,
    pub output_path: Cow<'a, str>,
    pub bytes: Option<u64>,
    pub sha256: Cow<'a, str>,
    pub error: Cow<'a, str>,
    pub attempts: u32,
    pub aspect_ratio: Cow<'a, str>,
    pub duration: u32,
    pub image_urls: Cow<'a, str>,
    pub submitted_at: Cow<'a, str>,
    pub completed_at: Cow<'a, str>,
    pub downloaded_at: Cow<'a, str>,
    pub task_ids: Cow<'a, str>,
}

/// A CSV writer for rows: no header of its own (the header is [`COLUMNS`],
/// written once by [`write_with`], so chunks rendered apart join up).
fn row_writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out)
}

/// What a job's `error` column says when `limits.budget` kept it from being
/// sent (the run writes the same words).
pub const OVER_BUDGET: &str = "not submitted: limits.budget reached";

/// Marks, as the run does, the jobs that `limits.budget` keeps from being sent:
/// never sent, and their estimated cost on top of what the recorded attempts
/// cost would pass the budget. The journal does not record this (nothing
/// happened), so `report` and `status` work it out again from the state.
pub fn mark_over_budget(campaign: &Campaign, state: &mut CampaignState) {
    let Some(budget) = campaign.limits.budget else {
        return;
    };
    let pricing = &campaign.pricing;
    let spent = crate::plan::spent(campaign, state).known();
    for job in &campaign.jobs {
        let never_sent = state
            .job(&job.id)
            .is_none_or(|js| js.phase == Phase::Pending && js.attempts == 0);
        let cost = crate::plan::job_cost(pricing, job).unwrap_or(0.0);
        if never_sent && !crate::plan::fits_budget(spent, cost, budget) {
            state.job_or_new(&job.id).last_error = Some(OVER_BUDGET.into());
        }
    }
}

/// One row per job of the manifest, in manifest order, jobs never submitted included.
pub fn rows<'a>(
    campaign: &'a Campaign,
    state: &'a CampaignState,
) -> impl Iterator<Item = Row<'a>> + 'a {
    campaign.jobs.iter().map(|job| row(campaign, state, job))
}

/// Writes the report of every job of `campaign` (see [`write_csv`]), the rows
/// rendered on every core; returns how many jobs have each status.
pub fn write_campaign(
    path: &Path,
    campaign: &Campaign,
    state: &CampaignState,
) -> std::io::Result<BTreeMap<Status, usize>> {
    // Rounds of a few thousand rows per core keep memory flat at 100k jobs.
    const ROUND: usize = 16 * 1024;
    let mut counts = BTreeMap::new();
    write_with(path, |out| {
        for round in campaign.jobs.chunks(ROUND) {
            let parts = crate::util::par_chunks(round, |jobs| {
                let mut counts = BTreeMap::new();
                let mut writer = row_writer(Vec::with_capacity(jobs.len() * 256));
                for job in jobs {
                    let row = row(campaign, state, job);
                    *counts.entry(row.status).or_insert(0) += 1;
                    writer.serialize(&row).map_err(std::io::Error::other)?;
                }
                let text = writer.into_inner().map_err(|e| e.into_error())?;
                Ok::<_, std::io::Error>((text, counts))
            });
            for part in parts {
                let (text, part_counts) = part?;
                out.write_all(&text)?;
                for (status, n) in part_counts {
                    *counts.entry(status).or_insert(0) += n;
                }
            }
        }
        Ok(())
    })?;
    Ok(counts)
}

/// One job's row.
fn row<'a>(campaign: &Campaign, state: &'a CampaignState, job: &'a Job) -> Row<'a> {
    static EMPTY: JobState = JobState::NEW;
    let js = state.job(&job.id).unwrap_or(&EMPTY);
    let (output_path, bytes, sha256) = match &js.phase {
        Phase::Succeeded { bytes, sha256, .. } => (
            Cow::Owned(campaign.video_path(job).display().to_string()),
            Some(*bytes),
            Cow::Borrowed(sha256.as_str()),
        ),
        _ => (Cow::Borrowed(""), None, Cow::Borrowed("")),
    };
    let mut error = Cow::Borrowed(js.last_error.as_deref().unwrap_or_default());
    if js.request_changed(job) {
        let error = error.to_mut();
        if !error.is_empty() {
            error.push_str("; ");
        }
        error.push_str(
            "the manifest changed this job since it was submitted; the recorded task is kept",
        );
    }
    let stamp =
        |t: Option<crate::state::Stamp>| t.map_or(Cow::Borrowed(""), |t| Cow::Owned(t.to_string()));
    Row {
        job_id: Cow::Borrowed(&job.id),
        status: js.status(),
        task_id: Cow::Borrowed(js.task_id().unwrap_or_default()),
        model: Cow::Borrowed(job.model.as_str()),
        prompt: Cow::Borrowed(&job.prompt),
        output_path,
        bytes,
        sha256,
        error,
        attempts: js.attempts,
        aspect_ratio: Cow::Borrowed(&job.aspect_ratio),
        duration: job.duration,
        image_urls: match job.images.as_slice() {
            [] => Cow::Borrowed(""),
            [ImageRef::Url(url)] => Cow::Borrowed(url.as_str()),
            images => Cow::Owned(
                images
                    .iter()
                    .map(|i| match i {
                        ImageRef::Url(u) => u.clone(),
                        ImageRef::Local(p) => p.display().to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
        },
        submitted_at: stamp(js.submitted_at),
        completed_at: stamp(js.completed_at),
        downloaded_at: stamp(js.downloaded_at),
        task_ids: match js.task_ids.as_slice() {
            [] => Cow::Borrowed(""),
            [one] => Cow::Borrowed(one.as_str()),
            many => Cow::Owned(many.join("|")),
        },
    }
}

/// Writes the report atomically: a temp file in the same folder, fsynced, renamed over the old one.
/// Rows are written as they come, so a 100k-job report is never held in memory.
pub fn write_csv<'a, R: std::borrow::Borrow<Row<'a>>>(
    path: &Path,
    rows: impl IntoIterator<Item = R>,
) -> std::io::Result<()> {
    write_with(path, |out| {
        let mut writer = row_writer(out);
        for row in rows {
            writer
                .serialize(row.borrow())
                .map_err(std::io::Error::other)?;
        }
        writer.flush()
    })
}

/// The header, then what `body` writes, into a temp file in the same folder,
/// fsynced and renamed over `path`.
fn write_with(
    path: &Path,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = crate::util::temp_file_in(dir, path)?;
    {
        let mut out = std::io::BufWriter::new(tmp.as_file_mut());
        let mut header = csv::Writer::from_writer(&mut out);
        header
            .write_record(COLUMNS)
            .map_err(std::io::Error::other)?;
        header.flush()?;
        drop(header);
        body(&mut out)?;
        out.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Record;

    #[test]
    fn the_parallel_report_is_the_row_by_row_report() {
        // Enough jobs for several rounds and both cores.
        let mut csv = String::from("id,model,prompt\n");
        for i in 0..40_000 {
            csv.push_str(&format!(
                "j{i},gemini_omni_flash,\"a \"\"quoted\"\", prompt {i}\"\n"
            ));
        }
        let campaign = crate::manifest::load_str(&csv, Path::new("/tmp/c.csv")).unwrap();
        let mut state = CampaignState::default();
        for i in (0..40_000).step_by(3) {
            let job = format!("j{i}");
            state.apply(
                "2026-01-01T00:00:00Z",
                Record::Submitted {
                    job: job.clone(),
                    attempt: 1,
                    task_id: format!("t{i}"),
                },
            );
            if i % 2 == 0 {
                state.apply(
                    "2026-01-01T00:00:01Z",
                    Record::Downloaded {
                        job,
                        task_id: format!("t{i}"),
                        path: format!("j{i}.mp4"),
                        bytes: 7,
                        sha256: "ab".into(),
                    },
                );
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        let counts = write_campaign(&a, &campaign, &state).unwrap();
        write_csv(&b, rows(&campaign, &state)).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let mut expected = BTreeMap::new();
        for row in rows(&campaign, &state) {
            *expected.entry(row.status).or_insert(0) += 1;
        }
        assert_eq!(counts, expected);
        assert_eq!(counts.values().sum::<usize>(), 40_000);
        assert_eq!(counts[&Status::Succeeded], 6667);
    }

    fn sample() -> Row<'static> {
        Row {
            job_id: "a".into(),
            status: Status::TimedOut,
            task_id: "t1".into(),
            model: "veo3.1-fast".into(),
            prompt: "a \"quoted\", prompt\nover two lines".into(),
            output_path: "".into(),
            bytes: None,
            sha256: "".into(),
            error: "gave up after 30m".into(),
            attempts: 2,
            aspect_ratio: "16:9".into(),
            duration: 8,
            image_urls: "https://x/a.jpg|https://x/b.jpg".into(),
            submitted_at: "2026-01-01T00:00:00Z".into(),
            completed_at: "".into(),
            downloaded_at: "".into(),
            task_ids: "t0|t1".into(),
        }
    }

    #[test]
    fn the_serialized_row_is_the_report_columns_in_order() {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.serialize(sample()).unwrap();
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        let header = text.lines().next().unwrap();
        assert_eq!(header, COLUMNS.join(","));
        assert_eq!(
            &COLUMNS[..9],
            [
                "job_id",
                "status",
                "task_id",
                "model",
                "prompt",
                "output_path",
                "bytes",
                "sha256",
                "error"
            ],
            "SPEC §4 fixes the first nine"
        );
    }

    #[test]
    fn a_row_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        write_csv(&path, [sample()]).unwrap();
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(headers, COLUMNS);
        let rows: Vec<BTreeMap<String, String>> =
            reader.deserialize().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row["status"], "timed_out");
        assert_eq!(row["bytes"], "", "no size is an empty cell, not 0");
        assert_eq!(row["prompt"], "a \"quoted\", prompt\nover two lines");
        assert_eq!(row["attempts"], "2");
        assert_eq!(row["duration"], "8");
        assert_eq!(row["task_ids"], "t0|t1");
    }

    #[test]
    fn an_empty_report_is_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        write_csv::<Row>(&path, []).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", COLUMNS.join(","))
        );
    }

    #[test]
    fn jobs_the_budget_keeps_back_say_so() {
        let toml = "[limits]\nbudget = 2.5\n[pricing]\ngemini_omni_flash = { per_video = 1 }\n[defaults]\nmodel = \"gemini_omni_flash\"\n[[job]]\nid = \"a\"\nprompt = \"p\"\n[[job]]\nid = \"b\"\nprompt = \"p\"\n[[job]]\nid = \"c\"\nprompt = \"p\"\n";
        let campaign = crate::manifest::load_str(toml, Path::new("/tmp/c.toml")).unwrap();
        let mut state = CampaignState::default();
        let mut none = state.clone();
        mark_over_budget(&campaign, &mut none);
        assert!(none.is_empty(), "nothing spent: every job fits");
        for job in ["a", "b"] {
            state.apply(
                "2026-01-01T00:00:00Z",
                Record::Submitted {
                    job: job.into(),
                    attempt: 1,
                    task_id: format!("t-{job}"),
                },
            );
        }
        mark_over_budget(&campaign, &mut state);
        let errors: Vec<String> = rows(&campaign, &state)
            .map(|r| r.error.into_owned())
            .collect();
        assert_eq!(errors, ["", "", OVER_BUDGET]);
    }
}
