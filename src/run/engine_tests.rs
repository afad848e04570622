//! The engine on a virtual clock, with no runtime, no network and no disk: a
//! small deterministic world answers its commands, and every step is checked
//! against the invariants a paid run must keep.
//!
//! - never more tasks in flight than `max_in_flight`;
//! - never a submit before its write-ahead record is synced;
//! - nothing sent twice: one task per attempt, no attempt beyond `max_attempts`;
//! - every job ends in a state the report can name, and the run ends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use tokio::time::Instant;

use super::super::RunOptions;
use super::{Command, Ending, Engine, Event, Now};
use crate::api::{ApiError, Task, TaskStatus};
use crate::journal::Record;
use crate::manifest::Campaign;
use crate::run::download::Fetched;
use crate::state::CampaignState;

/// What the world does, drawn per campaign.
#[derive(Debug, Clone)]
struct World {
    jobs: usize,
    max_in_flight: usize,
    max_attempts: u32,
    /// Seconds from submit to completed, per job (the same on every attempt).
    durations: Vec<f64>,
    /// Jobs whose first attempt's generation fails.
    fails_first: HashSet<usize>,
    /// Jobs whose first submit is answered 400.
    refused: HashSet<usize>,
    /// Jobs whose first submit answer is lost after the task was created.
    lost: HashSet<usize>,
    /// Seconds an answer takes to come back.
    latency: f64,
}

fn campaign(world: &World) -> Arc<Campaign> {
    let mut toml = format!(
        "name = \"vt\"\n[limits]\nmax_in_flight = {}\nmax_attempts = {}\npoll_queued = \"1s\"\npoll_in_progress = \"2s\"\ntask_timeout = \"10m\"\n\
         [defaults]\nmodel = \"veo3.1-fast\"\n",
        world.max_in_flight, world.max_attempts
    );
    for i in 0..world.jobs {
        toml.push_str(&format!("[[job]]\nid = \"j{i}\"\nprompt = \"p {i}\"\n"));
    }
    match crate::manifest::load_str(&toml, std::path::Path::new("vt.toml")) {
        Ok(campaign) => Arc::new(campaign),
        Err(e) => panic!("test manifest: {e}"),
    }
}

/// What the world knows of a task it created.
struct WorldTask {
    job: usize,
    done: f64,
    fails: bool,
}

/// Outcome of one campaign in the world.
#[derive(Debug)]
struct Outcome {
    makespan: f64,
    polls: usize,
    tasks: usize,
    ending: String,
    phases: BTreeMap<String, String>,
}

/// Runs the engine against `world` to the end, checking every step.
fn run_world(world: &World) -> Outcome {
    let campaign = campaign(world);
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
    let mut engine = Engine::new(campaign.clone(), opts, CampaignState::default(), at(0.0));
    if let Err(e) = engine.plan(&[], |_, _| true) {
        panic!("plan: {e}");
    }

    // Answers on their way back: (time, order, event).
    let mut pending: Vec<(f64, u64, Event)> = Vec::new();
    let mut order = 0u64;
    let mut tasks: HashMap<String, WorldTask> = HashMap::new();
    let mut unsynced: HashSet<String> = HashSet::new();
    let mut synced_attempts: HashSet<(String, u32)> = HashSet::new();
    let mut sent_attempts: HashSet<(String, u32)> = HashSet::new();
    let mut in_flight: HashSet<usize> = HashSet::new();
    let mut submits_of: HashMap<usize, u32> = HashMap::new();
    let mut polls = 0usize;
    let mut now = 0.0f64;
    let mut steps = 0u32;

    loop {
        steps += 1;
        assert!(steps < 200_000, "the run does not end: {world:?}");
        let wake = engine.pump(at(now));
        assert_eq!(
            engine.counts(),
            recount(&engine),
            "counts kept by the engine drifted"
        );
        let mut commands = engine.take_commands();
        let mut handled = false;
        loop {
            for command in std::mem::take(&mut commands) {
                match command {
                    Command::Record(_, record) => {
                        if let Record::Submitting { job, attempt, .. } = &record {
                            unsynced.insert(format!("{job}#{attempt}"));
                        }
                        // A lost answer frees the slot as far as the engine can know.
                        if let Record::Completed { job, .. }
                        | Record::TaskFailed { job, .. }
                        | Record::SubmitUnknown { job, .. }
                        | Record::Finished { job, .. } = &record
                        {
                            let idx: usize = job[1..].parse().unwrap_or(usize::MAX);
                            in_flight.remove(&idx);
                        }
                    }
                    Command::Sync => {
                        for key in unsynced.drain() {
                            if let Some((job, attempt)) = key.split_once('#') {
                                synced_attempts
                                    .insert((job.to_string(), attempt.parse().unwrap_or(0)));
                            }
                        }
                    }
                    Command::Submit { job, attempt, .. } => {
                        let id = format!("j{job}");
                        assert!(
                            synced_attempts.contains(&(id.clone(), attempt)),
                            "submit of {id} attempt {attempt} before its write-ahead record was synced"
                        );
                        assert!(
                            sent_attempts.insert((id.clone(), attempt)),
                            "{id} attempt {attempt} sent twice"
                        );
                        assert!(attempt <= world.max_attempts, "{id}: attempt {attempt}");
                        let n = submits_of.entry(job).or_default();
                        *n += 1;
                        let first = *n == 1;
                        let event = if first && world.refused.contains(&job) {
                            Event::Submitted {
                                job,
                                attempt,
                                result: Err(ApiError::Status {
                                    status: 400,
                                    message: "bad prompt".into(),
                                    code: None,
                                    category: None,
                                    html: false,
                                    retry_after: None,
                                    reset: None,
                                }),
                            }
                        } else {
                            let task_id = format!("t{job}-{attempt}");
                            tasks.insert(
                                task_id.clone(),
                                WorldTask {
                                    job,
                                    done: now + world.durations[job],
                                    fails: first && world.fails_first.contains(&job),
                                },
                            );
                            in_flight.insert(job);
                            assert!(
                                in_flight.len() <= world.max_in_flight,
                                "{} tasks in flight, cap {}",
                                in_flight.len(),
                                world.max_in_flight
                            );
                            if first && world.lost.contains(&job) {
                                Event::Submitted {
                                    job,
                                    attempt,
                                    result: Err(ApiError::Status {
                                        status: 524,
                                        message: "a timeout occurred".into(),
                                        code: None,
                                        category: None,
                                        html: true,
                                        retry_after: None,
                                        reset: None,
                                    }),
                                }
                            } else {
                                Event::Submitted {
                                    job,
                                    attempt,
                                    result: Ok(task(&task_id, TaskStatus::Queued)),
                                }
                            }
                        };
                        order += 1;
                        pending.push((now + world.latency, order, event));
                    }
                    Command::Poll { job, task_id } => {
                        polls += 1;
                        let answer = match tasks.get(&task_id) {
                            Some(t) if t.job != job => panic!("{task_id} polled for j{job}"),
                            Some(t) if now + world.latency / 2.0 >= t.done && t.fails => {
                                task(&task_id, TaskStatus::Failed)
                            }
                            Some(t) if now + world.latency / 2.0 >= t.done => {
                                let mut done = task(&task_id, TaskStatus::Completed);
                                done.video_url = Some(format!("https://v/{task_id}.mp4"));
                                done
                            }
                            Some(_) => task(&task_id, TaskStatus::InProgress),
                            None => panic!("poll of {task_id}, which the world never created"),
                        };
                        order += 1;
                        pending.push((
                            now + world.latency,
                            order,
                            Event::Polled {
                                job,
                                result: Ok(answer),
                            },
                        ));
                    }
                    Command::Download { job, .. } => {
                        order += 1;
                        pending.push((
                            now + world.latency,
                            order,
                            Event::Downloaded {
                                job,
                                result: Ok(Fetched {
                                    bytes: 100,
                                    sha256: "00".into(),
                                }),
                            },
                        ));
                    }
                    Command::Lookup { .. } | Command::Upload { .. } | Command::Rename(_) => {}
                }
            }
            // Answers due now are handled in this step, as the driver does a batch.
            pending.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            if pending.first().is_some_and(|p| p.0 <= now) {
                let (_, _, event) = pending.remove(0);
                engine.handle(event, at(now));
                commands = engine.take_commands();
                handled = true;
                continue;
            }
            break;
        }
        if handled {
            // As the driver does: after a batch of answers, pump again at once.
            continue;
        }
        if let Some(ending) = engine.ending(at(now)) {
            let phases = campaign
                .jobs
                .iter()
                .enumerate()
                .map(|(idx, job)| {
                    let phase = engine.job_state(idx).status().as_str();
                    (job.id.clone(), phase.to_string())
                })
                .collect();
            return Outcome {
                makespan: now,
                polls,
                tasks: tasks.len(),
                ending: format!("{ending:?}"),
                phases,
            };
        }
        let next_answer = pending.first().map(|p| p.0);
        let next_wake = wake.map(|w| w.saturating_duration_since(epoch).as_secs_f64());
        now = match (next_answer, next_wake) {
            (Some(a), Some(w)) => a.min(w).max(now),
            (Some(a), None) => a.max(now),
            (None, Some(w)) => w.max(now),
            (None, None) => panic!("nothing to wait for and no ending: {world:?}"),
        };
    }
}

fn task(id: &str, status: TaskStatus) -> Task {
    Task {
        id: id.to_string(),
        status,
        progress: None,
        video_url: None,
        expires_at: None,
        error: None,
        budget_empty_for: None,
    }
}

/// The counts the engine keeps as slots change, counted afresh from its slots.
fn recount(engine: &Engine) -> crate::run::progress::Counts {
    let mut counts = crate::run::progress::Counts::default();
    for idx in 0..engine.campaign.jobs.len() {
        *super::count_of(&mut counts, &engine.job_state(idx).phase) += 1;
    }
    counts
}

fn plain(jobs: usize, max_in_flight: usize, secs: f64) -> World {
    World {
        jobs,
        max_in_flight,
        max_attempts: 2,
        durations: vec![secs; jobs],
        fails_first: HashSet::new(),
        refused: HashSet::new(),
        lost: HashSet::new(),
        latency: 0.05,
    }
}

#[test]
fn a_campaign_runs_to_the_end_in_virtual_time() {
    let out = run_world(&plain(40, 8, 3.0));
    assert_eq!(out.ending, format!("{:?}", Ending::Finished));
    assert!(
        out.phases.values().all(|p| p == "succeeded"),
        "{:?}",
        out.phases
    );
    assert_eq!(out.tasks, 40);
    // 5 waves of 8 tasks of 3 s: not less than 15 s of virtual time.
    assert!(out.makespan >= 15.0, "{out:?}");
}

#[test]
fn failures_refusals_and_lost_answers_end_in_states_the_report_names() {
    let mut world = plain(12, 3, 2.0);
    world.fails_first = [1, 2].into_iter().collect();
    world.refused = [3].into_iter().collect();
    world.lost = [4].into_iter().collect();
    let out = run_world(&world);
    // A failed generation is tried again (max_attempts 2), a 400 fails the job,
    // a lost answer is `unknown` (veo takes no client_business_id): never resent.
    assert_eq!(out.phases["j1"], "succeeded", "{:?}", out.phases);
    assert!(out.phases["j3"].starts_with("failed"), "{:?}", out.phases);
    assert!(out.phases["j4"].starts_with("unknown"), "{:?}", out.phases);
    assert_eq!(out.tasks, 12 - 1 + 2, "two second attempts, one refusal");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_on_random_campaigns(
        jobs in 1usize..40,
        max_in_flight in 1usize..12,
        max_attempts in 1u32..3,
        durations in proptest::collection::vec(0.05f64..20.0, 40),
        fails in proptest::collection::hash_set(0usize..40, 0..8),
        refused in proptest::collection::hash_set(0usize..40, 0..4),
        lost in proptest::collection::hash_set(0usize..40, 0..4),
        latency in 0.001f64..0.5,
    ) {
        let world = World {
            jobs,
            max_in_flight,
            max_attempts,
            durations,
            fails_first: fails,
            refused,
            lost,
            latency,
        };
        let out = run_world(&world);
        prop_assert_eq!(&out.ending, &format!("{:?}", Ending::Finished));
        for (job, phase) in &out.phases {
            let idx: usize = job[1..].parse().unwrap_or(0);
            let spoiled = world.refused.contains(&idx)
                || world.lost.contains(&idx)
                || (world.fails_first.contains(&idx) && world.max_attempts < 2);
            let expected_ok = !spoiled;
            if expected_ok {
                prop_assert_eq!(phase.as_str(), "succeeded", "{:?}", out.phases);
            } else {
                prop_assert!(phase != "pending", "{}: {}", job, phase);
            }
        }
        // At most one poll per task per poll_queued second of its life, plus a few.
        prop_assert!(out.polls <= out.tasks * 40 + 10, "{} polls", out.polls);
    }
}
