//! What the service accepts in a submit body (SPEC §1 model table); anything else is a 400.

use serde_json::{Map, Value};

use crate::models::{self, Catalogue, Violation, ViolationKind};

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

/// Validates a raw submit body against the catalogue: the same rules
/// (`models::Entry::check`) the manifest validation applies, so a request the
/// runner lets through is accepted here, and one it refuses is refused here.
pub(crate) fn validate(body: &[u8], catalogue: &Catalogue) -> Result<Submission, Invalid> {
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

    let model_name = match obj.get("model") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err(invalid("invalid_model", "model must be a string")),
        None => return Err(invalid("missing_model", "model is required")),
    };
    let entry = catalogue
        .entry(&model_name)
        .ok_or_else(|| invalid("invalid_model", format!("unknown model: {model_name}")))?;

    let prompt = match obj.get("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(invalid("missing_prompt", "prompt is required"));
        }
        Some(_) => return Err(invalid("invalid_prompt", "prompt must be a string")),
    };

    if let Some(v) = entry.check(&obj).into_iter().next() {
        return Err(invalid(code_of(&v, &entry.images), v.message));
    }
    if let Some(Value::Array(urls)) = models::lookup(&obj, &entry.images) {
        for url in urls {
            check_image_url(url)?;
        }
    }

    let mut metadata = match obj.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for key in ["resolution", "aspect_ratio", "duration"] {
        let value = obj.get(key).or_else(|| entry.default_of(key));
        if let Some(value) = value
            && !metadata.contains_key(key)
        {
            metadata.insert(key.into(), value.clone());
        }
    }

    Ok(Submission {
        model: model_name,
        prompt,
        metadata,
    })
}

/// The service's error code for a refusal.
fn code_of(v: &Violation, image_field: &str) -> &'static str {
    match (v.kind, v.field.as_str()) {
        (ViolationKind::Unknown, f) if f == image_field || f == "image_urls" => {
            "images_not_supported"
        }
        (ViolationKind::Unknown, f) if f.starts_with("metadata.") => "invalid_metadata",
        (ViolationKind::Unknown, _) => "unknown_parameter",
        (ViolationKind::Count, f) if f == image_field => "too_many_images",
        (_, "duration") => "invalid_duration",
        (_, "aspect_ratio") => "invalid_aspect_ratio",
        (_, "resolution" | "metadata.resolution") => "invalid_resolution",
        (ViolationKind::Rule, _) => "invalid_parameter_combination",
        (_, f) if f.starts_with("metadata") => "invalid_metadata",
        _ => "invalid_parameter",
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value) -> Result<Submission, &'static str> {
        validate(body.to_string().as_bytes(), Catalogue::builtin()).map_err(|e| e.code)
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
                json!({"model": "veo3.1-fast", "prompt": "p", "image_urls": ["http://a/1", "http://a/2", "http://a/3", "http://a/4"]}),
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
                json!({"model": "veo3.1-fast", "prompt": "p", "metadata": {"resolution": "8k"}}),
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
                json!({"model": "gemini_omni_flash", "prompt": "p", "resolution": "480p"}),
                "invalid_resolution",
            ),
            (
                json!({"model": "gemini_omni_flash", "prompt": "p", "resolution": "1080P", "aspect_ratio": "9:16"}),
                "invalid_aspect_ratio",
            ),
            (
                json!({"model": "gemini_omni_flash", "prompt": "p", "image_urls": ["https://a/1.png", "https://a/2.png", "https://a/3.png", "https://a/4.png"]}),
                "too_many_images",
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

/// The simulator and the manifest validation read one catalogue: for every
/// model, the smallest job the manifest accepts is accepted by the simulator,
/// and requests the manifest refuses are refused by the simulator too.
#[cfg(test)]
mod agreement {
    use std::path::Path;

    use serde_json::{Value, json};

    use super::validate;
    use crate::models::{Catalogue, Kind};

    /// A value `kind` accepts and a field's values and ranges allow.
    fn sample(spec: &crate::models::FieldSpec) -> Value {
        if let Some(v) = spec.values.first() {
            return v.clone();
        }
        let url = Value::from("https://example.com/a.png");
        let n = spec.min.unwrap_or(1.0).max(1.0) as usize;
        match spec.kind {
            Kind::Integer | Kind::Number => json!(spec.min.unwrap_or(1.0) as i64),
            Kind::String => url,
            Kind::Bool => json!(false),
            Kind::StringList => Value::Array(vec![url; n]),
            Kind::ObjectList => {
                let role = spec.roles.first().cloned().unwrap_or_default();
                Value::Array(vec![
                    json!({"url": "https://example.com/a.png", "role": role});
                    n
                ])
            }
            Kind::Object => json!({}),
        }
    }

    /// A TOML value for a manifest.
    fn toml_value(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let items: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", toml_value(v)))
                    .collect();
                format!("{{ {} }}", items.join(", "))
            }
            Value::Array(items) => {
                format!(
                    "[{}]",
                    items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
                )
            }
            other => other.to_string(),
        }
    }

    /// The smallest job for `name`: the fields the catalogue requires, a duration
    /// when it has no default, and images when a rule asks for some.
    fn minimal_job(name: &str) -> String {
        let catalogue = Catalogue::builtin();
        let Some(entry) = catalogue.entry(name) else {
            return String::new();
        };
        let mut job = format!("[[job]]\nid = \"a\"\nprompt = \"a fox\"\nmodel = \"{name}\"\n");
        let mut metadata = Vec::new();
        for (path, spec) in &entry.fields {
            let needed = spec.required
                || (path == "duration" && entry.default_duration().is_none())
                || (*path == entry.images && spec.min.is_some_and(|m| m > 0.0));
            let needed = needed
                || (*path == entry.images
                    && entry.rules.iter().any(|r| {
                        r.require.iter().any(|(p, c)| {
                            p == path && matches!(c, crate::models::Condition::Range { min: Some(m), .. } if *m > 0.0)
                        }) && r.when.iter().all(|(_, c)| matches!(c, crate::models::Condition::Present(false)))
                    }));
            if !needed {
                continue;
            }
            let value = sample(spec);
            let key = if *path == entry.images {
                "image_urls"
            } else {
                path
            };
            match key.strip_prefix("metadata.") {
                Some(k) => metadata.push(format!("{k} = {}", toml_value(&value))),
                None => job.push_str(&format!("{key} = {}\n", toml_value(&value))),
            }
        }
        if !metadata.is_empty() {
            job.push_str(&format!("metadata = {{ {} }}\n", metadata.join(", ")));
        }
        job
    }

    fn sim_accepts(body: &Value) -> Result<(), String> {
        validate(body.to_string().as_bytes(), Catalogue::builtin())
            .map(|_| ())
            .map_err(|e| format!("{}: {}", e.code, e.message))
    }

    #[test]
    fn every_model_default_request_is_accepted_by_both() {
        for entry in Catalogue::builtin().entries() {
            let name = entry.model.as_str();
            let text = minimal_job(name);
            let campaign = match crate::manifest::load_str(&text, Path::new("/tmp/agree.toml")) {
                Ok(c) => c,
                Err(e) => panic!("{name}: the manifest refuses its minimal job:\n{text}\n{e}"),
            };
            let job = &campaign.jobs[0];
            let urls: Vec<String> = job
                .images
                .iter()
                .map(|_| "https://example.com/a.png".to_owned())
                .collect();
            let body = job.request_body(&urls);
            if let Err(e) = sim_accepts(&body) {
                panic!("{name}: the simulator refuses what validation accepted: {body}: {e}");
            }
        }
    }

    #[test]
    fn forbidden_requests_are_refused_by_both() {
        let cases = [
            (
                "model = \"gemini-omni-flash\"\nresolution = \"1080p\"\naspect_ratio = \"9:16\"",
                json!({"model": "gemini-omni-flash", "prompt": "p", "resolution": "1080p", "aspect_ratio": "9:16"}),
            ),
            (
                "model = \"gemini-omni-flash\"\nduration = 8",
                json!({"model": "gemini-omni-flash", "prompt": "p", "duration": 8}),
            ),
            (
                "model = \"veo3.1-quality\"\nmetadata = { generation_type = \"reference\" }",
                json!({"model": "veo3.1-quality", "prompt": "p", "metadata": {"generation_type": "reference"}}),
            ),
            (
                "model = \"veo3.1-fast\"\nmetadata = { enable_gif = true, resolution = \"1080p\" }",
                json!({"model": "veo3.1-fast", "prompt": "p", "metadata": {"enable_gif": true, "resolution": "1080p"}}),
            ),
            (
                "model = \"kling-v2-6\"\nmode = \"max\"",
                json!({"model": "kling-v2-6", "prompt": "p", "mode": "max"}),
            ),
            (
                "model = \"sora-2-vvip\"\nduration = 10",
                json!({"model": "sora-2-vvip", "prompt": "p", "duration": 10}),
            ),
            (
                "model = \"seedance-2\"\nresolution = \"2k\"",
                json!({"model": "seedance-2", "prompt": "p", "resolution": "2k"}),
            ),
        ];
        for (fields, body) in cases {
            let text = format!("[[job]]\nid = \"a\"\nprompt = \"p\"\n{fields}\n");
            assert!(
                crate::manifest::load_str(&text, Path::new("/tmp/agree.toml")).is_err(),
                "validation accepts {fields}"
            );
            assert!(sim_accepts(&body).is_err(), "the simulator accepts {body}");
        }
    }
}
