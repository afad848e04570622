//! The simulator's shared state: tasks, uploads, the seeded RNG, the rate limiter and the stats.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::config::{ProgressMode, ResultShape, SimConfig};
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
    /// Requests answered 429 by the submit and query buckets or the `rate_limit`
    /// limiter (injected 429s are in `injected`).
    pub rate_limited_429: u32,
    /// The same 429s by `X-RateLimit-Category` (`async_submit`, `async_query`;
    /// `rate_limit` for the `--rate-limit` bucket, which names none).
    pub rate_limited_by_category: BTreeMap<String, u32>,
    /// `GET /v1/balance` calls answered.
    pub balance_calls: u32,
    /// Milliseconds since the start of every 429 answered (metered or injected), capped like `request_times_ms`.
    pub rate_limited_ms: Vec<u64>,
    /// Milliseconds since the start of every submit that created a task, capped like `request_times_ms`.
    pub submit_times_ms: Vec<u64>,
    /// Every task created, in order: its queue and generation time in simulated
    /// (unscaled) seconds, as drawn, capped like `request_times_ms`. A benchmark
    /// computes from them what a runner that knew them could have done.
    pub task_times: Vec<[f64; 2]>,
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
    /// What `progress` it shows (`--progress-mode`).
    pub progress_mode: ProgressMode,
}

/// What the state of a task is at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Queued { progress: Option<u8> },
    InProgress { progress: Option<u8> },
    Completed,
    Failed,
}

impl Task {
    pub fn phase(&self, now: Instant) -> Phase {
        // Truncation is intended: 99 is reached only at the very end.
        let progress = || {
            let secs = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
            self.progress_mode.shown(
                secs(self.created, now),
                secs(self.created, self.started),
                secs(self.started, self.done),
            )
        };
        if now < self.started {
            Phase::Queued {
                progress: progress(),
            }
        } else if now < self.done {
            Phase::InProgress {
                progress: progress(),
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

/// A token bucket: `rate` tokens a second, at most `capacity`, full at the start.
/// A call takes a token; a refused call takes none (the provider's rule).
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64, capacity: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// `Ok` if a token is there at `now`; else the seconds until one is.
    fn check(&mut self, now: Instant) -> Result<(), f64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err((1.0 - self.tokens) / self.rate)
        }
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// Whole tokens left.
    fn remaining(&self) -> u32 {
        self.tokens.max(0.0).floor() as u32
    }
}

/// Which of the provider's buckets a call is metered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    /// Submits and uploads.
    Submit,
    /// Status polls.
    Query,
}

impl Category {
    pub fn header(self) -> &'static str {
        match self {
            Category::Submit => "async_submit",
            Category::Query => "async_query",
        }
    }
}

/// Why a call was refused 429: what the answer's headers say.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limited {
    /// `X-RateLimit-Category` (none for the `--rate-limit` bucket).
    pub category: Option<&'static str>,
    /// Real seconds until the bucket has a token (`Retry-After`, `X-RateLimit-Reset`).
    pub wait: f64,
    /// `X-RateLimit-Limit`: the bucket's size.
    pub limit: u32,
    /// `X-RateLimit-Remaining`.
    pub remaining: u32,
}

/// Everything behind the one lock; never held across an `.await`.
#[derive(Debug)]
pub(crate) struct Inner {
    rng: StdRng,
    /// When the first `/v1` request came: `--outage` windows count from it.
    pub first_request: Option<Instant>,
    /// Draws of `--spread`, apart from `rng` so that spreading the times does not
    /// change which requests the faults hit.
    times_rng: StdRng,
    pub tasks: HashMap<String, Task>,
    /// Task ids by the `client_business_id` their submit carried (the latest wins).
    pub by_client_id: HashMap<String, String>,
    pub uploads: HashMap<String, Upload>,
    pub stats: SimStats,
    limiter: Option<TokenBucket>,
    /// The provider's buckets, on the scaled clock (None: not metered).
    submit_bucket: Option<TokenBucket>,
    query_bucket: Option<TokenBucket>,
    /// What is left of `--balance`, in USD (None: unlimited).
    pub balance: Option<f64>,
    /// What the tasks created cost, in USD, for the balance call's `used_balance`.
    pub used: f64,
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

/// Appends to one of the stats' time lists until it is full.
/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    // `random::<f64>()` is in [0, 1): 1 − u is in (0, 1], so its log is finite.
    let u = 1.0 - rng.random::<f64>();
    let v = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

pub(crate) fn push_capped(times: &mut Vec<u64>, ms: u64) {
    if times.len() < MAX_REQUEST_TIMES {
        times.push(ms);
    }
}

/// A provider bucket of `rate` calls per simulated second, unless metering is off.
fn bucket(config: &SimConfig, rate: f64, burst: u32, now: Instant) -> Option<TokenBucket> {
    let scale = config.time_scale;
    let metered = !config.no_metering && rate.is_finite() && rate > 0.0 && scale > 0.0;
    metered.then(|| TokenBucket::new(rate / scale, f64::from(burst.max(1)), now))
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
            times_rng: StdRng::seed_from_u64(config.seed ^ 0x7469_6d65_7321),
            tasks: HashMap::new(),
            by_client_id: HashMap::new(),
            uploads: HashMap::new(),
            stats: SimStats::default(),
            limiter: config
                .rate_limit
                .map(|r| TokenBucket::new(r, r.max(1.0), now)),
            submit_bucket: bucket(&config, config.submit_rate, config.submit_burst, now),
            query_bucket: bucket(&config, config.query_rate, config.query_burst, now),
            balance: config.balance,
            used: 0.0,
            outage: false,
            first_request: None,
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

    /// Simulated seconds from `from` to `at` (real time divided by `time_scale`).
    pub fn sim_secs_since(&self, from: Instant, at: Instant) -> f64 {
        let real = at.saturating_duration_since(from).as_secs_f64();
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

    /// Milliseconds since the simulator started.
    pub fn ms_since_start(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a `/v1` request's arrival in `request_times_ms`.
    pub fn arrive(&self, inner: &mut Inner, now: Instant) {
        inner.first_request.get_or_insert(now);
        let ms = self.ms_since_start(now);
        push_capped(&mut inner.stats.request_times_ms, ms);
    }

    /// Meters a call of `category` by its bucket and by `rate_limit`. A
    /// refused call takes no token from either.
    pub fn rate_limit(
        &self,
        inner: &mut Inner,
        now: Instant,
        category: Category,
    ) -> Result<(), Limited> {
        let Inner {
            submit_bucket,
            query_bucket,
            limiter,
            stats,
            ..
        } = inner;
        let own = match category {
            Category::Submit => submit_bucket.as_mut(),
            Category::Query => query_bucket.as_mut(),
        };
        let refused = match own.map(|b| (b.check(now), b)) {
            Some((Err(wait), b)) => Some(Limited {
                category: Some(category.header()),
                wait,
                limit: b.capacity as u32,
                remaining: b.remaining(),
            }),
            _ => None,
        };
        let refused = refused.or_else(|| match limiter.as_mut().map(|l| (l.check(now), l)) {
            Some((Err(wait), l)) => Some(Limited {
                category: None,
                wait,
                limit: l.capacity as u32,
                remaining: l.remaining(),
            }),
            _ => None,
        });
        if let Some(limited) = refused {
            stats.rate_limited_429 += 1;
            let key = limited.category.unwrap_or("rate_limit");
            *stats
                .rate_limited_by_category
                .entry(key.into())
                .or_default() += 1;
            return Err(limited);
        }
        let own = match category {
            Category::Submit => submit_bucket.as_mut(),
            Category::Query => query_bucket.as_mut(),
        };
        if let Some(b) = own {
            b.take();
        }
        if let Some(l) = limiter.as_mut() {
            l.take();
        }
        Ok(())
    }

    /// What the bucket of `category` holds now: (size, whole tokens left,
    /// seconds until the next token); `None` when it is not metered.
    pub fn budget(
        &self,
        inner: &mut Inner,
        now: Instant,
        category: Category,
    ) -> Option<(u32, u32, f64)> {
        let bucket = match category {
            Category::Submit => inner.submit_bucket.as_mut(),
            Category::Query => inner.query_bucket.as_mut(),
        }?;
        let wait = bucket.check(now).err().unwrap_or(0.0);
        Some((bucket.capacity as u32, bucket.remaining(), wait))
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
        // `--spread`: lognormal factors of median 1; `--queue-drift`: the queue grows
        // with the tasks created before this one.
        let sigma = if config.spread.is_finite() {
            config.spread.clamp(0.0, 4.0)
        } else {
            0.0
        };
        let (queue_factor, generation_factor) = if sigma > 0.0 {
            let rng = &mut inner.times_rng;
            ((sigma * normal(rng)).exp(), (sigma * normal(rng)).exp())
        } else {
            (1.0, 1.0)
        };
        let drift = config.queue_drift * f64::from(inner.stats.tasks_created);
        let queue_secs = (config.queue_time + drift) * queue_factor;
        let generation_secs = config.generation_secs(&sub.model) * factor * generation_factor;
        let started = now + config.scaled(queue_secs);
        let done = started + config.scaled(generation_secs);
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
            progress_mode: config.progress_mode,
        };
        inner.tasks.insert(id, task.clone());
        if inner.stats.task_times.len() < MAX_REQUEST_TIMES {
            inner.stats.task_times.push([queue_secs, generation_secs]);
        }
        inner.stats.tasks_created += 1;
        inner.used += config.price;
        let ms = self.ms_since_start(now);
        push_capped(&mut inner.stats.submit_times_ms, ms);
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
            progress_mode: config.progress_mode,
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
            Phase::Queued { progress } => ("queued", progress),
            Phase::InProgress { progress } => ("in_progress", progress),
            Phase::Completed | Phase::Failed => (
                if phase == Phase::Completed {
                    "completed"
                } else {
                    "failed"
                },
                (task.progress_mode != ProgressMode::Absent).then_some(100),
            ),
        };
        let mut obj = json!({
            "id": task.id,
            "object": "generation.task",
            "model": task.model,
            "status": status,
            "created_at": self.unix_secs(task.created),
            "metadata": task.metadata,
        });
        if let Some(progress) = progress {
            obj["progress"] = progress.into();
        }
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
            Phase::Queued { .. } | Phase::InProgress { .. } => {}
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
        let mut b = TokenBucket::new(2.0, 2.0, t0);
        let admit = |b: &mut TokenBucket, at: Instant| {
            let r = b.check(at);
            if r.is_ok() {
                b.take();
            }
            r
        };
        assert_eq!(admit(&mut b, t0), Ok(()));
        assert_eq!(admit(&mut b, t0), Ok(()));
        assert_eq!(admit(&mut b, t0), Err(0.5));
        assert_eq!(admit(&mut b, t0 + Duration::from_millis(500)), Ok(()));
        assert!(admit(&mut b, t0 + Duration::from_millis(500)).is_err());
        // A fractional rate: one request every four seconds.
        let mut slow = TokenBucket::new(0.25, 1.0, t0);
        assert_eq!(admit(&mut slow, t0), Ok(()));
        assert_eq!(admit(&mut slow, t0 + Duration::from_secs(1)), Err(3.0));
        assert_eq!(admit(&mut slow, t0 + Duration::from_secs(4)), Ok(()));
    }

    #[test]
    fn buckets_meter_by_category_on_the_scaled_clock_and_refusals_are_free() {
        let config = SimConfig {
            time_scale: 0.1,
            submit_rate: 5.0,
            submit_burst: 3,
            ..SimConfig::default()
        };
        let state = SimState::new(config, String::new());
        let mut inner = state.lock();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(state.rate_limit(&mut inner, t0, Category::Submit), Ok(()));
        }
        let Err(refused) = state.rate_limit(&mut inner, t0, Category::Submit) else {
            panic!("a fourth submit at once is refused");
        };
        assert_eq!(refused.category, Some("async_submit"));
        assert_eq!((refused.limit, refused.remaining), (3, 0));
        // 5 per simulated second at a tenth of the time: one token every 20 ms.
        assert!((refused.wait - 0.02).abs() < 1e-9, "{}", refused.wait);
        // Refused again, still free: at 20 ms there is exactly one token.
        assert!(state.rate_limit(&mut inner, t0, Category::Submit).is_err());
        let t1 = t0 + Duration::from_millis(21);
        assert_eq!(state.rate_limit(&mut inner, t1, Category::Submit), Ok(()));
        assert!(state.rate_limit(&mut inner, t1, Category::Submit).is_err());
        // Polls have their own bucket.
        assert_eq!(state.rate_limit(&mut inner, t1, Category::Query), Ok(()));
        assert_eq!(inner.stats.rate_limited_429, 3);
        assert_eq!(inner.stats.rate_limited_by_category["async_submit"], 3);
        drop(inner);
        let off = SimState::new(
            SimConfig {
                no_metering: true,
                submit_burst: 1,
                ..SimConfig::default()
            },
            String::new(),
        );
        let mut inner = off.lock();
        for _ in 0..100 {
            assert_eq!(off.rate_limit(&mut inner, t0, Category::Submit), Ok(()));
        }
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
