//! End-to-end: failures of the world are not failures of jobs (issue 13).
//! A service that cannot be reached pauses the run and, past
//! `limits.outage_timeout`, stops it with exit 75, every job still pending;
//! a plain rerun against a live service then finishes the campaign.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use runner::sim::SimHandle;

/// Fast polls; a short outage timeout so the test ends soon after it.
const LIMITS: &str = r#"
[limits]
requests_per_second = 1000
burst = 20
max_in_flight = 20
poll_queued = "5ms"
poll_in_progress = "5ms"
task_timeout = "60s"
outage_timeout = "2s"
"#;

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
    dir.write("c.toml", &gemini_campaign("c", LIMITS, 6, "a calm lake"));
    let url = format!("http://127.0.0.1:{}", dead_port());
    let mut cmd = runner_cmd(&dir);
    cmd.args(["run", "c.toml", "--base-url", &url]);
    let started = std::time::Instant::now();
    let out = run(cmd).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert_no_panic(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("outage_timeout"), "{}", text(&out));
    // Not a figure to assert on tightly (the machine is shared): a sanity bound
    // that the run did stop on its own, well before the task timeout.
    assert!(took < Duration::from_secs(30), "took {took:?}");
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
