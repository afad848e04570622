//! End-to-end: worlds the simulator does not show by default (issue 13).
//! An outage pauses the run (and past `limits.outage_timeout` stops it with
//! exit 75, every job still pending); a balance that runs out stops submits
//! and finishes what is paid; gateway answers after the task was created make
//! jobs `unknown`; odd status spellings, answers for other tasks, late URLs and
//! HTML at the video URL are checked before they are believed. Each test
//! asserts on the simulator's own counts.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use runner::sim::{SimConfig, SimHandle};

/// The shared fast limits, with `outage_timeout` as given.
fn limits(outage_timeout: &str) -> String {
    format!("{FAST_LIMITS}outage_timeout = \"{outage_timeout}\"\n")
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_exits_75_with_every_job_pending_then_a_plain_rerun_finishes() {
    let dir = Dir::new();
    dir.write(
        "c.toml",
        &gemini_campaign("c", &limits("2s"), 6, "a calm lake"),
    );
    let url = format!("http://127.0.0.1:{}", dead_port());
    let mut cmd = runner_cmd(&dir);
    cmd.args(["run", "c.toml", "--base-url", &url]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert_no_panic(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("outage_timeout"), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(rows.len(), 6);
    for row in &rows {
        assert_eq!(
            row["status"], "pending",
            "no job failed for the world: {row:?}"
        );
        assert_eq!(row["task_id"], "", "{row:?}");
    }

    // The service is back: a plain rerun, no flag, finishes everything.
    let sim = SimHandle::start(fast_sim()).await.expect("sim");
    let out = run(run_against(&dir, &sim, "c.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&6), "{rows:?}");
    check_succeeded_videos(&dir, &rows, fast_sim().video_size);
    let stats = sim.stats();
    assert_eq!(stats.tasks_created, 6, "nothing sent twice: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_that_runs_out_stops_submits_then_a_top_up_finishes_the_campaign() {
    let sim = SimHandle::start(SimConfig {
        balance: Some(0.35),
        price: 0.10,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "m.toml",
        &gemini_campaign("m", &limits("2s"), 8, "a paper boat"),
    );
    let out = run(run_against(&dir, &sim, "m.toml", &["--max-in-flight", "2"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("balance") && stderr.contains("Top up"),
        "{}",
        text(&out)
    );
    assert!(!stderr.contains("Fix the key"), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    let counts = status_counts(&rows);
    assert_eq!(
        counts.get("succeeded"),
        Some(&3),
        "the paid ones finish: {counts:?}"
    );
    assert_eq!(counts.get("pending"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("failed"), None, "{counts:?}");
    check_succeeded_videos(&dir, &rows, fast_sim().video_size);
    let stats = sim.stats();
    assert!(
        stats.payment_402 <= 3,
        "stops at once: {} 402s",
        stats.payment_402
    );

    sim.top_up(10.0);
    let out = run(run_against(&dir, &sim, "m.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&8));
    let stats = sim.stats();
    assert_eq!(stats.tasks_created, 8, "nothing paid twice: {stats:?}");
    assert!(
        stats.submits_by_prompt.values().all(|n| *n == 1),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_answers_after_the_task_was_created_make_jobs_unknown_never_resent() {
    let sim = SimHandle::start(SimConfig {
        submit_gateway: 0.4,
        gateway_status: 524,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "g.toml",
        &gemini_campaign("g", &limits("2s"), 12, "a lighthouse"),
    );
    let out = run(run_against(&dir, &sim, "g.toml", &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    let counts = status_counts(&rows);
    let gateway = sim
        .stats()
        .injected
        .get("submit_gateway")
        .copied()
        .unwrap_or(0) as usize;
    assert!(gateway > 0, "the knob fired");
    assert_eq!(counts.get("unknown"), Some(&gateway), "{counts:?}");
    assert_eq!(counts.get("succeeded"), Some(&(12 - gateway)), "{counts:?}");
    let stats = sim.stats();
    assert!(
        stats.submits_by_prompt.values().all(|n| *n == 1),
        "no job sent twice: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_answers_are_checked_before_they_are_believed() {
    // Upper-case statuses with "N%" progress; the first poll of each task
    // answers for another task; the first completed answer has no URL; the
    // first GET of each video is an HTML page (as text/html, then as
    // octet-stream so only its bytes tell).
    for html_as_octet in [false, true] {
        let sim = SimHandle::start(SimConfig {
            shout: true,
            swap_ids: 1,
            late_url: 1,
            html_downloads: 1,
            html_as_octet,
            ..fast_sim()
        })
        .await
        .unwrap();
        let dir = Dir::new();
        dir.write(
            "o.toml",
            &gemini_campaign("o", &limits("2s"), 6, "a windmill"),
        );
        let out = run(run_against(&dir, &sim, "o.toml", &[])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let rows = dir.report("out/report.csv");
        assert_eq!(status_counts(&rows).get("succeeded"), Some(&6), "{rows:?}");
        // Every file holds its own task's bytes, not another's and not a page.
        check_succeeded_videos(&dir, &rows, fast_sim().video_size);
        let tasks: std::collections::BTreeSet<_> =
            rows.iter().map(|r| r["task_id"].clone()).collect();
        assert_eq!(tasks.len(), 6);
        assert_eq!(sim.stats().tasks_created, 6);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_in_the_middle_loses_nothing_and_work_resumes_when_it_ends() {
    let sim = SimHandle::start(SimConfig {
        time_scale: 1.0,
        no_metering: true,
        queue_time: 0.05,
        generation_time: Some(0.3),
        video_size: 16 * 1024,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let limits = limits("60s").replace("max_in_flight = 20", "max_in_flight = 4");
    dir.write("o.toml", &gemini_campaign("o", &limits, 16, "a harbour"));
    let cmd = run_against(&dir, &sim, "o.toml", &[]);
    let child = Spawned::start(cmd, &dir, "outage");
    let state = dir.path().join("out/state.jsonl");
    wait_for_events(&state, "submitted", 4).await;
    sim.set_outage(true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sim.set_outage(false);
    let out = child.wait(Duration::from_secs(60)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&16), "{rows:?}");
    let stats = sim.stats();
    assert!(stats.outage_503 > 0, "the outage was seen: {stats:?}");
    assert_eq!(stats.tasks_created, 16, "nothing sent twice: {stats:?}");
    // One probe at a time while it lasted, not every job backing off on its own.
    assert!(
        stats.outage_503 < 40,
        "{} calls during the outage",
        stats.outage_503
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mangled_range_answer_restarts_from_byte_0_and_the_bytes_are_right() {
    // Cut downloads leave `.part`s; every first resume is answered 206 with an
    // empty body and a range that starts at 0: each must start over, not fail
    // the same way on every run. (A clip cut on all of its tries in one run is
    // `pending` with its URL kept; the next plain run fetches it.)
    let sim = SimHandle::start(SimConfig {
        download_cut: 0.3,
        bad_range: 1,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write(
        "r.toml",
        &gemini_campaign("r", &limits("2s"), 16, "a river"),
    );
    let mut rows = Vec::new();
    for _ in 0..3 {
        let out = run(run_against(&dir, &sim, "r.toml", &[])).await;
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
        rows = dir.report("out/report.csv");
        assert!(
            rows.iter()
                .all(|r| r["status"] == "succeeded" || r["status"] == "pending"),
            "{rows:?}"
        );
        if out.status.code() == Some(0) {
            break;
        }
    }
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&16), "{rows:?}");
    check_succeeded_videos(&dir, &rows, fast_sim().video_size);
    let stats = sim.stats();
    assert_eq!(stats.tasks_created, 16, "nothing paid twice: {stats:?}");
    assert!(
        stats.injected.get("bad_range").copied().unwrap_or(0) > 0,
        "some resume met the bad range: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_download_is_cut_and_resumed_from_its_part() {
    // The first GET of each video sends 1 byte per simulated second (1 KB/s of
    // real time here): far below `download_min_rate`, so it is cut after
    // `download_stall` and resumed from the `.part`, not left holding a slot.
    let sim = SimHandle::start(SimConfig {
        trickle: 1,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let limits = format!(
        "{}download_min_rate = \"8KiB/s\"\ndownload_stall = \"300ms\"\n",
        limits("60s")
    );
    dir.write("t.toml", &gemini_campaign("t", &limits, 3, "a slow river"));
    let out = run(run_against(&dir, &sim, "t.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&3), "{rows:?}");
    check_succeeded_videos(&dir, &rows, fast_sim().video_size);
    let stats = sim.stats();
    assert_eq!(stats.injected.get("trickle"), Some(&3), "{stats:?}");
    assert!(stats.downloads >= 6, "each was fetched again: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_inside_an_outage_window_waits_for_it_and_loses_nothing() {
    // `--outage 0,400` at time scale 0.001: 503 pages for the first 0.4 s.
    let sim = SimHandle::start(SimConfig {
        outages: vec![runner::sim::Window {
            start: 0.0,
            len: 400.0,
        }],
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let limits = limits("60s").replace("max_in_flight = 20", "max_in_flight = 3");
    dir.write("w.toml", &gemini_campaign("w", &limits, 12, "a bridge"));
    let out = run(run_against(&dir, &sim, "w.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&12), "{rows:?}");
    let stats = sim.stats();
    assert!(stats.outage_503 > 0, "the outage was seen: {stats:?}");
    assert_eq!(stats.tasks_created, 12, "nothing sent twice: {stats:?}");
}

/// `gemini_campaign`, with seedance-2 (a model that takes `client_business_id`).
fn seedance_campaign(name: &str, n: usize, prompt: &str) -> String {
    gemini_campaign(name, &limits("60s"), n, prompt).replace(
        "model = \"gemini_omni_flash\"",
        "model = \"seedance-2\"\nduration = 5",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_submit_of_a_model_with_client_business_id_is_looked_up_and_adopted() {
    // 524 after the task was created: for seedance-2 the task is found by the
    // id the submit carried, adopted, and the job succeeds, paid once, no flag.
    let sim = SimHandle::start(SimConfig {
        submit_gateway: 0.4,
        gateway_status: 524,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write("s.toml", &seedance_campaign("s", 10, "a red canyon"));
    let out = run(run_against(&dir, &sim, "s.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&10), "{rows:?}");
    check_succeeded_videos(&dir, &rows, fast_sim().video_size);
    let stats = sim.stats();
    let lost = stats.injected.get("submit_gateway").copied().unwrap_or(0);
    assert!(lost > 0, "the knob fired: {stats:?}");
    assert_eq!(stats.tasks_created, 10, "one task per job: {stats:?}");
    assert!(
        stats.submits_by_prompt.values().all(|n| *n == 1),
        "{stats:?}"
    );
    let state = dir.path().join("out/state.jsonl");
    assert_eq!(journal_events(&state, "submit_unknown"), lost as usize);
    let journal = std::fs::read_to_string(&state).unwrap();
    assert!(
        journal.contains("\"client_business_id\":\"runner-"),
        "recorded before sending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_submit_that_created_nothing_is_sent_again_as_the_same_attempt() {
    // The proxy answers 502 without forwarding: the lookup finds nothing, so the
    // attempt is sent again (same client_business_id) and every job succeeds once.
    let sim = SimHandle::start(SimConfig {
        submit_gateway: 0.4,
        gateway_status: 502,
        gateway_first: true,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write("n.toml", &seedance_campaign("n", 10, "a white dune"));
    let out = run(run_against(&dir, &sim, "n.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&10), "{rows:?}");
    let stats = sim.stats();
    assert!(stats.injected.get("submit_gateway").copied().unwrap_or(0) > 0);
    assert_eq!(stats.tasks_created, 10, "{stats:?}");
    let state = dir.path().join("out/state.jsonl");
    assert!(journal_events(&state, "submit_not_found") > 0);
    for row in &rows {
        assert_eq!(
            row["attempts"], "1",
            "the same attempt, sent again: {row:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_left_by_an_earlier_run_is_settled_by_a_plain_rerun() {
    // A run stopped with a lookup still pending (the service gone): the next plain
    // run looks the task up first and adopts it.
    let sim = SimHandle::start(SimConfig {
        submit_gateway: 1.0,
        gateway_status: 524,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let manifest = seedance_campaign("u", 3, "a green valley")
        .replace("poll_queued = \"5ms\"", "poll_queued = \"30s\"");
    dir.write("u.toml", &manifest);
    let child = Spawned::start(run_against(&dir, &sim, "u.toml", &[]), &dir, "unknown");
    let state = dir.path().join("out/state.jsonl");
    wait_for_events(&state, "submit_unknown", 3).await;
    child.signal("INT");
    let out = child.wait(Duration::from_secs(30)).await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sim.stats().tasks_created, 3);

    // Every submit still answers 524, but the rerun sends none: it only looks up.
    let manifest = manifest.replace("poll_queued = \"30s\"", "poll_queued = \"5ms\"");
    dir.write("u.toml", &manifest);
    let out = run(run_against(&dir, &sim, "u.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/report.csv");
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&3), "{rows:?}");
    assert_eq!(sim.stats().tasks_created, 3, "nothing paid twice");
}
