//! End-to-end: the local checks before the first paid call (issue 13, SPEC §3).
//! Each refused case exits 2 and the simulator saw no submit at all.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::*;
use runner::sim::SimHandle;

/// Two jobs, `[output]` as given.
fn campaign(output: &str) -> String {
    format!(
        "name = \"l\"\n{FAST_LIMITS}\n[output]\n{output}\n\n[defaults]\nmodel = \"gemini_omni_flash\"\n\n\
         [[job]]\nid = \"report\"\nprompt = \"a red kite\"\n\n[[job]]\nid = \"b\"\nprompt = \"a blue kite\"\n"
    )
}

async fn refused(output: &str, prepare: impl FnOnce(&Dir), expect: &str) {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    dir.write("l.toml", &campaign(output));
    prepare(&dir);
    let out = run(run_against(&dir, &sim, "l.toml", &[])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_no_panic(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(expect), "names {expect:?}: {}", text(&out));
    let stats = sim.stats();
    assert_eq!(stats.tasks_created, 0, "nothing paid: {stats:?}");
    assert_eq!(stats.polls + stats.uploads, 0, "nothing sent: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_the_way_is_refused_before_paying() {
    refused(
        "dir = \"out\"",
        |dir| {
            dir.write("out/b.mp4", "someone else's clip");
        },
        "out/b.mp4",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_report_path_is_refused_before_paying() {
    refused(
        "dir = \"out\"\nreport = \"afile/report.csv\"",
        |dir| {
            dir.write("afile", "a file where a folder must be");
        },
        "afile",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filename_that_lands_on_the_report_is_refused() {
    refused(
        "dir = \"out\"\nfilename = \"{id}.csv\"",
        |_| {},
        "the report",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filename_that_lands_on_the_state_file_is_refused() {
    refused(
        "dir = \"out\"\nfilename = \"{id}.jsonl\"\nstate = \"out/b.jsonl\"",
        |_| {},
        "the state file",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_existing_leaves_that_job_pending_and_runs_the_rest() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    dir.write("l.toml", &campaign("dir = \"out\""));
    dir.write("out/b.mp4", "someone else's clip");
    let out = run(run_against(&dir, &sim, "l.toml", &["--skip-existing"])).await;
    // One job did not succeed (it was left unsent): exit 1, as for any pending job.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    let b = rows.iter().find(|r| r["job_id"] == "b").unwrap();
    assert_eq!(b["status"], "pending", "{b:?}");
    assert!(b["error"].contains("--skip-existing"), "{b:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/b.mp4")).unwrap(),
        "someone else's clip",
        "the file in the way is untouched"
    );
    assert_eq!(sim.stats().tasks_created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_readable_by_others_and_a_killed_runs_temp_files_are_cleaned() {
    use std::os::unix::fs::PermissionsExt;
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    dir.write("l.toml", &campaign("dir = \"out\""));
    let stale = dir.write("out/.report.csv.AbC123.tmp", "half a report");
    let out = run(run_against(&dir, &sim, "l.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !stale.exists(),
        "a killed run's temp file is removed at the next start"
    );
    let mode = std::fs::metadata(dir.path().join("out/report.csv"))
        .unwrap()
        .permissions()
        .mode();
    // 0644 under the usual umask 022: readable by group and others (tempfile alone gives 0600).
    assert_eq!(mode & 0o044, 0o044, "mode {mode:o}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_pipe_ends_validate_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = Dir::new();
    let mut toml = campaign("dir = \"out\"");
    for i in 0..2000 {
        toml.push_str(&format!(
            "\n[[job]]\nid = \"x{i}\"\nprompt = \"kite {i}\"\n"
        ));
    }
    dir.write("l.toml", &toml);
    let mut cmd = runner_cmd(&dir);
    cmd.args(["validate", "l.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    // The reader is dropped here: `| head -1`.
    let out = child.wait_with_output().unwrap();
    assert!(!first.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_with_only_records_retries_for_the_named_jobs_only() {
    // Every generation fails: both jobs end failed after their one paid attempt.
    let failing = SimHandle::start(runner::sim::SimConfig {
        fail_rate: 1.0,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let text_now = campaign("dir = \"out\"").replace("max_attempts = 2", "max_attempts = 1");
    dir.write("l.toml", &text_now);
    let out = run(run_against(&dir, &failing, "l.toml", &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(failing.stats().tasks_created, 2, "{}", text(&out));

    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let out = run(run_against(
        &dir,
        &sim,
        "l.toml",
        &["--retry", "failed", "--only", "b", "--yes"],
    ))
    .await;
    assert_no_panic(&out);
    let state = dir.path().join("out/state.jsonl");
    // Recorded for the other job too, a later plain run would pay for it unasked.
    assert_eq!(journal_events(&state, "retry"), 1, "{}", text(&out));
    assert_eq!(sim.stats().tasks_created, 1, "{}", text(&out));
    let out = run(run_against(&dir, &sim, "l.toml", &[])).await;
    assert_eq!(
        sim.stats().tasks_created,
        1,
        "a plain run pays for nothing: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_write_failure_exits_74_naming_the_file_and_a_plain_rerun_saves_the_paid_clip() {
    // A file-size limit (`ulimit -f`, with SIGXFSZ ignored) makes every write past
    // 32 KiB fail with EFBIG, as a full disk fails with ENOSPC: the 64 KiB videos
    // cannot be saved, while the small state file and report can.
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    dir.write("l.toml", &campaign("dir = \"out\""));
    // The same program and environment as `runner_cmd`, through a shell that sets the limit.
    let base = runner_cmd(&dir);
    let mut limited = std::process::Command::new("sh");
    limited
        .args(["-c", "trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\""])
        .arg(base.get_program())
        .args(["run", "l.toml", "--base-url", &sim.base_url()])
        .env_clear()
        .envs(base.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null());
    let out = run(limited).await;
    assert_eq!(out.status.code(), Some(74), "{}", text(&out));
    assert_no_panic(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(".mp4") && stderr.contains("too large"),
        "names the file and the OS error: {}",
        text(&out)
    );
    assert!(!stderr.contains("Fix the key"), "{}", text(&out));
    let paid = sim.stats().tasks_created;
    assert!(paid > 0, "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert!(
        rows.iter().all(|r| r["status"] != "failed"),
        "a paid clip not saved for a local reason is not failed: {rows:?}"
    );

    // The disk has room again: a plain rerun downloads what was paid, pays nothing twice.
    let out = run(run_against(&dir, &sim, "l.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&2), "{rows:?}");
    check_succeeded_videos(&dir, &rows, fast_sim().video_size);
    assert_eq!(sim.stats().tasks_created, 2, "nothing paid twice");
}
