//! The simulator's shared state: tasks, uploads, the seeded RNG, the rate limiter and the stats.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::config::{ResultShape, SimConfig};
use super::faults::Fault;
use super::validate::Submission;

/// `request_times_ms` stops growing here so a long `runner simulate` cannot exhaust memory.
const MAX_REQUEST_TIMES: usize = 1_000_000;

/// What the simulator has seen and done, for tests to assert on (also `GET /_sim/stats`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Default)]
pub struct SimStats {
    /// Submit requests that created a task and were answered 200.
    pub submits: u32,
    /// Tasks created per prompt text, including those whose answer was dropped
    /// (`submit_drop`): what was paid for, so a job submitted twice shows up as 2.
    pub submits_by_prompt: BTreeMap<String, u32>,
    /// Tasks created, including those whose answer was dropped.
    pub tasks_created: u32,
    /// Poll requests that passed authentication (whatever they were answered).
    pub polls: u32,
    /// Images accepted by the upload call.
    pub uploads: u32,
    /// Download requests that started sending a video (200 or 206).
    pub downloads: u32,
    /// Requests answered 400 (validation, bad uploads).
    pub rejected_400: u32,
    /// Requests answered 401.
    pub unauthorized_401: u32,
    /// Requests answered 429 by the `rate_limit` limiter (injected 429s are in `injected`).
    pub rate_limited_429: u32,
    /// Polls and downloads of unknown tasks or files, answered 404.
    pub not_found_404: u32,
    /// Downloads of expired URLs, answered 410.
    pub expired_410: u32,
    /// Faults injected, by knob name (`submit_429`, `poll_drop`, `fail_rate`, …).
    pub injected: BTreeMap<String, u32>,
    /// Submits answered 402 because the balance could not cover them.
    pub payment_402: u32,
    /// API requests answered 503 HTML pages by an outage.
    pub outage_503: u32,
    /// Milliseconds since the simulator started, one per `/v1` request (submit,
    /// poll, upload, whatever the answer), capped at 1,000,000 entries.
    pub request_times_ms: Vec<u64>,
}

/// One generation task; its status is computed from the clock when asked.
#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub id: String,
    pub model: String,
    pub metadata: Map<String, Value>,
    pub created: Instant,
    /// End of `queued`, start of `in_progress`.
    pub started: Instant,
    /// End of `in_progress`: `completed` or `failed` from here on.
    pub done: Instant,
    /// The video URL answers 410 from here on.
    pub expires: Instant,
    /// Decided at creation from `fail_rate`.
    pub fails: bool,
}

/// What the state of a task is at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Queued,
    InProgress { progress: u8 },
    Completed,
    Failed,
}

impl Task {
    pub fn phase(&self, now: Instant) -> Phase {
        if now < self.started {
            Phase::Queued
        } else if now < self.done {
            let total = (self.done - self.started).as_secs_f64();
            let frac = (now - self.started).as_secs_f64() / total;
            // Truncation is intended: 99 is reached only at the very end.
            Phase::InProgress {
                progress: (frac * 99.0).clamp(0.0, 99.0) as u8,
            }
        } else if self.fails {
            Phase::Failed
        } else {
            Phase::Completed
        }
    }
}

/// An image kept by the upload call, served back at `/uploads/{id}.{ext}`.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub mime_type: &'static str,
    pub bytes: bytes::Bytes,
}

/// Admits `rate` requests per second with bursts up to `max(rate, 1)`: a
/// client pacing itself at `rate` never hits it, one going faster soon does.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64, now: Instant) -> Self {
        let capacity = rate.max(1.0);
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// `Ok` if admitted, else the whole seconds until a token is free.
    fn admit(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / self.rate).ceil() as u64).max(1))
        }
    }
}

/// Everything behind the one lock; never held across an `.await`.
#[derive(Debug)]
pub(crate) struct Inner {
    rng: StdRng,
    pub tasks: HashMap<String, Task>,
    /// Task ids by the `client_business_id` their submit carried (the latest wins).
    pub by_client_id: HashMap<String, String>,
    pub uploads: HashMap<String, Upload>,
    pub stats: SimStats,
    limiter: Option<TokenBucket>,
    /// What is left of `--balance`, in USD (None: unlimited).
    pub balance: Option<f64>,
    /// Every API route answers 503 HTML pages while this is on.
    pub outage: bool,
    /// Polls per task, for `--swap-ids`; polls after completion, for `--late-url`;
    /// GETs per video, for `--html-downloads`.
    pub polls_of: HashMap<String, u32>,
    pub completed_polls_of: HashMap<String, u32>,
    pub downloads_of: HashMap<String, u32>,
    /// Range requests per video, for `--bad-range`.
    pub ranges_of: HashMap<String, u32>,
}

impl Inner {
    /// Rolls the dice for `fault` and counts it when it hits.
    pub fn roll(&mut self, fault: Fault, config: &SimConfig) -> bool {
        let p = fault.probability(config);
        // `random::<f64>()` is in [0, 1): p = 1.0 always hits, p = 0.0 never.
        let hit = p > 0.0 && self.rng.random::<f64>() < p;
        if hit {
            tracing::debug!(fault = fault.name(), "injecting a fault");
            *self
                .stats
                .injected
                .entry(fault.name().to_owned())
                .or_default() += 1;
        }
        hit
    }

    /// A uniform draw in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rng.random_range(0..n)
        }
    }

    /// A ULID-like ID: 48 bits of milliseconds and 80 seeded random bits, in Crockford base32.
    pub fn new_id(&mut self, prefix: &str, unix_ms: u64) -> String {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let random: u128 = self.rng.random::<u128>() & ((1u128 << 80) - 1);
        let value = (u128::from(unix_ms & ((1 << 48) - 1)) << 80) | random;
        let mut id = String::with_capacity(prefix.len() + 26);
        id.push_str(prefix);
        for i in 0..26 {
            let shift = 125 - 5 * i;
            id.push(char::from(ALPHABET[((value >> shift) & 31) as usize]));
        }
        id
    }
}

/// The creation time inside an id made by [`Inner::new_id`] (after its prefix).
fn id_unix_ms(body: &str) -> Option<u64> {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    if body.len() != 26 {
        return None;
    }
    let mut value: u128 = 0;
    for c in body.bytes() {
        let digit = ALPHABET.iter().position(|a| *a == c)?;
        value = (value << 5) | digit as u128;
    }
    u64::try_from(value >> 80).ok()
}

/// State shared by all handlers.
#[derive(Debug)]
pub(crate) struct SimState {
    pub config: SimConfig,
    /// `http://127.0.0.1:PORT`: video and upload URLs point back here.
    pub base_url: String,
    /// Instant 0 of `request_times_ms` and of the simulated clock.
    start: Instant,
    /// Wall-clock time at `start`, so timestamps follow tokio's clock (and `time::pause`).
    start_unix: Duration,
    inner: Mutex<Inner>,
}

impl SimState {
    pub fn new(config: SimConfig, base_url: String) -> Self {
        let now = Instant::now();
        let inner = Inner {
            rng: StdRng::seed_from_u64(config.seed),
            tasks: HashMap::new(),
            by_client_id: HashMap::new(),
            uploads: HashMap::new(),
            stats: SimStats::default(),
            limiter: config.rate_limit.map(|r| TokenBucket::new(r, now)),
            balance: config.balance,
            outage: false,
            polls_of: HashMap::new(),
            completed_polls_of: HashMap::new(),
            downloads_of: HashMap::new(),
            ranges_of: HashMap::new(),
        };
        SimState {
            config,
            base_url,
            start: now,
            start_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            inner: Mutex::new(inner),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing below panics while holding the lock, and a half-updated
        // counter is no reason to stop serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }

    /// Simulated seconds since the simulator started (real time divided by `time_scale`).
    pub fn sim_secs(&self, at: Instant) -> f64 {
        let real = at.saturating_duration_since(self.start).as_secs_f64();
        if self.config.time_scale > 0.0 {
            real / self.config.time_scale
        } else {
            f64::INFINITY
        }
    }

    fn unix(&self, at: Instant) -> Duration {
        self.start_unix + at.saturating_duration_since(self.start)
    }

    pub fn unix_secs(&self, at: Instant) -> u64 {
        self.unix(at).as_secs()
    }

    pub fn unix_ms(&self, at: Instant) -> u64 {
        u64::try_from(self.unix(at).as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a `/v1` request's arrival in `request_times_ms`.
    pub fn arrive(&self, inner: &mut Inner, now: Instant) {
        if inner.stats.request_times_ms.len() < MAX_REQUEST_TIMES {
            let ms = now.saturating_duration_since(self.start).as_millis();
            inner
                .stats
                .request_times_ms
                .push(u64::try_from(ms).unwrap_or(u64::MAX));
        }
    }

    /// Applies `rate_limit`; `Err` carries the Retry-After seconds of the 429.
    pub fn rate_limit(&self, inner: &mut Inner, now: Instant) -> Result<(), u64> {
        match inner.limiter.as_mut().map(|l| l.admit(now)) {
            Some(Err(retry_after)) => {
                inner.stats.rate_limited_429 += 1;
                Err(retry_after)
            }
            _ => Ok(()),
        }
    }

    /// Creates a task for `sub`: timings, jitter and failure are decided now.
    pub fn create_task(&self, inner: &mut Inner, sub: Submission, now: Instant) -> Task {
        let config = &self.config;
        let id = inner.new_id("video_", self.unix_ms(now));
        // Clamped: a programmatic config is not checked by clap's parsers.
        let jitter = if config.generation_jitter.is_finite() {
            config.generation_jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let factor = if jitter > 0.0 {
            1.0 + inner.rng.random_range(-jitter..=jitter)
        } else {
            1.0
        };
        let started = now + config.scaled(config.queue_time);
        let done = started + config.scaled(config.generation_secs(&sub.model) * factor);
        let expires = done + config.scaled(config.url_ttl);
        let fails = inner.roll(Fault::FailRate, config);
        let task = Task {
            id: id.clone(),
            model: sub.model,
            metadata: sub.metadata,
            created: now,
            started,
            done,
            expires,
            fails,
        };
        inner.tasks.insert(id, task.clone());
        inner.stats.tasks_created += 1;
        *inner.stats.submits_by_prompt.entry(sub.prompt).or_default() += 1;
        task
    }

    /// A task by id. With `revive`, an id this simulator never issued but
    /// shaped like one of ours is rebuilt from the creation time inside it, so
    /// a resumed `runner run --simulate` finds the tasks of the earlier run.
    pub fn find_task(&self, inner: &mut Inner, id: &str, now: Instant) -> Option<Task> {
        if let Some(task) = inner.tasks.get(id) {
            return Some(task.clone());
        }
        if let Some(task) = inner.by_client_id.get(id).and_then(|t| inner.tasks.get(t)) {
            return Some(task.clone());
        }
        if !self.config.revive {
            return None;
        }
        let created_ms = id_unix_ms(id.strip_prefix("video_")?)?;
        let age = Duration::from_millis(self.unix_ms(now).saturating_sub(created_ms));
        let created = now.checked_sub(age).unwrap_or(self.start);
        let config = &self.config;
        // The model is not in the id: the slower model's timing is the safe guess.
        let started = created + config.scaled(config.queue_time);
        let done = started + config.scaled(config.generation_secs("veo"));
        let task = Task {
            id: id.to_string(),
            model: "unknown".into(),
            metadata: Map::new(),
            created,
            started,
            done,
            expires: done + config.scaled(config.url_ttl),
            fails: false,
        };
        inner.tasks.insert(id.to_string(), task.clone());
        Some(task)
    }

    /// URL of a task's video.
    pub fn video_url(&self, task_id: &str) -> String {
        format!("{}/files/{task_id}.mp4", self.base_url)
    }

    /// The task object as submit and poll answer it in `phase`.
    pub fn task_json(&self, task: &Task, phase: Phase) -> Value {
        let (status, progress) = match phase {
            Phase::Queued => ("queued", 0),
            Phase::InProgress { progress } => ("in_progress", progress),
            Phase::Completed => ("completed", 100),
            Phase::Failed => ("failed", 100),
        };
        let mut obj = json!({
            "id": task.id,
            "object": "generation.task",
            "model": task.model,
            "status": status,
            "progress": progress,
            "created_at": self.unix_secs(task.created),
            "metadata": task.metadata,
        });
        match phase {
            Phase::Completed => {
                let url = Value::String(self.video_url(&task.id));
                obj["completed_at"] = self.unix_secs(task.done).into();
                obj["expires_at"] = self.unix_secs(task.expires).into();
                match self.config.result_shape {
                    ResultShape::DataUrl => obj["result"] = json!({"data": [{"url": url}]}),
                    ResultShape::Videos => obj["result"] = json!({"videos": [{"url": url}]}),
                    ResultShape::ResultUrl => obj["result"] = json!({"url": url}),
                    ResultShape::Url => obj["url"] = url,
                    ResultShape::VideoUrl => obj["video_url"] = url,
                }
            }
            Phase::Failed => {
                obj["completed_at"] = self.unix_secs(task.done).into();
                obj["error"] = json!({
                    "message": "generation failed: content policy (simulated)",
                    "code": "generation_failed",
                });
            }
            Phase::Queued | Phase::InProgress { .. } => {}
        }
        obj
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_admits_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, t0);
        assert_eq!(b.admit(t0), Ok(()));
        assert_eq!(b.admit(t0), Ok(()));
        assert_eq!(b.admit(t0), Err(1));
        assert_eq!(b.admit(t0 + Duration::from_millis(500)), Ok(()));
        assert!(b.admit(t0 + Duration::from_millis(500)).is_err());
        // A fractional rate: one request every four seconds.
        let mut slow = TokenBucket::new(0.25, t0);
        assert_eq!(slow.admit(t0), Ok(()));
        assert_eq!(slow.admit(t0 + Duration::from_secs(1)), Err(3));
        assert_eq!(slow.admit(t0 + Duration::from_secs(4)), Ok(()));
    }

    #[test]
    fn ids_are_ulid_like_and_unique() {
        let state = SimState::new(SimConfig::default(), String::new());
        let mut inner = state.lock();
        let a = inner.new_id("video_", 1_768_380_224_000);
        let b = inner.new_id("video_", 1_768_380_224_000);
        assert_eq!(a.len(), "video_".len() + 26);
        assert!(a.starts_with("video_01K"), "{a}");
        assert_ne!(a, b);
        assert_eq!(id_unix_ms(&a["video_".len()..]), Some(1_768_380_224_000));
        assert_eq!(id_unix_ms("not-an-id"), None);
    }
}
