//! End-to-end fault injection (issue 3): the real binary against the simulator
//! with its fault knobs turned up, plus bad input, secrets, the lock and Ctrl-C.
//!
//! A few behaviours the simulator cannot produce (a 400 on a request the
//! runner thinks is valid, an undocumented task status, a submit that never
//! answers) are driven by a small stub server at the end of this file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use runner::sim::{SimConfig, SimHandle};

/// A `[limits]` block for these tests: fast polls, a generous rate.
fn limits(max_attempts: u32, task_timeout: &str) -> String {
    format!(
        r#"
[limits]
requests_per_second = 1000
submit_per_second = 10000
query_per_second = 10000
burst = 20
max_in_flight = 20
poll_queued = "5ms"
poll_in_progress = "5ms"
task_timeout = "{task_timeout}"
max_attempts = {max_attempts}
"#
    )
}

fn attempts(row: &BTreeMap<String, String>) -> u32 {
    row["attempts"]
        .parse()
        .unwrap_or_else(|_| panic!("{row:?}"))
}

fn task_ids(row: &BTreeMap<String, String>) -> Vec<String> {
    row["task_ids"]
        .split('|')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------------------
// 1. The issue's acceptance: every fault at once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_faults_sixty_jobs() {
    const JOBS: usize = 60;
    const SIZE: u64 = 64 * 1024;
    const PROMPT: &str = "mixed fault prompt";
    let sim = SimHandle::start(SimConfig {
        submit_429: 0.15,
        submit_503: 0.10,
        poll_500: 0.10,
        poll_drop: 0.05,
        download_cut: 0.20,
        fail_rate: 0.10,
        retry_after: 1,
        seed: 3,
        video_size: SIZE,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "mixed.toml",
        &gemini_campaign("mixed", &limits(3, "60s"), JOBS, PROMPT),
    );

    let started = Instant::now();
    let out = run(run_against(&dir, &sim, "mixed.toml", &[])).await;
    let took = started.elapsed();
    let stats = sim.stats();
    eprintln!(
        "mixed faults: {took:.1?}, injected {:?}, {} requests",
        stats.injected,
        stats.request_times_ms.len()
    );
    assert_no_panic(&out);

    let rows = dir.report("out/report.csv");
    assert_eq!(rows.len(), JOBS);
    let counts = status_counts(&rows);
    let succeeded = counts.get("succeeded").copied().unwrap_or(0);
    assert!(succeeded >= 57, "{counts:?}\n{}", text(&out));
    for row in rows.iter().filter(|r| r["status"] != "succeeded") {
        assert_eq!(row["status"], "failed", "{row:?}");
        assert!(
            !row["error"].trim().is_empty(),
            "failed without a reason: {row:?}"
        );
    }
    let expected = if succeeded == JOBS { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(expected), "{}", text(&out));

    check_succeeded_videos(&dir, &rows, SIZE);
    for row in &rows {
        let n = attempts(row);
        assert!(n <= 3, "more attempts than max_attempts: {row:?}");
        let paid = stats
            .submits_by_prompt
            .get(&row["prompt"])
            .copied()
            .unwrap_or(0);
        assert!(
            paid <= n,
            "{} tasks created for a job that reports {n} attempts: {row:?}",
            paid
        );
        // No submit was dropped, so every attempt is a task the runner knows.
        assert_eq!(paid, n, "{row:?}");
        assert_eq!(task_ids(row).len() as u32, n, "{row:?}");
    }
    // The run really met the faults it was meant to survive (grouped so that
    // a group firing zero times is a one-in-a-million event, not a flake).
    let fired = |knobs: &[&str]| -> u32 {
        knobs
            .iter()
            .map(|k| stats.injected.get(*k).copied().unwrap_or(0))
            .sum()
    };
    for group in [
        &["submit_429", "submit_503"][..],
        &["poll_500", "poll_drop"][..],
        &["download_cut"][..],
    ] {
        assert!(
            fired(group) > 0,
            "{group:?} never fired: {:?}",
            stats.injected
        );
    }
}

// ---------------------------------------------------------------------------
// 2. The server's own rate limit: 429s slow the run down but cost nothing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rate_limit_slows_the_run_but_every_job_succeeds_first_time() {
    const JOBS: usize = 8;
    const PROMPT: &str = "rate limited prompt";
    let sim = SimHandle::start(SimConfig {
        time_scale: 0.005,
        rate_limit: Some(20.0),
        video_size: 16 * 1024,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let limits = r#"
[limits]
requests_per_second = 200
submit_per_second = 10000
query_per_second = 10000
burst = 20
max_in_flight = 10
poll_queued = "100ms"
poll_in_progress = "100ms"
"#;
    dir.write("rl.toml", &gemini_campaign("rl", limits, JOBS, PROMPT));
    let out = run(run_against(&dir, &sim, "rl.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = sim.stats();
    assert!(
        stats.rate_limited_429 > 0,
        "the run never hit the server's limit, so this tested nothing"
    );
    let rows = dir.report("out/report.csv");
    for row in &rows {
        assert_eq!(row["status"], "succeeded", "{row:?}");
        assert_eq!(row["attempts"], "1", "a 429 is not an attempt: {row:?}");
    }
    check_succeeded_videos(&dir, &rows, 16 * 1024);
    assert_eq!(stats.tasks_created as usize, JOBS);
    assert!(
        stats.submits_by_prompt.values().all(|n| *n == 1),
        "{:?}",
        stats.submits_by_prompt
    );
}

/// README: "429 pauses every call for Retry-After". With a 429 on half the
/// submits, the server sees a silence of about Retry-After after each one (two
/// submits may be in flight at once, so two 429s may share one pause).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_429_pauses_every_call_for_retry_after() {
    const JOBS: usize = 4;
    let sim = SimHandle::start(SimConfig {
        submit_429: 0.5,
        retry_after: 1,
        seed: 5,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "p429.toml",
        &gemini_campaign("p429", &limits(2, "60s"), JOBS, "paused by 429"),
    );
    let out = run(run_against(&dir, &sim, "p429.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = sim.stats();
    let injected = stats.injected.get("submit_429").copied().unwrap_or(0);
    assert!(injected > 0, "no 429 was injected: {:?}", stats.injected);
    let times = &stats.request_times_ms;
    let pauses = times.windows(2).filter(|w| w[1] - w[0] >= 900).count();
    assert!(
        pauses as u32 >= injected.div_ceil(2),
        "{injected} 429s but only {pauses} pauses of ~1 s: {times:?}"
    );
    let rows = dir.report("out/report.csv");
    assert!(
        rows.iter()
            .all(|r| r["status"] == "succeeded" && r["attempts"] == "1")
    );
    assert!(stats.submits_by_prompt.values().all(|n| *n == 1));
}

// ---------------------------------------------------------------------------
// 3. 5xx on every submit: the world's failure, not the job's. The run pauses,
// probes one call at a time, and past `limits.outage_timeout` stops with exit
// 75; the job is still pending (nothing was paid) with the last error.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_503_everywhere_is_an_outage_exit_75_and_the_job_stays_pending() {
    let sim = SimHandle::start(SimConfig {
        submit_503: 1.0,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let limits = format!("{}outage_timeout = \"1500ms\"\n", limits(3, "60s"));
    dir.write(
        "s503.toml",
        &gemini_campaign("s503", &limits, 2, "always 503"),
    );
    let out = run(run_against(&dir, &sim, "s503.toml", &[])).await;
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert_no_panic(&out);
    let rows = dir.report("out/report.csv");
    for row in &rows {
        assert_eq!(row["status"], "pending", "{row:?}");
        assert_eq!(row["attempts"], "0", "no task was created: {row:?}");
    }
    // The job that probed names the error; the other waited and has none of its own.
    assert!(
        rows.iter().any(|row| row["error"].contains("503")),
        "names the last error: {rows:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("503"),
        "{}",
        text(&out)
    );
    let stats = sim.stats();
    assert_eq!(stats.tasks_created, 0);
    // One probe at a time with a doubling wait (250 ms, 500 ms, 1 s, …): a
    // handful of submits in 1.5 s, not one per job per backoff step.
    let tries = stats.injected.get("submit_503").copied().unwrap_or(0);
    assert!((2..=8).contains(&tries), "{tries} submits answered 503");
}

// ---------------------------------------------------------------------------
// 4. A dropped submit: `unknown`, never resent silently, resent on request.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_submit_is_unknown_and_only_resent_on_request() {
    const JOBS: usize = 3;
    const PROMPT: &str = "dropped submit";
    let dropping = SimHandle::start(SimConfig {
        submit_drop: 1.0,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "drop.toml",
        &gemini_campaign("drop", &limits(2, "60s"), JOBS, PROMPT),
    );

    let out = run(run_against(&dir, &dropping, "drop.toml", &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("--resubmit-unknown"),
        "tells the user how to resend: {}",
        text(&out)
    );
    let rows = dir.report("out/report.csv");
    for row in &rows {
        assert_eq!(row["status"], "unknown", "{row:?}");
        assert!(!row["error"].is_empty(), "{row:?}");
    }
    let first = dropping.stats();
    assert_eq!(first.tasks_created as usize, JOBS, "each job paid for once");
    assert!(first.submits_by_prompt.values().all(|n| *n == 1));

    // Again without the flag: nothing is sent, the jobs stay unknown.
    let out = run(run_against(&dir, &dropping, "drop.toml", &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(dropping.stats(), first, "a plain rerun sent something");
    assert!(
        dir.report("out/report.csv")
            .iter()
            .all(|r| r["status"] == "unknown")
    );

    // The user checked with the provider and asks for a resend (to a healthy server).
    let healthy = SimHandle::start(fast_sim()).await.unwrap();
    let out = run(run_against(
        &dir,
        &healthy,
        "drop.toml",
        &["--resubmit-unknown"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    for row in &rows {
        assert_eq!(row["status"], "succeeded", "{row:?}");
        assert_eq!(
            row["attempts"], "2",
            "the unknown attempt still counts: {row:?}"
        );
        assert_eq!(task_ids(row).len(), 1, "{row:?}");
    }
    check_succeeded_videos(&dir, &rows, 64 * 1024);
    let second = healthy.stats();
    assert_eq!(second.tasks_created as usize, JOBS);
    assert!(second.submits_by_prompt.values().all(|n| *n == 1));
    assert_eq!(dropping.stats(), first);
}

// ---------------------------------------------------------------------------
// 6. Failed generations become new tasks, up to max_attempts.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_generations_are_retried_as_new_tasks_up_to_max_attempts() {
    const JOBS: usize = 4;
    let sim = SimHandle::start(SimConfig {
        fail_rate: 1.0,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "fail.toml",
        &gemini_campaign("fail", &limits(3, "60s"), JOBS, "always fails"),
    );
    let out = run(run_against(&dir, &sim, "fail.toml", &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    for row in &rows {
        assert_eq!(row["status"], "failed", "{row:?}");
        assert_eq!(row["attempts"], "3", "{row:?}");
        let ids = task_ids(row);
        assert_eq!(ids.len(), 3, "{row:?}");
        assert_eq!(
            ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
            3,
            "three distinct tasks: {row:?}"
        );
        assert_eq!(row["task_id"], ids[2], "the last task is the one shown");
        assert!(
            row["error"].contains("generation failed"),
            "the server's reason: {row:?}"
        );
    }
    let stats = sim.stats();
    assert_eq!(stats.tasks_created as usize, 3 * JOBS);
    assert!(
        stats.submits_by_prompt.values().all(|n| *n == 3),
        "{:?}",
        stats.submits_by_prompt
    );

    // Nothing left to try: a rerun sends nothing.
    let before = sim.stats().request_times_ms.len();
    let out = run(run_against(&dir, &sim, "fail.toml", &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(sim.stats().request_times_ms.len(), before);
}

// ---------------------------------------------------------------------------
// 7. Downloads cut short resume with a Range request.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_downloads_resume_and_the_bytes_are_right() {
    // Small clips arrive whole before they are written.
    cut_downloads(8, 256 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_large_downloads_resume_and_the_bytes_are_right() {
    // Over 1 MiB, a writer and a hasher thread take the chunks as they come,
    // and the writeback starts every 8 MiB.
    cut_downloads(4, 9 * 1024 * 1024 + 123).await;
}

async fn cut_downloads(jobs: usize, size: u64) {
    let sim = SimHandle::start(SimConfig {
        download_cut: 0.5,
        seed: 11,
        video_size: size,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "cut.toml",
        &gemini_campaign("cut", &limits(2, "60s"), jobs, "cut short"),
    );
    let mut out = run(run_against(&dir, &sim, "cut.toml", &[])).await;
    if out.status.code() == Some(1) {
        // Six cuts in a row for one video (1 in 64 at p = 0.5) ends this run's
        // tries for it; the README says the next run tries again.
        for row in dir.report("out/report.csv") {
            if row["status"] != "succeeded" {
                assert!(row["error"].contains("download"), "{row:?}");
            }
        }
        out = run(run_against(&dir, &sim, "cut.toml", &[])).await;
    }
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert!(rows.iter().all(|r| r["status"] == "succeeded"), "{rows:?}");
    check_succeeded_videos(&dir, &rows, size);
    assert!(part_files(dir.path()).is_empty());
    let stats = sim.stats();
    let cuts = stats.injected.get("download_cut").copied().unwrap_or(0);
    assert!(cuts > 0, "no download was cut: {:?}", stats.injected);
    assert_eq!(
        stats.downloads as usize,
        jobs + cuts as usize,
        "each cut costs exactly one more request"
    );
    assert_eq!(stats.tasks_created as usize, jobs);
}

// ---------------------------------------------------------------------------
// 8. A URL that expired before the download.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_url_ends_the_job_expired() {
    let sim = SimHandle::start(SimConfig {
        url_ttl: 0.0,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "exp.toml",
        &gemini_campaign("exp", &limits(2, "60s"), 3, "expires at once"),
    );
    let out = run(run_against(&dir, &sim, "exp.toml", &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    for row in &rows {
        assert_eq!(row["status"], "expired", "{row:?}");
        assert!(row["error"].contains("expire"), "{row:?}");
        assert!(row["output_path"].is_empty(), "{row:?}");
    }
    assert!(part_files(dir.path()).is_empty());
    assert_eq!(sim.stats().tasks_created, 3, "not resubmitted");
}

/// Junk `.part` files where the jobs' videos will go, as a download of an
/// older task that was cut short would leave them.
fn plant_stale_parts(dir: &Dir, jobs: usize) -> Vec<PathBuf> {
    (0..jobs)
        .map(|i| {
            let part = dir.path().join(format!("out/j{i:03}.mp4.part"));
            std::fs::create_dir_all(part.parent().unwrap()).unwrap();
            std::fs::write(&part, vec![b'x'; 1000]).unwrap();
            part
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_left_by_another_task_is_replaced_not_resumed() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    dir.write(
        "stale.toml",
        &gemini_campaign("stale", &limits(2, "60s"), 3, "stale part"),
    );
    plant_stale_parts(&dir, 3);
    let out = run(run_against(&dir, &sim, "stale.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert!(rows.iter().all(|r| r["status"] == "succeeded"), "{rows:?}");
    // Resuming would have kept the 1000 junk bytes and asked for the rest.
    check_succeeded_videos(&dir, &rows, fast_sim().video_size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_job_forgets_the_part_of_its_old_task() {
    let expiring = SimHandle::start(SimConfig {
        url_ttl: 0.0,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "retry.toml",
        &gemini_campaign("retry", &limits(2, "60s"), 2, "expires, then retried"),
    );
    let out = run(run_against(&dir, &expiring, "retry.toml", &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // As if the first run had got part of each video before its URL expired.
    let parts = plant_stale_parts(&dir, 2);
    // The retry's new tasks expire too, so no download of theirs touches a
    // `.part`: only the retry itself can have cleared the old ones away, and
    // must have, or a later run resuming the new task would build on them.
    let out = run(run_against(
        &dir,
        &expiring,
        "retry.toml",
        &["--retry", "failed", "--yes"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(expiring.stats().tasks_created, 4);
    for part in parts {
        assert!(!part.exists(), "{} is still there", part.display());
    }
}

// ---------------------------------------------------------------------------
// 9. Task timeout, then a rerun picks the finished tasks up.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_tasks_are_picked_up_by_the_next_run() {
    const JOBS: usize = 3;
    let sim = SimHandle::start(SimConfig {
        time_scale: 1.0,
        no_metering: true,
        queue_time: 0.0,
        generation_time: Some(1.5),
        video_size: 16 * 1024,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let limits = r#"
[limits]
requests_per_second = 1000
submit_per_second = 10000
query_per_second = 10000
burst = 20
max_in_flight = 20
poll_queued = "50ms"
poll_in_progress = "50ms"
task_timeout = "300ms"
"#;
    dir.write(
        "slow.toml",
        &gemini_campaign("slow", limits, JOBS, "slow task"),
    );
    let out = run(run_against(&dir, &sim, "slow.toml", &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Every job `timed_out` (below): the run did not wait for the 1.5 s tasks.
    let rows = dir.report("out/report.csv");
    for row in &rows {
        assert_eq!(row["status"], "timed_out", "{row:?}");
        assert!(!row["error"].is_empty(), "{row:?}");
        assert!(!row["task_id"].is_empty(), "the task is kept: {row:?}");
    }

    // A rerun with room to wait polls the same tasks to the end and downloads
    // them, without a new submit (no sleep here: the rerun waits for them).
    dir.write(
        "slow.toml",
        &gemini_campaign(
            "slow",
            &limits.replace("task_timeout = \"300ms\"", "task_timeout = \"60s\""),
            JOBS,
            "slow task",
        ),
    );
    // With --only, just the selected task is looked at again: the others stay
    // timed out, in the report and in the state file.
    let out = run(run_against(&dir, &sim, "slow.toml", &["--only", "j000"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let only = dir.report("out/report.csv");
    assert_eq!(only[0]["status"], "succeeded", "{only:?}");
    assert_eq!(only[1]["status"], "timed_out", "{only:?}");
    assert_eq!(only[2]["status"], "timed_out", "{only:?}");
    assert_eq!(
        journal_events(&dir.path().join("out/state.jsonl"), "look_again"),
        1
    );

    let out = run(run_against(&dir, &sim, "slow.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = dir.report("out/report.csv");
    for (row, before) in after.iter().zip(&rows) {
        assert_eq!(row["status"], "succeeded", "{row:?}");
        assert_eq!(row["task_id"], before["task_id"], "same task: {row:?}");
    }
    check_succeeded_videos(&dir, &after, 16 * 1024);
    assert_eq!(
        sim.stats().tasks_created as usize,
        JOBS,
        "nothing resubmitted"
    );
}

// ---------------------------------------------------------------------------
// 11. Bad input: exit 2, a reason that points at the problem, nothing sent.

/// One bad-input case: files to write, the manifest to run, extra args, and
/// what the message must mention.
struct BadCase {
    name: &'static str,
    files: Vec<(&'static str, String)>,
    manifest: &'static str,
    args: Vec<String>,
    no_key: bool,
    mentions: Vec<&'static str>,
}

fn case(
    name: &'static str,
    files: Vec<(&'static str, String)>,
    manifest: &'static str,
    mentions: Vec<&'static str>,
) -> BadCase {
    BadCase {
        name,
        files,
        manifest,
        args: Vec::new(),
        no_key: false,
        mentions,
    }
}

const HEAD: &str = "name = \"bad\"\n[defaults]\nmodel = \"gemini_omni_flash\"\n";
const VEO_HEAD: &str = "name = \"bad\"\n[defaults]\nmodel = \"veo3.1-fast\"\n";

fn bad_cases() -> Vec<BadCase> {
    let t = |text: String| vec![("c.toml", text)];
    vec![
        case(
            "malformed TOML",
            t("name = \"bad\"\n[limits\nmax_in_flight = 2\n".into()),
            "c.toml",
            vec!["c.toml:2"],
        ),
        case(
            "ragged CSV row in a [[source]]",
            vec![
                (
                    "c.toml",
                    format!("{HEAD}[[source]]\ncsv = \"rows.csv\"\n"),
                ),
                (
                    "rows.csv",
                    "id,prompt\nr1,first row\nr2,second row,one too many\n".into(),
                ),
            ],
            "c.toml",
            vec!["rows.csv:3"],
        ),
        case(
            "ragged CSV manifest",
            vec![(
                "jobs.csv",
                "id,prompt,model\nr1,first,gemini_omni_flash\nr2,second\n".into(),
            )],
            "jobs.csv",
            vec!["jobs.csv:3"],
        ),
        case(
            "unknown top-level key",
            t(format!("nmae = \"x\"\n{HEAD}[[job]]\nid = \"a\"\nprompt = \"p\"\n")),
            "c.toml",
            vec!["c.toml:1", "nmae", "name"],
        ),
        case(
            "unknown key in [limits]",
            t(format!(
                "{HEAD}[limits]\nmax_inflight = 3\n[[job]]\nid = \"a\"\nprompt = \"p\"\n"
            )),
            "c.toml",
            vec!["c.toml:5", "max_inflight", "max_in_flight"],
        ),
        case(
            "unknown job key",
            t(format!("{HEAD}[[job]]\nid = \"a\"\npromt = \"p\"\n")),
            "c.toml",
            vec!["c.toml:6", "promt", "prompt"],
        ),
        case(
            "id with a path in it",
            t(format!("{HEAD}[[job]]\nid = \"../x\"\nprompt = \"p\"\n")),
            "c.toml",
            vec!["c.toml:5", "../x"],
        ),
        case(
            "duplicate ids after matrix expansion",
            t(format!(
                "{HEAD}[matrix]\naspect_ratio = [\"16:9\", \"9:16\"]\n\
                 [[job]]\nid = \"dup\"\nprompt = \"p\"\n\
                 [[job]]\nid = \"dup-9x16\"\nprompt = \"q\"\naspect_ratio = \"16:9\"\n"
            )),
            "c.toml",
            vec!["c.toml:", "dup-9x16", "duplicate"],
        ),
        case(
            "duration veo does not accept",
            t(format!(
                "{VEO_HEAD}[[job]]\nid = \"veo10\"\nprompt = \"p\"\nduration = 10\n"
            )),
            "c.toml",
            vec!["c.toml:7", "veo10", "duration"],
        ),
        case(
            "aspect ratio nobody accepts",
            t(format!(
                "{HEAD}[[job]]\nid = \"square\"\nprompt = \"p\"\naspect_ratio = \"4:3\"\n"
            )),
            "c.toml",
            vec!["c.toml:7", "square", "aspect_ratio"],
        ),
        case(
            "gemini with four image_urls (it takes 3)",
            t(format!(
                "{HEAD}[[job]]\nid = \"gem-img\"\nprompt = \"p\"\nimage_urls = [\"https://example.com/a.png\", \"https://example.com/b.png\", \"https://example.com/c.png\", \"https://example.com/d.png\"]\n"
            )),
            "c.toml",
            vec!["c.toml:7", "gem-img", "image_urls"],
        ),
        case(
            "data: image URL",
            t(format!(
                "{VEO_HEAD}[[job]]\nid = \"inline\"\nprompt = \"p\"\nimage_urls = [\"data:image/png;base64,iVBORw0KGgo=\"]\n"
            )),
            "c.toml",
            vec!["c.toml:7", "inline", "data URI"],
        ),
        case(
            "missing local image",
            t(format!(
                "{VEO_HEAD}[[job]]\nid = \"noframe\"\nprompt = \"p\"\nimage_urls = [\"frames/missing.png\"]\n"
            )),
            "c.toml",
            vec!["c.toml:7", "noframe", "frames/missing.png"],
        ),
        case(
            "missing [[source]] csv",
            t(format!("{HEAD}[[source]]\ncsv = \"nope.csv\"\n")),
            "c.toml",
            vec!["c.toml:5", "nope.csv"],
        ),
        case(
            "API key in the manifest",
            t(
                "name = \"bad\"\n[api]\napi_key = \"sk-in-a-file\"\n[defaults]\nmodel = \"gemini_omni_flash\"\n[[job]]\nid = \"a\"\nprompt = \"p\"\n"
                    .into(),
            ),
            "c.toml",
            vec!["c.toml:3", "api_key"],
        ),
        BadCase {
            args: vec!["--rate".into(), "0".into()],
            ..case(
                "--rate 0",
                t(format!("{HEAD}[[job]]\nid = \"a\"\nprompt = \"p\"\n")),
                "c.toml",
                vec!["--rate"],
            )
        },
        BadCase {
            no_key: true,
            ..case(
                "missing API key",
                t(format!("{HEAD}[[job]]\nid = \"a\"\nprompt = \"p\"\n")),
                "c.toml",
                vec!["TOAPIS_API_KEY"],
            )
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_with_a_reason_and_sends_nothing() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let mut failures = Vec::new();
    for bad in bad_cases() {
        let dir = Dir::new();
        for (name, text) in &bad.files {
            dir.write(name, text);
        }
        let mut cmd = run_against(&dir, &sim, bad.manifest, &[]);
        cmd.args(&bad.args);
        if bad.no_key {
            cmd.env_remove("TOAPIS_API_KEY");
        }
        let out = run(cmd).await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        eprintln!("--- {} (exit {:?})\n{stderr}", bad.name, out.status.code());
        let mut problems = Vec::new();
        if out.status.code() != Some(2) {
            problems.push(format!("exit {:?}, not 2", out.status.code()));
        }
        if text(&out).contains("sk-in-a-file") {
            problems.push("echoes a key written in the manifest".into());
        }
        if text(&out).contains("panicked") {
            problems.push("panicked".into());
        }
        for needle in &bad.mentions {
            if !stderr.contains(needle) {
                problems.push(format!("does not mention `{needle}`"));
            }
        }
        if stderr.lines().count() > 12 {
            problems.push(format!("{} lines of stderr", stderr.lines().count()));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n{}",
                bad.name,
                problems.join("; "),
                text(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(
        sim.stats().request_times_ms.len(),
        0,
        "a request was sent for bad input"
    );
}

/// A `--base-url` that is not http(s) (a typo like `localhost:8080` or
/// `htps://…`) can never reach a server: it must be refused as a bad flag
/// (exit 2, like a bad `api.base_url` in the manifest), and above all it must
/// not leave jobs `unknown`, which a later correct run will not resend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_url_that_is_not_http_is_refused_and_leaves_nothing_unknown() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let port = sim.addr().port();
    for bad in [
        format!("localhost:{port}"),
        format!("htps://127.0.0.1:{port}"),
    ] {
        let dir = Dir::new();
        dir.write(
            "u.toml",
            &gemini_campaign("u", &limits(2, "60s"), 2, "bad base url"),
        );
        let mut cmd = runner_cmd(&dir);
        cmd.args(["run", "u.toml", "--base-url", &bad]);
        let out = run(cmd).await;
        assert_no_panic(&out);
        let report = dir.path().join("out/report.csv");
        let unknown = if report.exists() {
            ids_with_status(&dir.report("out/report.csv"), "unknown")
        } else {
            Default::default()
        };
        assert!(
            unknown.is_empty(),
            "--base-url {bad}: no request left, yet jobs are unknown: {unknown:?}\n{}",
            text(&out)
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "--base-url {bad}: {}",
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&bad),
            "names the bad URL: {}",
            text(&out)
        );
        // With the URL fixed, the campaign runs with no --resubmit-unknown.
        let out = run(run_against(&dir, &sim, "u.toml", &[])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    assert_eq!(sim.stats().tasks_created, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_file_of_another_campaign_is_refused() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    dir.write(
        "one.toml",
        &gemini_campaign("one", &limits(2, "60s"), 1, "campaign one"),
    );
    dir.write(
        "two.toml",
        &gemini_campaign("two", &limits(2, "60s"), 1, "campaign two")
            .replace("dir = \"out\"", "dir = \"out2\""),
    );
    let out = run(run_against(&dir, &sim, "one.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = sim.stats();
    let journal = std::fs::read(dir.path().join("out/state.jsonl")).unwrap();

    let out = run(run_against(
        &dir,
        &sim,
        "two.toml",
        &["--state", "out/state.jsonl"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_no_panic(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("out/state.jsonl") && stderr.contains("`one`"),
        "names the file and its campaign: {stderr}"
    );
    assert_eq!(sim.stats(), before, "nothing was sent");
    assert_eq!(
        std::fs::read(dir.path().join("out/state.jsonl")).unwrap(),
        journal,
        "the other campaign's journal is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_key_exits_3_after_at_most_3_requests() {
    let sim = SimHandle::start(SimConfig {
        api_key: Some("the-right-key".into()),
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "k.toml",
        &gemini_campaign("k", &limits(2, "60s"), 25, "wrong key"),
    );
    let out = run(run_against(&dir, &sim, "k.toml", &[])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_no_panic(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TOAPIS_API_KEY"),
        "names the variable: {}",
        text(&out)
    );
    assert!(!text(&out).contains(KEY), "the key is never printed");
    let stats = sim.stats();
    eprintln!("refused key: {} requests", stats.unauthorized_401);
    assert!(stats.unauthorized_401 <= 3, "{}", stats.unauthorized_401);
    assert_eq!(stats.request_times_ms.len() as u32, stats.unauthorized_401);
    assert_eq!(stats.tasks_created, 0);
}

// ---------------------------------------------------------------------------
// 12. The key never shows up anywhere.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_appears_in_output_report_or_state() {
    const SECRET: &str = "sk-live-Q7wZ4pSecretValue93";
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    // And one that refuses it, so error paths are covered too.
    let refusing = SimHandle::start(SimConfig {
        api_key: Some("another-key".into()),
        ..fast_sim()
    })
    .await
    .unwrap();
    for (tag, extra_env, flags) in [
        ("vv", None, vec!["-vv"]),
        ("trace", Some(("RUST_LOG", "trace")), vec![]),
        (
            "json",
            Some(("RUST_LOG", "trace")),
            vec!["--log-format", "json"],
        ),
    ] {
        for server in [&sim, &refusing] {
            let dir = Dir::new();
            dir.write(
                "s.toml",
                &gemini_campaign("s", &limits(2, "60s"), 3, "secret prompt"),
            );
            let mut cmd = run_against(&dir, server, "s.toml", &flags);
            cmd.env("TOAPIS_API_KEY", SECRET);
            if let Some((k, v)) = extra_env {
                cmd.env(k, v);
            }
            let out = run(cmd).await;
            let expected = if std::ptr::eq(server, &sim) { 0 } else { 3 };
            assert_eq!(out.status.code(), Some(expected), "{tag}: {}", text(&out));
            // The verbose levels really are on, or this proves little.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let level = match tag {
                "vv" => "DEBUG",
                "json" => "\"TRACE\"",
                _ => "TRACE",
            };
            assert!(
                stderr.contains(level),
                "{tag}: expected {level} lines on stderr: {stderr}"
            );
            assert!(!text(&out).contains(SECRET), "{tag}: key in output");
            assert!(
                !text(&out).contains("Q7wZ4p"),
                "{tag}: part of the key in output"
            );
            for file in ["out/state.jsonl", "out/report.csv"] {
                let content = std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
                assert!(!content.contains(SECRET), "{tag}: key in {file}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 13. One run per campaign at a time.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_campaign_is_refused_while_one_runs() {
    let sim = SimHandle::start(SimConfig {
        time_scale: 1.0,
        no_metering: true,
        queue_time: 0.0,
        generation_time: Some(30.0),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let limits = "[limits]\nrequests_per_second = 100\nsubmit_per_second = 10000\nquery_per_second = 10000\nburst = 5\npoll_queued = \"50ms\"\npoll_in_progress = \"50ms\"\n";
    dir.write("lock.toml", &gemini_campaign("lock", limits, 3, "locked"));
    let first = Spawned::start(run_against(&dir, &sim, "lock.toml", &[]), &dir, "first");
    wait_for_events(&dir.path().join("out/state.jsonl"), "submitted", 1).await;

    let out = run(run_against(&dir, &sim, "lock.toml", &[])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_no_panic(&out);
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("lock") || stderr.contains("another run"),
        "{stderr}"
    );
    // `status` only reads: it works while the run holds the lock.
    let st = status(&dir, "lock.toml").await;
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));

    // SIGTERM stops a run like Ctrl-C does.
    first.signal("TERM");
    let out = first.wait(Duration::from_secs(15)).await;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert_eq!(sim.stats().tasks_created, 3, "the refused run sent nothing");
    // The lock went with the process: the next run may start.
    let out = run(run_against(&dir, &sim, "lock.toml", &["--dry-run"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

// ---------------------------------------------------------------------------
// 14 and 15. Ctrl-C.

/// A slow simulator: `generation` real seconds per task, small videos.
async fn slow_sim(generation: f64) -> SimHandle {
    SimHandle::start(SimConfig {
        time_scale: 1.0,
        no_metering: true,
        queue_time: 0.1,
        generation_time: Some(generation),
        video_size: 16 * 1024,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

const SLOW_LIMITS: &str = "[limits]\nrequests_per_second = 300\nsubmit_per_second = 10000\nquery_per_second = 10000\nburst = 10\nmax_in_flight = 8\npoll_queued = \"100ms\"\npoll_in_progress = \"100ms\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_acceptance_eighty_jobs() {
    const JOBS: usize = 80;
    const PROMPT: &str = "ctrl c prompt";
    let sim = slow_sim(1.0).await;
    let dir = Dir::new();
    dir.write("cc.toml", &gemini_campaign("cc", SLOW_LIMITS, JOBS, PROMPT));
    let child = Spawned::start(run_against(&dir, &sim, "cc.toml", &[]), &dir, "cc");
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.signal("INT");
    let out = child.wait(Duration::from_secs(20)).await;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(rows.len(), JOBS, "the report is written on Ctrl-C");
    let counts = status_counts(&rows);
    assert!(
        counts.get("succeeded").copied().unwrap_or(0) < JOBS,
        "the run finished before the interrupt: {counts:?}"
    );
    assert_eq!(counts.get("unknown"), None, "{counts:?}");
    assert_eq!(
        journal_events(&dir.path().join("out/state.jsonl"), "submitting"),
        journal_events(&dir.path().join("out/state.jsonl"), "submitted"),
        "every submit sent before Ctrl-C got its answer recorded"
    );

    // Resume (with room for every task at once, so the test stays short).
    let out = run(run_against(
        &dir,
        &sim,
        "cc.toml",
        &["--max-in-flight", "80"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert!(rows.iter().all(|r| r["status"] == "succeeded"));
    check_succeeded_videos(&dir, &rows, 16 * 1024);
    let stats = sim.stats();
    assert_eq!(stats.submits_by_prompt.len(), JOBS);
    assert!(
        stats.submits_by_prompt.values().all(|n| *n == 1),
        "{:?}",
        stats.submits_by_prompt
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_ctrl_c_quits_at_once_and_the_journal_stays_usable() {
    const JOBS: usize = 40;
    const PROMPT: &str = "double ctrl c";
    let sim = slow_sim(0.5).await;
    let dir = Dir::new();
    dir.write("dc.toml", &gemini_campaign("dc", SLOW_LIMITS, JOBS, PROMPT));
    let state = dir.path().join("out/state.jsonl");
    let child = Spawned::start(run_against(&dir, &sim, "dc.toml", &[]), &dir, "dc");
    wait_for_events(&state, "submitted", 10).await;
    child.signal("INT");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let signalled = Instant::now();
    child.signal("INT");
    let out = child.wait(Duration::from_secs(15)).await;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "{:?}",
        signalled.elapsed()
    );
    assert_no_panic(&out);

    let st = status(&dir, "dc.toml").await;
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));

    // A plain rerun sends nothing twice.
    let out = run(run_against(
        &dir,
        &sim,
        "dc.toml",
        &["--max-in-flight", "40"],
    ))
    .await;
    assert_no_panic(&out);
    let rows = dir.report("out/report.csv");
    let unknown = ids_with_status(&rows, "unknown");
    let expected = if unknown.is_empty() { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(expected), "{}", text(&out));
    assert!(
        sim.stats().submits_by_prompt.values().all(|n| *n == 1),
        "{:?}",
        sim.stats().submits_by_prompt
    );
    assert!(
        unknown.len() <= 2,
        "submit_concurrency bounds unknowns: {unknown:?}"
    );
    if !unknown.is_empty() {
        let out = run(run_against(&dir, &sim, "dc.toml", &["--resubmit-unknown"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let rows = dir.report("out/report.csv");
    assert!(rows.iter().all(|r| r["status"] == "succeeded"), "{rows:?}");
    check_succeeded_videos(&dir, &rows, 16 * 1024);
    assert!(part_files(dir.path()).is_empty());
    for row in &rows {
        let n = sim.stats().submits_by_prompt[&row["prompt"]];
        assert!(
            n == 1 || (n == 2 && unknown.contains(&row["job_id"])),
            "{row:?} submitted {n} times"
        );
    }
}

// ---------------------------------------------------------------------------
// Beyond the issue's list: resuming from another working directory.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_from_another_working_directory_changes_nothing() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    dir.write("sub/frames/start.png", "\u{89}PNG start");
    let mut toml = gemini_campaign("cwd", &limits(2, "60s"), 2, "cwd prompt");
    toml.push_str(
        "\n[[job]]\nid = \"framed\"\nmodel = \"veo3.1-fast\"\nprompt = \"with a local frame\"\nimage_urls = [\"frames/start.png\"]\n",
    );
    dir.write("sub/cwd.toml", &toml);

    // First from the manifest's own folder…
    let mut cmd = run_against(&dir, &sim, "cwd.toml", &[]);
    cmd.current_dir(dir.path().join("sub"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = sim.stats();

    // …then the same campaign from its parent folder: there is nothing left to do.
    let out = run(run_against(&dir, &sim, "sub/cwd.toml", &[])).await;
    let after = sim.stats();
    let rows = dir.report("sub/out/report.csv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("already exists"), "{}", text(&out));
    assert!(
        !stderr.contains("changed in the manifest"),
        "{}",
        text(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(rows.iter().all(|r| r["status"] == "succeeded"), "{rows:?}");
    assert_eq!(
        after.uploads, before.uploads,
        "the frame was uploaded again"
    );
    assert_eq!(
        after.downloads, before.downloads,
        "a video was fetched again"
    );
    assert_eq!(after.tasks_created, before.tasks_created);

    // And the first folder still sees a finished campaign.
    let mut cmd = runner_cmd(&dir);
    cmd.current_dir(dir.path().join("sub"))
        .args(["status", "cwd.toml"]);
    let st = run(cmd).await;
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("3 jobs: 3 succeeded"),
        "{}",
        text(&st)
    );
}

// ---------------------------------------------------------------------------
// A stub API for what the simulator cannot do.

mod stub {
    use super::*;
    use axum::Json;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use serde_json::json;

    /// An MP4's first box (`ftyp`), so the runner takes it for a video, then filler.
    pub const VIDEO: &[u8] = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom, and bytes all the same";

    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum Submit {
        /// 400 with a message, as the service does for a request it refuses.
        BadRequest,
        /// Never answers.
        Hang,
        /// Creates task `task_N`.
        Ok,
    }

    #[derive(Debug, Default)]
    pub struct Hits {
        pub submits: AtomicU32,
        pub polls: AtomicU32,
        pub downloads: AtomicU32,
    }

    #[derive(Debug, Clone)]
    struct Shared {
        submit: Submit,
        /// What the n-th poll of a task says; the last one repeats.
        statuses: Vec<&'static str>,
        base: String,
        hits: Arc<Hits>,
        polls_by_task: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    }

    #[derive(Debug)]
    pub struct Stub {
        pub base_url: String,
        pub hits: Arc<Hits>,
    }

    pub async fn start(submit: Submit, statuses: Vec<&'static str>) -> Stub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Hits::default());
        let shared = Shared {
            submit,
            statuses,
            base: base.clone(),
            hits: hits.clone(),
            polls_by_task: Default::default(),
        };
        let app = axum::Router::new()
            .route("/v1/videos/generations", post(on_submit))
            .route("/v1/videos/generations/{id}", get(on_poll))
            .route("/files/{name}", get(on_download))
            .with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stub {
            base_url: base,
            hits,
        }
    }

    async fn on_submit(State(s): State<Shared>) -> Response {
        let n = s.hits.submits.fetch_add(1, Ordering::SeqCst);
        match s.submit {
            Submit::BadRequest => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {
                    "message": "prompt rejected by the content filter (stub)",
                    "type": "invalid_request_error",
                    "code": "content_policy"
                }})),
            )
                .into_response(),
            Submit::Hang => {
                std::future::pending::<()>().await;
                StatusCode::OK.into_response()
            }
            Submit::Ok => Json(json!({
                "id": format!("task_{n}"),
                "object": "generation.task",
                "status": "queued",
                "progress": 0,
                "created_at": 1,
            }))
            .into_response(),
        }
    }

    async fn on_poll(State(s): State<Shared>, Path(id): Path<String>) -> Response {
        s.hits.polls.fetch_add(1, Ordering::SeqCst);
        let n = {
            let mut map = s.polls_by_task.lock().unwrap();
            let n = map.entry(id.clone()).or_default();
            *n += 1;
            *n - 1
        };
        let status = s.statuses[n.min(s.statuses.len() - 1)];
        let mut task =
            json!({"id": id, "object": "generation.task", "status": status, "progress": 50});
        if status == "completed" {
            task["result"] = json!({"data": [{"url": format!("{}/files/{id}.mp4", s.base)}]});
            task["expires_at"] = json!(4_000_000_000u64);
        }
        Json(task).into_response()
    }

    async fn on_download(State(s): State<Shared>) -> Response {
        s.hits.downloads.fetch_add(1, Ordering::SeqCst);
        VIDEO.into_response()
    }
}

// 5. A 400 on a request the runner thought valid fails the job at once, with the server's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_400_fails_the_job_at_once_with_the_servers_message() {
    let server = stub::start(stub::Submit::BadRequest, vec!["completed"]).await;
    let dir = Dir::new();
    dir.write(
        "b.toml",
        &gemini_campaign("b", &limits(2, "60s"), 3, "refused by the server"),
    );
    let mut cmd = runner_cmd(&dir);
    cmd.args(["run", "b.toml", "--base-url", &server.base_url]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    for row in &rows {
        assert_eq!(row["status"], "failed", "{row:?}");
        assert!(
            row["error"].contains("prompt rejected by the content filter (stub)"),
            "{row:?}"
        );
        assert!(row["error"].contains("400"), "{row:?}");
    }
    assert_eq!(
        server.hits.submits.load(Ordering::SeqCst),
        3,
        "one submit per job, no retries"
    );
}

// 10. An undocumented status is not final: keep polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undocumented_status_keeps_polling() {
    let server = stub::start(
        stub::Submit::Ok,
        vec![
            "submitted",
            "rendering",
            "rendering",
            "rendering",
            "completed",
        ],
    )
    .await;
    let dir = Dir::new();
    dir.write(
        "u.toml",
        &gemini_campaign("u", &limits(2, "60s"), 2, "odd status"),
    );
    let mut cmd = runner_cmd(&dir);
    cmd.args(["run", "u.toml", "--base-url", &server.base_url]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    for row in &rows {
        assert_eq!(row["status"], "succeeded", "{row:?}");
        assert_eq!(row["sha256"], runner::util::sha256_hex(stub::VIDEO));
    }
    assert_eq!(server.hits.polls.load(Ordering::SeqCst), 2 * 5);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("`rendering`").count(),
        2,
        "logged once per task, not per poll: {stderr}"
    );
}

// 14c. One Ctrl-C waits for a submit in flight, but not forever (README: up to 8 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ctrl_c_gives_up_on_a_hung_submit_after_the_grace_period() {
    let server = stub::start(stub::Submit::Hang, vec!["completed"]).await;
    let dir = Dir::new();
    dir.write(
        "g.toml",
        &gemini_campaign("g", &limits(2, "60s"), 2, "hung submit, one ctrl-c"),
    );
    let mut cmd = runner_cmd(&dir);
    cmd.args(["run", "g.toml", "--base-url", &server.base_url]);
    let child = Spawned::start(cmd, &dir, "grace");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.hits.submits.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no submit arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.signal("INT");
    let out = child.wait(Duration::from_secs(15)).await;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert_eq!(server.hits.submits.load(Ordering::SeqCst), 1);
    // What the journal says, read back offline: the hung submit is `unknown`.
    let st = status(&dir, "g.toml").await;
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("1 unknown"),
        "{}",
        text(&st)
    );
    // The report and summary written by the interrupted run must say the same.
    let rows = dir.report("out/report.csv");
    let counts = status_counts(&rows);
    assert_eq!(
        counts.get("unknown"),
        Some(&1),
        "report written on Ctrl-C: {rows:?}\n{}",
        text(&out)
    );
    assert_eq!(counts.get("pending"), Some(&1), "{rows:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("--resubmit-unknown"),
        "{}",
        text(&out)
    );
}

// 14b. The second Ctrl-C does not wait for a submit that never answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_ctrl_c_does_not_wait_for_a_hung_submit() {
    let server = stub::start(stub::Submit::Hang, vec!["completed"]).await;
    let dir = Dir::new();
    dir.write(
        "h.toml",
        &gemini_campaign("h", &limits(2, "60s"), 2, "hung submit"),
    );
    let mut cmd = runner_cmd(&dir);
    cmd.args(["run", "h.toml", "--base-url", &server.base_url]);
    let mut child = Spawned::start(cmd, &dir, "hang");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.hits.submits.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no submit arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.signal("INT");
    // The first Ctrl-C waits (up to 8 s) for the submit already sent.
    assert!(
        child.wait_for(Duration::from_millis(700)).await.is_none(),
        "the first Ctrl-C did not wait for the submit in flight"
    );
    let signalled = Instant::now();
    child.signal("INT");
    let out = child.wait(Duration::from_secs(10)).await;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "second Ctrl-C took {:?}",
        signalled.elapsed()
    );
    let st = status(&dir, "h.toml").await;
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("unknown"),
        "the hung submit is unknown: {}",
        text(&st)
    );
}

// ---------------------------------------------------------------------------
// Uploads: a 429 slows the run, it does not fail the jobs that need the image.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_429_slows_the_run_and_jobs_still_succeed() {
    let sim = SimHandle::start(SimConfig {
        rate_limit: Some(1.0),
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write("frames/a.png", "\u{89}PNG a");
    dir.write("frames/b.png", "\u{89}PNG b");
    dir.write(
        "up.toml",
        &format!(
            "name = \"up\"\n{}\n[defaults]\nmodel = \"veo3.1-fast\"\n[[job]]\nid = \"framed\"\nprompt = \"two frames\"\nimage_urls = [\"frames/a.png\", \"frames/b.png\"]\n",
            limits(2, "60s")
        ),
    );
    let out = run(run_against(&dir, &sim, "up.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = sim.stats();
    assert!(
        stats.rate_limited_429 >= 1,
        "the test needs a 429: {stats:?}"
    );
    assert_eq!(stats.uploads, 2);
    assert_eq!(dir.report("out/up/report.csv")[0]["status"], "succeeded");
}
