//! The faults the simulator can inject, and the broken answers that carry them.

use std::io;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::config::SimConfig;
use super::state::Limited;

/// One fault knob of [`SimConfig`]; its name keys `SimStats::injected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Submit429,
    Submit503,
    SubmitDrop,
    Poll429,
    Poll500,
    PollDrop,
    DownloadCut,
    FailRate,
    SubmitGateway,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Submit429 => "submit_429",
            Fault::Submit503 => "submit_503",
            Fault::SubmitDrop => "submit_drop",
            Fault::Poll429 => "poll_429",
            Fault::Poll500 => "poll_500",
            Fault::PollDrop => "poll_drop",
            Fault::DownloadCut => "download_cut",
            Fault::FailRate => "fail_rate",
            Fault::SubmitGateway => "submit_gateway",
        }
    }

    pub fn probability(self, config: &SimConfig) -> f64 {
        match self {
            Fault::Submit429 => config.submit_429,
            Fault::Submit503 => config.submit_503,
            Fault::SubmitDrop => config.submit_drop,
            Fault::Poll429 => config.poll_429,
            Fault::Poll500 => config.poll_500,
            Fault::PollDrop => config.poll_drop,
            Fault::DownloadCut => config.download_cut,
            Fault::FailRate => config.fail_rate,
            Fault::SubmitGateway => config.submit_gateway,
        }
    }
}

/// An error answer in the service's shape: `{"error":{"message","type","code"}}`.
pub(crate) fn error_response(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "code": code}});
    (status, axum::Json(body)).into_response()
}

/// An HTML error page with `status`, as a proxy or web server in front of the API sends.
pub(crate) fn html_page(status: StatusCode, title: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n<body><center><h1>{title}</h1></center><hr><center>nginx</center></body></html>\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

/// An injected 429 with `Retry-After` in whole seconds, naming the bucket the call is metered by.
pub(crate) fn too_many_requests(retry_after: u64, category: &str) -> Response {
    let mut resp = rate_limit_answer();
    let headers = resp.headers_mut();
    headers.insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
    if let Ok(v) = header::HeaderValue::from_str(category) {
        headers.insert("x-ratelimit-category", v);
    }
    resp
}

/// A wait for `Retry-After` / `X-RateLimit-Reset`: whole seconds on the real
/// clock, milliseconds on a scaled one; at least one unit when there is any wait.
pub(crate) fn wait_header(wait: f64, time_scale: f64) -> String {
    if wait <= 0.0 {
        "0".into()
    } else if time_scale >= 1.0 {
        format!("{}", wait.ceil().max(1.0))
    } else {
        format!("{:.3}", (wait * 1000.0).ceil().max(1.0) / 1000.0)
    }
}

/// `X-RateLimit-Reset`: seconds to the next token, to the millisecond (the
/// header has no standard form; `Retry-After` must be whole seconds).
pub(crate) fn reset_header(wait: f64) -> String {
    if wait <= 0.0 {
        "0".into()
    } else {
        format!("{:.3}", (wait * 1000.0).ceil().max(1.0) / 1000.0)
    }
}

/// The budget headers of an answer the bucket admitted: its size, what is
/// left, and the wait until the next token (0 while one is left).
pub(crate) fn with_budget_headers(
    mut resp: Response,
    category: &str,
    limit: u32,
    remaining: u32,
    wait: f64,
) -> Response {
    let headers = resp.headers_mut();
    if headers.contains_key("x-ratelimit-limit") {
        return resp;
    }
    for (name, value) in [
        ("x-ratelimit-category", category.to_string()),
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", reset_header(wait)),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    resp
}

fn rate_limit_answer() -> Response {
    error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "rate_limit_exceeded",
        "Async task request rate exceeded",
    )
}

/// A metered 429, with the headers the provider documents: `Retry-After` is
/// the seconds until the bucket has a token (whole seconds on the real clock;
/// on a scaled clock, milliseconds, so a fast simulation stays a scaled copy),
/// `X-RateLimit-Reset` the same to the millisecond, `X-RateLimit-Limit` the bucket's size.
pub(crate) fn metered(limited: &Limited, time_scale: f64) -> Response {
    let wait = wait_header(limited.wait, time_scale);
    let reset = reset_header(limited.wait);
    let mut resp = rate_limit_answer();
    let headers = resp.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("retry-after", wait.clone());
    set("x-ratelimit-reset", reset);
    set("x-ratelimit-limit", limited.limit.to_string());
    set("x-ratelimit-remaining", limited.remaining.to_string());
    if let Some(category) = limited.category {
        set("x-ratelimit-category", category.to_string());
    }
    resp
}

/// An answer that never arrives: the body fails before its first byte, so
/// hyper closes the connection without sending the status line, and the
/// client sees a connection error with no way to know what happened.
pub(crate) fn dropped() -> Response {
    let body = futures::stream::once(async {
        Err::<bytes::Bytes, _>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection dropped (simulated)",
        ))
    });
    Response::new(Body::from_stream(body))
}
