//! End-to-end: what a run says at its end and to scripts (issue 16): the
//! ending's elapsed time, cost, report and next command; `--only`'s exit code;
//! an empty shard; a dry run under a budget; `--summary json`; JSON logs with
//! their counts as fields; `validate`'s stdout holding only requests.

mod common;

use common::*;
use runner::sim::{SimConfig, SimHandle};

/// `n` gemini jobs `{name}-0…`, each priced at $0.50, `extra` appended to `[limits]`.
fn campaign(dir: &Dir, name: &str, n: usize, extra_limits: &str) -> String {
    let head = format!(
        "{FAST_LIMITS}{extra_limits}\n[pricing]\ngemini_omni_flash = {{ per_video = 0.5 }}\n"
    );
    named_campaign(dir, name, n, &head)
}

/// Every generation fails: each job's one attempt is paid and used up.
#[expect(clippy::unwrap_used, reason = "a test helper")]
async fn failing_sim() -> SimHandle {
    SimHandle::start(SimConfig {
        fail_rate: 1.0,
        ..fast_sim()
    })
    .await
    .unwrap()
}

#[expect(clippy::unwrap_used, reason = "a test helper")]
fn one_attempt(dir: &Dir, file: &str) {
    let toml = std::fs::read_to_string(dir.path().join(file)).unwrap();
    dir.write(file, &toml.replace("max_attempts = 2", "max_attempts = 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failure_the_ending_says_time_cost_report_and_the_next_command() {
    let sim = failing_sim().await;
    let dir = Dir::new();
    let file = campaign(&dir, "end", 3, "");
    one_attempt(&dir, &file);
    let out = run(run_against(&dir, &sim, &file, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("end: 3 jobs in ") && lines[0].ends_with(": 3 failed"),
        "counts and elapsed time: {}",
        text(&out)
    );
    assert_eq!(
        lines[1],
        "cost: $1.50 by the price table, $1.50 of it in this run",
        "{}",
        text(&out)
    );
    assert!(
        lines[2].starts_with("report: ") && lines[2].ends_with("out/end/report.csv"),
        "{}",
        text(&out)
    );
    assert!(
        lines[3].starts_with(&format!("html: runner report {file} --html writes ")),
        "{}",
        text(&out)
    );
    let retry = format!(
        "runner run {file} --base-url {} --retry failed",
        sim.base_url()
    );
    assert!(
        lines.iter().any(|l| l.trim() == retry),
        "the exact command to retry: {retry}\n{}",
        text(&out)
    );

    // The command it printed works: a healthy service, new attempts, exit 0.
    // The cost now counts both attempts of each job; this run added $1.50.
    let healthy = SimHandle::start(fast_sim()).await.unwrap();
    let out = run(run_against(
        &dir,
        &healthy,
        &file,
        &["--retry", "failed", "--yes"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cost: $3.00 by the price table, $1.50 of it in this run"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("next:"), "nothing left to do: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_exits_0_when_the_selected_jobs_succeed_and_others_stay_pending() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "pick", 5, "");
    let out = run(run_against(
        &dir,
        &sim,
        &file,
        &["--only", "pick-0,pick-4", "--summary", "json"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["total"], 5);
    assert_eq!(summary["selected"], 2);
    assert_eq!(summary["counts"]["succeeded"], 2);
    assert_eq!(summary["counts"]["pending"], 0, "{summary}");
    // The report still has every job.
    let rows = dir.report("out/pick/report.csv");
    assert_eq!(status_counts(&rows).get("pending"), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_shard_says_so_and_exits_0() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "lone", 1, "");
    let empty = 3 - runner::app::shard_of("lone-0", 2);
    let shard = format!("{empty}/2");
    let out = run(run_against(&dir, &sim, &file, &["--shard", &shard])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("shard {shard} has no jobs")),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("0 jobs: "), "{stdout}");
    assert!(sim.stats().request_times_ms.is_empty(), "nothing was sent");
    assert!(
        !dir.path().join("out/lone").exists(),
        "an empty shard writes no files"
    );

    let out = run(run_against(
        &dir,
        &sim,
        &file,
        &["--shard", &shard, "--summary", "json"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["total"], 0);
    assert_eq!(summary["shard"], shard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_under_a_budget_says_how_many_fit_and_which_are_left() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    // $0.50 each, $1.20 to spend: two fit.
    let file = campaign(&dir, "cap", 6, "budget = 1.2\n");
    let out = run(run_against(&dir, &sim, &file, &["--dry-run"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "budget: $1.20 ($0.00 spent before): 2 of 6 jobs fit ($1.00); 4 would be left pending: cap-2, cap-3, cap-4, cap-5"
        ),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("dry run: 2 jobs would be submitted (4 left pending by limits.budget)"),
        "{}",
        text(&out)
    );
    assert_eq!(sim.stats().submits, 0);

    // The run does what the dry run said, and the ending says what to change.
    let out = run(run_against(&dir, &sim, &file, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(sim.stats().submits, 2);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "4 not sent: limits.budget reached: raise limits.budget in the manifest, then run again"
        ),
        "{}",
        text(&out)
    );
    // Now $1.00 is spent: nothing more fits.
    let out = run(run_against(&dir, &sim, &file, &["--dry-run"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("budget: $1.20 ($1.00 spent before): 0 of 4 jobs fit ($0.00)"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_json_is_one_object_on_stdout_with_the_text_on_stderr() {
    let sim = failing_sim().await;
    let dir = Dir::new();
    let file = campaign(&dir, "machine", 2, "");
    one_attempt(&dir, &file);
    let out = run(run_against(&dir, &sim, &file, &["--summary", "json"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON object");
    assert_eq!(summary["campaign"], "machine");
    assert_eq!(summary["manifest"], file);
    assert_eq!(summary["exit_code"], 1);
    assert_eq!(summary["interrupted"], false);
    assert!(summary["elapsed_secs"].as_f64().is_some(), "{summary}");
    assert_eq!(summary["total"], 2);
    assert_eq!(summary["counts"]["failed"], 2);
    assert_eq!(summary["counts"]["succeeded"], 0);
    assert_eq!(summary["cost"]["currency"], "USD");
    assert_eq!(summary["cost"]["spent"], 1.0);
    assert_eq!(summary["cost"]["spent_this_run"], 1.0);
    assert_eq!(
        summary["not_succeeded"]["failed"],
        serde_json::json!(["machine-0", "machine-1"])
    );
    let csv = summary["report"]["csv"].as_str().expect("csv path");
    assert!(std::path::Path::new(csv).exists() || dir.path().join(csv).exists());
    assert_eq!(summary["next"][0]["reason"], "retry_failed");
    assert_eq!(summary["next"][0]["jobs"], 2);
    assert_eq!(
        summary["next"][0]["command"],
        format!(
            "runner run {file} --base-url {} --retry failed",
            sim.base_url()
        )
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("machine: 2 jobs in "),
        "the text goes to stderr: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_refused_before_it_starts_still_prints_one_json_object() {
    let dir = Dir::new();
    dir.write(
        "typo.toml",
        "name = \"typo\"\n[limits]\nburts = 1\n[[job]]\nid = \"a\"\nprompt = \"p\"\nmodel = \"veo3.1-fast\"\n",
    );
    let mut cmd = runner_cmd(&dir);
    cmd.args(["run", "typo.toml", "--simulate", "--summary", "json"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON object");
    assert_eq!(summary["exit_code"], 2);
    assert_eq!(summary["manifest"], "typo.toml");
    assert!(summary["counts"].is_null(), "{summary}");
    let error = summary["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("typo.toml:3:1") && error.contains("`burst`"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_progress_counts_as_fields() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "logs", 3, "");
    let out = run(run_against(&dir, &sim, &file, &["--log-format", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let progress: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("every log line is JSON"))
        .filter(|v| v["fields"].get("done").is_some())
        .collect();
    assert!(!progress.is_empty(), "a progress line: {stderr}");
    for line in &progress {
        let fields = &line["fields"];
        for key in [
            "done",
            "total",
            "in_flight",
            "downloading",
            "to_send",
            "failed",
            "unknown",
            "elapsed_secs",
        ] {
            assert!(fields[key].is_u64(), "{key} is a number field: {line}");
        }
        assert_eq!(fields["total"], 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_prints_only_requests_on_stdout() {
    let dir = Dir::new();
    let file = campaign(&dir, "pipe", 3, "budget = 10.0\n");
    let mut cmd = runner_cmd(&dir);
    cmd.args(["validate", &file]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ids: Vec<&str> = stdout
        .lines()
        .map(|line| {
            let (id, body) = line.split_once('\t').expect("id<TAB>JSON");
            serde_json::from_str::<serde_json::Value>(body).expect("a request");
            id
        })
        .collect();
    assert_eq!(ids, ["pipe-0", "pipe-1", "pipe-2"], "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pipe: 3 jobs, all valid")
            && stderr.contains("total")
            && stderr.contains("$1.50")
            && stderr.contains("budget: $10.00"),
        "the plan on stderr: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_estimates_from_its_own_finishes_only() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "again", 6, "");
    let out = run(run_against(
        &dir,
        &sim,
        &file,
        &["--only", "again-0,again-1,again-2"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(run_against(&dir, &sim, &file, &["--log-format", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"].get("done").is_some())
        .expect("a progress line");
    let fields = &first["fields"];
    // Three were done before this run started; nothing of its own has finished
    // at its first line: no pace, no ETA (the old line said thousands a minute).
    assert_eq!(fields["done"], 3, "{first}");
    assert!(fields.get("per_min").is_none(), "{first}");
    assert!(fields.get("eta_secs").is_none(), "{first}");
    assert!(
        fields["message"]
            .as_str()
            .is_some_and(|m| m.contains("ETA estimating…")),
        "{first}"
    );
}
