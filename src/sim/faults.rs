//! The faults the simulator can inject, and the broken answers that carry them.

use std::io;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::config::SimConfig;

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

/// 429 with `Retry-After` in whole seconds.
pub(crate) fn too_many_requests(retry_after: u64) -> Response {
    let mut resp = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "rate_limit_exceeded",
        "too many requests, please retry later",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
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
