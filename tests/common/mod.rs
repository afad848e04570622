//! Shared helpers for the end-to-end tests: a simulator per test on 127.0.0.1:0,
//! a temp folder with a manifest, and the real `runner` binary with a cleared environment.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use runner::sim::{SimConfig, SimHandle};

pub const KEY: &str = "test-key-123";

/// A simulator whose clock runs 1000× fast, with small videos.
pub fn fast_sim() -> SimConfig {
    SimConfig {
        time_scale: 0.001,
        video_size: 64 * 1024,
        ..SimConfig::default()
    }
}

/// The `[limits]` block tests use: fast polls, a generous rate.
pub const FAST_LIMITS: &str = r#"
[limits]
requests_per_second = 1000
submit_per_second = 10000
query_per_second = 10000
burst = 20
max_in_flight = 20
poll_queued = "5ms"
poll_in_progress = "5ms"
task_timeout = "60s"
max_attempts = 2
"#;

/// A temp folder holding a campaign.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write");
        path
    }

    pub fn report(&self, rel: &str) -> Vec<BTreeMap<String, String>> {
        let mut reader = csv::Reader::from_path(self.path().join(rel)).expect("report exists");
        reader
            .deserialize()
            .map(|r| r.expect("report row"))
            .collect()
    }
}

/// The runner binary with only PATH and the test key in its environment.
pub fn runner_cmd(dir: &Dir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runner"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TOAPIS_API_KEY", KEY)
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .stdin(Stdio::null());
    cmd
}

/// Runs the binary to the end off the async runtime (the simulator lives on it).
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("runner starts"))
        .await
        .expect("join")
}

pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `runner run MANIFEST --base-url SIM`.
pub fn run_against(dir: &Dir, sim: &SimHandle, manifest: &str, extra: &[&str]) -> Command {
    let mut cmd = runner_cmd(dir);
    cmd.args(["run", manifest, "--base-url", &sim.base_url()])
        .args(extra);
    cmd
}

/// sha256 of a file, lower-case hex.
pub fn file_sha256(path: &Path) -> String {
    runner::util::sha256_hex(&std::fs::read(path).expect("read video"))
}

// ---------------------------------------------------------------------------
// Helpers for the fault-injection and crash tests (tests/faults.rs, tests/crash.rs).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A campaign `name` of `n` gemini jobs `j000`, `j001`, … with prompts `"{prompt} {i}"`,
/// writing everything under `out/` next to the manifest.
pub fn gemini_campaign(name: &str, limits: &str, n: usize, prompt: &str) -> String {
    let mut toml = format!(
        "name = \"{name}\"\n{limits}\n[output]\ndir = \"out\"\n\n[defaults]\nmodel = \"gemini_omni_flash\"\n"
    );
    for i in 0..n {
        toml.push_str(&format!(
            "\n[[job]]\nid = \"j{i:03}\"\nprompt = \"{prompt} {i}\"\n"
        ));
    }
    toml
}

/// Writes `{name}.toml` in `dir`, a campaign of `n` gemini jobs `{name}-0`, …
/// with prompts `"{name} prompt {i}"`, `head` (tables such as `[limits]`)
/// before its `[defaults]`; returns the file's name.
pub fn named_campaign(dir: &Dir, name: &str, n: usize, head: &str) -> String {
    let mut toml =
        format!("name = \"{name}\"\n{head}\n[defaults]\nmodel = \"gemini_omni_flash\"\n");
    for i in 0..n {
        toml.push_str(&format!(
            "[[job]]\nid = \"{name}-{i}\"\nprompt = \"{name} prompt {i}\"\n"
        ));
    }
    let file = format!("{name}.toml");
    dir.write(&file, &toml);
    file
}

/// The prompt `gemini_campaign` gives job `i`.
pub fn prompt_of(prompt: &str, i: usize) -> String {
    format!("{prompt} {i}")
}

/// A report path as written, resolved against the campaign folder.
pub fn resolve(dir: &Dir, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.path().join(path)
    }
}

/// Every `*.part` file under `root`, recursively.
pub fn part_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".part") {
                found.push(path);
            }
        }
    }
    found
}

/// For every `succeeded` row: the file is there with the bytes the simulator
/// generated for its task (`video_size` bytes), the report's sha256 is the
/// file's, and no `.part` file is left beside it.
pub fn check_succeeded_videos(dir: &Dir, rows: &[BTreeMap<String, String>], video_size: u64) {
    for row in rows.iter().filter(|r| r["status"] == "succeeded") {
        let path = resolve(dir, &row["output_path"]);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; row {row:?}", path.display()));
        assert_eq!(bytes.len() as u64, video_size, "{row:?}");
        let on_disk = runner::util::sha256_hex(&bytes);
        assert_eq!(
            on_disk, row["sha256"],
            "report sha256 is the file's: {row:?}"
        );
        assert_eq!(
            on_disk,
            runner::sim::video_sha256_hex(&row["task_id"], video_size),
            "the bytes on disk are the bytes the server sent: {row:?}"
        );
        assert_eq!(row["bytes"], video_size.to_string(), "{row:?}");
        let mut part = path.into_os_string();
        part.push(".part");
        assert!(
            !Path::new(&part).exists(),
            "partial file left beside a finished video: {row:?}"
        );
    }
}

/// Rows by status, e.g. `{"succeeded": 57, "failed": 3}`.
pub fn status_counts(rows: &[BTreeMap<String, String>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(row["status"].clone()).or_default() += 1;
    }
    counts
}

/// Job ids of the rows with `status`.
pub fn ids_with_status(rows: &[BTreeMap<String, String>], status: &str) -> BTreeSet<String> {
    rows.iter()
        .filter(|r| r["status"] == status)
        .map(|r| r["job_id"].clone())
        .collect()
}

/// No output of the binary may show a panic.
pub fn assert_no_panic(output: &Output) {
    assert!(!text(output).contains("panicked"), "{}", text(output));
}

/// Sends `signal` (`"INT"`, `"KILL"`, …) to `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// The binary running in the background, its stdout and stderr going to files
/// (a pipe nobody reads could fill up and stall it).
pub struct Spawned {
    pub child: std::process::Child,
    pub started: Instant,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Spawned {
    /// Starts `cmd`; its output goes to `<dir>/logs/<tag>.stdout` and `.stderr`.
    pub fn start(mut cmd: Command, dir: &Dir, tag: &str) -> Spawned {
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).expect("mkdir logs");
        let stdout = logs.join(format!("{tag}.stdout"));
        let stderr = logs.join(format!("{tag}.stderr"));
        cmd.stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let child = cmd.spawn().expect("runner starts");
        Spawned {
            child,
            started: Instant::now(),
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits up to `limit` for the exit; `None` if it is still running then.
    pub async fn wait_for(&mut self, limit: Duration) -> Option<Output> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(Output {
                    status,
                    stdout: std::fs::read(&self.stdout).unwrap_or_default(),
                    stderr: std::fs::read(&self.stderr).unwrap_or_default(),
                });
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits up to `limit` for the exit, else kills it and fails the test.
    pub async fn wait(mut self, limit: Duration) -> Output {
        if let Some(output) = self.wait_for(limit).await {
            return output;
        }
        let _ = self.child.kill();
        let output = self.wait_for(Duration::from_secs(5)).await;
        panic!(
            "runner still running after {limit:?}; killed it\n{}",
            output.as_ref().map(text).unwrap_or_default()
        );
    }
}

/// A test that fails half-way must not leave a runner behind.
impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Counts journal lines with `"event":"EVENT"` in the state file.
pub fn journal_events(state: &Path, event: &str) -> usize {
    std::fs::read_to_string(state)
        .unwrap_or_default()
        .matches(&format!("\"event\":\"{event}\""))
        .count()
}

/// Waits (up to 30 s) until the state file records `n` events of kind `event`.
pub async fn wait_for_events(state: &Path, event: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while journal_events(state, event) < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} `{event}` records in {}",
            state.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `runner status MANIFEST` with no key; returns its output.
pub async fn status(dir: &Dir, manifest: &str) -> Output {
    let mut cmd = runner_cmd(dir);
    cmd.env_remove("TOAPIS_API_KEY").args(["status", manifest]);
    run(cmd).await
}
