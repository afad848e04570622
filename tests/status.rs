//! End-to-end: `runner status` and `runner report` show the whole campaign,
//! wherever it ran (every shard's state file), say when only simulated
//! results exist, and give a summary first with the reasons of the jobs that
//! need attention.

mod common;

use common::*;
use runner::sim::{SimConfig, SimHandle};

/// A campaign of `n` gemini jobs `{name}-0`, … writing under `out/{name}/`.
/// Its task timeout is on the simulated clock (`--sim-time-scale`): long
/// enough that a loaded machine never times a task out.
fn campaign(dir: &Dir, name: &str, n: usize, extra: &str) -> String {
    let limits = FAST_LIMITS.replace("task_timeout = \"60s\"", "task_timeout = \"24h\"");
    assert_ne!(limits, FAST_LIMITS);
    named_campaign(dir, name, n, &format!("{limits}{extra}"))
}

/// `runner ARGS` in `dir`, to the end.
async fn runner(dir: &Dir, args: &[&str]) -> std::process::Output {
    let mut cmd = runner_cmd(dir);
    cmd.args(args);
    run(cmd).await
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_sharded_three_ways_is_one_status_and_one_report() {
    let dir = Dir::new();
    let file = campaign(&dir, "three", 9, "");
    let sim = ["--simulate", "--sim-time-scale", "0.001"];
    let mut per_shard = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let mut args = vec!["run", &file, "--shard", &shard];
        args.extend(sim);
        let out = runner(&dir, &args).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        per_shard.push(
            dir.report(&format!("out/three/simulated/report.shard-{k}-of-3.csv"))
                .len(),
        );
    }
    assert_eq!(per_shard.iter().sum::<usize>(), 9, "{per_shard:?}");

    // One status: every job, from the three files.
    let out = runner(&dir, &["status", &file, "--simulate"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = stdout(&out);
    assert!(said.starts_with("three: 9 jobs: 9 succeeded\n"), "{said}");
    assert!(said.contains("state: 3 files"), "{said}");
    assert!(!said.contains("pending"), "{said}");
    assert!(out.stderr.is_empty(), "no warning: {}", text(&out));

    let out = runner(&dir, &["status", &file, "--simulate", "--json"]).await;
    let status = json(&out);
    assert_eq!(status["total"], 9);
    assert_eq!(status["counts"]["succeeded"], 9);
    let states = status["states"].as_array().unwrap();
    let shown: Vec<u64> = states.iter().map(|s| s["jobs"].as_u64().unwrap()).collect();
    assert_eq!(
        shown,
        [
            0,
            per_shard[0] as u64,
            per_shard[1] as u64,
            per_shard[2] as u64
        ]
    );

    // --shard narrows it to one file.
    let out = runner(
        &dir,
        &["status", &file, "--simulate", "--shard", "2/3", "--json"],
    )
    .await;
    let status = json(&out);
    assert_eq!(status["total"], per_shard[1]);
    assert_eq!(status["shard"], "2/3");
    assert_eq!(status["states"].as_array().unwrap().len(), 1);

    // One report: every row, each with its video.
    let out = runner(&dir, &["report", &file, "--simulate"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = dir.report("out/three/simulated/report.csv");
    assert_eq!(rows.len(), 9);
    for row in &rows {
        assert_eq!(row["status"], "succeeded", "{row:?}");
        assert!(dir.path().join(&row["output_path"]).is_file(), "{row:?}");
    }
    let out = runner(&dir, &["report", &file, "--simulate", "--html"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let page = std::fs::read_to_string(dir.path().join("out/three/simulated/report.html"))
        .expect("the page is written");
    for i in 0..9 {
        assert!(
            page.contains(&format!("three-{i}.mp4")),
            "the video of three-{i}"
        );
    }

    // A run split another way (or not at all) would not know those tasks and
    // pay for them again: refused, nothing sent, its state file never made.
    for split in [None, Some("1/2")] {
        let mut args = vec!["run", &file];
        if let Some(shard) = split {
            args.extend(["--shard", shard]);
        }
        args.extend(sim);
        let out = runner(&dir, &args).await;
        assert_eq!(out.status.code(), Some(2), "{split:?}: {}", text(&out));
        let said = text(&out);
        assert!(said.contains("would pay for them again"), "{said}");
        assert!(said.contains("state.shard-1-of-3.jsonl"), "{said}");
    }
    assert!(!dir.path().join("out/three/simulated/state.jsonl").exists());
    assert!(
        !dir.path()
            .join("out/three/simulated/state.shard-1-of-2.jsonl")
            .exists()
    );
    // The way it was split, it runs (and has nothing left to do).
    let out = runner(
        &dir,
        &[
            "run",
            &file,
            "--shard",
            "1/3",
            "--simulate",
            "--sim-time-scale",
            "0.001",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_two_shard_files_is_shown_once_and_warned_about() {
    let dir = Dir::new();
    let file = campaign(&dir, "reshard", 6, "");
    let sim = ["--simulate", "--sim-time-scale", "0.001"];
    for shard in ["1/2", "2/2"] {
        let mut args = vec!["run", &file, "--shard", shard];
        args.extend(sim);
        let out = runner(&dir, &args).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    // Resharded by hand: a state file of three shards holding shard 1/2's jobs.
    let states = dir.path().join("out/reshard/simulated");
    std::fs::copy(
        states.join("state.shard-1-of-2.jsonl"),
        states.join("state.shard-1-of-3.jsonl"),
    )
    .unwrap();
    let out = runner(&dir, &["status", &file, "--simulate", "--json"]).await;
    let status = json(&out);
    assert_eq!(status["total"], 6);
    assert_eq!(status["counts"]["succeeded"], 6);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("recorded in both") && stderr.contains("resharded"),
        "{}",
        text(&out)
    );
    let jobs: usize = status["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["jobs"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(jobs, 6, "each job from one file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_without_simulate_after_a_simulated_run_says_where_the_results_are() {
    let dir = Dir::new();
    let file = campaign(&dir, "simonly", 3, "");
    let out = runner(
        &dir,
        &["run", &file, "--simulate", "--sim-time-scale", "0.001"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = runner(&dir, &["status", &file]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = stdout(&out);
    assert!(
        said.contains("no run yet; a simulated run exists")
            && said.contains(&format!("runner status {file} --simulate")),
        "{said}"
    );
    let status = json(&runner(&dir, &["status", &file, "--json"]).await);
    assert!(
        status["hint"].as_str().unwrap().contains("--simulate"),
        "{status}"
    );
    let out = runner(&dir, &["report", &file]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a simulated run exists"),
        "{}",
        text(&out)
    );
    // With the flag: the results, and no hint.
    let said = stdout(&runner(&dir, &["status", &file, "--simulate"]).await);
    assert!(said.starts_with("simonly: 3 jobs: 3 succeeded"), "{said}");
    assert!(!said.contains("no run yet"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_is_listed_with_its_reason_and_the_next_command() {
    let sim = SimHandle::start(SimConfig {
        fail_rate: 1.0,
        ..fast_sim()
    })
    .await
    .unwrap();
    let dir = Dir::new();
    let file = campaign(&dir, "fails", 2, "");
    let out = run(run_against(&dir, &sim, &file, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rows = dir.report("out/fails/report.csv");
    let error = rows[0]["error"].clone();
    assert!(!error.is_empty(), "{rows:?}");

    let out = runner(&dir, &["status", &file]).await;
    let said = stdout(&out);
    assert!(said.starts_with("fails: 2 jobs: 2 failed\n"), "{said}");
    assert!(said.contains("needs attention (2):"), "{said}");
    let line = said
        .lines()
        .find(|l| l.contains("fails-0"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(line.trim_start().starts_with("failed"), "{line}");
    assert!(line.contains(&error), "{line} has {error}");
    assert!(
        said.contains(&format!("runner run {file} --retry failed")),
        "{said}"
    );

    // --all: every job with where it stands; --json: the same fields.
    let said = stdout(&runner(&dir, &["status", &file, "--all"]).await);
    assert!(said.contains("jobs (2):"), "{said}");
    let listed: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("  failed     ended        fails-"))
        .collect();
    assert_eq!(listed.len(), 2, "{said}");
    let status = json(&runner(&dir, &["status", &file, "--json"]).await);
    assert_eq!(status["counts"]["failed"], 2);
    assert_eq!(status["needs_attention"], 2);
    assert!(status["since_start_secs"].is_u64(), "{status}");
    assert_eq!(status["jobs"][0]["job_id"], "fails-0");
    assert_eq!(status["jobs"][0]["stage"], "ended");
    assert_eq!(status["jobs"][0]["error"], error.as_str());
    assert_eq!(status["jobs"][0]["attempts"], 2);

    // The reverse hint: real results, none simulated.
    let said = stdout(&runner(&dir, &["status", &file, "--simulate"]).await);
    assert!(
        said.contains("no simulated run yet; a real run exists"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_the_budget_kept_back_are_counted_priced_and_named() {
    let dir = Dir::new();
    let file = campaign(&dir, "budget", 5, "budget = 2.5\n");
    let text_now = std::fs::read_to_string(dir.path().join(&file)).unwrap();
    dir.write(
        &file,
        &format!("{text_now}\n[pricing]\ngemini_omni_flash = {{ per_video = 1.0 }}\n"),
    );
    let out = runner(
        &dir,
        &["run", &file, "--simulate", "--sim-time-scale", "0.001"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let from_run = dir.report("out/budget/simulated/report.csv");

    let said = stdout(&runner(&dir, &["status", &file, "--simulate"]).await);
    assert!(
        said.starts_with("budget: 5 jobs: 2 succeeded, 3 pending\n"),
        "{said}"
    );
    assert!(
        said.contains(
            "  pending: 0 in flight, 0 to download, 3 never sent (3 kept back by limits.budget)"
        ),
        "{said}"
    );
    assert!(
        said.contains("cost by [pricing]: $2.00 spent, $3.00 still to spend (limits.budget $2.50)"),
        "{said}"
    );
    assert!(said.contains("started "), "{said}");
    assert!(said.contains("raise it in the manifest"), "{said}");
    let status = json(&runner(&dir, &["status", &file, "--simulate", "--json"]).await);
    assert_eq!(status["over_budget"], 3);
    assert_eq!(status["never_sent"], 3);
    assert_eq!(status["money"]["spent"], 2.0);

    // The rewritten report says what the run's report said.
    let out = runner(&dir, &["report", &file, "--simulate"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rewritten = dir.report("out/budget/simulated/report.csv");
    let errors = |rows: &[std::collections::BTreeMap<String, String>]| -> Vec<String> {
        rows.iter().map(|r| r["error"].clone()).collect()
    };
    assert_eq!(errors(&rewritten), errors(&from_run));
    assert_eq!(
        errors(&rewritten)
            .iter()
            .filter(|e| e.contains("budget"))
            .count(),
        3
    );
}
