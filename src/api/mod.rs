//! The HTTP client for the video API: submit, poll, upload, and opening a download.
//!
//! Every failure is classified by one question that matters for money: could
//! the request have reached the server? See [`ApiError::may_have_reached_server`].

pub mod types;

use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::Value;

pub use types::{Balance, Task, TaskStatus};

/// The bearer key. Never printed: `Debug` shows only its length.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> ApiKey {
        ApiKey(key)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey(<{} chars hidden>)", self.0.len())
    }
}

/// Why an API call did not give an answer we could use.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with a non-success status.
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// From `Retry-After` (seconds or HTTP date), when present.
        retry_after: Option<Duration>,
        /// The error body's `code` (a string or a number), or its `type`.
        code: Option<String>,
        /// `X-RateLimit-Category`: which budget a 429 is about.
        category: Option<String>,
        /// How long until `X-RateLimit-Reset`, when `X-RateLimit-Remaining` does
        /// not say calls remain: the named budget is empty until then.
        reset: Option<Duration>,
        /// The body was an HTML page: something other than the API answered.
        html: bool,
    },
    /// No connection was made: the request certainly did not reach the server.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The request was (or may have been) sent, but no complete answer came back.
    #[error("no complete answer: {0}")]
    Transport(String),
    /// A success status with a body we cannot use.
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when a submit that failed this way may nevertheless have created a
    /// task: sent with no complete answer, an unusable success body, or a
    /// gateway that may have forwarded it (a Cloudflare 524 means the origin
    /// received the request).
    pub fn may_have_reached_server(&self) -> bool {
        matches!(self, ApiError::Transport(_) | ApiError::Decode(_))
            || matches!(self.status(), Some(502 | 504 | 520 | 522 | 524))
    }

    /// The error body's code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// 402, or a quota code under any status: the balance is too low.
    pub fn is_quota(&self) -> bool {
        self.status() == Some(402)
            || matches!(
                self.code(),
                Some(
                    "insufficient_quota"
                        | "insufficient_user_quota"
                        | "pre_consume_token_quota_failed"
                )
            )
    }

    /// 503 `rate_limit_unavailable`: the submit limiter is down; queries still work.
    pub fn limiter_down(&self) -> bool {
        self.status() == Some(503) && self.code() == Some("rate_limit_unavailable")
    }

    /// `X-RateLimit-Category` of a 429.
    pub fn rate_limit_category(&self) -> Option<&str> {
        match self {
            ApiError::Status { category, .. } => category.as_deref(),
            _ => None,
        }
    }

    /// The answer was an HTML page (a proxy, a web server, not the API).
    pub fn is_html(&self) -> bool {
        matches!(self, ApiError::Status { html: true, .. })
    }

    pub fn is_rate_limited(&self) -> bool {
        self.status() == Some(429)
    }

    /// 401 or 403 on an API call: the key is wrong or lacks access (a 403
    /// carrying a quota code is about the balance, not the key).
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403)) && !self.is_quota()
    }

    /// Worth trying again later: 429, 5xx, 408, and network trouble.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            ApiError::Connect(_) | ApiError::Transport(_) => true,
            ApiError::Decode(_) => false,
        }
    }

    /// When the named budget has room again, per `X-RateLimit-Remaining` / `-Reset`.
    pub fn rate_limit_reset(&self) -> Option<Duration> {
        match self {
            ApiError::Status { reset, .. } => *reset,
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn from_reqwest(err: reqwest::Error) -> ApiError {
        // Strip the URL: it may carry signed query strings, and it adds nothing here.
        // A builder error (bad URL, bad header) means the request never left.
        let never_sent = err.is_connect() || err.is_builder();
        let text = if err.is_timeout() {
            format!("timed out after {} s", REQUEST_TIMEOUT.as_secs())
        } else {
            error_chain(&err.without_url())
        };
        if never_sent {
            ApiError::Connect(text)
        } else {
            ApiError::Transport(text)
        }
    }
}

/// A reqwest error with its sources, which is where the useful part usually is.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `X-RateLimit-Reset` as a wait from `now`, unless `X-RateLimit-Remaining`
/// says calls remain. The header is seconds to wait (fractions allowed) or,
/// when it is that large, a Unix time in seconds or milliseconds.
pub fn parse_rate_limit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        let v: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (v.is_finite() && v >= 0.0).then_some(v)
    };
    if number("x-ratelimit-remaining").is_some_and(|left| left >= 1.0) {
        return None;
    }
    let reset = number("x-ratelimit-reset")?;
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let wait = if reset > 1e12 {
        reset / 1000.0 - since_epoch
    } else if reset > 1e9 {
        reset - since_epoch
    } else {
        reset
    };
    Some(Duration::from_secs_f64(wait.clamp(0.0, 3600.0)))
}

/// On a success: the wait until `X-RateLimit-Reset` only when
/// `X-RateLimit-Remaining` is there and says no call remains.
pub fn budget_empty_for(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let remaining: f64 = headers
        .get("x-ratelimit-remaining")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if remaining >= 1.0 {
        return None;
    }
    parse_rate_limit_reset(headers, now).filter(|wait| !wait.is_zero())
}

/// Reads `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(3600)),
    )
}

/// The API client. Cheap to clone; one connection pool for every call.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// `…/v1/videos/generations`, to which a poll adds the task id. Worked out
    /// once, like `auth`, not per call: parsing a URL and checking a header
    /// value cost more than a poll's own work at 100k jobs.
    submit_url: Url,
    auth: HeaderValue,
}

/// Timeouts for API calls (not downloads, which may take long but must keep moving).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Client {
    pub fn new(base_url: &str, key: ApiKey) -> Result<Client, String> {
        let base = Url::parse(&format!("{}/", base_url.trim_end_matches('/')))
            .map_err(|e| format!("bad base URL `{base_url}`: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(format!(
                "bad base URL `{base_url}`: it must start with http:// or https:// and name a host"
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let submit_url = base
            .join("v1/videos/generations")
            .map_err(|e| format!("bad base URL `{base_url}`: {e}"))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", key.0))
            .map_err(|_| "the API key holds characters an HTTP header cannot carry".to_string())?;
        auth.set_sensitive(true);
        Ok(Client {
            http,
            base,
            submit_url,
            auth,
        })
    }

    fn url(&self, path: &str) -> Result<Url, ApiError> {
        self.base
            .join(path)
            .map_err(|e| ApiError::Decode(format!("bad URL for {path}: {e}")))
    }

    /// `…/v1/videos/generations/{task_id}`. Every http(s) URL with a host
    /// (checked in [`Client::new`]) takes path segments.
    fn task_url(&self, task_id: &str) -> Url {
        let mut url = self.submit_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(task_id);
        }
        url
    }

    /// `POST /v1/videos/generations`.
    pub async fn submit(&self, body: &Value) -> Result<Task, ApiError> {
        let request = self
            .http
            .post(self.submit_url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .timeout(REQUEST_TIMEOUT)
            .json(body);
        self.send_task(request).await
    }

    /// A task answer, with what its rate-limit headers say of the budget.
    async fn send_task(&self, request: reqwest::RequestBuilder) -> Result<Task, ApiError> {
        let (value, empty_for) = self.send_json_with_budget(request).await?;
        let mut task = Task::from_json(&value)
            .ok_or_else(|| ApiError::Decode(format!("no task id in answer: {}", clip(&value))))?;
        task.budget_empty_for = empty_for;
        Ok(task)
    }

    /// `GET /v1/videos/generations/{task_id}`.
    pub async fn poll(&self, task_id: &str) -> Result<Task, ApiError> {
        let request = self
            .http
            .get(self.task_url(task_id))
            .header(AUTHORIZATION, self.auth.clone())
            .timeout(REQUEST_TIMEOUT);
        self.send_task(request).await
    }

    /// `GET /v1/balance`: what is left on this key (not a paid call, not an async task call).
    pub async fn balance(&self) -> Result<Balance, ApiError> {
        let request = self
            .http
            .get(self.url("v1/balance")?)
            .header(AUTHORIZATION, self.auth.clone())
            .timeout(REQUEST_TIMEOUT);
        let value = self.send_json(request).await?;
        types::balance(&value).map_err(ApiError::Decode)
    }

    /// `POST /v1/uploads/images` with the file as multipart field `file`; returns its URL.
    pub async fn upload(&self, path: &Path, bytes: Vec<u8>) -> Result<String, ApiError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.clone())
            .mime_str(mime_for(&name))
            .map_err(|e| ApiError::Decode(e.to_string()))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let request = self
            .http
            .post(self.url("v1/uploads/images")?)
            .header(AUTHORIZATION, self.auth.clone())
            .timeout(REQUEST_TIMEOUT)
            .multipart(form);
        let value = self.send_json(request).await?;
        types::upload_url(&value)
            .ok_or_else(|| ApiError::Decode(format!("no URL in upload answer: {}", clip(&value))))
    }

    /// Starts a GET of a video URL, from byte `offset` on when it is not 0.
    /// The key goes along only when the URL is on the API's own origin.
    pub async fn open_download(
        &self,
        url: &str,
        offset: u64,
    ) -> Result<reqwest::Response, ApiError> {
        let url = Url::parse(url).map_err(|e| ApiError::Decode(format!("bad video URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ApiError::Decode(format!(
                "video URL scheme `{}` is not http or https",
                url.scheme()
            )));
        }
        let same_origin = url.origin() == self.base.origin();
        let mut request = self.http.get(url);
        if same_origin {
            request = request.header(AUTHORIZATION, self.auth.clone());
        }
        if offset > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let response = request.send().await.map_err(ApiError::from_reqwest)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        Err(status_error(
            status,
            response.headers().clone(),
            response.text().await.unwrap_or_default(),
        ))
    }

    async fn send_json(&self, request: reqwest::RequestBuilder) -> Result<Value, ApiError> {
        Ok(self.send_json_with_budget(request).await?.0)
    }

    /// The JSON of a success, and how long the budget is empty for when the
    /// answer says none remains (`X-RateLimit-Remaining: 0` with a reset).
    async fn send_json_with_budget(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(Value, Option<Duration>), ApiError> {
        let response = request.send().await.map_err(ApiError::from_reqwest)?;
        let status = response.status();
        let empty_for = if status.is_success() {
            budget_empty_for(response.headers(), SystemTime::now())
        } else {
            None
        };
        if !status.is_success() {
            let headers = response.headers().clone();
            // An error body cut short is still this status's answer: a 400 whose
            // body broke off must not look like a submit that may have created a task.
            let body = response.text().await.unwrap_or_default();
            return Err(status_error(status, headers, body));
        }
        let body = response.bytes().await.map_err(ApiError::from_reqwest)?;
        let value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::Decode(format!(
                "{e} in {}",
                clip_str(&String::from_utf8_lossy(&body))
            ))
        })?;
        Ok((value, empty_for))
    }
}

fn status_error(status: StatusCode, headers: HeaderMap, body: String) -> ApiError {
    let html = is_html(&headers, &body);
    let message = if html {
        let title = html_title(&body)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("no title").to_string());
        format!("{title} (an HTML page, not the API)")
    } else {
        status_message(status, &body)
    };
    let category = headers
        .get("x-ratelimit-category")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    ApiError::Status {
        status: status.as_u16(),
        message,
        retry_after: parse_retry_after(&headers),
        code: types::error_code(&body),
        category,
        reset: parse_rate_limit_reset(&headers, SystemTime::now()),
        html,
    }
}

/// An HTML page, by its type or its first characters.
fn is_html(headers: &HeaderMap, body: &str) -> bool {
    let typed = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().contains("html"));
    let head: String = body.trim_start().chars().take(15).collect();
    let head = head.to_ascii_lowercase();
    typed || head.starts_with("<!doctype") || head.starts_with("<html")
}

/// The `<title>` of an HTML page, trimmed and clipped.
pub fn html_title(body: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let end = open_end + lower[open_end..].find("</title")?;
    let title = body
        .get(open_end..end)?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then(|| clip_str(&title))
}

fn status_message(status: StatusCode, body: &str) -> String {
    types::error_message(body).unwrap_or_else(|| {
        let text = clip_str(body.trim());
        if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("no message")
                .to_string()
        } else {
            text
        }
    })
}

fn mime_for(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".png") {
        "image/png"
    } else if lower.ends_with(".webp") {
        "image/webp"
    } else {
        "image/jpeg"
    }
}

fn clip(value: &Value) -> String {
    clip_str(&value.to_string())
}

fn clip_str(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_forms() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let date = httpdate::fmt_http_date(later);
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let got = parse_retry_after(&headers).unwrap();
        assert!(
            got > Duration::from_secs(100) && got <= Duration::from_secs(120),
            "{got:?}"
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&headers), None);
    }

    #[test]
    fn key_is_never_in_debug() {
        let key = ApiKey::new("sk-secret-123".into());
        assert!(!format!("{key:?}").contains("secret"));
        let client = Client::new("http://127.0.0.1:1", key).unwrap();
        assert!(!format!("{client:?}").contains("secret"));
        // Refused up front, not on every call.
        let err = Client::new("http://127.0.0.1:1", ApiKey::new("sk\nx".into())).unwrap_err();
        assert!(err.contains("API key"), "{err}");
    }

    #[test]
    fn poll_urls_take_the_task_id_as_one_segment() {
        let client = Client::new("http://h:1/base/", ApiKey::new("k".into())).unwrap();
        assert_eq!(
            client.task_url("video_1").as_str(),
            "http://h:1/base/v1/videos/generations/video_1"
        );
        assert_eq!(
            client.task_url("a/b?c").as_str(),
            "http://h:1/base/v1/videos/generations/a%2Fb%3Fc"
        );
    }

    #[test]
    fn html_pages_are_summarised_by_their_title() {
        let page = "<!DOCTYPE html><html><head><TITLE>\n 503 Service\n Unavailable </TITLE></head><body>...</body></html>";
        assert_eq!(html_title(page).as_deref(), Some("503 Service Unavailable"));
        let e = status_error(
            StatusCode::SERVICE_UNAVAILABLE,
            HeaderMap::new(),
            page.into(),
        );
        assert!(e.is_html());
        assert_eq!(
            e.to_string(),
            "HTTP 503: 503 Service Unavailable (an HTML page, not the API)"
        );
        let e = status_error(
            StatusCode::FORBIDDEN,
            HeaderMap::new(),
            r#"{"error":{"message":"Insufficient account balance","code":"insufficient_user_quota"}}"#.into(),
        );
        assert!(e.is_quota() && !e.is_auth());
    }

    #[test]
    fn rate_limit_reset_is_a_wait_unless_calls_remain() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(
                    *k,
                    HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
                );
            }
            h
        };
        let wait = |pairs: &[(&'static str, &str)]| parse_rate_limit_reset(&headers(pairs), now);
        assert_eq!(
            wait(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1.5")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            wait(&[("x-ratelimit-reset", "2")]),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            wait(&[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset", "2")]),
            None
        );
        assert_eq!(
            wait(&[("x-ratelimit-reset", "2000000004")]),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            wait(&[("x-ratelimit-reset", "2000000000500")]),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            wait(&[("x-ratelimit-reset", "1999999990")]),
            Some(Duration::ZERO)
        );
        assert_eq!(wait(&[("x-ratelimit-reset", "soon")]), None);
        assert_eq!(wait(&[]), None);
        // On a success only an explicit "nothing remains" counts.
        let empty = |pairs: &[(&'static str, &str)]| budget_empty_for(&headers(pairs), now);
        assert_eq!(empty(&[("x-ratelimit-reset", "2")]), None);
        assert_eq!(
            empty(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "2")]),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            empty(&[("x-ratelimit-remaining", "4"), ("x-ratelimit-reset", "2")]),
            None
        );
    }

    #[test]
    fn classification() {
        let e = ApiError::Transport("reset".into());
        assert!(e.may_have_reached_server() && e.is_transient());
        let e = ApiError::Connect("refused".into());
        assert!(!e.may_have_reached_server() && e.is_transient());
        let e = ApiError::Status {
            status: 400,
            message: "x".into(),
            retry_after: None,
            code: None,
            category: None,
            reset: None,
            html: false,
        };
        assert!(!e.is_transient() && !e.may_have_reached_server());
        let e = ApiError::Status {
            status: 403,
            message: "x".into(),
            retry_after: None,
            code: None,
            category: None,
            reset: None,
            html: false,
        };
        assert!(e.is_auth());
    }
}
