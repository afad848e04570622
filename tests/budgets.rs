//! End-to-end: the provider's real budgets (issue 14). Separate submit and
//! query buckets, 429s that name one of them, a campaign with no rate keys
//! against the simulator metering the default tier, and the balance call
//! (`runner balance`, the check before the first paid call, `--ignore-balance`).
//! Each test asserts on the simulator's own counts.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::*;
use runner::sim::{SimConfig, SimHandle};

/// `n` gemini jobs priced `per_video` each, with these extra `[limits]` lines.
fn priced_campaign(n: usize, per_video: f64, limits: &str) -> String {
    let campaign = gemini_campaign("b", &format!("{FAST_LIMITS}{limits}"), n, "a quiet bay");
    campaign.replacen(
        "[output]",
        &format!("[pricing]\ngemini_omni_flash = {{ per_video = {per_video} }}\n\n[output]"),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_naming_the_query_bucket_holds_polls_and_not_submits() {
    const JOBS: usize = 20;
    // The real clock; the query bucket small, the submit bucket out of the way.
    let sim = SimHandle::start(SimConfig {
        time_scale: 1.0,
        queue_time: 0.0,
        generation_time: Some(0.3),
        video_size: 16 * 1024,
        submit_rate: 10_000.0,
        submit_burst: 10_000,
        query_rate: 40.0,
        query_burst: 20,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    // The runner believes queries are plentiful; submits go one every 50 ms for about a second.
    let limits = "[limits]\nsubmit_per_second = 20\nsubmit_burst = 1\nquery_per_second = 10000\n\
                  max_in_flight = 50\npoll_queued = \"5ms\"\npoll_in_progress = \"5ms\"\ntask_timeout = \"60s\"\n";
    dir.write("q.toml", &gemini_campaign("q", limits, JOBS, "a harbour"));
    let out = run(run_against(&dir, &sim, "q.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_panic(&out);
    let stats = sim.stats();
    assert_eq!(stats.tasks_created as usize, JOBS, "429 never fails a job");
    let query_429s = stats
        .rate_limited_by_category
        .get("async_query")
        .copied()
        .unwrap_or(0);
    assert!(query_429s >= 1, "{stats:?}");
    assert_eq!(stats.rate_limited_by_category.get("async_submit"), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("429 on poll (async_query): query calls wait"),
        "{}",
        text(&out)
    );
    // The first query 429 came while submits were still going, and each made
    // polls wait a whole second (Retry-After on the real clock is whole seconds)...
    let first_429 = stats.rate_limited_ms[0];
    let submits = &stats.submit_times_ms;
    let last_submit = *submits.last().unwrap();
    assert!(
        first_429 + 300 < last_submit,
        "the first 429 at {first_429} ms, the last submit at {last_submit} ms"
    );
    // ...and submits kept their pace through it: no gap near that second.
    let gap = submits.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(gap < 400, "a {gap} ms gap between submits: {submits:?}");
    let rows = dir.report("out/report.csv");
    assert_eq!(status_counts(&rows).get("succeeded"), Some(&JOBS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_saying_nothing_remains_holds_submits_until_the_reset() {
    const JOBS: usize = 20;
    // The provider's submit bucket holds 5 where the runner was told 50: a run
    // that trusted its own count would send 48 at once and earn 429s. On the
    // real clock (10 tokens a second, about 1.5 s in all), so that even a
    // loaded machine submits faster than the bucket refills and meets its end.
    let sim = SimHandle::start(SimConfig {
        time_scale: 1.0,
        queue_time: 0.0,
        generation_time: Some(0.2),
        video_size: 16 * 1024,
        submit_rate: 10.0,
        submit_burst: 5,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let limits = "[limits]\nsubmit_per_second = 10\nsubmit_burst = 50\nsubmit_concurrency = 1\nmax_in_flight = 50\npoll_queued = \"200ms\"\npoll_in_progress = \"200ms\"\n";
    dir.write(
        "h.toml",
        &gemini_campaign("h", limits, JOBS, "a lighthouse"),
    );
    let out = run(run_against(&dir, &sim, "h.toml", &["-v"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = sim.stats();
    assert_eq!(stats.tasks_created as usize, JOBS);
    // Each answer said what was left; at 0 the runner waited for the reset instead of asking.
    assert_eq!(
        stats.rate_limited_429, 0,
        "{:?}",
        stats.rate_limited_by_category
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the provider's submit budget is empty for"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rate_keys_against_default_tier_buckets_finishes_with_few_429s() {
    const JOBS: usize = 150;
    // The provider's default tier, on a clock 100× fast: 500 submits/s after a burst of 50.
    let sim = SimHandle::start(SimConfig {
        time_scale: 0.01,
        queue_time: 0.0,
        generation_time: Some(3.0),
        video_size: 16 * 1024,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let limits = "[limits]\nmax_in_flight = 200\ndownloads = 8\n";
    dir.write("d.toml", &gemini_campaign("d", limits, JOBS, "a field"));
    let out = run(run_against(
        &dir,
        &sim,
        "d.toml",
        &["--sim-time-scale", "0.01"],
    ))
    .await;

    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = sim.stats();
    assert_eq!(stats.tasks_created as usize, JOBS);
    let requests = stats.request_times_ms.len();
    let limited = stats.rate_limited_429 as usize;
    assert!(
        limited * 50 < requests,
        "{limited} 429s in {requests} requests: {:?}",
        stats.rate_limited_by_category
    );
    // The makespan against the least the buckets allow is a benchmark's figure
    // (bench/campaigns.py --only budgets), not asserted here.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_above_the_balance_is_refused_with_exit_3_and_nothing_sent() {
    let sim = SimHandle::start(SimConfig {
        balance: Some(1.0),
        price: 0.10,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    // 6 jobs at $0.40 by the manifest's prices: $2.40 against $1.00.
    dir.write("b.toml", &priced_campaign(6, 0.40, ""));
    let out = run(run_against(&dir, &sim, "b.toml", &[])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("$2.40, is more than the key's balance, $1.00; nothing was sent"),
        "{}",
        text(&out)
    );
    assert!(stderr.contains("--ignore-balance"), "{}", text(&out));
    let stats = sim.stats();
    assert_eq!(stats.balance_calls, 1);
    assert_eq!(stats.tasks_created, 0);
    assert_eq!(stats.polls + stats.uploads, 0);
    assert_eq!(stats.request_times_ms.len(), 1, "only the balance call");

    // The flag runs it anyway (the simulator charges $0.10 a task: all six fit).
    let out = run(run_against(&dir, &sim, "b.toml", &["--ignore-balance"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("running anyway (--ignore-balance)"));
    assert_eq!(sim.stats().tasks_created, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_balance_call_still_runs_with_a_note() {
    let sim = SimHandle::start(SimConfig {
        no_balance_call: true,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write("n.toml", &priced_campaign(3, 0.40, ""));
    let out = run(run_against(&dir, &sim, "n.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("the balance could not be read"))
        .collect();
    assert_eq!(notes.len(), 1, "{}", text(&out));
    assert!(notes[0].contains("HTTP 404"), "{}", notes[0]);
    assert_eq!(sim.stats().tasks_created, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_balance_shows_the_balance_beside_the_plan() {
    let sim = SimHandle::start(SimConfig {
        balance: Some(5.0),
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    dir.write("b.toml", &priced_campaign(6, 0.40, ""));
    let balance = |dir: &Dir, sim: &SimHandle| {
        let mut cmd = runner_cmd(dir);
        cmd.args(["balance", "b.toml", "--base-url", &sim.base_url()]);
        cmd
    };
    let out = run(balance(&dir, &sim)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "balance: $5.00 left on this key ($0.00 used)\n\
         plan: 6 jobs to submit, estimated cost $2.40\n\
         the balance covers the plan: $2.60 would be left\n"
    );
    // Fourteen jobs ($5.60) do not fit: said, and still exit 0 (nothing was asked to run).
    dir.write("b.toml", &priced_campaign(14, 0.40, ""));
    let out = run(balance(&dir, &sim)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the balance does not cover the plan: $0.60 short; `runner run` refuses it (exit 3) unless --ignore-balance"),
        "{stdout}"
    );
    assert_eq!(sim.stats().tasks_created, 0);

    // The dry run shows it too.
    let mut cmd = runner_cmd(&dir);
    cmd.args(["run", "b.toml", "--dry-run", "--base-url", &sim.base_url()]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("balance: $5.00 left on this key"),
        "{}",
        text(&out)
    );

    // A refused key is exit 3; an unlimited key says so (the in-process simulator's).
    let strict = SimHandle::start(SimConfig {
        api_key: Some(KEY.into()),
        ..fast_sim()
    })
    .await
    .unwrap();
    let mut cmd = runner_cmd(&dir);
    cmd.env("TOAPIS_API_KEY", "wrong").args([
        "balance",
        "b.toml",
        "--base-url",
        &strict.base_url(),
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let mut cmd = runner_cmd(&dir);
    cmd.env_remove("TOAPIS_API_KEY")
        .args(["balance", "b.toml", "--simulate"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("balance: unlimited (unlimited_quota)"),
        "{}",
        text(&out)
    );
}
