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
