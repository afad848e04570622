//! The simulator's knobs: timings, fault probabilities and limits, as clap flags.

use std::time::Duration;

/// Queue time before a task starts, in unscaled seconds.
const DEFAULT_QUEUE_TIME: f64 = 5.0;
/// Lifetime of a video URL after completion, in unscaled seconds (24 h as documented).
const DEFAULT_URL_TTL: f64 = 24.0 * 3600.0;
/// Size of every generated video.
const DEFAULT_VIDEO_SIZE: u64 = 1024 * 1024;
/// Generation time of the veo3.1 models, in unscaled seconds.
const VEO_GENERATION_TIME: f64 = 60.0;
/// Generation time of gemini_omni_flash, in unscaled seconds.
const GEMINI_GENERATION_TIME: f64 = 40.0;
/// The provider's default tier (its "Async task rate limits" page): submits
/// 5/s with a 10 s burst of 50, status queries 50/s with a burst of 500.
const DEFAULT_SUBMIT_RATE: f64 = 5.0;
const DEFAULT_SUBMIT_BURST: u32 = 50;
const DEFAULT_QUERY_RATE: f64 = 50.0;
const DEFAULT_QUERY_BURST: u32 = 500;
/// No simulated duration is longer than this, so instant arithmetic cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Built-in simulator of the video generation API, with fault injection.
///
/// Every probability is decided with one RNG seeded by `--seed`, so a run
/// with the same requests in the same order injects the same faults.
#[derive(Debug, Clone, PartialEq, clap::Args)]
#[command(next_help_heading = "Simulator")]
pub struct SimConfig {
    /// Multiply every simulated duration (queue, generation, URL lifetime) by this; 0.01 runs 100x faster
    #[arg(long, default_value_t = 1.0, value_parser = parse_non_negative)]
    pub time_scale: f64,

    /// Seconds a task stays `queued` before it starts
    #[arg(long, default_value_t = DEFAULT_QUEUE_TIME, value_parser = parse_non_negative)]
    pub queue_time: f64,

    /// Seconds a task stays `in_progress`, for every model [default: veo 60, gemini 40]
    #[arg(long, value_parser = parse_non_negative)]
    pub generation_time: Option<f64>,

    /// Random spread of the generation time, as a fraction (0.2 means ±20%)
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub generation_jitter: f64,

    /// Lognormal spread σ of each task's queue and generation times, drawn per task
    /// (the median stays at --queue-time / --generation-time; 0.5 puts a tenth of the
    /// tasks past 1.9× it). Applied on top of --generation-jitter
    #[arg(long, default_value_t = 0.0, value_parser = parse_non_negative)]
    pub spread: f64,

    /// What `progress` a task shows: linear in its generation time (0 while queued),
    /// absent from the answer, stuck at 0, running ahead then slowing, or linear from
    /// submit with the queue counted in it
    #[arg(long, value_enum, default_value_t = ProgressMode::Linear)]
    pub progress_mode: ProgressMode,

    /// Seconds added to the queue time of each task per task created before it: the
    /// provider gets busier over the run (0.0025 takes a 0.5 s queue to 1.5 s at task 400)
    #[arg(long, default_value_t = 0.0, value_parser = parse_non_negative)]
    pub queue_drift: f64,

    /// Seconds a finished video's URL stays downloadable before it answers 410
    #[arg(long, default_value_t = DEFAULT_URL_TTL, value_parser = parse_non_negative)]
    pub url_ttl: f64,

    /// Size in bytes of every generated video (streamed, never held in memory)
    #[arg(long, default_value_t = DEFAULT_VIDEO_SIZE)]
    pub video_size: u64,

    /// Seed of the RNG that decides faults, failures and task IDs
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Probability that a submit answers 429 with Retry-After (no task is created)
    #[arg(long = "submit-429", default_value_t = 0.0, value_parser = parse_probability)]
    pub submit_429: f64,

    /// Probability that a submit answers 503 (no task is created)
    #[arg(long = "submit-503", default_value_t = 0.0, value_parser = parse_probability)]
    pub submit_503: f64,

    /// Probability that a submit creates the task and then drops the connection without an answer
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub submit_drop: f64,

    /// Probability that a poll answers 429 with Retry-After
    #[arg(long = "poll-429", default_value_t = 0.0, value_parser = parse_probability)]
    pub poll_429: f64,

    /// Probability that a poll answers 500
    #[arg(long = "poll-500", default_value_t = 0.0, value_parser = parse_probability)]
    pub poll_500: f64,

    /// Probability that a poll drops the connection without an answer
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub poll_drop: f64,

    /// Probability that a download sends the full Content-Length, then aborts part-way through
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub download_cut: f64,

    /// Probability that a generation ends `failed` instead of `completed`
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub fail_rate: f64,

    /// Seconds sent in the Retry-After header of injected 429 answers (not scaled)
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,

    /// Require exactly this bearer token [default: any non-empty token]
    #[arg(long)]
    pub api_key: Option<String>,

    /// Answer 429 to submits, polls and uploads above this many requests per second together
    /// (one more token bucket, over the submit and query buckets; not scaled)
    #[arg(long, value_parser = parse_positive)]
    pub rate_limit: Option<f64>,

    /// The submit bucket (`async_submit`: submits and uploads): tokens per simulated second
    #[arg(long, default_value_t = DEFAULT_SUBMIT_RATE, value_parser = parse_positive)]
    pub submit_rate: f64,
    /// The submit bucket's size: calls that may go at once when it is full
    #[arg(long, default_value_t = DEFAULT_SUBMIT_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub submit_burst: u32,
    /// The query bucket (`async_query`: status polls): tokens per simulated second
    #[arg(long, default_value_t = DEFAULT_QUERY_RATE, value_parser = parse_positive)]
    pub query_rate: f64,
    /// The query bucket's size
    #[arg(long, default_value_t = DEFAULT_QUERY_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub query_burst: u32,
    /// No submit and query buckets: answer every call however fast it comes
    #[arg(long)]
    pub no_metering: bool,
    /// Answer `GET /v1/balance` 404, as a server without the balance call would
    #[arg(long)]
    pub no_balance_call: bool,

    /// Where the video URL sits in a completed task
    #[arg(long, value_enum, default_value_t = ResultShape::DataUrl)]
    pub result_shape: ResultShape,

    /// Answer for task ids of an earlier simulator run (rebuilt from the time inside the id),
    /// so a campaign run against a restarted simulator can resume.
    #[arg(long)]
    pub revive: bool,

    /// The account's balance in USD (default: unlimited); each task created costs `--price`,
    /// and a submit it cannot cover answers 402 `insufficient_user_quota`.
    /// `SimHandle::top_up` adds to it.
    #[arg(long)]
    pub balance: Option<f64>,
    /// What one task costs against `--balance`, in USD.
    #[arg(long, default_value_t = 0.10)]
    pub price: f64,
    /// Probability that a submit creates its task and is then answered by a gateway
    /// status (`--gateway-status`) with an HTML page, as a proxy that timed out would.
    #[arg(long = "submit-gateway", default_value_t = 0.0, value_parser = parse_probability)]
    pub submit_gateway: f64,
    /// The status of `--submit-gateway` answers: 502, 504, 520, 522 or 524.
    #[arg(long, default_value_t = 524)]
    pub gateway_status: u16,
    /// `--submit-gateway` answers come before the task is created (a proxy that never
    /// forwarded the request): nothing exists, and a lookup finds nothing.
    #[arg(long)]
    pub gateway_first: bool,
    /// Statuses in upper case (`COMPLETED`) and `progress` as a string (`"65%"`).
    #[arg(long)]
    pub shout: bool,
    /// The first N polls of each task answer for another task (another id), as a confused cache would.
    #[arg(long, default_value_t = 0)]
    pub swap_ids: u32,
    /// The first N polls of a completed task answer `completed` with no video URL.
    #[arg(long, default_value_t = 0)]
    pub late_url: u32,
    /// The first N GETs of each video answer 200 with an HTML error page.
    #[arg(long, default_value_t = 0)]
    pub html_downloads: u32,
    /// Serve `--html-downloads` pages as `application/octet-stream`, so only their bytes tell.
    #[arg(long)]
    pub html_as_octet: bool,
    /// The first N Range requests of each video answer 206 with an empty body and a
    /// `Content-Range` that starts at byte 0, not where it was asked.
    #[arg(long, default_value_t = 0)]
    pub bad_range: u32,
    /// What each model accepts: the built-in catalogue when `None`; a campaign
    /// run with `--simulate` passes its own (with its `[models]` applied).
    #[arg(skip)]
    pub catalogue: Option<std::sync::Arc<crate::models::Catalogue>>,
    /// `START,LEN` in simulated seconds from the first API request (so a client that
    /// starts slowly still meets it): every API call in that window answers a 503
    /// HTML page, as a proxy in front of a down service would (repeatable).
    #[arg(long = "outage", value_name = "START,LEN", value_parser = parse_window)]
    pub outages: Vec<Window>,
    /// The first N GETs of each video (after any `--html-downloads`) send their body at
    /// `--trickle-rate` bytes per simulated second, as a choked link would.
    #[arg(long, default_value_t = 0)]
    pub trickle: u32,
    /// Bytes per simulated second of a `--trickle` download.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub trickle_rate: u64,
}

/// A stretch of simulated time: from `start` for `len` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: f64,
    pub len: f64,
}

impl Window {
    pub fn contains(&self, secs: f64) -> bool {
        secs >= self.start && secs < self.start + self.len
    }
}

fn parse_window(s: &str) -> Result<Window, String> {
    let (start, len) = s
        .split_once(',')
        .ok_or_else(|| format!("{s}: expected START,LEN in seconds, e.g. 10,20"))?;
    Ok(Window {
        start: parse_non_negative(start.trim())?,
        len: parse_non_negative(len.trim())?,
    })
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            time_scale: 1.0,
            queue_time: DEFAULT_QUEUE_TIME,
            generation_time: None,
            generation_jitter: 0.0,
            spread: 0.0,
            progress_mode: ProgressMode::Linear,
            queue_drift: 0.0,
            url_ttl: DEFAULT_URL_TTL,
            video_size: DEFAULT_VIDEO_SIZE,
            seed: 1,
            submit_429: 0.0,
            submit_503: 0.0,
            submit_drop: 0.0,
            poll_429: 0.0,
            poll_500: 0.0,
            poll_drop: 0.0,
            download_cut: 0.0,
            fail_rate: 0.0,
            retry_after: 1,
            api_key: None,
            rate_limit: None,
            submit_rate: DEFAULT_SUBMIT_RATE,
            submit_burst: DEFAULT_SUBMIT_BURST,
            query_rate: DEFAULT_QUERY_RATE,
            query_burst: DEFAULT_QUERY_BURST,
            no_metering: false,
            no_balance_call: false,
            result_shape: ResultShape::DataUrl,
            revive: false,
            balance: None,
            price: 0.10,
            submit_gateway: 0.0,
            gateway_status: 524,
            gateway_first: false,
            shout: false,
            swap_ids: 0,
            late_url: 0,
            html_downloads: 0,
            html_as_octet: false,
            bad_range: 0,
            outages: Vec::new(),
            trickle: 0,
            trickle_rate: 1,
            catalogue: None,
        }
    }
}

impl SimConfig {
    /// A simulated duration of `secs` unscaled seconds, after `time_scale`.
    pub(crate) fn scaled(&self, secs: f64) -> Duration {
        let secs = secs * self.time_scale;
        if secs.is_nan() || secs <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(secs)
            .unwrap_or(MAX_DURATION)
            .min(MAX_DURATION)
    }

    /// Unscaled generation time of `model`.
    pub(crate) fn generation_secs(&self, model: &str) -> f64 {
        self.generation_time.unwrap_or(if model.starts_with("veo") {
            VEO_GENERATION_TIME
        } else {
            GEMINI_GENERATION_TIME
        })
    }
}

/// What `progress` a task shows while it is not finished (`--progress-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// 0 while queued, then linear in the generation time up to 99.
    #[default]
    Linear,
    /// No `progress` field in the answer.
    Absent,
    /// Always 0 until the task ends.
    Stuck,
    /// Runs ahead, then slows: 99·(1 − (1 − f)²) of the generation's fraction f.
    Ahead,
    /// Linear from submit, the queue counted in (shown while queued too).
    CountsQueue,
}

impl ProgressMode {
    /// The progress shown `since_submit` into a task queued for `queue` and
    /// generating for `generation` that has not finished (truncated: 99 at most).
    pub(crate) fn shown(self, since_submit: f64, queue: f64, generation: f64) -> Option<u8> {
        let pct = |x: f64| (x.clamp(0.0, 1.0) * 99.0) as u8;
        let f = if generation > 0.0 {
            (since_submit - queue) / generation
        } else {
            1.0
        };
        match self {
            ProgressMode::Absent => None,
            ProgressMode::Stuck => Some(0),
            ProgressMode::Linear => Some(pct(f)),
            ProgressMode::Ahead => {
                let f = f.clamp(0.0, 1.0);
                Some(pct(1.0 - (1.0 - f) * (1.0 - f)))
            }
            ProgressMode::CountsQueue => {
                let total = queue + generation;
                Some(if total > 0.0 {
                    pct(since_submit / total)
                } else {
                    99
                })
            }
        }
    }
}

/// Where a completed task carries its video URL; the docs do not pin it down,
/// so clients must accept every one of these (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ResultShape {
    /// `"result":{"data":[{"url":U}]}`
    #[default]
    DataUrl,
    /// `"result":{"videos":[{"url":U}]}`
    Videos,
    /// `"result":{"url":U}`
    ResultUrl,
    /// top-level `"url":U`
    Url,
    /// top-level `"video_url":U`
    VideoUrl,
}

fn parse_non_negative(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s} is not a finite number >= 0"))
    }
}

fn parse_positive(s: &str) -> Result<f64, String> {
    let v = parse_non_negative(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{s} is not > 0"))
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let v = parse_non_negative(s)?;
    if v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{s} is not between 0.0 and 1.0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimConfig,
    }

    #[test]
    fn clap_defaults_match_default() {
        let cli = Cli::try_parse_from(["sim"]);
        assert_eq!(cli.ok().map(|c| c.sim), Some(SimConfig::default()));
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "sim",
            "--time-scale",
            "0.01",
            "--submit-429",
            "0.5",
            "--poll-drop",
            "1",
            "--result-shape",
            "video-url",
            "--generation-time",
            "3",
            "--rate-limit",
            "2",
            "--submit-rate",
            "16.7",
            "--query-burst",
            "1667",
            "--no-metering",
            "--spread",
            "0.25",
            "--progress-mode",
            "counts-queue",
            "--queue-drift",
            "0.01",
        ]);
        let sim = cli.map(|c| c.sim).map_err(|e| e.to_string());
        let Ok(sim) = sim else {
            panic!("{sim:?}");
        };
        assert_eq!(sim.time_scale, 0.01);
        assert_eq!(sim.submit_429, 0.5);
        assert_eq!(sim.poll_drop, 1.0);
        assert_eq!(sim.result_shape, ResultShape::VideoUrl);
        assert_eq!(sim.generation_secs("veo3.1-fast"), 3.0);
        assert_eq!(sim.rate_limit, Some(2.0));
        assert_eq!((sim.submit_rate, sim.submit_burst), (16.7, 50));
        assert_eq!((sim.query_rate, sim.query_burst), (50.0, 1667));
        assert!(sim.no_metering);
        assert_eq!(sim.spread, 0.25);
        assert_eq!(sim.progress_mode, ProgressMode::CountsQueue);
        assert_eq!(sim.queue_drift, 0.01);
    }

    #[test]
    fn bad_flags_are_rejected() {
        for args in [
            ["sim", "--fail-rate", "1.5"],
            ["sim", "--time-scale", "-1"],
            ["sim", "--rate-limit", "0"],
            ["sim", "--submit-burst", "0"],
            ["sim", "--query-rate", "0"],
            ["sim", "--queue-time", "NaN"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn scaling() {
        let c = SimConfig {
            time_scale: 0.01,
            ..SimConfig::default()
        };
        assert_eq!(c.scaled(60.0), Duration::from_millis(600));
        assert_eq!(c.scaled(-1.0), Duration::ZERO);
        assert_eq!(c.scaled(f64::INFINITY), MAX_DURATION);
        assert_eq!(c.generation_secs("veo3.1-quality"), 60.0);
        assert_eq!(c.generation_secs("gemini_omni_flash"), 40.0);
    }
}
