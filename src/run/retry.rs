//! The retry policy, in one place: what each kind of failure leads to, and the
//! backoff (exponential, capped, full jitter) for calls that are safe to repeat.
//!
//! The rule that matters most: a submit that may have reached the server is
//! never repeated automatically, because it may have created a paid task.

use std::time::Duration;

use rand::Rng;

use crate::api::ApiError;

/// Submits that failed with a clear "no task was created" (5xx, no connection)
/// are tried this many times in a row before the job fails.
pub const MAX_SUBMIT_TRIES: u32 = 6;
/// Downloads are tried this many times per run before the job is reported failed
/// (its URL is kept: the next run tries again).
pub const MAX_DOWNLOAD_TRIES: u32 = 6;

/// Whose failure this is, and so what the run does about it (SPEC §1's answer table).
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// 401/403 without a quota code: stop the run, exit 3.
    Key,
    /// 402 or a quota code: stop submitting; finish what is paid; exit 3.
    Money,
    /// 429: wait (`Retry-After`, or `X-RateLimit-Reset` when nothing remains)
    /// and slow the budget `category` names (None: both).
    RateLimited {
        retry_after: Option<Duration>,
        category: Option<String>,
        reset: Option<Duration>,
    },
    /// 503 `rate_limit_unavailable`: back off submits, keep polling.
    SubmitLimiterDown { retry_after: Option<Duration> },
    /// The request may have reached the service (502/504/520/522/524, a reset or
    /// timeout after sending, an unusable success body): a submit becomes
    /// `unknown`; a poll or an upload just tries again.
    Ambiguous,
    /// The world, not the request: no connection, 5xx, 408, an HTML page from
    /// something that is not the API, 404/405 on a submit (a wrong base URL).
    /// Never a job failure; many in a row across jobs are an outage.
    World,
    /// This request is wrong (400, 422, another 4xx): fail the job with the message.
    Job,
}

/// Which kind of call failed: the same answer means different things to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Submit,
    Poll,
    Upload,
}

/// The one failure policy: whose failure `e` is.
pub fn classify(e: &ApiError, call: Call) -> Failure {
    let status = e.status();
    if e.is_quota() {
        Failure::Money
    } else if e.is_auth() {
        Failure::Key
    } else if e.is_rate_limited() {
        Failure::RateLimited {
            retry_after: e.retry_after(),
            category: e.rate_limit_category().map(String::from),
            reset: e.rate_limit_reset(),
        }
    } else if e.limiter_down() {
        Failure::SubmitLimiterDown {
            retry_after: e.retry_after(),
        }
    } else if e.may_have_reached_server() {
        Failure::Ambiguous
    } else if matches!(e, ApiError::Connect(_))
        || status.is_some_and(|s| s >= 500 || s == 408)
        || e.is_html()
        || (call != Call::Poll && matches!(status, Some(404 | 405)))
        || (call == Call::Poll && status == Some(404))
    {
        Failure::World
    } else {
        Failure::Job
    }
}

/// What to do after a submit failed.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitVerdict {
    /// The key was refused: stop the whole run.
    StopRun,
    /// 429: pause every call (for `Retry-After` when given), then send again;
    /// the job keeps its place and its attempt count.
    SlowDown(Option<Duration>),
    /// No task was created and trying again may help: retry after this delay.
    RetryAfter(Duration),
    /// The request may have created a task: the job is `unknown` until the user
    /// asks for a resend.
    Unknown,
    /// No task was created and retrying will not help (400, or too many tries).
    Fail,
}

/// `tries` is how many submits of this job already failed in a row, this one included.
pub fn after_submit_error(e: &ApiError, tries: u32, backoff: Backoff) -> SubmitVerdict {
    if e.is_auth() {
        SubmitVerdict::StopRun
    } else if e.is_rate_limited() {
        SubmitVerdict::SlowDown(e.retry_after())
    } else if e.may_have_reached_server() || e.status() == Some(504) {
        // 504: a gateway gave up waiting on a service that had the request.
        SubmitVerdict::Unknown
    } else if e.is_transient() && tries < MAX_SUBMIT_TRIES {
        SubmitVerdict::RetryAfter(backoff.delay(tries.saturating_sub(1)))
    } else {
        SubmitVerdict::Fail
    }
}

/// What to do after a poll failed. Polls create nothing, so they are always safe
/// to repeat; even a 404 is retried (a task may be visible a moment after it is
/// created), until `task_timeout` ends the job `timed_out` and the next run looks
/// again. Giving up on a task id for good would throw away a task that may be paid for.
#[derive(Debug, Clone, PartialEq)]
pub enum PollVerdict {
    StopRun,
    SlowDown(Option<Duration>),
    RetryAfter(Duration),
}

/// `errors` counts failed polls of this task in a row, this one included.
pub fn after_poll_error(e: &ApiError, errors: u32, backoff: Backoff) -> PollVerdict {
    if e.is_auth() {
        PollVerdict::StopRun
    } else if e.is_rate_limited() {
        PollVerdict::SlowDown(e.retry_after())
    } else {
        PollVerdict::RetryAfter(backoff.delay(errors.saturating_sub(1)))
    }
}

/// Exponential backoff: attempt `n` (from 0) waits a random time in
/// `0..=min(max, base * 2^n)` ("full jitter"), so many jobs failing together
/// do not come back together.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const DEFAULT: Backoff = Backoff {
        base: Duration::from_millis(500),
        max: Duration::from_secs(30),
    };

    /// The cap for attempt `n`, before jitter.
    pub fn ceiling(&self, n: u32) -> Duration {
        self.base.saturating_mul(1u32 << n.min(20)).min(self.max)
    }

    /// The delay before retry `n` (0 = first retry).
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self.ceiling(n);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// The delays of retries 0, 1, 2, … (a testable iterator).
    pub fn iter(self) -> impl Iterator<Item = Duration> {
        (0..).map(move |n| self.delay(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ApiError {
        ApiError::Status {
            status,
            message: "m".into(),
            retry_after: None,
            code: None,
            category: None,
            reset: None,
            html: false,
        }
    }

    #[test]
    fn submit_verdicts() {
        let b = Backoff::DEFAULT;
        assert_eq!(
            after_submit_error(&status(401), 1, b),
            SubmitVerdict::StopRun
        );
        assert_eq!(
            after_submit_error(&status(403), 1, b),
            SubmitVerdict::StopRun
        );
        let e = ApiError::Status {
            status: 429,
            message: "slow".into(),
            retry_after: Some(Duration::from_secs(3)),
            code: None,
            category: None,
            reset: None,
            html: false,
        };
        assert_eq!(
            after_submit_error(&e, 1, b),
            SubmitVerdict::SlowDown(Some(Duration::from_secs(3)))
        );
        assert!(matches!(
            after_submit_error(&status(503), 1, b),
            SubmitVerdict::RetryAfter(_)
        ));
        assert!(matches!(
            after_submit_error(&ApiError::Connect("refused".into()), 2, b),
            SubmitVerdict::RetryAfter(_)
        ));
        assert_eq!(
            after_submit_error(&status(503), MAX_SUBMIT_TRIES, b),
            SubmitVerdict::Fail
        );
        assert_eq!(after_submit_error(&status(400), 1, b), SubmitVerdict::Fail);
        assert_eq!(
            after_submit_error(&status(504), 1, b),
            SubmitVerdict::Unknown
        );
        // The one that costs money: never resent.
        assert_eq!(
            after_submit_error(&ApiError::Transport("reset".into()), 1, b),
            SubmitVerdict::Unknown
        );
        assert_eq!(
            after_submit_error(&ApiError::Decode("no id".into()), 1, b),
            SubmitVerdict::Unknown
        );
    }

    fn answer(status: u16, code: Option<&str>, html: bool) -> ApiError {
        ApiError::Status {
            status,
            message: "m".into(),
            retry_after: None,
            code: code.map(String::from),
            category: None,
            reset: None,
            html,
        }
    }

    #[test]
    fn the_failure_policy_row_by_row() {
        use Call::*;
        let rows: Vec<(ApiError, Call, Failure)> = vec![
            (answer(400, None, false), Submit, Failure::Job),
            (answer(422, None, false), Submit, Failure::Job),
            (answer(401, None, false), Submit, Failure::Key),
            (answer(403, None, false), Poll, Failure::Key),
            (answer(402, None, false), Submit, Failure::Money),
            // A 403 carrying a quota code is about the balance, not the key.
            (
                answer(403, Some("insufficient_user_quota"), false),
                Submit,
                Failure::Money,
            ),
            (
                answer(400, Some("pre_consume_token_quota_failed"), false),
                Submit,
                Failure::Money,
            ),
            (
                answer(500, Some("insufficient_quota"), false),
                Upload,
                Failure::Money,
            ),
            (
                answer(503, Some("rate_limit_unavailable"), false),
                Submit,
                Failure::SubmitLimiterDown { retry_after: None },
            ),
            (answer(524, None, true), Submit, Failure::Ambiguous),
            (answer(502, None, false), Submit, Failure::Ambiguous),
            (answer(520, None, true), Submit, Failure::Ambiguous),
            (answer(522, None, true), Submit, Failure::Ambiguous),
            (answer(504, None, false), Submit, Failure::Ambiguous),
            (answer(503, None, true), Submit, Failure::World),
            (answer(500, None, false), Submit, Failure::World),
            (answer(408, None, false), Submit, Failure::World),
            (answer(404, None, true), Submit, Failure::World),
            (answer(404, None, false), Submit, Failure::World),
            (answer(404, None, false), Poll, Failure::World),
            (answer(418, None, true), Submit, Failure::World),
            (ApiError::Connect("refused".into()), Submit, Failure::World),
            (
                ApiError::Transport("reset".into()),
                Submit,
                Failure::Ambiguous,
            ),
            (ApiError::Decode("no id".into()), Submit, Failure::Ambiguous),
        ];
        for (e, call, want) in rows {
            assert_eq!(classify(&e, call), want, "{e:?} on {call:?}");
        }
        assert!(matches!(
            classify(&answer(429, None, false), Poll),
            Failure::RateLimited { .. }
        ));
    }

    #[test]
    fn poll_verdicts() {
        let b = Backoff::DEFAULT;
        assert_eq!(after_poll_error(&status(401), 1, b), PollVerdict::StopRun);
        assert!(matches!(
            after_poll_error(&status(500), 1, b),
            PollVerdict::RetryAfter(_)
        ));
        let reset = ApiError::Transport("reset".into());
        assert!(matches!(
            after_poll_error(&reset, 9, b),
            PollVerdict::RetryAfter(_)
        ));
        // Even many 404s in a row never give up a task id: task_timeout decides.
        assert!(matches!(
            after_poll_error(&status(404), 50, b),
            PollVerdict::RetryAfter(_)
        ));
        assert_eq!(
            after_poll_error(&status(429), 1, b),
            PollVerdict::SlowDown(None)
        );
    }

    #[test]
    fn ceilings_double_then_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let ceilings: Vec<_> = (0..6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(500), Duration::from_secs(1));
    }

    #[test]
    fn delays_stay_under_their_ceiling() {
        let b = Backoff::DEFAULT;
        for (n, d) in b.iter().take(40).enumerate() {
            assert!(d <= b.ceiling(n as u32), "retry {n}: {d:?}");
        }
    }
}
