//! The crash loop (issue 3): the real binary killed with SIGKILL at random
//! moments, then run to the end. Nothing may be lost, no file may be partial
//! under its final name, and a job may be paid for twice only if the runner
//! said its submit was `unknown` and the user asked for a resend.
//!
//! The kill moments come from a seeded RNG; the seed is printed, and
//! `CRASH_SEED=N cargo test --test crash` replays a failing sequence
//! (as far as the OS scheduler allows).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use runner::sim::{SimConfig, SimHandle};

fn seed(default: u64) -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

struct Crash {
    name: &'static str,
    jobs: usize,
    kills: usize,
    /// Milliseconds after the start at which a run is killed.
    kill_after_ms: Range<u64>,
    sim: SimConfig,
    limits: &'static str,
    seed: u64,
}

/// Runs the campaign `kills` times with a SIGKILL at a random moment, checking
/// after each kill that the journal still reads and that no final-named file is
/// short; then runs it to the end (resending `unknown` jobs if there are any),
/// and checks the outcome.
async fn crash_loop(c: Crash) {
    let prompt = format!("{} crash prompt", c.name);
    let size = c.sim.video_size;
    eprintln!(
        "{}: seed {} (CRASH_SEED={} to replay)",
        c.name, c.seed, c.seed
    );
    let mut rng = StdRng::seed_from_u64(c.seed);
    let sim = SimHandle::start(c.sim).await.unwrap();
    let dir = Dir::new();
    let manifest = format!("{}.toml", c.name);
    dir.write(
        &manifest,
        &gemini_campaign(c.name, c.limits, c.jobs, &prompt),
    );
    let out_dir = dir.path().join("out");
    let state = out_dir.join("state.jsonl");

    let mut landed = 0;
    let mut mid_download = 0;
    let mut unknown_before = 0;
    for k in 0..c.kills {
        let delay = rng.random_range(c.kill_after_ms.clone());
        let mut child = Spawned::start(
            run_against(&dir, &sim, &manifest, &[]),
            &dir,
            &format!("kill-{k}"),
        );
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let finished_first = !child.running();
        if !finished_first {
            child.signal("KILL");
            landed += 1;
        }
        let out = child.wait(Duration::from_secs(10)).await;
        assert_no_panic(&out);
        if finished_first {
            eprintln!("{}: kill {k} at {delay} ms came after the exit", c.name);
        } else {
            assert_eq!(
                out.status.code(),
                None,
                "killed by a signal: {}",
                text(&out)
            );
        }

        // The journal reads after every kill (a torn last line is allowed).
        let st = status(&dir, &manifest).await;
        assert_eq!(
            st.status.code(),
            Some(0),
            "kill {k} at {delay} ms left an unreadable journal: {}",
            text(&st)
        );
        assert_no_panic(&st);
        // Each kill leaves at most `submit_concurrency` (2) more jobs unknown.
        let unknown_now = String::from_utf8_lossy(&st.stdout)
            .lines()
            .filter(|l| l.trim_start().starts_with("unknown "))
            .count();
        assert!(
            unknown_now <= unknown_before + 2,
            "kill {k} at {delay} ms left {} more jobs unknown: {}",
            unknown_now - unknown_before,
            text(&st)
        );
        unknown_before = unknown_now;
        if !finished_first && !part_files(&out_dir).is_empty() {
            mid_download += 1;
        }
        // A file under its final name is never partial.
        for entry in std::fs::read_dir(&out_dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "mp4") {
                let len = entry.metadata().unwrap().len();
                assert_eq!(
                    len,
                    size,
                    "kill {k} at {delay} ms: {} is {len} bytes under its final name",
                    path.display()
                );
            }
        }
    }
    eprintln!(
        "{}: {landed} of {} kills landed ({mid_download} left a .part), {unknown_before} jobs unknown; journal {} lines, {} tasks created so far",
        c.name,
        c.kills,
        std::fs::read_to_string(&state)
            .unwrap_or_default()
            .lines()
            .count(),
        sim.stats().tasks_created
    );
    assert!(
        landed * 2 >= c.kills,
        "most runs finished before their kill; the campaign is too fast to test anything"
    );

    // To the end.
    let started = Instant::now();
    let out = run(run_against(&dir, &sim, &manifest, &[])).await;
    assert_no_panic(&out);
    let rows = dir.report("out/report.csv");
    let unknown: BTreeSet<String> = ids_with_status(&rows, "unknown");
    let others: Vec<_> = rows
        .iter()
        .filter(|r| r["status"] != "succeeded" && r["status"] != "unknown")
        .collect();
    assert!(others.is_empty(), "{others:?}\n{}", text(&out));
    eprintln!(
        "{}: final run {:.1?}, {} unknown: {unknown:?}",
        c.name,
        started.elapsed(),
        unknown.len()
    );
    assert!(
        unknown.len() <= 2 * c.kills,
        "{} jobs unknown after {} kills (submit_concurrency is 2)",
        unknown.len(),
        c.kills
    );
    if unknown.is_empty() {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let out = run(run_against(&dir, &sim, &manifest, &["--resubmit-unknown"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    let rows = dir.report("out/report.csv");
    assert_eq!(rows.len(), c.jobs);
    assert!(
        rows.iter().all(|r| r["status"] == "succeeded"),
        "{:?}",
        status_counts(&rows)
    );
    check_succeeded_videos(&dir, &rows, size);
    let parts = part_files(&out_dir);
    assert!(parts.is_empty(), "partial files left: {parts:?}");

    let stats = sim.stats();
    let twice: Vec<(&String, &u32)> = stats
        .submits_by_prompt
        .iter()
        .filter(|(_, n)| **n > 1)
        .collect();
    eprintln!("{}: submitted more than once: {twice:?}", c.name);
    assert!(
        twice.len() <= 2 * c.kills,
        "{} jobs paid twice after {} kills",
        twice.len(),
        c.kills
    );
    for row in &rows {
        let n = stats
            .submits_by_prompt
            .get(&row["prompt"])
            .copied()
            .unwrap_or(0);
        assert!(n >= 1, "{row:?}");
        if n > 1 {
            assert!(
                n == 2 && unknown.contains(&row["job_id"]),
                "job {} was submitted {n} times but was never reported unknown ({row:?})",
                row["job_id"]
            );
        }
    }
}

/// The acceptance: 150 jobs, six kills, then to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_kills_150_jobs() {
    crash_loop(Crash {
        name: "six",
        jobs: 150,
        kills: 6,
        kill_after_ms: 100..900,
        sim: SimConfig {
            time_scale: 1.0,
            no_metering: true,
            queue_time: 0.05,
            generation_time: Some(0.5),
            video_size: 32 * 1024,
            ..SimConfig::default()
        },
        limits: "[limits]\nrequests_per_second = 300\nsubmit_per_second = 10000\nquery_per_second = 10000\nburst = 10\nmax_in_flight = 20\ndownloads = 4\npoll_queued = \"100ms\"\npoll_in_progress = \"100ms\"\n",
        seed: seed(20_261_122),
    })
    .await;
}

/// Many kills at short random moments, to shake out torn journal lines and
/// rename races; bigger videos so some kills land mid-download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_30_jobs() {
    crash_loop(Crash {
        name: "twenty",
        jobs: 30,
        kills: 20,
        kill_after_ms: 20..400,
        sim: SimConfig {
            time_scale: 1.0,
            no_metering: true,
            queue_time: 0.02,
            generation_time: Some(0.6),
            // Over 1 MiB: the writer and hasher threads are what the kills interrupt.
            video_size: 6 * 1024 * 1024 + 1,
            ..SimConfig::default()
        },
        limits: "[limits]\nrequests_per_second = 300\nsubmit_per_second = 10000\nquery_per_second = 10000\nburst = 10\nmax_in_flight = 3\ndownloads = 2\npoll_queued = \"50ms\"\npoll_in_progress = \"50ms\"\n",
        seed: seed(7),
    })
    .await;
}
