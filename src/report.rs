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
#[derive(Debug, Clone, PartialEq)]
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

impl Row<'_> {
    /// Writes the row's fields in [`COLUMNS`] order, borrowing rather than
    /// copying them (a 100k-job report is written at the end of every run).
    fn write<W: Write>(&self, writer: &mut csv::Writer<W>) -> csv::Result<()> {
        let number = |n: u64| n.to_string();
        writer.write_field(&*self.job_id)?;
        writer.write_field(self.status.as_str())?;
        writer.write_field(&*self.task_id)?;
        writer.write_field(&*self.model)?;
        writer.write_field(&*self.prompt)?;
        writer.write_field(&*self.output_path)?;
        writer.write_field(self.bytes.map(number).unwrap_or_default())?;
        writer.write_field(&*self.sha256)?;
        writer.write_field(&*self.error)?;
        writer.write_field(number(self.attempts.into()))?;
        writer.write_field(&*self.aspect_ratio)?;
        writer.write_field(number(self.duration.into()))?;
        writer.write_field(&*self.image_urls)?;
        writer.write_field(&*self.submitted_at)?;
        writer.write_field(&*self.completed_at)?;
        writer.write_field(&*self.downloaded_at)?;
        writer.write_field(&*self.task_ids)?;
        writer.write_record(None::<&[u8]>)
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
                let mut writer = csv::Writer::from_writer(Vec::with_capacity(jobs.len() * 256));
                for job in jobs {
                    let row = row(campaign, state, job);
                    *counts.entry(row.status).or_insert(0) += 1;
                    row.write(&mut writer).map_err(std::io::Error::other)?;
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
        let mut writer = csv::Writer::from_writer(out);
        for row in rows {
            row.borrow()
                .write(&mut writer)
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
}
