//! `cargo bench --bench hot_paths`: the hot pure paths at 100k jobs: expanding a
//! manifest's CSV rows into jobs, replaying a journal into the campaign state, and
//! writing the CSV report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use runner::journal::{Journal, Record};
use runner::manifest::{self, Campaign};
use runner::state::{CampaignState, Status};

const JOBS: usize = 100_000;

/// Writes `jobs.csv` (100k rows) and `bench.toml` that sources it; returns the manifest's path.
fn write_manifest(dir: &Path) -> PathBuf {
    let mut csv = String::with_capacity(JOBS * 32);
    csv.push_str("id,prompt\n");
    for i in 0..JOBS {
        writeln!(csv, "j{i},benchmark prompt {i}").unwrap();
    }
    std::fs::write(dir.join("jobs.csv"), csv).unwrap();
    let path = dir.join("bench.toml");
    std::fs::write(
        &path,
        "name = \"bench\"\n\
         [defaults]\n\
         model = \"gemini_omni_flash\"\n\
         [[source]]\n\
         csv = \"jobs.csv\"\n",
    )
    .unwrap();
    path
}

/// Writes, through the journal API, the state file of a campaign whose every job went
/// the whole way: submitting, submitted, completed, downloaded. Returns its path.
fn write_journal(campaign: &Campaign) -> PathBuf {
    let path = campaign.output.state_path();
    let manifest = campaign.manifest_path.display().to_string();
    let (mut journal, _) = Journal::open(&path, &campaign.name, &manifest, |_| {}).unwrap();
    for (i, job) in campaign.jobs.iter().enumerate() {
        let task_id = format!("task_{i:08x}");
        let records = [
            Record::Submitting {
                job: job.id.clone(),
                attempt: 1,
                fingerprint: job.fingerprint(),
                client_business_id: None,
            },
            Record::Submitted {
                job: job.id.clone(),
                attempt: 1,
                task_id: task_id.clone(),
            },
            Record::Completed {
                job: job.id.clone(),
                task_id: task_id.clone(),
                url: format!("http://127.0.0.1:8080/files/{task_id}.mp4"),
                expires_at: Some(1_790_000_000 + i as i64),
            },
            Record::Downloaded {
                job: job.id.clone(),
                task_id,
                path: campaign.video_path(job).display().to_string(),
                bytes: 1_048_576 + i as u64,
                sha256: format!("{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15),
            },
        ];
        for record in &records {
            journal.append(record).unwrap();
        }
    }
    journal.sync().unwrap();
    path
}

fn hot_paths(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = write_manifest(dir.path());

    let campaign = manifest::load(&manifest_path).unwrap();
    assert_eq!(campaign.jobs.len(), JOBS);
    c.bench_function("expand 100k rows", |b| {
        b.iter(|| manifest::load(black_box(&manifest_path)).unwrap())
    });

    let state_path = write_journal(&campaign);
    let (state, replay) = CampaignState::load(&state_path, JOBS).unwrap();
    assert_eq!(replay.records, 1 + 4 * JOBS);
    assert_eq!(state.len(), JOBS);
    assert!(state.jobs().all(|(_, j)| j.status() == Status::Succeeded));
    c.bench_function("replay 100k-job journal", |b| {
        b.iter(|| CampaignState::load(black_box(&state_path), JOBS).unwrap())
    });

    let report_path = dir.path().join("report.csv");
    c.bench_function("write 100k-row report", |b| {
        b.iter(|| {
            runner::report::write_campaign(&report_path, &campaign, black_box(&state)).unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    // Each iteration takes a good fraction of a second: few samples keep
    // `cargo bench` well under a minute.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    targets = hot_paths
}
criterion_main!(benches);
