//! End-to-end: the flags that shape a run — --dry-run, --only, --retry failed, --shard, completions.

mod common;

use common::*;
use runner::sim::{SimConfig, SimHandle};

fn campaign(dir: &Dir, name: &str, n: usize, extra_limits: &str) -> String {
    named_campaign(dir, name, n, &format!("{FAST_LIMITS}{extra_limits}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_a_pipe_prints_summaries_and_no_control_codes() {
    let sim = SimHandle::start(SimConfig {
        generation_time: Some(0.3),
        time_scale: 1.0,
        no_metering: true,
        queue_time: 0.0,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "pipe", 6, "");
    let mut cmd = run_against(&dir, &sim, &file, &[]);
    cmd.env_remove("NO_COLOR"); // a pipe alone must be enough
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    assert!(
        !all.contains(&0x1b),
        "no escape sequences in a pipe:\n{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("done ·"),
        "a summary line:\n{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_sends_nothing() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "dry", 4, "");
    let out = run(run_against(&dir, &sim, &file, &["--dry-run"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 jobs would be submitted"), "{stdout}");
    // Nothing but the balance, read to show it beside the plan.
    let stats = sim.stats();
    assert_eq!(stats.balance_calls, 1);
    assert_eq!(stats.request_times_ms.len(), 1);
    assert!(stdout.contains("balance: unlimited"), "{stdout}");
    assert!(
        !dir.path().join("out/dry/state.jsonl").exists(),
        "a dry run writes no state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_runs_the_named_jobs_and_reports_all() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "only", 4, "");
    let out = run(run_against(&dir, &sim, &file, &["--only", "only-1,only-3"])).await;
    // SPEC §2: with --only, the exit code covers the selected jobs; the others
    // being pending is not a failure.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 of 4 jobs selected (--only), in ") && stdout.contains(": 2 succeeded"),
        "the ending speaks of the selected jobs: {}",
        text(&out)
    );
    assert!(!stdout.contains("pending"), "{}", text(&out));
    let stats = sim.stats();
    assert_eq!(stats.submits, 2);
    assert!(stats.submits_by_prompt.contains_key("only prompt 1"));
    assert!(stats.submits_by_prompt.contains_key("only prompt 3"));
    let rows = dir.report("out/only/report.csv");
    assert_eq!(rows.len(), 4);
    let status = |id: &str| rows.iter().find(|r| r["job_id"] == id).unwrap()["status"].clone();
    assert_eq!(status("only-1"), "succeeded");
    assert_eq!(status("only-0"), "pending");

    let mut cmd = runner_cmd(&dir);
    cmd.args(["status", &file, "--json"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(status["total"], 4);
    assert_eq!(status["counts"]["succeeded"], 2);
    assert_eq!(status["counts"]["pending"], 2);
    assert_eq!(status["jobs"][1]["job_id"], "only-1");
    assert_eq!(status["jobs"][1]["status"], "succeeded");

    let out = run(run_against(&dir, &sim, &file, &["--only", "only-7x"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no job `only-7x`"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_makes_new_attempts() {
    let failing = SimHandle::start(SimConfig {
        fail_rate: 1.0,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "retry", 3, "");
    let text_now = std::fs::read_to_string(dir.path().join(&file)).unwrap();
    dir.write(
        &file,
        &text_now.replace("max_attempts = 2", "max_attempts = 1"),
    );
    let out = run(run_against(&dir, &failing, &file, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        dir.report("out/retry/report.csv")
            .iter()
            .all(|r| r["status"] == "failed")
    );

    // Without the flag nothing is sent again; with it, each failed job gets one new attempt.
    let healthy = SimHandle::start(fast_sim()).await.unwrap();
    let out = run(run_against(&dir, &healthy, &file, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(healthy.stats().submits, 0);
    // The dry run counts what the same flags would send.
    let out = run(run_against(
        &dir,
        &healthy,
        &file,
        &["--retry", "failed", "--dry-run"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 jobs would be submitted"),
        "{}",
        text(&out)
    );
    // Paid again, so asked for: with nobody to ask, --yes is needed.
    let out = run(run_against(&dir, &healthy, &file, &["--retry", "failed"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--yes"),
        "{}",
        text(&out)
    );
    assert_eq!(healthy.stats().submits, 0);
    let out = run(run_against(
        &dir,
        &healthy,
        &file,
        &["--retry", "failed", "--yes"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(healthy.stats().submits, 3);
    for row in dir.report("out/retry/report.csv") {
        assert_eq!(row["status"], "succeeded");
        assert_eq!(row["attempts"], "2", "{row:?}");
        assert_eq!(row["task_ids"].split('|').count(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_the_jobs_with_their_own_state() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "shard", 20, "");
    let mut seen = Vec::new();
    for k in 1..=2 {
        let shard = format!("{k}/2");
        let out = run(run_against(&dir, &sim, &file, &["--shard", &shard])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let rows = dir.report(&format!("out/shard/report.shard-{k}-of-2.csv"));
        assert!(
            !rows.is_empty() && rows.len() < 20,
            "shard {k} has {} jobs",
            rows.len()
        );
        assert!(
            dir.path()
                .join(format!("out/shard/state.shard-{k}-of-2.jsonl"))
                .exists()
        );
        seen.extend(rows.into_iter().map(|r| r["job_id"].clone()));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "the shards cover every job once");
    let stats = sim.stats();
    assert_eq!(stats.submits, 20);
    assert!(stats.submits_by_prompt.values().all(|n| *n == 1));

    let mut cmd = runner_cmd(&dir);
    cmd.args(["status", &file, "--shard", "1/2"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut cmd = runner_cmd(&dir);
    cmd.args(["run", &file, "--shard", "3/2"]);
    assert_eq!(run(cmd).await.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_for_each_shell() {
    let dir = Dir::new();
    for shell in ["bash", "zsh", "fish"] {
        let mut cmd = runner_cmd(&dir);
        cmd.args(["completions", shell]);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("runner"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_show_costs_and_the_budget_stops_submitting() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "budget", 5, "budget = 2.5\n");
    let text_now = std::fs::read_to_string(dir.path().join(&file)).unwrap();
    dir.write(
        &file,
        &format!("{text_now}\n[pricing]\ngemini_omni_flash = {{ per_video = 1.0 }}\n"),
    );

    let mut cmd = runner_cmd(&dir);
    cmd.args(["validate", &file]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("$5.00"),
        "the plan is on stderr: {}",
        text(&out)
    );

    let out = run(run_against(&dir, &sim, &file, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("budget reached"),
        "{}",
        text(&out)
    );
    assert_eq!(sim.stats().submits, 2, "two videos fit in a budget of 2.5");
    let rows = dir.report("out/budget/report.csv");
    assert_eq!(
        rows.iter().filter(|r| r["status"] == "succeeded").count(),
        2
    );
    assert!(
        rows.iter()
            .filter(|r| r["status"] == "pending")
            .all(|r| r["error"].contains("budget"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_paid_runs_need_a_yes_when_nobody_can_be_asked() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "confirm", 5, "confirm_above = 3\n");
    let out = run(run_against(&dir, &sim, &file, &[])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("would submit 5 jobs") && stderr.contains("--yes"),
        "{stderr}"
    );
    assert!(sim.stats().request_times_ms.is_empty(), "nothing was sent");

    let out = run(run_against(&dir, &sim, &file, &["--yes"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Nothing left to submit: no question, no --yes needed.
    let out = run(run_against(&dir, &sim, &file, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
