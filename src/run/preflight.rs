//! The checks before the first paid call (SPEC §3): everything local that the
//! run will need, so that no clip is paid for and then cannot be saved.
//!
//! The output folder and the report can be written; no job's video lands on
//! the state file, the report or their companions; and no job's output path
//! already holds a file the state does not record (it would be paid for, then
//! refused). Each problem names the path; the run then sends nothing (exit 2).

use std::path::{Path, PathBuf};

use crate::manifest::Campaign;
use crate::state::{CampaignState, Phase};

/// How many paths a message lists before it says "and N more".
const LISTED: usize = 5;

/// Runs every check; returns the jobs (by index) that `--skip-existing` leaves
/// unsent, or every problem found, one per line.
pub fn check(
    campaign: &Campaign,
    state: &CampaignState,
    skip_existing: bool,
) -> Result<Vec<usize>, String> {
    let mut problems = Vec::new();
    let report = campaign.output.report_path();
    let state_path = campaign.output.state_path();
    if let Err(e) = writable_folder(&campaign.output.dir) {
        problems.push(e);
    }
    if let Err(e) = writable_file(&report, "the report") {
        problems.push(e);
    }
    let reserved = reserved_paths(&state_path, &report);
    let mut in_the_way = Vec::new();
    for (idx, job) in campaign.jobs.iter().enumerate() {
        let video = campaign.video_path(job);
        let part = super::download::part_path(&video);
        if let Some(hit) = reserved
            .iter()
            .find(|(path, _)| same_path(path, &video) || same_path(path, &part))
        {
            problems.push(format!(
                "job `{}`: its video {} would land on {} ({}); change output.filename",
                job.id,
                video.display(),
                hit.1,
                hit.0.display()
            ));
            continue;
        }
        let recorded = matches!(
            state.job(&job.id).map(|s| &s.phase),
            Some(Phase::Succeeded { .. })
        );
        if !recorded && video.exists() {
            in_the_way.push((idx, video));
        }
    }
    if !in_the_way.is_empty() && !skip_existing {
        problems.push(in_the_way_message(&in_the_way));
    }
    if problems.is_empty() {
        Ok(in_the_way.into_iter().map(|(idx, _)| idx).collect())
    } else {
        Err(problems.join("\n"))
    }
}

/// The state file, the report and the files that go with them.
fn reserved_paths(state: &Path, report: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![
        (state.to_path_buf(), "the state file"),
        (crate::journal::lock_path(state), "the state file's lock"),
        (report.to_path_buf(), "the report"),
        (crate::html::path_next_to(report), "the HTML report"),
    ]
}

/// Compared as text, case-insensitively (macOS and Windows fold case), after
/// dropping `.` components; both sides come from the same folder arithmetic.
fn same_path(a: &Path, b: &Path) -> bool {
    let norm = |p: &Path| {
        p.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect::<PathBuf>()
            .to_string_lossy()
            .to_lowercase()
    };
    norm(a) == norm(b)
}

fn in_the_way_message(files: &[(usize, PathBuf)]) -> String {
    let mut listed: Vec<String> = files
        .iter()
        .take(LISTED)
        .map(|(_, p)| p.display().to_string())
        .collect();
    if files.len() > LISTED {
        listed.push(format!("and {} more", files.len() - LISTED));
    }
    format!(
        "{} job(s) would write over a file the state file does not record: {}; \
         move them away (or delete them), or run with --skip-existing to leave those jobs unsent",
        files.len(),
        listed.join(", ")
    )
}

/// The folder exists (made if needed) and a file can be created in it.
fn writable_folder(dir: &Path) -> Result<(), String> {
    crate::util::create_dir_all_durable(dir)
        .map_err(|e| format!("cannot create the output folder {}: {e}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(".runner-probe")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("cannot write in the output folder {}: {e}", dir.display()))
}

/// `path` can be written: its folder can be made and written, and it is not a folder.
fn writable_file(path: &Path, what: &str) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("{what} {} is a folder, not a file", path.display()));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    writable_folder(dir).map_err(|e| format!("cannot write {what} {}: {e}", path.display()))?;
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| format!("cannot write {what} {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_compare_without_case_or_dots() {
        assert!(same_path(
            Path::new("out/./Report.CSV"),
            Path::new("out/report.csv")
        ));
        assert!(!same_path(Path::new("out/a.mp4"), Path::new("out/b.mp4")));
    }

    #[test]
    fn a_file_where_a_folder_must_be_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("afile");
        std::fs::write(&file, "x").unwrap();
        let err = writable_file(&file.join("report.csv"), "the report").unwrap_err();
        assert!(err.contains("afile"), "{err}");
        let err = writable_file(dir.path(), "the report").unwrap_err();
        assert!(err.contains("is a folder"), "{err}");
        assert!(writable_file(&dir.path().join("new/report.csv"), "the report").is_ok());
    }

    #[test]
    fn the_message_lists_a_few_files_and_counts_the_rest() {
        let files: Vec<(usize, PathBuf)> = (0..8)
            .map(|i| (i, PathBuf::from(format!("out/j{i}.mp4"))))
            .collect();
        let text = in_the_way_message(&files);
        assert!(text.starts_with("8 job(s)"), "{text}");
        assert!(
            text.contains("out/j4.mp4") && !text.contains("out/j5.mp4"),
            "{text}"
        );
        assert!(
            text.contains("and 3 more") && text.contains("--skip-existing"),
            "{text}"
        );
    }
}
