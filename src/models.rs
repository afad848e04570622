//! One place that knows what each model accepts (SPEC §1).

use std::fmt;

/// The models the API documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Model {
    Veo31Fast,
    Veo31Quality,
    GeminiOmniFlash,
}

impl Model {
    pub const ALL: [Model; 3] = [
        Model::Veo31Fast,
        Model::Veo31Quality,
        Model::GeminiOmniFlash,
    ];

    /// The name on the wire and in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Veo31Fast => "veo3.1-fast",
            Model::Veo31Quality => "veo3.1-quality",
            Model::GeminiOmniFlash => "gemini_omni_flash",
        }
    }

    pub fn parse(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.as_str() == name)
    }

    pub fn is_veo(self) -> bool {
        matches!(self, Model::Veo31Fast | Model::Veo31Quality)
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `aspect_ratio` when the manifest says nothing (every model accepts it).
pub const DEFAULT_ASPECT_RATIO: &str = "16:9";

/// Image formats the API accepts, by file extension (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpeg", "jpg", "png", "webp"];

/// Largest image the API accepts.
pub const MAX_IMAGE_BYTES: u64 = 10 * 1024 * 1024;

/// The `metadata` keys veo accepts.
pub const VEO_METADATA_KEYS: [&str; 3] = ["resolution", "generation_type", "enable_gif"];

const ASPECT_RATIOS: [&str; 2] = ["16:9", "9:16"];
const VEO_RESOLUTIONS: [&str; 2] = ["720p", "1080p"];
const GEMINI_RESOLUTION: &str = "720P";

/// What a request asks of a model, before it is sent.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    /// Seconds, as written (wide, so that nonsense is reported rather than wrapped).
    pub duration: i64,
    pub aspect_ratio: &'a str,
    /// The top-level `resolution` (gemini); veo's lives in `metadata`.
    pub resolution: Option<&'a str>,
    pub image_count: usize,
    pub metadata: &'a serde_json::Map<String, serde_json::Value>,
}

/// The part of a request a [`Violation`] is about, so the caller can point at where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Duration,
    AspectRatio,
    Resolution,
    ImageUrls,
    /// A `metadata` key.
    Metadata(String),
}

/// One thing a model does not accept; the message says what is accepted and what was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: Field,
    pub message: String,
}

impl Model {
    /// Seconds when the manifest says nothing.
    pub fn default_duration(self) -> u32 {
        if self.is_veo() { 8 } else { 6 }
    }

    /// The top-level `resolution` filled in when the manifest says nothing.
    pub fn default_resolution(self) -> Option<&'static str> {
        if self.is_veo() {
            None
        } else {
            Some(GEMINI_RESOLUTION)
        }
    }

    /// The most images a request may carry.
    pub fn max_images(self) -> usize {
        if self.is_veo() { 2 } else { 0 }
    }

    /// "unknown model `x`; did you mean `y`?" with the accepted names.
    pub fn unknown_message(name: &str) -> String {
        let names: Vec<&str> = Model::ALL.iter().map(|m| m.as_str()).collect();
        let accepted = names.join(", ");
        match crate::manifest::diag::suggest(name, &names) {
            Some(best) => {
                format!("unknown model `{name}`; did you mean `{best}`? (accepted: {accepted})")
            }
            None => format!("unknown model `{name}`; accepted: {accepted}"),
        }
    }

    /// Everything in `params` this model does not accept (SPEC §1), empty when the request is fine.
    pub fn check(self, params: &Params<'_>) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut violation = |field: Field, message: String| out.push(Violation { field, message });

        let durations: &[i64] = if self.is_veo() { &[8] } else { &[6, 10] };
        if !durations.contains(&params.duration) {
            let accepted = if self.is_veo() { "8 only" } else { "6 or 10" };
            violation(
                Field::Duration,
                format!(
                    "{self} accepts duration {accepted}, got {}",
                    params.duration
                ),
            );
        }

        if !ASPECT_RATIOS.contains(&params.aspect_ratio) {
            violation(
                Field::AspectRatio,
                format!(
                    "{self} accepts aspect_ratio \"16:9\" or \"9:16\", got {:?}",
                    params.aspect_ratio
                ),
            );
        }

        match (self.is_veo(), params.resolution) {
            (_, None) => {}
            (true, Some(resolution)) => violation(
                Field::Resolution,
                format!(
                    "{self} takes its resolution in `metadata.resolution`, not top-level `resolution` (got {resolution:?})"
                ),
            ),
            (false, Some(resolution)) if resolution != GEMINI_RESOLUTION => violation(
                Field::Resolution,
                format!(
                    "{self} accepts resolution \"{GEMINI_RESOLUTION}\" only, got {resolution:?}"
                ),
            ),
            (false, Some(_)) => {}
        }

        let max_images = self.max_images();
        if params.image_count > max_images {
            let message = if max_images == 0 {
                format!("{self} accepts no image_urls, got {}", params.image_count)
            } else {
                format!(
                    "{self} accepts at most {max_images} image_urls (start frame, end frame), got {}",
                    params.image_count
                )
            };
            violation(Field::ImageUrls, message);
        }

        for (key, value) in params.metadata {
            let field = Field::Metadata(key.clone());
            if !self.is_veo() {
                violation(
                    field,
                    format!("{self} accepts no metadata, got `metadata.{key}`"),
                );
                continue;
            }
            match key.as_str() {
                "resolution" => match value.as_str() {
                    Some(r) if VEO_RESOLUTIONS.contains(&r) => {}
                    _ => violation(
                        field,
                        format!(
                            "{self} accepts metadata.resolution \"720p\" or \"1080p\", got {}",
                            describe_json(value)
                        ),
                    ),
                },
                "generation_type" => match value.as_str() {
                    Some(t) if !t.trim().is_empty() => {}
                    _ => violation(
                        field,
                        format!(
                            "metadata.generation_type must be a non-empty string (e.g. \"frame\"), got {}",
                            describe_json(value)
                        ),
                    ),
                },
                "enable_gif" => {
                    if !value.is_boolean() {
                        violation(
                            field,
                            format!(
                                "metadata.enable_gif must be true or false, got {}",
                                describe_json(value)
                            ),
                        );
                    }
                }
                other => violation(
                    field,
                    crate::manifest::diag::unknown_key_message(
                        "metadata key",
                        other,
                        &format!(" for {self}"),
                        &VEO_METADATA_KEYS,
                    ),
                ),
            }
        }
        out
    }
}

/// "string \"x\"", "integer 3", … for messages.
pub fn describe_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("float {n}"),
        Value::Number(n) => format!("integer {n}"),
        Value::String(s) => format!("string {}", crate::manifest::diag::quoted(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "a table".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    fn params<'a>(metadata: &'a Map<String, Value>) -> Params<'a> {
        Params {
            duration: 8,
            aspect_ratio: "16:9",
            resolution: None,
            image_count: 0,
            metadata,
        }
    }

    fn messages(model: Model, params: &Params<'_>) -> Vec<String> {
        model.check(params).into_iter().map(|v| v.message).collect()
    }

    #[test]
    fn veo_accepts_its_documented_request() {
        let Value::Object(metadata) =
            json!({"resolution": "1080p", "generation_type": "frame", "enable_gif": true})
        else {
            return;
        };
        let p = Params {
            image_count: 2,
            ..params(&metadata)
        };
        assert!(Model::Veo31Fast.check(&p).is_empty());
        assert!(Model::Veo31Quality.check(&p).is_empty());
    }

    #[test]
    fn veo_rules() {
        let empty = Map::new();
        let p = Params {
            duration: 10,
            ..params(&empty)
        };
        assert_eq!(
            messages(Model::Veo31Fast, &p),
            ["veo3.1-fast accepts duration 8 only, got 10"]
        );
        let p = Params {
            aspect_ratio: "4:3",
            ..params(&empty)
        };
        assert_eq!(
            messages(Model::Veo31Fast, &p),
            ["veo3.1-fast accepts aspect_ratio \"16:9\" or \"9:16\", got \"4:3\""]
        );
        let p = Params {
            image_count: 3,
            ..params(&empty)
        };
        assert_eq!(
            messages(Model::Veo31Quality, &p),
            ["veo3.1-quality accepts at most 2 image_urls (start frame, end frame), got 3"]
        );
        let Value::Object(bad) = json!({"resolution": "4k", "generation_type": "", "enable_gif": "yes", "resolutoin": 1})
        else {
            return;
        };
        let got = messages(Model::Veo31Fast, &params(&bad));
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got.iter().any(|m| m.contains("metadata.resolution \"720p\" or \"1080p\", got string \"4k\"")));
        assert!(
            got.iter()
                .any(|m| m.contains("generation_type must be a non-empty string"))
        );
        assert!(
            got.iter()
                .any(|m| m.contains("enable_gif must be true or false, got string \"yes\""))
        );
        assert!(got.iter().any(|m| m.contains(
            "unknown metadata key `resolutoin` for veo3.1-fast; did you mean `resolution`?"
        )));
    }

    #[test]
    fn gemini_rules() {
        let empty = Map::new();
        let ok = Params {
            duration: 10,
            resolution: Some("720P"),
            ..params(&empty)
        };
        assert!(Model::GeminiOmniFlash.check(&ok).is_empty());
        let p = Params {
            duration: 8,
            ..params(&empty)
        };
        assert_eq!(
            messages(Model::GeminiOmniFlash, &p),
            ["gemini_omni_flash accepts duration 6 or 10, got 8"]
        );
        let p = Params {
            duration: 6,
            resolution: Some("1080p"),
            ..params(&empty)
        };
        assert_eq!(
            messages(Model::GeminiOmniFlash, &p),
            ["gemini_omni_flash accepts resolution \"720P\" only, got \"1080p\""]
        );
        let p = Params {
            duration: 6,
            image_count: 1,
            ..params(&empty)
        };
        assert_eq!(
            messages(Model::GeminiOmniFlash, &p),
            ["gemini_omni_flash accepts no image_urls, got 1"]
        );
        let Value::Object(meta) = json!({"resolution": "720p"}) else {
            return;
        };
        let p = Params {
            duration: 6,
            ..params(&meta)
        };
        assert_eq!(
            messages(Model::GeminiOmniFlash, &p),
            ["gemini_omni_flash accepts no metadata, got `metadata.resolution`"]
        );
    }

    #[test]
    fn unknown_model_suggests() {
        assert!(Model::unknown_message("veo3.1-fats").contains("did you mean `veo3.1-fast`?"));
        assert!(Model::unknown_message("sora").contains("accepted: veo3.1-fast"));
    }
}
