//! What the service accepts in a submit body (SPEC §1 model table); anything else is a 400.

use serde_json::{Map, Value};

/// A submit body that passed validation, reduced to what a task keeps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Submission {
    pub model: String,
    pub prompt: String,
    /// Echoed back in the task's `metadata`.
    pub metadata: Map<String, Value>,
}

/// Why a submit body was refused: the `code` and `message` of the 400 body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Invalid {
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

const TOP_LEVEL: &[&str] = &[
    "model",
    "prompt",
    "duration",
    "aspect_ratio",
    "resolution",
    "image_urls",
    "metadata",
];
const ASPECT_RATIOS: &[&str] = &["16:9", "9:16"];

/// Models as the service knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Veo,
    Gemini,
}

fn model_of(name: &str) -> Option<Model> {
    match name {
        "veo3.1-fast" | "veo3.1-quality" => Some(Model::Veo),
        "gemini_omni_flash" => Some(Model::Gemini),
        _ => None,
    }
}

/// Validates a raw submit body.
pub(crate) fn validate(body: &[u8]) -> Result<Submission, Invalid> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        invalid(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(invalid(
            "invalid_json",
            "request body must be a JSON object",
        ));
    };
    if let Some(key) = obj.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(invalid(
            "unknown_parameter",
            format!("unknown parameter: {key}"),
        ));
    }

    let model_name = match obj.get("model") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err(invalid("invalid_model", "model must be a string")),
        None => return Err(invalid("missing_model", "model is required")),
    };
    let model = model_of(&model_name)
        .ok_or_else(|| invalid("invalid_model", format!("unknown model: {model_name}")))?;

    let prompt = match obj.get("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(invalid("missing_prompt", "prompt is required"));
        }
        Some(_) => return Err(invalid("invalid_prompt", "prompt must be a string")),
    };

    let (durations, default_duration): (&[u64], u64) = match model {
        Model::Veo => (&[8], 8),
        Model::Gemini => (&[6, 10], 6),
    };
    let duration = match obj.get("duration") {
        None => default_duration,
        Some(v) => match v.as_u64() {
            Some(d) if durations.contains(&d) => d,
            _ => {
                return Err(invalid(
                    "invalid_duration",
                    format!(
                        "duration {v} is not supported by {model_name} (allowed: {durations:?})"
                    ),
                ));
            }
        },
    };

    let aspect_ratio = match obj.get("aspect_ratio") {
        None => "16:9".to_owned(),
        Some(Value::String(a)) if ASPECT_RATIOS.contains(&a.as_str()) => a.clone(),
        Some(v) => {
            return Err(invalid(
                "invalid_aspect_ratio",
                format!("aspect_ratio {v} is not supported (allowed: 16:9, 9:16)"),
            ));
        }
    };

    let image_urls = match obj.get("image_urls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            return Err(invalid(
                "invalid_image_urls",
                "image_urls must be an array of URLs",
            ));
        }
    };
    let max_images = match model {
        Model::Veo => 2,
        Model::Gemini => 0,
    };
    if image_urls.len() > max_images {
        let (code, message) = if max_images == 0 {
            (
                "images_not_supported",
                format!("{model_name} does not accept image_urls"),
            )
        } else {
            (
                "too_many_images",
                format!(
                    "at most {max_images} image_urls are accepted, got {}",
                    image_urls.len()
                ),
            )
        };
        return Err(invalid(code, message));
    }
    for url in &image_urls {
        check_image_url(url)?;
    }

    let mut metadata = match obj.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("invalid_metadata", "metadata must be an object")),
    };
    match model {
        Model::Veo => {
            if obj.contains_key("resolution") {
                return Err(invalid(
                    "unknown_parameter",
                    format!("{model_name} takes the resolution in metadata.resolution"),
                ));
            }
            check_veo_metadata(&metadata)?;
        }
        Model::Gemini => {
            if !metadata.is_empty() {
                return Err(invalid(
                    "invalid_metadata",
                    format!("{model_name} accepts no metadata"),
                ));
            }
            match obj.get("resolution") {
                None => {}
                Some(Value::String(r)) if r == "720P" => {}
                Some(v) => {
                    return Err(invalid(
                        "invalid_resolution",
                        format!("resolution {v} is not supported (only 720P)"),
                    ));
                }
            }
            metadata.insert("resolution".into(), "720P".into());
        }
    }
    metadata.insert("aspect_ratio".into(), aspect_ratio.into());
    metadata.insert("duration".into(), duration.into());

    Ok(Submission {
        model: model_name,
        prompt,
        metadata,
    })
}

fn check_image_url(url: &Value) -> Result<(), Invalid> {
    let Value::String(url) = url else {
        return Err(invalid(
            "invalid_image_url",
            "image_urls entries must be strings",
        ));
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ if url.starts_with("data:") => Err(invalid(
            "invalid_image_url",
            "base64 / data URIs are no longer supported in image_urls; upload the image first",
        )),
        _ => Err(invalid(
            "invalid_image_url",
            format!("image url must be http:// or https://: {url}"),
        )),
    }
}

fn check_veo_metadata(metadata: &Map<String, Value>) -> Result<(), Invalid> {
    match metadata.get("resolution") {
        None => {}
        Some(Value::String(r)) if r == "720p" || r == "1080p" => {}
        Some(v) => {
            return Err(invalid(
                "invalid_resolution",
                format!("metadata.resolution {v} is not supported (allowed: 720p, 1080p)"),
            ));
        }
    }
    if metadata.get("enable_gif").is_some_and(|v| !v.is_boolean()) {
        return Err(invalid(
            "invalid_metadata",
            "metadata.enable_gif must be a boolean",
        ));
    }
    if metadata
        .get("generation_type")
        .is_some_and(|v| !v.is_string())
    {
        return Err(invalid(
            "invalid_metadata",
            "metadata.generation_type must be a string",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value) -> Result<Submission, &'static str> {
        validate(body.to_string().as_bytes()).map_err(|e| e.code)
    }

    #[test]
    fn documented_examples_pass() {
        let veo = check(json!({
            "model": "veo3.1-fast",
            "prompt": "Dolphins jumping in the blue ocean",
            "duration": 8,
            "aspect_ratio": "16:9",
            "image_urls": ["https://example.com/start-frame.jpg", "https://example.com/end-frame.jpg"],
            "metadata": {"generation_type": "frame", "resolution": "1080p", "enable_gif": false}
        }));
        let veo = veo.map_err(|e| e.to_string());
        assert_eq!(veo.as_ref().map(|s| s.model.as_str()), Ok("veo3.1-fast"));
        assert_eq!(
            veo.as_ref().map(|s| s.metadata["aspect_ratio"].clone()),
            Ok(json!("16:9"))
        );
        let gemini = check(json!({
            "model": "gemini_omni_flash",
            "prompt": "A cat",
            "aspect_ratio": "9:16",
            "duration": 10,
            "resolution": "720P"
        }));
        assert!(gemini.is_ok());
        assert!(check(json!({"model": "veo3.1-quality", "prompt": "p"})).is_ok());
        assert!(check(json!({"model": "gemini_omni_flash", "prompt": "p"})).is_ok());
    }

    #[test]
    fn rejections() {
        let cases = [
            (json!([1]), "invalid_json"),
            (json!({"prompt": "p"}), "missing_model"),
            (json!({"model": "sora", "prompt": "p"}), "invalid_model"),
            (json!({"model": "veo3.1-fast"}), "missing_prompt"),
            (
                json!({"model": "veo3.1-fast", "prompt": "  "}),
                "missing_prompt",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": 3}),
                "invalid_prompt",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "seed": 1}),
                "unknown_parameter",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "duration": 6}),
                "invalid_duration",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "duration": "8"}),
                "invalid_duration",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "aspect_ratio": "1:1"}),
                "invalid_aspect_ratio",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "image_urls": ["http://a/1", "http://a/2", "http://a/3"]}),
                "too_many_images",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "image_urls": ["data:image/png;base64,AAAA"]}),
                "invalid_image_url",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "image_urls": ["ftp://a/1.png"]}),
                "invalid_image_url",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "image_urls": ["start.png"]}),
                "invalid_image_url",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "metadata": {"resolution": "4k"}}),
                "invalid_resolution",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "metadata": {"enable_gif": "no"}}),
                "invalid_metadata",
            ),
            (
                json!({"model": "veo3.1-fast", "prompt": "p", "resolution": "720p"}),
                "unknown_parameter",
            ),
            (
                json!({"model": "gemini_omni_flash", "prompt": "p", "duration": 8}),
                "invalid_duration",
            ),
            (
                json!({"model": "gemini_omni_flash", "prompt": "p", "aspect_ratio": "4:3"}),
                "invalid_aspect_ratio",
            ),
            (
                json!({"model": "gemini_omni_flash", "prompt": "p", "resolution": "720p"}),
                "invalid_resolution",
            ),
            (
                json!({"model": "gemini_omni_flash", "prompt": "p", "resolution": "1080P"}),
                "invalid_resolution",
            ),
            (
                json!({"model": "gemini_omni_flash", "prompt": "p", "image_urls": ["https://a/1.png"]}),
                "images_not_supported",
            ),
            (
                json!({"model": "gemini_omni_flash", "prompt": "p", "metadata": {"resolution": "720P"}}),
                "invalid_metadata",
            ),
        ];
        for (body, code) in cases {
            assert_eq!(check(body.clone()).err(), Some(code), "{body}");
        }
    }
}
