//! The real engine (`runner::run::engine::Engine`) in the same world as the
//! stand-in loop: the same draws, the same provider buckets (a call over a
//! bucket is answered 429, as the provider does), answers at once. What the
//! engine decides is all its own: its limiter, its queues, its poll schedule.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use runner::api::{ApiError, Task, TaskStatus};
use runner::run::RunOptions;
use runner::run::download::Fetched;
use runner::run::engine::{Command, Engine, Event, Now};
use runner::state::CampaignState;
use tokio::time::Instant;

use super::{Bucket, Config, Draw, Outcome, Status, look};

/// Real model names for the world's models, in order (their own timings come from the draws).
const NAMES: [&str; 2] = ["veo3.1-fast", "gemini-omni-flash"];

fn manifest(cfg: &Config) -> String {
    let limits = if cfg.shared {
        format!(
            "requests_per_second = {}\nburst = {}\nsubmit_per_second = 100000\nquery_per_second = 100000\n",
            cfg.submit.rate, cfg.submit.burst
        )
    } else {
        format!(
            "submit_per_second = {}\nsubmit_burst = {}\nquery_per_second = {}\nquery_burst = {}\n",
            cfg.submit.rate, cfg.submit.burst, cfg.query.rate, cfg.query.burst
        )
    };
    let mut toml = format!(
        "name = \"vt\"\n[limits]\n{limits}max_in_flight = {}\nsubmit_concurrency = {}\npoll_queued = \"{}ms\"\npoll_in_progress = \"{}ms\"\ntask_timeout = \"10h\"\n",
        cfg.max_in_flight,
        cfg.max_in_flight,
        (cfg.poll_caps.0 * 1000.0) as u64,
        (cfg.poll_caps.1 * 1000.0) as u64
    );
    for i in 0..cfg.jobs {
        let model = NAMES[(i % cfg.models.len().max(1)) % NAMES.len()];
        toml.push_str(&format!(
            "[[job]]\nid = \"j{i}\"\nmodel = \"{model}\"\nprompt = \"p {i}\"\n"
        ));
    }
    toml
}

fn task(id: &str, status: TaskStatus, progress: Option<u32>) -> Task {
    let video_url = (status == TaskStatus::Completed).then(|| format!("https://v/{id}.mp4"));
    Task {
        id: id.to_string(),
        status,
        progress,
        video_url,
        expires_at: None,
        error: None,
        budget_empty_for: None,
    }
}

fn too_many(category: &str) -> ApiError {
    ApiError::Status {
        status: 429,
        message: "rate limit exceeded".into(),
        code: None,
        category: Some(category.into()),
        html: false,
        retry_after: Some(Duration::from_secs(1)),
        reset: None,
    }
}

/// Runs `cfg` with the real engine deciding everything.
pub fn drive_engine(cfg: &Config, draws: &[Draw]) -> Outcome {
    assert!(
        cfg.models.len() <= NAMES.len(),
        "at most {} models",
        NAMES.len()
    );
    let n = draws.len();
    let campaign = match runner::manifest::load_str(&manifest(cfg), std::path::Path::new("vt.toml"))
    {
        Ok(c) => Arc::new(c),
        Err(e) => panic!("manifest: {e}"),
    };
    let epoch = Instant::now();
    let wall0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let at = |secs: f64| Now {
        at: epoch + Duration::from_secs_f64(secs),
        wall: wall0 + Duration::from_secs_f64(secs),
    };
    let opts = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let mut engine = Engine::new(campaign, opts, CampaignState::default(), at(0.0));
    if let Err(e) = engine.plan(&[], |_, _| true) {
        panic!("plan: {e}");
    }
    let mut out = Outcome::new(n);
    let mut buckets = [Bucket::new(cfg.submit), Bucket::new(cfg.query)];
    let q = if cfg.shared { 0 } else { 1 };
    let mut task_of: HashMap<String, usize> = HashMap::new();
    let (mut now, mut in_flight, mut done) = (0.0f64, 0usize, 0usize);
    let mut steps = 0u64;
    while done < n {
        steps += 1;
        assert!(steps < 10_000_000, "the engine does not finish");
        let wake = engine.pump(at(now));
        let mut events = Vec::new();
        for command in engine.take_commands() {
            match command {
                Command::Submit { job, attempt, .. } => {
                    let result = if buckets[0].take(now) {
                        let id = format!("t{job}");
                        task_of.insert(id.clone(), job);
                        in_flight += 1;
                        out.max_in_flight = out.max_in_flight.max(in_flight);
                        out.submits_at.push(now);
                        out.submitted[job] = now;
                        Ok(task(&id, TaskStatus::Queued, Some(0)))
                    } else {
                        out.refused += 1;
                        Err(too_many("async_submit"))
                    };
                    events.push(Event::Submitted {
                        job,
                        attempt,
                        result,
                    });
                }
                Command::Poll { job, task_id } => {
                    let result = if buckets[q].take(now) {
                        out.polls += 1;
                        out.polls_at.push(now);
                        out.polls_of[job] += 1;
                        if task_of.get(&task_id) != Some(&job) || !out.ended[job].is_nan() {
                            out.stray_polls += 1;
                        }
                        let d = &draws[job];
                        let (status, progress) =
                            look(d, cfg.models[d.model].progress, now - out.submitted[job]);
                        let status = match status {
                            Status::Queued => TaskStatus::Queued,
                            Status::Running => TaskStatus::InProgress,
                            Status::Completed => {
                                if out.ended[job].is_nan() {
                                    in_flight -= 1;
                                    done += 1;
                                    out.ended[job] = now;
                                    out.makespan = now;
                                }
                                TaskStatus::Completed
                            }
                        };
                        Ok(task(&task_id, status, progress))
                    } else {
                        out.refused += 1;
                        Err(too_many("async_query"))
                    };
                    events.push(Event::Polled { job, result });
                }
                Command::Download { job, .. } => events.push(Event::Downloaded {
                    job,
                    result: Ok(Fetched {
                        bytes: 1,
                        sha256: "00".into(),
                    }),
                }),
                Command::Record(..)
                | Command::Sync
                | Command::Rename(_)
                | Command::Lookup { .. }
                | Command::Upload { .. } => {}
            }
        }
        if !events.is_empty() {
            // Answered at once: handled at the same instant, then the engine is pumped again.
            for event in events {
                engine.handle(event, at(now));
                for command in engine.take_commands() {
                    if let Command::Download { job, .. } = command {
                        engine.handle(
                            Event::Downloaded {
                                job,
                                result: Ok(Fetched {
                                    bytes: 1,
                                    sha256: "00".into(),
                                }),
                            },
                            at(now),
                        );
                    }
                }
            }
            continue;
        }
        let next = wake
            .map(|w| w.saturating_duration_since(epoch).as_secs_f64())
            .unwrap_or(f64::INFINITY);
        assert!(
            next.is_finite(),
            "stalled at {now}: {done}/{n} done, the engine waits for nothing"
        );
        now = next.max(now);
    }
    out
}
