//! The CSV report: one row per manifest job, built from the journal alone.

use std::io::Write;
use std::path::Path;

use crate::manifest::{Campaign, ImageRef};
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

/// One job's line.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub job_id: String,
    pub status: Status,
    pub task_id: String,
    pub model: String,
    pub prompt: String,
    pub output_path: String,
    pub bytes: Option<u64>,
    pub sha256: String,
    pub error: String,
    pub attempts: u32,
    pub aspect_ratio: String,
    pub duration: u32,
    pub image_urls: String,
    pub submitted_at: String,
    pub completed_at: String,
    pub downloaded_at: String,
    pub task_ids: String,
}

impl Row {
    /// Writes the row's fields in [`COLUMNS`] order, borrowing rather than
    /// copying them (a 100k-job report is written at the end of every run).
    fn write<W: Write>(&self, writer: &mut csv::Writer<W>) -> csv::Result<()> {
        let number = |n: u64| n.to_string();
        writer.write_field(&self.job_id)?;
        writer.write_field(self.status.as_str())?;
        writer.write_field(&self.task_id)?;
        writer.write_field(&self.model)?;
        writer.write_field(&self.prompt)?;
        writer.write_field(&self.output_path)?;
        writer.write_field(self.bytes.map(number).unwrap_or_default())?;
        writer.write_field(&self.sha256)?;
        writer.write_field(&self.error)?;
        writer.write_field(number(self.attempts.into()))?;
        writer.write_field(&self.aspect_ratio)?;
        writer.write_field(number(self.duration.into()))?;
        writer.write_field(&self.image_urls)?;
        writer.write_field(&self.submitted_at)?;
        writer.write_field(&self.completed_at)?;
        writer.write_field(&self.downloaded_at)?;
        writer.write_field(&self.task_ids)?;
        writer.write_record(None::<&[u8]>)
    }
}

/// One row per job of the manifest, in manifest order, jobs never submitted included.
pub fn rows<'a>(
    campaign: &'a Campaign,
    state: &'a CampaignState,
) -> impl Iterator<Item = Row> + 'a {
    static EMPTY: JobState = JobState::NEW;
    campaign.jobs.iter().map(|job| {
        let js = state.job(&job.id).unwrap_or(&EMPTY);
        let (output_path, bytes, sha256) = match &js.phase {
            Phase::Succeeded { bytes, sha256, .. } => (
                campaign.video_path(job).display().to_string(),
                Some(*bytes),
                sha256.clone(),
            ),
            _ => (String::new(), None, String::new()),
        };
        let mut error = js.last_error.clone().unwrap_or_default();
        if js.request_changed(job) {
            if !error.is_empty() {
                error.push_str("; ");
            }
            error.push_str(
                "the manifest changed this job since it was submitted; the recorded task is kept",
            );
        }
        Row {
            job_id: job.id.clone(),
            status: js.status(),
            task_id: js.task_id().unwrap_or_default().to_string(),
            model: job.model.to_string(),
            prompt: job.prompt.clone(),
            output_path,
            bytes,
            sha256,
            error,
            attempts: js.attempts,
            aspect_ratio: job.aspect_ratio.clone(),
            duration: job.duration,
            image_urls: job
                .images
                .iter()
                .map(|i| match i {
                    ImageRef::Url(u) => u.clone(),
                    ImageRef::Local(p) => p.display().to_string(),
                })
                .collect::<Vec<_>>()
                .join("|"),
            submitted_at: js.submitted_at.map(|t| t.to_string()).unwrap_or_default(),
            completed_at: js.completed_at.map(|t| t.to_string()).unwrap_or_default(),
            downloaded_at: js.downloaded_at.map(|t| t.to_string()).unwrap_or_default(),
            task_ids: js.task_ids.join("|"),
        }
    })
}

/// Writes the report atomically: a temp file in the same folder, fsynced, renamed over the old one.
/// Rows are written as they come, so a 100k-job report is never held in memory.
pub fn write_csv<R: std::borrow::Borrow<Row>>(
    path: &Path,
    rows: impl IntoIterator<Item = R>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    {
        let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(tmp.as_file_mut()));
        writer
            .write_record(COLUMNS)
            .map_err(std::io::Error::other)?;
        for row in rows {
            row.borrow()
                .write(&mut writer)
                .map_err(std::io::Error::other)?;
        }
        writer.flush()?;
    }
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
