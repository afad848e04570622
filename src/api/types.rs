//! The wire format: task objects, upload answers, error bodies, and where a finished video's URL sits.

use std::time::Duration;

use serde_json::Value;

/// Where the docs leave a task, in the order SPEC §1 says to look for the video URL.
const VIDEO_URL_PATHS: &[&[&str]] = &[
    &["result", "data", "[]", "url"],
    &["result", "videos", "[]", "url"],
    &["result", "url"],
    &["result", "video_url"],
    &["url"],
    &["video_url"],
    &["data", "url"],
];

/// The status of a generation task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    /// `queued` or `submitted`: waiting for a worker.
    Queued,
    InProgress,
    Completed,
    Failed,
    /// Anything undocumented: not final, keep polling.
    Other(String),
}

impl TaskStatus {
    /// SPEC §1: read case-insensitively; anything else is not final.
    pub fn parse(s: &str) -> TaskStatus {
        match s.trim().to_ascii_lowercase().as_str() {
            "queued" | "submitted" | "pending" => TaskStatus::Queued,
            "in_progress" | "in-progress" | "processing" | "running" | "started" => {
                TaskStatus::InProgress
            }
            "completed" | "succeeded" | "success" => TaskStatus::Completed,
            "failed" | "failure" | "cancelled" | "canceled" | "error" => TaskStatus::Failed,
            _ => TaskStatus::Other(s.to_string()),
        }
    }
}

/// What the runner needs from a `generation.task` object.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub status: TaskStatus,
    /// 0–100 when the server says.
    pub progress: Option<u32>,
    /// The finished video, from the first place in [`VIDEO_URL_PATHS`] that has one.
    pub video_url: Option<String>,
    /// Unix seconds after which the video URL stops working.
    pub expires_at: Option<i64>,
    /// Why a failed task failed, when the server says.
    pub error: Option<String>,
    /// Not from the body: when the answer's `X-RateLimit-Remaining` is 0, how
    /// long its `X-RateLimit-Reset` says the budget this call drew on stays empty.
    pub budget_empty_for: Option<Duration>,
}

impl Task {
    /// Reads a task object; `None` when it has no string `id`.
    pub fn from_json(value: &Value) -> Option<Task> {
        let id = value.get("id")?.as_str()?.to_string();
        let status = value
            .get("status")
            .and_then(Value::as_str)
            .map(TaskStatus::parse)
            .unwrap_or_else(|| TaskStatus::Other("(missing)".into()));
        let progress = value.get("progress").and_then(parse_progress);
        let expires_at = value.get("expires_at").and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        });
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        let error = value
            .get("error")
            .and_then(error_message_of)
            .or_else(|| text("fail_reason"))
            .or_else(|| text("failure_reason"))
            .or_else(|| text("message"))
            .or_else(|| {
                let status = value.get("status").and_then(Value::as_str)?;
                matches!(
                    status.to_ascii_lowercase().as_str(),
                    "cancelled" | "canceled"
                )
                .then(|| "task cancelled".to_string())
            });
        Some(Task {
            id,
            status,
            progress,
            video_url: find_video_url(value),
            expires_at,
            error,
            budget_empty_for: None,
        })
    }
}

/// `progress` as an integer, a float, or a string like `"65%"`; clamped to 0–100.
fn parse_progress(value: &Value) -> Option<u32> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok()?,
        _ => return None,
    };
    number.is_finite().then(|| number.clamp(0.0, 100.0) as u32)
}

/// The first video URL present, in the order SPEC §1 lists.
pub fn find_video_url(value: &Value) -> Option<String> {
    VIDEO_URL_PATHS
        .iter()
        .find_map(|path| lookup(value, path))
        .map(String::from)
}

fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let Some((first, rest)) = path.split_first() else {
        return value.as_str().filter(|s| !s.is_empty());
    };
    if *first == "[]" {
        return value.as_array()?.iter().find_map(|item| lookup(item, rest));
    }
    lookup(value.get(*first)?, rest)
}

/// The message of an error body: `{"error":{"message"}}`, `{"error":"..."}` or `{"message"}`.
pub fn error_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    value
        .get("error")
        .and_then(error_message_of)
        .or_else(|| {
            value
                .get("message")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .filter(|m| !m.is_empty())
}

/// The error body's `code` (a string or a number), else its `type`, else a top-level `code`.
pub fn error_code(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let as_text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let error = value.get("error");
    // A quota `type` says more than a numeric `code` (`{"code":403,"type":"insufficient_user_quota"}`).
    let kind = error.and_then(|e| e.get("type")).and_then(as_text);
    if let Some(kind) = kind.filter(|k| k.contains("quota")) {
        return Some(kind);
    }
    error
        .and_then(|e| e.get("code"))
        .and_then(as_text)
        .or_else(|| error.and_then(|e| e.get("type")).and_then(as_text))
        .or_else(|| value.get("code").and_then(as_text))
}

fn error_message_of(error: &Value) -> Option<String> {
    match error {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(map) => map.get("message").and_then(Value::as_str).map(String::from),
        _ => None,
    }
}

/// What `GET /v1/balance` says of this key, in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Balance {
    /// What is left; `None` when the key has `unlimited_quota`.
    pub remain: Option<f64>,
    pub used: Option<f64>,
}

/// A balance answer: `{"success","remain_balance","used_balance","unlimited_quota"}`.
/// `success: false` (or no `remain_balance`) is an error carrying the server's message.
pub fn balance(value: &Value) -> Result<Balance, String> {
    let number = |key: &str| {
        let v = value.get(key)?;
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
            .filter(|n| n.is_finite())
    };
    if value.get("success").and_then(Value::as_bool) == Some(false) {
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("success: false, no message");
        return Err(format!("the balance call failed: {message}"));
    }
    let used = number("used_balance");
    if value.get("unlimited_quota").and_then(Value::as_bool) == Some(true) {
        return Ok(Balance { remain: None, used });
    }
    match number("remain_balance") {
        Some(remain) => Ok(Balance {
            remain: Some(remain),
            used,
        }),
        None => Err("the balance answer has no remain_balance".into()),
    }
}

/// The `data` of a successful upload answer.
pub fn upload_url(value: &Value) -> Option<String> {
    value
        .get("data")
        .and_then(|d| d.get("url"))
        .or_else(|| value.get("url"))
        .and_then(Value::as_str)
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_answers() {
        let b = balance(&serde_json::json!({"success": true, "remain_balance": 10.5,
            "used_balance": 2.3, "unlimited_quota": false}));
        assert_eq!(
            b,
            Ok(Balance {
                remain: Some(10.5),
                used: Some(2.3)
            })
        );
        let b = balance(&serde_json::json!({"success": true, "remain_balance": -1,
            "used_balance": 2.3, "unlimited_quota": true}));
        assert_eq!(
            b,
            Ok(Balance {
                remain: None,
                used: Some(2.3)
            })
        );
        let b = balance(&serde_json::json!({"success": false,
            "message": "Failed to get token info: record not found"}));
        assert_eq!(
            b,
            Err("the balance call failed: Failed to get token info: record not found".into())
        );
        assert!(balance(&serde_json::json!({"id": "x"})).is_err());
    }
    use serde_json::json;

    #[test]
    fn video_url_in_every_documented_place() {
        let cases = [
            json!({"result": {"data": [{"url": "A"}]}}),
            json!({"result": {"videos": [{"url": "A"}]}}),
            json!({"result": {"url": "A"}}),
            json!({"result": {"video_url": "A"}}),
            json!({"url": "A"}),
            json!({"video_url": "A"}),
            json!({"data": {"url": "A"}}),
        ];
        for case in cases {
            assert_eq!(find_video_url(&case).as_deref(), Some("A"), "{case}");
        }
    }

    #[test]
    fn video_url_order_and_gaps() {
        let v = json!({"url": "top", "result": {"data": [{"nourl": 1}, {"url": "second"}], "url": "r"}});
        assert_eq!(find_video_url(&v).as_deref(), Some("second"));
        let v = json!({"url": "top", "result": {"data": [], "videos": [{"url": ""}]}});
        assert_eq!(find_video_url(&v).as_deref(), Some("top"));
        assert_eq!(find_video_url(&json!({"result": null})), None);
    }

    #[test]
    fn task_fields() {
        let v = json!({"id": "video_1", "status": "in_progress", "progress": 42});
        let t = Task::from_json(&v).unwrap();
        assert_eq!(t.status, TaskStatus::InProgress);
        assert_eq!(t.progress, Some(42));
        let v = json!({"id": "v", "status": "failed", "error": {"message": "nsfw"}});
        assert_eq!(Task::from_json(&v).unwrap().error.as_deref(), Some("nsfw"));
        let v = json!({"id": "v", "status": "warming_up"});
        assert_eq!(
            Task::from_json(&v).unwrap().status,
            TaskStatus::Other("warming_up".into())
        );
        assert_eq!(TaskStatus::parse("submitted"), TaskStatus::Queued);
        assert!(Task::from_json(&json!({"status": "queued"})).is_none());
    }

    #[test]
    fn statuses_in_any_case_and_spelling() {
        for (s, want) in [
            ("QUEUED", TaskStatus::Queued),
            ("Pending", TaskStatus::Queued),
            ("PROCESSING", TaskStatus::InProgress),
            ("running", TaskStatus::InProgress),
            ("SUCCESS", TaskStatus::Completed),
            ("Succeeded", TaskStatus::Completed),
            ("FAILED", TaskStatus::Failed),
            ("failure", TaskStatus::Failed),
            ("cancelled", TaskStatus::Failed),
            ("CANCELED", TaskStatus::Failed),
        ] {
            assert_eq!(TaskStatus::parse(s), want, "{s}");
        }
        assert_eq!(
            TaskStatus::parse("Warming"),
            TaskStatus::Other("Warming".into())
        );
    }

    #[test]
    fn progress_forms() {
        for (v, want) in [
            (json!(65), Some(65)),
            (json!(65.5), Some(65)),
            (json!("65%"), Some(65)),
            (json!(" 40 % "), Some(40)),
            (json!("120"), Some(100)),
            (json!("soon"), None),
            (json!(null), None),
        ] {
            assert_eq!(parse_progress(&v), want, "{v}");
        }
    }

    #[test]
    fn a_cancelled_task_says_so_and_messages_are_found() {
        let t = Task::from_json(&json!({"id": "v", "status": "CANCELLED"})).unwrap();
        assert_eq!(t.error.as_deref(), Some("task cancelled"));
        let t = Task::from_json(&json!({"id": "v", "status": "failure", "failure_reason": "nsfw"}))
            .unwrap();
        assert_eq!(t.error.as_deref(), Some("nsfw"));
        assert_eq!(
            error_code(r#"{"error":{"message":"x","type":"insufficient_quota","code":4021}}"#)
                .as_deref(),
            Some("insufficient_quota")
        );
        assert_eq!(
            error_code(r#"{"error":{"message":"x","type":"insufficient_quota"}}"#).as_deref(),
            Some("insufficient_quota")
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad duration","type":"x","code":"y"}}"#)
                .as_deref(),
            Some("bad duration")
        );
        assert_eq!(
            error_message(r#"{"message":"nope"}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(error_message("<html>"), None);
    }
}
