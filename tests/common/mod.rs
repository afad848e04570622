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
