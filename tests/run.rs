//! End-to-end: the real binary against the built-in simulator on 127.0.0.1:0.

mod common;

use common::*;
use runner::sim::{ResultShape, SimConfig, SimHandle};

/// Ten `[[job]]`s (one with two image URLs, one with two local frames) and thirty CSV rows.
fn mixed_campaign(dir: &Dir) {
    // Tiny but real PNG bytes are not needed by the simulator; extension and size are checked.
    dir.write("frames/start.png", "\u{89}PNG fake start frame");
    dir.write("frames/end.png", "\u{89}PNG fake end frame");
    let mut rows = String::from("id,prompt,aspect_ratio,duration\n");
    for i in 0..30 {
        let ratio = if i % 2 == 0 { "16:9" } else { "9:16" };
        let duration = if i % 3 == 0 { 10 } else { 6 };
        rows.push_str(&format!(
            "row-{i},CSV prompt number {i},{ratio},{duration}\n"
        ));
    }
    dir.write("rows.csv", &rows);
    let mut toml = format!(
        "name = \"mixed\"\n{FAST_LIMITS}\n[output]\ndir = \"out\"\n\n[defaults]\nmodel = \"gemini_omni_flash\"\n"
    );
    toml.push_str(
        r#"
[[job]]
id = "two-urls"
model = "veo3.1-fast"
prompt = "Dolphins jumping in the blue ocean"
image_urls = ["https://example.com/start.jpg", "https://example.com/end.jpg"]
metadata = { generation_type = "frame", resolution = "1080p" }

[[job]]
id = "local-frames"
model = "veo3.1-quality"
prompt = "A paper boat drifting down a gutter"
image_urls = ["frames/start.png", "frames/end.png"]
metadata = { generation_type = "frame" }
"#,
    );
    for i in 0..8 {
        toml.push_str(&format!(
            "\n[[job]]\nid = \"toml-{i}\"\nprompt = \"TOML prompt number {i}\"\n"
        ));
    }
    toml.push_str("\n[[source]]\ncsv = \"rows.csv\"\n");
    dir.write("campaign.toml", &toml);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_campaign_runs_to_the_end_then_resumes_with_nothing_to_do() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    mixed_campaign(&dir);

    let out = run(run_against(&dir, &sim, "campaign.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let rows = dir.report("out/report.csv");
    assert_eq!(rows.len(), 40);
    for row in &rows {
        assert_eq!(row["status"], "succeeded", "{row:?}");
        let path = std::path::Path::new(&row["output_path"]);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            dir.path().join(path)
        };
        assert_eq!(file_sha256(&path), row["sha256"], "{row:?}");
        assert_eq!(
            row["sha256"],
            runner::sim::video_sha256_hex(&row["task_id"], 64 * 1024),
            "the bytes on disk are the bytes the server sent"
        );
        assert_eq!(row["attempts"], "1");
    }
    let stats = sim.stats();
    assert_eq!(stats.submits, 40);
    assert!(
        stats.submits_by_prompt.values().all(|n| *n == 1),
        "{:?}",
        stats.submits_by_prompt
    );
    assert_eq!(stats.rejected_400, 0);
    assert_eq!(stats.uploads, 2, "each local frame uploaded once");
    assert!(
        !dir.path()
            .join("out")
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().ends_with(".part") })
    );

    // Again: nothing to submit, nothing to download.
    let out = run(run_against(&dir, &sim, "campaign.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again = sim.stats();
    assert_eq!(again.submits, stats.submits);
    assert_eq!(again.downloads, stats.downloads);
    assert_eq!(again.polls, stats.polls);
    assert_eq!(again.uploads, stats.uploads);

    // status and report work from the state file alone: no key, no server.
    let mut cmd = runner_cmd(&dir);
    cmd.env_remove("TOAPIS_API_KEY")
        .args(["status", "campaign.toml"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("40 jobs: 40 succeeded"),
        "{}",
        text(&out)
    );
    let before = std::fs::read_to_string(dir.path().join("out/report.csv")).unwrap();
    std::fs::remove_file(dir.path().join("out/report.csv")).unwrap();
    let mut cmd = runner_cmd(&dir);
    cmd.env_remove("TOAPIS_API_KEY")
        .args(["report", "campaign.toml"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/report.csv")).unwrap(),
        before
    );
    assert_eq!(
        sim.stats().request_times_ms.len(),
        again.request_times_ms.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_jobs_are_reported_and_added_jobs_are_run() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    let head =
        format!("name = \"grow\"\n{FAST_LIMITS}\n[defaults]\nmodel = \"gemini_omni_flash\"\n");
    dir.write("g.toml", &format!("{head}[[job]]\nid = \"a\"\nprompt = \"first prompt\"\n[[job]]\nid = \"b\"\nprompt = \"second prompt\"\n"));
    let out = run(run_against(&dir, &sim, "g.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sim.stats().submits, 2);

    // `a` changes its prompt; `c` is new.
    dir.write(
        "g.toml",
        &format!("{head}[[job]]\nid = \"a\"\nprompt = \"first prompt, edited\"\n[[job]]\nid = \"b\"\nprompt = \"second prompt\"\n[[job]]\nid = \"c\"\nprompt = \"third prompt\"\n"),
    );
    let out = run(run_against(&dir, &sim, "g.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = sim.stats();
    assert_eq!(stats.submits, 3, "only the new job was sent");
    assert_eq!(stats.submits_by_prompt.get("third prompt"), Some(&1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("since the last run: 1 changed, 0 removed, 1 not yet submitted"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("changed in the manifest"),
        "{}",
        text(&out)
    );
    let rows = dir.report("out/grow/report.csv");
    let a = rows.iter().find(|r| r["job_id"] == "a").unwrap();
    assert!(a["error"].contains("manifest changed"), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_result_shape_works() {
    for shape in [
        ResultShape::DataUrl,
        ResultShape::Videos,
        ResultShape::ResultUrl,
        ResultShape::Url,
        ResultShape::VideoUrl,
    ] {
        let sim = SimHandle::start(SimConfig {
            result_shape: shape,
            ..fast_sim()
        })
        .await
        .unwrap();
        let dir = Dir::new();
        dir.write(
            "c.toml",
            &format!(
                "{FAST_LIMITS}\n[defaults]\nmodel = \"gemini_omni_flash\"\n[[job]]\nprompt = \"one\"\n[[job]]\nprompt = \"two\"\n"
            ),
        );
        let out = run(run_against(&dir, &sim, "c.toml", &[])).await;
        assert_eq!(out.status.code(), Some(0), "{shape:?}: {}", text(&out));
        let rows = dir.report("out/c/report.csv");
        assert!(
            rows.iter().all(|r| r["status"] == "succeeded"),
            "{shape:?}: {rows:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_run_resumes_without_submitting_twice() {
    // Slow enough generations that the interrupt lands mid-campaign.
    let config = SimConfig {
        time_scale: 1.0,
        no_metering: true,
        queue_time: 0.05,
        generation_time: Some(0.4),
        video_size: 16 * 1024,
        ..SimConfig::default()
    };
    let sim = SimHandle::start(config).await.unwrap();
    let dir = Dir::new();
    let mut toml = String::from(
        "name = \"stop\"\n[limits]\nrequests_per_second = 500\nsubmit_per_second = 10000\nquery_per_second = 10000\nburst = 10\nmax_in_flight = 8\npoll_queued = \"20ms\"\npoll_in_progress = \"50ms\"\n[defaults]\nmodel = \"gemini_omni_flash\"\n",
    );
    for i in 0..30 {
        toml.push_str(&format!(
            "[[job]]\nid = \"j{i}\"\nprompt = \"interrupt prompt {i}\"\n"
        ));
    }
    dir.write("stop.toml", &toml);

    let child = run_against(&dir, &sim, "stop.toml", &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let state = dir.path().join("out/stop/state.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        if text.matches("\"event\":\"submitted\"").count() >= 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no submits recorded: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let rows = dir.report("out/stop/report.csv");
    assert_eq!(rows.len(), 30);
    assert!(
        rows.iter().any(|r| r["status"] != "succeeded"),
        "the interrupt came too late to test anything"
    );
    let before = sim.stats().submits;
    assert!(before < 30, "stopped submitting: {before}");

    let out = run(run_against(&dir, &sim, "stop.toml", &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = sim.stats();
    assert_eq!(stats.submits, 30);
    assert!(
        stats.submits_by_prompt.values().all(|n| *n == 1),
        "{:?}",
        stats.submits_by_prompt
    );
    assert!(
        dir.report("out/stop/report.csv")
            .iter()
            .all(|r| r["status"] == "succeeded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifest_sends_nothing() {
    let sim = SimHandle::start(fast_sim()).await.unwrap();
    let dir = Dir::new();
    dir.write(
        "bad.toml",
        "[limits]\nrequests_per_secnd = 2\n[defaults]\nmodel = \"veo3.1-fast\"\n[[job]]\nid = \"a\"\nprompt = \"x\"\nduration = 10\n",
    );
    let out = run(run_against(&dir, &sim, "bad.toml", &[])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:2"), "names the line: {stderr}");
    assert!(
        stderr.contains("requests_per_second"),
        "suggests the key: {stderr}"
    );
    assert!(
        stderr.contains("duration"),
        "all problems, not just the first: {stderr}"
    );
    let stats = sim.stats();
    assert_eq!(stats.request_times_ms.len(), 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_is_a_clear_error() {
    let dir = Dir::new();
    dir.write(
        "m.toml",
        "[defaults]\nmodel = \"gemini_omni_flash\"\n[[job]]\nprompt = \"p\"\n",
    );
    let mut cmd = runner_cmd(&dir);
    cmd.env_remove("TOAPIS_API_KEY")
        .args(["run", "m.toml", "--base-url", "http://127.0.0.1:9"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOAPIS_API_KEY"));

    // A key pasted with a line break in it is named before anything is sent,
    // and never echoed.
    let mut cmd = runner_cmd(&dir);
    cmd.env("TOAPIS_API_KEY", "sk-abc\nsk-def").args([
        "run",
        "m.toml",
        "--base-url",
        "http://127.0.0.1:9",
        "--yes",
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TOAPIS_API_KEY") && stderr.contains("header"),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-abc"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_run_resumes_against_a_fresh_simulator() {
    let dir = Dir::new();
    let mut toml = String::from(
        "name = \"simres\"\n[limits]\nrequests_per_second = 200\nsubmit_per_second = 10000\nquery_per_second = 10000\nburst = 5\nmax_in_flight = 6\n[defaults]\nmodel = \"gemini_omni_flash\"\n",
    );
    for i in 0..12 {
        toml.push_str(&format!(
            "[[job]]\nid = \"s{i}\"\nprompt = \"simulated resume {i}\"\n"
        ));
    }
    dir.write("simres.toml", &toml);
    // 40 s generations at 1/100 speed: 0.4 s each, so the interrupt lands mid-run.
    let args = [
        "run",
        "simres.toml",
        "--simulate",
        "--sim-time-scale",
        "0.01",
    ];
    let child = runner_cmd(&dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let state = dir.path().join("out/simres/simulated/state.jsonl");
    wait_for_events(&state, "submitted", 3).await;
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));

    let mut cmd = runner_cmd(&dir);
    cmd.args(args);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let journal = std::fs::read_to_string(&state).unwrap();
    for i in 0..12 {
        let needle = format!("\"event\":\"submitted\",\"job\":\"s{i}\"");
        assert_eq!(
            journal.matches(&needle).count(),
            1,
            "s{i} submitted once:\n{journal}"
        );
    }
    assert!(
        dir.report("out/simres/simulated/report.csv")
            .iter()
            .all(|r| r["status"] == "succeeded")
    );
}
