//! End-to-end tests: a real simulator on 127.0.0.1:0 and a reqwest client.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

/// Zero waiting: tasks are completed as soon as they are created.
fn instant() -> SimConfig {
    SimConfig {
        queue_time: 0.0,
        generation_time: Some(0.0),
        video_size: 100_000,
        ..SimConfig::default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn veo(prompt: &str) -> Value {
    json!({
        "model": "veo3.1-fast",
        "prompt": prompt,
        "duration": 8,
        "aspect_ratio": "16:9",
        "image_urls": ["https://example.com/start.jpg", "https://example.com/end.jpg"],
        "metadata": {"generation_type": "frame", "resolution": "1080p", "enable_gif": false},
    })
}

async fn submit(sim: &SimHandle, body: &Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/v1/videos/generations", sim.base_url()))
        .bearer_auth("test-key")
        .json(body)
        .send()
        .await
}

async fn submit_ok(sim: &SimHandle, body: &Value) -> Value {
    let resp = submit(sim, body).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn poll(sim: &SimHandle, id: &str) -> reqwest::Result<reqwest::Response> {
    client()
        .get(format!("{}/v1/videos/generations/{id}", sim.base_url()))
        .bearer_auth("test-key")
        .send()
        .await
}

async fn poll_ok(sim: &SimHandle, id: &str) -> Value {
    let resp = poll(sim, id).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// The URL of a completed task, wherever the shape puts it.
fn video_url(task: &Value) -> Option<&str> {
    [
        "/result/data/0/url",
        "/result/videos/0/url",
        "/result/url",
        "/url",
        "/video_url",
    ]
    .iter()
    .find_map(|p| task.pointer(p))
    .and_then(Value::as_str)
}

/// Submits and returns the video URL of the (instantly) completed task.
async fn completed_url(sim: &SimHandle, prompt: &str) -> String {
    let task = submit_ok(sim, &veo(prompt)).await;
    let task = poll_ok(sim, task["id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "completed", "{task}");
    video_url(&task).unwrap().to_owned()
}

fn error_code(body: &Value) -> &str {
    body.pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[tokio::test]
async fn task_moves_through_queued_in_progress_completed() {
    let sim = SimHandle::start(SimConfig {
        // 0.6 s queued, then 1 s generating: polled every 20 ms, each
        // status is seen even on a busy machine.
        time_scale: 0.04,
        queue_time: 15.0,
        generation_time: Some(25.0),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let created = submit_ok(&sim, &veo("lifecycle")).await;
    assert_eq!(created["object"], "generation.task");
    assert_eq!(created["status"], "queued");
    assert_eq!(created["progress"], 0);
    assert_eq!(created["model"], "veo3.1-fast");
    assert_eq!(created["metadata"]["aspect_ratio"], "16:9");
    assert!(created["created_at"].as_u64().unwrap() > 1_700_000_000);
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("video_") && id.len() == 32, "{id}");

    let mut seen = Vec::new();
    let mut last_progress = 0;
    let task = loop {
        let task = poll_ok(&sim, id).await;
        let status = task["status"].as_str().unwrap().to_owned();
        let progress = task["progress"].as_u64().unwrap();
        assert!(progress >= last_progress, "progress went back: {task}");
        last_progress = progress;
        if status == "in_progress" {
            assert!(progress <= 99);
        }
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "completed" {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(seen, ["queued", "in_progress", "completed"]);
    assert_eq!(task["progress"], 100);
    let completed_at = task["completed_at"].as_u64().unwrap();
    assert_eq!(
        task["expires_at"].as_u64().unwrap(),
        completed_at + 3456,
        "24 h of URL life at this time scale"
    );
    assert_eq!(
        video_url(&task),
        Some(format!("{}/files/{id}.mp4", sim.base_url()).as_str())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn each_result_shape_puts_the_url_in_its_place() {
    let cases = [
        (ResultShape::DataUrl, "/result/data/0/url"),
        (ResultShape::Videos, "/result/videos/0/url"),
        (ResultShape::ResultUrl, "/result/url"),
        (ResultShape::Url, "/url"),
        (ResultShape::VideoUrl, "/video_url"),
    ];
    for (shape, pointer) in cases {
        let sim = SimHandle::start(SimConfig {
            result_shape: shape,
            ..instant()
        })
        .await
        .unwrap();
        let task = submit_ok(&sim, &veo("shape")).await;
        let id = task["id"].as_str().unwrap();
        let task = poll_ok(&sim, id).await;
        let want = format!("{}/files/{id}.mp4", sim.base_url());
        assert_eq!(
            task.pointer(pointer).and_then(Value::as_str),
            Some(want.as_str()),
            "{shape:?}: {task}"
        );
        // Exactly one place carries it.
        let places = ["/result", "/url", "/video_url"]
            .iter()
            .filter(|p| task.pointer(p).is_some())
            .count();
        assert_eq!(places, 1, "{task}");
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn invalid_submits_are_400_and_counted() {
    let sim = SimHandle::start(instant()).await.unwrap();
    let bad = [
        (json!({"model": "veo4", "prompt": "p"}), "invalid_model"),
        (
            json!({"model": "veo3.1-fast", "prompt": ""}),
            "missing_prompt",
        ),
        (
            json!({"model": "veo3.1-fast", "prompt": "p", "duration": 6}),
            "invalid_duration",
        ),
        (
            json!({"model": "veo3.1-fast", "prompt": "p", "aspect_ratio": "1:1"}),
            "invalid_aspect_ratio",
        ),
        (
            json!({"model": "veo3.1-fast", "prompt": "p", "image_urls": ["data:image/png;base64,AA"]}),
            "invalid_image_url",
        ),
        (
            json!({"model": "veo3.1-fast", "prompt": "p", "metadata": {"resolution": "8k"}}),
            "invalid_resolution",
        ),
        (
            json!({"model": "gemini_omni_flash", "prompt": "p", "resolution": "1080P", "aspect_ratio": "9:16"}),
            "invalid_aspect_ratio",
        ),
        (
            json!({"model": "veo3.1-fast", "prompt": "p", "image_urls": ["https://a/1.png", "https://a/2.png", "https://a/3.png", "https://a/4.png"]}),
            "too_many_images",
        ),
        (
            json!({"model": "veo3.1-fast", "prompt": "p", "negative_prompt": "x"}),
            "unknown_parameter",
        ),
    ];
    for (body, code) in &bad {
        let resp = submit(&sim, body).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert_eq!(error_code(&err), *code, "{body}");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
    }
    let resp = client()
        .post(format!("{}/v1/videos/generations", sim.base_url()))
        .bearer_auth("k")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let stats = sim.stats();
    assert_eq!(stats.rejected_400 as usize, bad.len() + 1);
    assert_eq!(stats.tasks_created, 0);
    assert!(stats.submits_by_prompt.is_empty());
}

#[tokio::test]
async fn auth_is_required() {
    let sim = SimHandle::start(SimConfig {
        api_key: Some("sekrit".into()),
        ..instant()
    })
    .await
    .unwrap();
    let url = format!("{}/v1/videos/generations", sim.base_url());
    let body = veo("auth");
    for auth in [None, Some("Bearer wrong"), Some("Bearer "), Some("sekrit")] {
        let mut req = client().post(&url).json(&body);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(
            err,
            json!({"error": {"message": "invalid api key", "type": "authentication_error", "code": "invalid_api_key"}})
        );
    }
    let ok = client()
        .post(&url)
        .bearer_auth("sekrit")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // Polls need the key too.
    let id = ok.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = client().get(format!("{url}/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let stats = sim.stats();
    assert_eq!(stats.unauthorized_401, 5);
    assert_eq!(stats.tasks_created, 1);

    // Without a configured key any non-empty bearer is accepted.
    let open = SimHandle::start(instant()).await.unwrap();
    assert_eq!(submit(&open, &body).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn stats_count_what_happened() {
    let sim = SimHandle::start(instant()).await.unwrap();
    let a = submit_ok(&sim, &veo("prompt a")).await;
    submit_ok(&sim, &veo("prompt a")).await;
    submit_ok(
        &sim,
        &json!({"model": "gemini_omni_flash", "prompt": "prompt b", "duration": 10}),
    )
    .await;
    let id = a["id"].as_str().unwrap();
    poll_ok(&sim, id).await;
    poll_ok(&sim, id).await;
    let missing = poll(&sim, "video_nope").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing.json().await.unwrap()), "not_found");

    let stats = sim.stats();
    assert_eq!(stats.submits, 3);
    assert_eq!(stats.tasks_created, 3);
    assert_eq!(stats.polls, 3);
    assert_eq!(stats.not_found_404, 1);
    assert_eq!(
        stats.submits_by_prompt.into_iter().collect::<Vec<_>>(),
        [("prompt a".to_owned(), 2), ("prompt b".to_owned(), 1)]
    );
    assert_eq!(stats.request_times_ms.len(), 6);
    assert!(stats.request_times_ms.windows(2).all(|w| w[0] <= w[1]));
    assert!(stats.injected.is_empty());

    let over_http: SimStats = client()
        .get(format!("{}/_sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, sim.stats());
}

#[tokio::test]
async fn download_matches_video_bytes_and_resumes_with_range() {
    let sim = SimHandle::start(SimConfig {
        video_size: 300_001,
        ..instant()
    })
    .await
    .unwrap();
    let url = completed_url(&sim, "download").await;
    let id = url
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".mp4")
        .to_owned();

    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    assert_eq!(resp.headers()["content-length"], "300001");
    let body = resp.bytes().await.unwrap();
    let mut want = vec![0u8; 300_001];
    video_bytes(&id, 0, &mut want);
    assert_eq!(&body[..], &want[..]);
    let sha = {
        use sha2::Digest;
        sha2::Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(sha, video_sha256_hex(&id, 300_001));

    let resp = client()
        .get(&url)
        .header("range", "bytes=200000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()["content-range"],
        "bytes 200000-300000/300001"
    );
    assert_eq!(resp.headers()["content-length"], "100001");
    assert_eq!(&resp.bytes().await.unwrap()[..], &want[200_000..]);

    let resp = client()
        .get(&url)
        .header("range", "bytes=300001-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.headers()["content-range"], "bytes */300001");

    // Not a task's file: 404.
    let resp = client()
        .get(format!("{}/files/video_nope.mp4", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(sim.stats().downloads, 2);
}

#[tokio::test]
async fn video_url_expires_with_410() {
    // A URL that expires as its task finishes: every fetch comes after (no
    // real-time race; the other download tests fetch live URLs).
    let sim = SimHandle::start(SimConfig {
        url_ttl: 0.0,
        ..instant()
    })
    .await
    .unwrap();
    let url = completed_url(&sim, "expiry").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::GONE);
    assert_eq!(error_code(&resp.json().await.unwrap()), "url_expired");
    assert_eq!(sim.stats().expired_410, 1);
}

#[tokio::test]
async fn unfinished_task_has_no_video() {
    let sim = SimHandle::start(SimConfig::default()).await.unwrap();
    let task = submit_ok(&sim, &veo("slow")).await;
    let id = task["id"].as_str().unwrap();
    let resp = client()
        .get(format!("{}/files/{id}.mp4", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn submit_429_and_503_create_no_task() {
    let sim = SimHandle::start(SimConfig {
        submit_429: 1.0,
        retry_after: 7,
        ..instant()
    })
    .await
    .unwrap();
    let resp = submit(&sim, &veo("busy")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(
        error_code(&resp.json().await.unwrap()),
        "rate_limit_exceeded"
    );
    let stats = sim.stats();
    assert_eq!(stats.tasks_created, 0);
    assert_eq!(stats.injected.get("submit_429"), Some(&1));

    let sim = SimHandle::start(SimConfig {
        submit_503: 1.0,
        ..instant()
    })
    .await
    .unwrap();
    let resp = submit(&sim, &veo("down")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        error_code(&resp.json().await.unwrap()),
        "service_unavailable"
    );
    let stats = sim.stats();
    assert_eq!(stats.tasks_created, 0);
    assert_eq!(stats.injected.get("submit_503"), Some(&1));
}

#[tokio::test]
async fn submit_drop_creates_the_task_but_the_client_sees_an_error() {
    let sim = SimHandle::start(SimConfig {
        submit_drop: 1.0,
        ..instant()
    })
    .await
    .unwrap();
    let result = submit(&sim, &veo("dropped")).await;
    let err = result.expect_err("a dropped submit must not look like an answer");
    assert!(!err.is_status(), "{err:?}");
    let stats = sim.stats();
    assert_eq!(stats.tasks_created, 1);
    assert_eq!(stats.submits, 0);
    assert_eq!(stats.submits_by_prompt.get("dropped"), Some(&1));
    assert_eq!(stats.injected.get("submit_drop"), Some(&1));
}

#[tokio::test]
async fn poll_faults() {
    let prompt = "polled";
    // Each knob on its own simulator; the task is created with the knob off
    // on a shared config so the submit itself is not affected.
    for (knob, status) in [
        ("poll_429", Some(StatusCode::TOO_MANY_REQUESTS)),
        ("poll_500", Some(StatusCode::INTERNAL_SERVER_ERROR)),
        ("poll_drop", None),
    ] {
        let mut config = instant();
        match knob {
            "poll_429" => config.poll_429 = 1.0,
            "poll_500" => config.poll_500 = 1.0,
            _ => config.poll_drop = 1.0,
        }
        let sim = SimHandle::start(config).await.unwrap();
        let task = submit_ok(&sim, &veo(prompt)).await;
        let result = poll(&sim, task["id"].as_str().unwrap()).await;
        match status {
            Some(status) => {
                let resp = result.unwrap();
                assert_eq!(resp.status(), status, "{knob}");
                if status == StatusCode::TOO_MANY_REQUESTS {
                    assert_eq!(resp.headers()["retry-after"], "1");
                }
                let body: Value = resp.json().await.unwrap();
                assert!(body["error"]["message"].is_string(), "{knob}: {body}");
            }
            None => assert!(result.is_err(), "{knob}: the client must see an error"),
        }
        let stats = sim.stats();
        assert_eq!(stats.injected.get(knob), Some(&1), "{knob}");
        assert_eq!(stats.polls, 1);
    }
}

#[tokio::test]
async fn download_cut_aborts_after_part_of_the_body() {
    let sim = SimHandle::start(SimConfig {
        download_cut: 1.0,
        video_size: 1_000_000,
        ..instant()
    })
    .await
    .unwrap();
    let url = completed_url(&sim, "cut").await;
    for range in [None, Some("bytes=500000-")] {
        let mut req = client().get(&url);
        if let Some(range) = range {
            req = req.header("range", range);
        }
        let resp = req.send().await.unwrap();
        let full: u64 = if range.is_some() { 500_000 } else { 1_000_000 };
        assert_eq!(resp.content_length(), Some(full));
        let mut got = 0u64;
        let mut stream = resp.bytes_stream();
        let mut failed = false;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => got += c.len() as u64,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "the client must see the cut");
        assert!(got < full, "{got}");
    }
    assert_eq!(sim.stats().injected.get("download_cut"), Some(&2));
}

#[tokio::test]
async fn fail_rate_fails_generations() {
    let sim = SimHandle::start(SimConfig {
        fail_rate: 1.0,
        ..instant()
    })
    .await
    .unwrap();
    let task = submit_ok(&sim, &veo("doomed")).await;
    assert_eq!(task["status"], "queued");
    let id = task["id"].as_str().unwrap();
    let task = poll_ok(&sim, id).await;
    assert_eq!(task["status"], "failed");
    assert_eq!(
        task["error"],
        json!({"message": "generation failed: content policy (simulated)", "code": "generation_failed"})
    );
    assert_eq!(video_url(&task), None);
    let resp = client()
        .get(format!("{}/files/{id}.mp4", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(sim.stats().injected.get("fail_rate"), Some(&1));
}

#[tokio::test]
async fn same_seed_same_faults() {
    async fn pattern(seed: u64) -> Vec<bool> {
        let sim = SimHandle::start(SimConfig {
            fail_rate: 0.5,
            seed,
            ..instant()
        })
        .await
        .unwrap();
        let mut failed = Vec::new();
        for i in 0..12 {
            let task = submit_ok(&sim, &veo(&format!("seeded {i}"))).await;
            let task = poll_ok(&sim, task["id"].as_str().unwrap()).await;
            failed.push(task["status"] == "failed");
        }
        failed
    }
    let a = pattern(7).await;
    assert_eq!(a, pattern(7).await);
    assert!(a.contains(&true) && a.contains(&false), "{a:?}");
}

#[tokio::test]
async fn one_gib_video_is_streamed() {
    let size = 1u64 << 30;
    let sim = SimHandle::start(SimConfig {
        video_size: size,
        ..instant()
    })
    .await
    .unwrap();
    let url = completed_url(&sim, "huge").await;
    let id = url
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".mp4")
        .to_owned();
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.content_length(), Some(size));
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    while got.len() < 4 << 20 {
        got.extend_from_slice(&stream.next().await.unwrap().unwrap());
    }
    let mut want = vec![0u8; got.len()];
    video_bytes(&id, 0, &mut want);
    assert_eq!(got, want);
    drop(stream);

    // The tail, straight from a Range.
    let resp = client()
        .get(&url)
        .header("range", format!("bytes={}-", size - 10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let tail = resp.bytes().await.unwrap();
    let mut want = [0u8; 10];
    video_bytes(&id, size - 10, &mut want);
    assert_eq!(&tail[..], &want[..]);
    sim.shutdown().await;
}

fn image_form(name: &str, mime: &str, len: usize) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(vec![7u8; len])
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap();
    reqwest::multipart::Form::new().part("file", part)
}

#[tokio::test]
async fn uploads() {
    let sim = SimHandle::start(instant()).await.unwrap();
    let url = format!("{}/v1/uploads/images", sim.base_url());
    let resp = client()
        .post(&url)
        .bearer_auth("k")
        .multipart(image_form("start.PNG", "application/octet-stream", 1234))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "");
    assert_eq!(body["data"]["mime_type"], "image/png");
    assert_eq!(body["data"]["size"], 1234);
    let image_url = body["data"]["url"].as_str().unwrap();
    assert!(
        image_url.starts_with(&format!("{}/uploads/", sim.base_url()))
            && image_url.ends_with(".png")
    );
    let served = client().get(image_url).send().await.unwrap();
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().to_vec(), vec![7u8; 1234]);

    // The uploaded URL is accepted by a submit.
    let mut body = veo("with upload");
    body["image_urls"] = json!([image_url]);
    submit_ok(&sim, &body).await;

    // By content type alone.
    let resp = client()
        .post(&url)
        .bearer_auth("k")
        .multipart(image_form("blob", "image/webp", 10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let refused = [
        image_form("a.gif", "image/gif", 10),
        image_form("big.jpg", "image/jpeg", 10 * 1024 * 1024 + 1),
        image_form("huge.jpg", "image/jpeg", 20 * 1024 * 1024),
        reqwest::multipart::Form::new().text("other", "x"),
    ];
    for form in refused {
        let resp = client()
            .post(&url)
            .bearer_auth("k")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["success"], false);
        assert!(body["error"]["message"].is_string());
    }
    // Exactly 10 MB is fine.
    let resp = client()
        .post(&url)
        .bearer_auth("k")
        .multipart(image_form("max.jpeg", "image/jpeg", 10 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let unauthorized = client()
        .post(&url)
        .multipart(image_form("a.png", "image/png", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);

    let stats = sim.stats();
    assert_eq!(stats.uploads, 3);
    assert_eq!(stats.rejected_400, 4);
}

#[tokio::test]
async fn rate_limit_answers_429_above_the_rate() {
    // One call per 10 s, a bucket of one: the poll right after the submit is
    // refused however slow this machine is.
    let sim = SimHandle::start(SimConfig {
        rate_limit: Some(0.1),
        ..instant()
    })
    .await
    .unwrap();
    let task = submit_ok(&sim, &veo("limited")).await;
    let id = task["id"].as_str().unwrap();
    let resp = poll(&sim, id).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "10");
    let stats = sim.stats();
    assert_eq!(stats.rate_limited_429, 1);
    assert!(stats.injected.is_empty());
    assert_eq!(stats.request_times_ms.len(), 2);
}

#[tokio::test]
async fn serve_stops_when_told() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, instant(), async {
        let _ = stopped.await;
    }));
    // The client stays alive with its pooled keep-alive connection: idle
    // connections must not hold the shutdown up.
    let shared = client();
    let stats = shared
        .get(format!("http://{addr}/_sim/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), StatusCode::OK);
    stats.bytes().await.unwrap();
    let unknown = shared
        .get(format!("http://{addr}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    unknown.bytes().await.unwrap();
    stop.send(()).unwrap();
    let result = tokio::time::timeout(SHUTDOWN_GRACE / 2, server).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
    assert!(
        shared
            .get(format!("http://{addr}/_sim/stats"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn handle_reports_its_address() {
    let sim = SimHandle::start(SimConfig::default()).await.unwrap();
    assert!(sim.addr().ip().is_loopback());
    assert_eq!(
        sim.base_url(),
        format!("http://127.0.0.1:{}", sim.addr().port())
    );
    assert_eq!(
        base_url_of("0.0.0.0:80".parse().unwrap()),
        "http://127.0.0.1:80"
    );
    assert_eq!(base_url_of("[::]:80".parse().unwrap()), "http://[::1]:80");
    sim.shutdown().await;
}

/// Drops and cuts must look the same on every attempt, on a runtime with
/// several threads and over a reused keep-alive connection (where a client
/// might otherwise retry silently and pay twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_and_cuts_are_reliable() {
    let sim = SimHandle::start(SimConfig {
        submit_drop: 1.0,
        poll_drop: 1.0,
        download_cut: 1.0,
        video_size: 200_000,
        ..instant()
    })
    .await
    .unwrap();
    let shared = client();
    let base = sim.base_url();
    for i in 0..25 {
        // Warm a pooled connection first.
        let stats = shared
            .get(format!("{base}/_sim/stats"))
            .send()
            .await
            .unwrap();
        assert_eq!(stats.status(), StatusCode::OK);
        stats.bytes().await.unwrap();
        let submitted = shared
            .post(format!("{base}/v1/videos/generations"))
            .bearer_auth("k")
            .json(&veo(&format!("drop {i}")))
            .send()
            .await;
        assert!(submitted.is_err(), "attempt {i}: {submitted:?}");
        let polled = shared
            .get(format!("{base}/v1/videos/generations/video_x"))
            .bearer_auth("k")
            .send()
            .await;
        assert!(polled.is_err(), "attempt {i}: {polled:?}");
    }
    let stats = sim.stats();
    assert_eq!(stats.tasks_created, 25);
    assert_eq!(stats.submits, 0);
    assert!(stats.submits_by_prompt.values().all(|&n| n == 1));
    assert_eq!(stats.polls, 25);

    let id = sim.state.lock().tasks.keys().next().cloned().unwrap();
    let url = sim.state.video_url(&id);
    for i in 0..25 {
        let resp = shared.get(&url).send().await.unwrap();
        assert_eq!(resp.content_length(), Some(200_000), "attempt {i}");
        let body = resp.bytes().await;
        assert!(body.is_err(), "attempt {i}: the cut must be seen");
    }
}

#[tokio::test]
async fn generation_jitter_spreads_completion() {
    let sim = SimHandle::start(SimConfig {
        time_scale: 0.001,
        queue_time: 0.0,
        generation_time: Some(100.0),
        generation_jitter: 0.5,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    for i in 0..10 {
        submit_ok(&sim, &veo(&format!("jitter {i}"))).await;
    }
    let spans: Vec<Duration> = sim
        .state
        .lock()
        .tasks
        .values()
        .map(|t| t.done - t.started)
        .collect();
    assert!(
        spans
            .iter()
            .all(|d| *d >= Duration::from_millis(50) && *d <= Duration::from_millis(150))
    );
    assert!(spans.iter().any(|d| *d != spans[0]), "{spans:?}");
}

async fn balance(sim: &SimHandle) -> Value {
    let resp = client()
        .get(format!("{}/v1/balance", sim.base_url()))
        .bearer_auth("test-key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn the_balance_call_follows_balance_price_and_top_up() {
    let sim = SimHandle::start(SimConfig {
        balance: Some(1.0),
        price: 0.25,
        ..instant()
    })
    .await
    .unwrap();
    let b = balance(&sim).await;
    assert_eq!(b["success"], true);
    assert_eq!(b["remain_balance"], 1.0);
    assert_eq!(b["used_balance"], 0.0);
    assert_eq!(b["unlimited_quota"], false);
    submit_ok(&sim, &veo("one")).await;
    let b = balance(&sim).await;
    assert_eq!(
        (b["remain_balance"].as_f64(), b["used_balance"].as_f64()),
        (Some(0.75), Some(0.25))
    );
    assert_eq!(b["remain_credits"], 150.0);
    sim.top_up(2.0);
    assert_eq!(balance(&sim).await["remain_balance"], 2.75);
    assert_eq!(sim.stats().balance_calls, 3);
    // The balance call is not an async task call: it is never metered.
    let unlimited = SimHandle::start(SimConfig {
        submit_burst: 1,
        query_burst: 1,
        ..instant()
    })
    .await
    .unwrap();
    for _ in 0..5 {
        let b = balance(&unlimited).await;
        assert_eq!(
            (b["remain_balance"].as_f64(), b["unlimited_quota"].as_bool()),
            (Some(-1.0), Some(true))
        );
    }
    let none = SimHandle::start(SimConfig {
        no_balance_call: true,
        ..instant()
    })
    .await
    .unwrap();
    let resp = client()
        .get(format!("{}/v1/balance", none.base_url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_metered_429_carries_the_documented_headers_and_costs_nothing() {
    let sim = SimHandle::start(SimConfig {
        time_scale: 1.0,
        submit_rate: 0.5,
        submit_burst: 1,
        ..instant()
    })
    .await
    .unwrap();
    // An admitted call says what is left too: nothing, and when the next token comes.
    let first = submit(&sim, &veo("first")).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let said = |name: &str| {
        first
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    assert_eq!(said("x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(said("x-ratelimit-limit").as_deref(), Some("1"));
    // 2 s to the next token, less what a busy machine took between two clock reads.
    let reset: f64 = said("x-ratelimit-reset")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0.0);
    assert!(reset > 1.5 && reset <= 2.0, "{reset}");
    assert_eq!(
        said("x-ratelimit-category").as_deref(),
        Some("async_submit")
    );
    let resp = submit(&sim, &veo("second")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = resp.headers();
    let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(String::from);
    assert_eq!(
        header("x-ratelimit-category").as_deref(),
        Some("async_submit")
    );
    assert_eq!(header("x-ratelimit-limit").as_deref(), Some("1"));
    assert_eq!(header("x-ratelimit-remaining").as_deref(), Some("0"));
    // 2 s to the next token: whole seconds in Retry-After, milliseconds in the reset.
    assert_eq!(header("retry-after").as_deref(), Some("2"));
    let reset: f64 = header("x-ratelimit-reset")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0.0);
    assert!(reset > 1.5 && reset <= 2.0, "{reset}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    // Refused calls take no token: the bucket is still empty, not in debt.
    let again = submit(&sim, &veo("third")).await.unwrap();
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    let stats = sim.stats();
    assert_eq!(stats.tasks_created, 1, "refused submits create nothing");
    assert_eq!(stats.rate_limited_by_category.get("async_submit"), Some(&2));
    assert_eq!(stats.rate_limited_ms.len(), 2);
    // The query bucket is another: polls still go.
    let resp = poll(&sim, "video_unknown").await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "a poll is not held by the submit bucket"
    );
}

#[test]
fn progress_modes_show_what_they_say() {
    // A task queued 1 s, then generating 2 s; looked at while queued (0.5 s) and halfway (2 s).
    let shown = |mode: ProgressMode| (mode.shown(0.5, 1.0, 2.0), mode.shown(2.0, 1.0, 2.0));
    assert_eq!(shown(ProgressMode::Linear), (Some(0), Some(49)));
    assert_eq!(shown(ProgressMode::Absent), (None, None));
    assert_eq!(shown(ProgressMode::Stuck), (Some(0), Some(0)));
    // 99·(1 − ½²) = 74.25 halfway through the generation.
    assert_eq!(shown(ProgressMode::Ahead), (Some(0), Some(74)));
    // From submit, queue counted: 0.5 of 3 s and 2 of 3 s.
    assert_eq!(shown(ProgressMode::CountsQueue), (Some(16), Some(66)));
    // Never 100 before the end, never past it.
    for mode in [
        ProgressMode::Linear,
        ProgressMode::Ahead,
        ProgressMode::CountsQueue,
    ] {
        assert_eq!(mode.shown(2.999, 1.0, 2.0), Some(98), "{mode:?}");
        assert_eq!(mode.shown(9.0, 1.0, 2.0), Some(99), "{mode:?}");
    }
}

#[tokio::test]
async fn absent_progress_leaves_the_field_out() {
    let sim = SimHandle::start(SimConfig {
        progress_mode: ProgressMode::Absent,
        ..instant()
    })
    .await
    .unwrap();
    let created = submit_ok(&sim, &veo("no progress")).await;
    assert_eq!(created["status"], "queued");
    assert!(created.get("progress").is_none(), "{created}");
    let done = poll_ok(&sim, created["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed");
    assert!(done.get("progress").is_none(), "{done}");
    assert!(video_url(&done).is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn progress_that_counts_the_queue_moves_while_queued() {
    let sim = SimHandle::start(SimConfig {
        time_scale: 1.0,
        queue_time: 1000.0,
        generation_time: Some(1000.0),
        progress_mode: ProgressMode::CountsQueue,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let created = submit_ok(&sim, &veo("counts the queue")).await;
    assert_eq!(created["progress"], 0);
    // The task's phase at 500 s (queued) and 1500 s (generating), without waiting.
    let task = sim.state.lock().tasks.values().next().cloned().unwrap();
    let at = |secs| task.phase(task.created + Duration::from_secs(secs));
    assert_eq!(at(500), state::Phase::Queued { progress: Some(24) });
    assert_eq!(at(1500), state::Phase::InProgress { progress: Some(74) });
    assert_eq!(at(2000), state::Phase::Completed);
    sim.shutdown().await;
}

/// Tasks' (queue, generation) times as the simulator logged them.
async fn drawn_times(config: SimConfig, tasks: usize) -> Vec<[f64; 2]> {
    let sim = SimHandle::start(config).await.unwrap();
    for i in 0..tasks {
        submit_ok(&sim, &veo(&format!("timing {i}"))).await;
    }
    let times = sim.stats().task_times;
    sim.shutdown().await;
    times
}

#[tokio::test]
async fn spread_draws_lognormal_times_and_logs_them() {
    let config = SimConfig {
        time_scale: 0.001,
        queue_time: 1.0,
        generation_time: Some(2.0),
        spread: 0.5,
        ..SimConfig::default()
    };
    let times = drawn_times(config.clone(), 400).await;
    assert_eq!(times.len(), 400);
    for (which, median) in [(0, 1.0f64), (1, 2.0)] {
        let mut logs: Vec<f64> = times.iter().map(|t| (t[which] / median).ln()).collect();
        logs.sort_by(f64::total_cmp);
        let mid = logs[logs.len() / 2];
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        let sd = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / logs.len() as f64).sqrt();
        // 400 draws: the median's log within ±0.1 of 0, σ within ±0.1 of 0.5.
        assert!(mid.abs() < 0.1, "{which}: median log {mid}");
        assert!((sd - 0.5).abs() < 0.1, "{which}: σ {sd}");
    }
    // The same seed draws the same times; no spread draws none.
    assert_eq!(drawn_times(config.clone(), 400).await, times);
    let steady = drawn_times(
        SimConfig {
            spread: 0.0,
            ..config
        },
        3,
    )
    .await;
    assert_eq!(steady, vec![[1.0, 2.0]; 3]);
}

#[tokio::test]
async fn queue_drift_grows_the_queue_per_task_created() {
    let times = drawn_times(
        SimConfig {
            time_scale: 0.001,
            queue_time: 0.5,
            generation_time: Some(1.5),
            queue_drift: 0.25,
            ..SimConfig::default()
        },
        4,
    )
    .await;
    let queues: Vec<f64> = times.iter().map(|t| t[0]).collect();
    assert_eq!(queues, [0.5, 0.75, 1.0, 1.25]);
    assert!(times.iter().all(|t| t[1] == 1.5));
}
