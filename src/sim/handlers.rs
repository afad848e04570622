//! The HTTP endpoints: submit, poll, upload, download, and the simulator's own stats.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::time::Instant;

use super::config::SimConfig;
use super::faults::{Fault, dropped, error_response, metered, too_many_requests};
use super::state::{Category, Inner, Phase, SimState, Upload, push_capped};
use super::validate::validate;
use super::video::{Pace, RangeRequest, body_stream, parse_range};

/// Largest image the upload call accepts (10 MB, as documented).
const MAX_UPLOAD: usize = 10 * 1024 * 1024;
/// Body limit of the upload route: above `MAX_UPLOAD` so that a too-large
/// file gets the service's 400 rather than a bare 413 from the framework.
const UPLOAD_BODY_LIMIT: usize = MAX_UPLOAD + 1024 * 1024;

type Shared = Arc<SimState>;

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/videos/generations", post(submit))
        .route("/v1/videos/generations/{task_id}", get(poll))
        .route(
            "/v1/uploads/images",
            post(upload).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .route("/uploads/{name}", get(uploaded_image))
        .route("/files/{name}", get(download))
        .route("/v1/balance", get(balance))
        .route("/balance", get(balance))
        .route("/_sim/stats", get(stats))
        .fallback(not_found)
        .with_state(state)
}

fn bad_request(inner: &mut Inner, code: &str, message: &str) -> Response {
    inner.stats.rejected_400 += 1;
    error_response(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        code,
        message,
    )
}

fn not_found_response(inner: &mut Inner, message: &str) -> Response {
    inner.stats.not_found_404 += 1;
    error_response(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "not_found",
        message,
    )
}

/// The bearer token, if the header is a well-formed non-empty one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What every `/v1` call goes through: recorded, authenticated, metered by
/// the bucket of its `category`. `Some` is the answer that refuses the request.
fn refusal(
    state: &SimState,
    inner: &mut Inner,
    headers: &HeaderMap,
    now: Instant,
    category: Category,
) -> Option<Response> {
    if let Some(refused) = unauthorized(state, inner, headers, now) {
        return Some(refused);
    }
    match state.rate_limit(inner, now, category) {
        Ok(()) => None,
        Err(limited) => {
            let ms = state.ms_since_start(now);
            push_capped(&mut inner.stats.rate_limited_ms, ms);
            Some(metered(&limited, state.config.time_scale))
        }
    }
}

/// Recorded and authenticated (and the outage): `Some` refuses the request.
fn unauthorized(
    state: &SimState,
    inner: &mut Inner,
    headers: &HeaderMap,
    now: Instant,
) -> Option<Response> {
    state.arrive(inner, now);
    let first = inner.first_request.unwrap_or(now);
    let since_first = state.sim_secs_since(first, now);
    if inner.outage || state.config.outages.iter().any(|w| w.contains(since_first)) {
        inner.stats.outage_503 += 1;
        return Some(super::faults::html_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Temporarily Unavailable",
        ));
    }
    let authorized = match (bearer(headers), &state.config.api_key) {
        (Some(token), Some(key)) => token == key,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !authorized {
        inner.stats.unauthorized_401 += 1;
        return Some(error_response(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            "invalid api key",
        ));
    }
    None
}

/// An injected 429, counted with the metered ones' times.
fn injected_429(state: &SimState, inner: &mut Inner, now: Instant, category: Category) -> Response {
    let ms = state.ms_since_start(now);
    push_capped(&mut inner.stats.rate_limited_ms, ms);
    too_many_requests(state.config.retry_after, category.header())
}

/// `GET /v1/balance`: this key's balance, as the provider answers it (USD; 1 USD = 200 credits).
/// Not metered: it is not an async task call.
async fn balance(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let now = Instant::now();
    let mut inner = state.lock();
    if let Some(resp) = unauthorized(&state, &mut inner, &headers, now) {
        return resp;
    }
    if state.config.no_balance_call {
        return not_found_response(&mut inner, "no such endpoint");
    }
    inner.stats.balance_calls += 1;
    let used = inner.used;
    let (remain, unlimited) = match inner.balance {
        Some(b) => (b.max(0.0), false),
        None => (-1.0, true),
    };
    let credits = if unlimited { 0.0 } else { remain * 200.0 };
    Json(json!({
        "success": true,
        "remain_balance": remain,
        "used_balance": used,
        "remain_credits": credits,
        "used_credits": used * 200.0,
        "credits_per_usd": 200,
        "unlimited_quota": unlimited,
    }))
    .into_response()
}

/// Every answer the submit or query bucket admitted carries its budget
/// headers, as the provider documents: size, what is left, the reset.
fn budget_headers(state: &SimState, category: Category, resp: Response) -> Response {
    if matches!(
        resp.status(),
        StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return resp;
    }
    let now = Instant::now();
    let budget = state.budget(&mut state.lock(), now, category);
    match budget {
        Some((limit, remaining, wait)) => {
            super::faults::with_budget_headers(resp, category.header(), limit, remaining, wait)
        }
        None => resp,
    }
}

async fn submit(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let resp = submit_answer(&state, headers, body).await;
    budget_headers(&state, Category::Submit, resp)
}

async fn submit_answer(
    state: &Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let now = Instant::now();
    let config = &state.config;
    let mut inner = state.lock();
    if let Some(resp) = refusal(state, &mut inner, &headers, now, Category::Submit) {
        return resp;
    }
    let body = match body {
        Ok(body) => body,
        Err(e) => return bad_request(&mut inner, "invalid_body", &e.body_text()),
    };
    let catalogue = config
        .catalogue
        .as_deref()
        .unwrap_or_else(|| crate::models::Catalogue::builtin());
    let submission = match validate(&body, catalogue) {
        Ok(s) => s,
        Err(invalid) => return bad_request(&mut inner, invalid.code, &invalid.message),
    };
    if inner.roll(Fault::Submit429, config) {
        return injected_429(state, &mut inner, now, Category::Submit);
    }
    if inner.roll(Fault::Submit503, config) {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "service_unavailable",
            "service temporarily unavailable (simulated)",
        );
    }
    if config.gateway_first && inner.roll(Fault::SubmitGateway, config) {
        return gateway_page(config);
    }
    if let Some(balance) = inner.balance {
        if balance + 1e-9 < config.price {
            inner.stats.payment_402 += 1;
            return error_response(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_quota",
                "insufficient_user_quota",
                "Insufficient account balance",
            );
        }
        inner.balance = Some(balance - config.price);
    }
    let task = state.create_task(&mut inner, submission, now);
    if let Some(client_id) = client_business_id(&body) {
        inner.by_client_id.insert(client_id, task.id.clone());
    }
    if inner.roll(Fault::SubmitDrop, config) {
        return dropped();
    }
    if !config.gateway_first && inner.roll(Fault::SubmitGateway, config) {
        // The task exists and is paid for; the answer is lost in a proxy.
        return gateway_page(config);
    }
    inner.stats.submits += 1;
    // A fresh task is always reported queued, even with a zero queue time.
    let queued = Phase::Queued {
        progress: task.progress_mode.shown(0.0, 1.0, 1.0),
    };
    Json(state.task_json(&task, queued)).into_response()
}

/// A proxy's HTML page with the `--gateway-status`.
fn gateway_page(config: &SimConfig) -> Response {
    let status = StatusCode::from_u16(config.gateway_status).unwrap_or(StatusCode::GATEWAY_TIMEOUT);
    super::faults::html_page(status, &format!("{} A timeout occurred", status.as_u16()))
}

/// The submit's `client_business_id`, if it carries one (documented for some
/// models): the task can then be found by it with the status call.
fn client_business_id(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(value.get("client_business_id")?.as_str()?.to_string())
}

async fn poll(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(task_id): Path<String>,
) -> Response {
    let resp = poll_answer(&state, headers, task_id).await;
    budget_headers(&state, Category::Query, resp)
}

async fn poll_answer(state: &Shared, headers: HeaderMap, task_id: String) -> Response {
    let now = Instant::now();
    let config = &state.config;
    let mut inner = state.lock();
    if let Some(resp) = refusal(state, &mut inner, &headers, now, Category::Query) {
        return resp;
    }
    inner.stats.polls += 1;
    if inner.roll(Fault::Poll429, config) {
        return injected_429(state, &mut inner, now, Category::Query);
    }
    if inner.roll(Fault::Poll500, config) {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            "internal server error (simulated)",
        );
    }
    if inner.roll(Fault::PollDrop, config) {
        return dropped();
    }
    let Some(task) = state.find_task(&mut inner, &task_id, now) else {
        return not_found_response(&mut inner, &format!("task not found: {task_id}"));
    };
    let polls = {
        let n = inner.polls_of.entry(task.id.clone()).or_default();
        *n += 1;
        *n
    };
    if polls <= config.swap_ids {
        let other = inner.tasks.values().find(|t| t.id != task.id).cloned();
        if let Some(other) = other {
            let phase = other.phase(now);
            return Json(shout(config, state.task_json(&other, phase))).into_response();
        }
    }
    let phase = task.phase(now);
    let mut json = state.task_json(&task, phase);
    if matches!(phase, super::state::Phase::Completed) {
        let n = inner.completed_polls_of.entry(task.id.clone()).or_default();
        *n += 1;
        if *n <= config.late_url
            && let Some(obj) = json.as_object_mut()
        {
            obj.remove("result");
            obj.remove("url");
            obj.remove("video_url");
        }
    }
    Json(shout(config, json)).into_response()
}

/// `--shout`: statuses in upper case, progress as `"N%"`.
fn shout(config: &super::SimConfig, mut json: serde_json::Value) -> serde_json::Value {
    if config.shout {
        if let Some(status) = json.get("status").and_then(|s| s.as_str()) {
            json["status"] = status.to_ascii_uppercase().into();
        }
        if let Some(p) = json.get("progress").and_then(|p| p.as_u64()) {
            json["progress"] = format!("{p}%").into();
        }
    }
    json
}

/// Extension and MIME type of an accepted image, from its file name or else its content type.
fn image_kind(
    file_name: Option<&str>,
    content_type: Option<&str>,
) -> Option<(&'static str, &'static str)> {
    let by_name = file_name
        .and_then(|n| n.rsplit_once('.'))
        .and_then(|(_, ext)| match ext.to_ascii_lowercase().as_str() {
            "jpg" => Some(("jpg", "image/jpeg")),
            "jpeg" => Some(("jpeg", "image/jpeg")),
            "png" => Some(("png", "image/png")),
            "webp" => Some(("webp", "image/webp")),
            _ => None,
        });
    by_name.or_else(|| match content_type?.to_ascii_lowercase().as_str() {
        "image/jpeg" | "image/jpg" => Some(("jpg", "image/jpeg")),
        "image/png" => Some(("png", "image/png")),
        "image/webp" => Some(("webp", "image/webp")),
        _ => None,
    })
}

/// Upload errors carry both documented error shapes: `message` and `error`.
fn upload_error(state: &SimState, code: &str, message: &str) -> Response {
    let mut inner = state.lock();
    inner.stats.rejected_400 += 1;
    let body = json!({
        "success": false,
        "message": message,
        "error": {"message": message, "type": "invalid_request_error", "code": code},
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// The `file` field of an upload: (file name, content type, bytes).
async fn read_file_field(
    mut multipart: Multipart,
) -> Result<(Option<String>, Option<String>, Vec<u8>), (&'static str, String)> {
    let bad = |e: axum::extract::multipart::MultipartError| ("invalid_multipart", e.body_text());
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let mut data = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ("file_too_large", "file is larger than 10 MB".to_owned())
            } else {
                bad(e)
            }
        })? {
            data.extend_from_slice(&chunk);
            if data.len() > MAX_UPLOAD {
                return Err(("file_too_large", "file is larger than 10 MB".to_owned()));
            }
        }
        return Ok((name, content_type, data));
    }
    Err((
        "missing_file",
        "multipart field `file` is required".to_owned(),
    ))
}

async fn upload(
    State(state): State<Shared>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let resp = upload_answer(&state, headers, multipart).await;
    budget_headers(&state, Category::Submit, resp)
}

async fn upload_answer(
    state: &Shared,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let now = Instant::now();
    {
        let mut inner = state.lock();
        if let Some(resp) = refusal(state, &mut inner, &headers, now, Category::Submit) {
            return resp;
        }
    }
    let multipart = match multipart {
        Ok(m) => m,
        Err(e) => return upload_error(state, "invalid_multipart", &e.body_text()),
    };
    let (name, content_type, data) = match read_file_field(multipart).await {
        Ok(file) => file,
        Err((code, message)) => return upload_error(state, code, &message),
    };
    let Some((ext, mime_type)) = image_kind(name.as_deref(), content_type.as_deref()) else {
        return upload_error(
            state,
            "unsupported_file_type",
            "only .jpeg, .jpg, .png and .webp images are accepted",
        );
    };
    let size = data.len();
    let mut inner = state.lock();
    let id = inner.new_id("img_", state.unix_ms(now));
    let file = format!("{id}.{ext}");
    let url = format!("{}/uploads/{file}", state.base_url);
    inner.uploads.insert(
        file,
        Upload {
            mime_type,
            bytes: data.into(),
        },
    );
    inner.stats.uploads += 1;
    Json(json!({
        "success": true,
        "message": "",
        "data": {"id": id, "url": url, "mime_type": mime_type, "size": size},
    }))
    .into_response()
}

async fn uploaded_image(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    let mut inner = state.lock();
    match inner.uploads.get(&name) {
        Some(upload) => (
            [(header::CONTENT_TYPE, upload.mime_type)],
            upload.bytes.clone(),
        )
            .into_response(),
        None => not_found_response(&mut inner, &format!("file not found: {name}")),
    }
}

/// A trickled download sends a chunk about this often (real seconds): plainly slow, without
/// waking the server for every byte of a 1 B/s trickle.
const TRICKLE_TICK: f64 = 0.05;

/// The pace of a `trickle` download: `trickle_rate` bytes per simulated second, in chunks
/// of about `TRICKLE_TICK` of real time (at least one byte).
fn trickle_pace(config: &SimConfig) -> Pace {
    let rate = config.trickle_rate.max(1) as f64;
    let tick = if config.time_scale > 0.0 {
        TRICKLE_TICK / config.time_scale
    } else {
        f64::INFINITY
    };
    // `as` saturates; the stream clamps the chunk to its own maximum.
    let chunk = ((rate * tick).floor() as usize).max(1);
    Pace {
        chunk,
        delay: config.scaled(chunk as f64 / rate),
    }
}

async fn download(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let now = Instant::now();
    let mut inner = state.lock();
    let task_id = name.strip_suffix(".mp4").unwrap_or(&name);
    let found = state
        .find_task(&mut inner, task_id, now)
        .map(|task| (task.id.clone(), task.phase(now), task.expires));
    let Some((task_id, Phase::Completed, expires)) = found else {
        // Unknown, or not finished yet, or failed: there is no video.
        return not_found_response(&mut inner, &format!("file not found: {name}"));
    };
    if now >= expires {
        inner.stats.expired_410 += 1;
        return error_response(
            StatusCode::GONE,
            "invalid_request_error",
            "url_expired",
            "the video url has expired",
        );
    }
    let gets = {
        let n = inner.downloads_of.entry(task_id.clone()).or_default();
        *n += 1;
        *n
    };
    if gets <= state.config.html_downloads {
        let mut page = super::faults::html_page(StatusCode::OK, "502 Bad Gateway");
        if state.config.html_as_octet {
            page.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/octet-stream"),
            );
        }
        return page;
    }
    let len = state.config.video_size;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match parse_range(range, len) {
        RangeRequest::Full => (StatusCode::OK, 0, len),
        RangeRequest::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        RangeRequest::Unsatisfiable => {
            let mut resp = error_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "invalid_request_error",
                "range_not_satisfiable",
                "requested range starts at or after the end of the file",
            );
            if let Ok(value) = header::HeaderValue::try_from(format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return resp;
        }
    };
    if status == StatusCode::PARTIAL_CONTENT {
        let n = inner.ranges_of.entry(task_id.clone()).or_default();
        *n += 1;
        if *n <= state.config.bad_range {
            *inner.stats.injected.entry("bad_range".into()).or_default() += 1;
            // A proxy that mangles ranges: nothing useful, and a range we did not ask for.
            return Response::builder()
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_TYPE, "video/mp4")
                .header(header::CONTENT_RANGE, format!("bytes 0-0/{len}"))
                .header(header::CONTENT_LENGTH, 0)
                .body(Body::empty())
                .unwrap_or_else(|e| {
                    error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "internal_error",
                        &e.to_string(),
                    )
                });
        }
    }
    inner.stats.downloads += 1;
    let cut_at = (end > start && inner.roll(Fault::DownloadCut, &state.config))
        .then(|| start + inner.below(end - start));
    let pace = (gets <= state.config.html_downloads + state.config.trickle).then(|| {
        *inner.stats.injected.entry("trickle".into()).or_default() += 1;
        trickle_pace(&state.config)
    });
    drop(inner);

    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    let body = Body::from_stream(body_stream(task_id, start, end, cut_at, pace));
    builder.body(body).unwrap_or_else(|e| {
        error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            &e.to_string(),
        )
    })
}

async fn stats(State(state): State<Shared>) -> Json<super::SimStats> {
    Json(state.stats())
}

async fn not_found(State(state): State<Shared>) -> Response {
    not_found_response(&mut state.lock(), "no such endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_static("Bearer  k1 "),
        );
        assert_eq!(bearer(&h), Some("k1"));
        h.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_static("Bearer "),
        );
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_static("Basic abc"),
        );
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn image_kinds() {
        assert_eq!(image_kind(Some("a.JPG"), None), Some(("jpg", "image/jpeg")));
        assert_eq!(
            image_kind(Some("a.webp"), Some("application/octet-stream")),
            Some(("webp", "image/webp"))
        );
        assert_eq!(
            image_kind(Some("blob"), Some("image/png")),
            Some(("png", "image/png"))
        );
        assert_eq!(image_kind(Some("a.gif"), Some("image/gif")), None);
        assert_eq!(image_kind(None, None), None);
    }
}
