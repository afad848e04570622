//! What each model accepts (SPEC §1): a generic rule engine over the data in `catalogue.toml`.
//!
//! No model is named in this file. The catalogue (embedded at build time, parsed
//! once) lists every model with the request fields it takes, their types,
//! allowed values, ranges and defaults, and cross-field rules; a manifest's
//! `[models."NAME"]` tables add entries or override fields of built-in ones
//! ([`Catalogue::with_overrides`]). [`Entry::check`] checks one request body,
//! as JSON, against an entry: the manifest validation and the simulator both
//! call it, so they cannot disagree.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Deserialize;
use serde_json::{Map, Value};

/// The catalogue as shipped (see the comment at the top of the file for its format).
pub const CATALOGUE_TOML: &str = include_str!("catalogue.toml");

/// Image formats the API accepts, by file extension (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpeg", "jpg", "png", "webp"];

/// Largest image the API accepts.
pub const MAX_IMAGE_BYTES: u64 = 10 * 1024 * 1024;

/// Keys every request has whatever the model: they are not catalogue fields.
pub const COMMON_KEYS: [&str; 3] = ["model", "prompt", "metadata"];

/// A model's canonical name (an alias resolves to it). Cheap to copy and compare;
/// ordered by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Model(&'static str);

impl Model {
    /// A model named in code (tests, examples); no lookup.
    pub const fn from_static(name: &'static str) -> Model {
        Model(name)
    }

    /// The name on the wire and in manifests.
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// `name` as a [`Model`]: names are kept for the life of the process, once each
    /// (a handful per catalogue), so that a model stays `Copy`.
    fn intern(name: &str) -> Model {
        static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
        let names = NAMES.get_or_init(Default::default);
        let mut names = match names.lock() {
            Ok(names) => names,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(known) = names.get(name) {
            return Model(known);
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        names.insert(leaked);
        Model(leaked)
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The JSON type a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Kind {
    #[serde(rename = "integer")]
    Integer,
    #[serde(rename = "number")]
    Number,
    #[serde(rename = "string")]
    String,
    #[serde(rename = "bool")]
    Bool,
    #[serde(rename = "string list")]
    StringList,
    #[serde(rename = "object list")]
    ObjectList,
    #[serde(rename = "object")]
    Object,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Integer => "an integer",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Bool => "true or false",
            Kind::StringList => "a list of strings",
            Kind::ObjectList => "a list of tables",
            Kind::Object => "a table",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Integer => "integer",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Bool => "bool",
            Kind::StringList => "string list",
            Kind::ObjectList => "object list",
            Kind::Object => "object",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::Integer => value.is_i64() || value.is_u64(),
            Kind::Number => value.is_number(),
            Kind::String => value.is_string(),
            Kind::Bool => value.is_boolean(),
            Kind::StringList => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            Kind::ObjectList => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_object)),
            Kind::Object => value.is_object(),
        }
    }

    /// A CSV cell as this type: lists split at `|`, `true`/`false`, numbers;
    /// what does not read as the type stays a string (and is refused, naming it).
    pub fn read_cell(self, cell: &str) -> Value {
        match self {
            Kind::StringList => Value::from(
                cell.split('|')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            Kind::String => Value::from(cell),
            Kind::ObjectList | Kind::Object => {
                serde_json::from_str(cell).unwrap_or_else(|_| Value::from(cell))
            }
            _ => Kind::read_scalar(cell),
        }
    }

    /// `true`, `false`, an integer or a number, else the text.
    pub fn read_scalar(cell: &str) -> Value {
        match cell {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => match cell.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => match cell
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    Some(n) if cell.contains('.') => Value::Number(n),
                    _ => Value::from(cell),
                },
            },
        }
    }

    fn is_list(self) -> bool {
        matches!(self, Kind::StringList | Kind::ObjectList)
    }
}

/// Where a field or rule was written: the shipped catalogue, or the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    #[default]
    Catalogue,
    Manifest,
}

/// One request field of a model: `duration`, `resolution`, `metadata.enable_gif`, ...
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The only values accepted (empty: any value of the type).
    #[serde(default)]
    pub values: Vec<Value>,
    /// Smallest number, or fewest items of a list.
    pub min: Option<f64>,
    /// Largest number, or most items of a list.
    pub max: Option<f64>,
    /// What the provider uses when the field is not sent (rules see it too).
    pub default: Option<Value>,
    /// `720P` is `720p` (strings only).
    #[serde(default)]
    pub case_insensitive: bool,
    /// For an object list: the `role` each item must have (empty: any).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The request must carry it.
    #[serde(default)]
    pub required: bool,
    /// Said after a refusal ("veo3.1-quality has no reference mode").
    pub note: Option<String>,
    #[serde(skip)]
    pub source: Source,
}

/// A condition on one field in a rule: one of some values, a range (numbers) or
/// an item count (lists), or whether the request carries it at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    OneOf(Vec<Value>),
    Range { min: Option<f64>, max: Option<f64> },
    Present(bool),
}

impl Condition {
    fn from_value(value: &Value) -> Result<Condition, String> {
        match value {
            Value::Array(items) => Ok(Condition::OneOf(items.clone())),
            Value::Object(table) => {
                if let Some(present) = table.get("present") {
                    return match (present.as_bool(), table.len()) {
                        (Some(b), 1) => Ok(Condition::Present(b)),
                        _ => Err("`present` must be true or false, alone".into()),
                    };
                }
                let mut min = None;
                let mut max = None;
                for (key, v) in table {
                    let n = v
                        .as_f64()
                        .ok_or_else(|| format!("`{key}` must be a number"))?;
                    match key.as_str() {
                        "min" => min = Some(n),
                        "max" => max = Some(n),
                        other => {
                            return Err(format!(
                                "unknown condition `{other}` (use a value, a list of values, {{ min, max }} or {{ present }})"
                            ));
                        }
                    }
                }
                Ok(Condition::Range { min, max })
            }
            scalar => Ok(Condition::OneOf(vec![scalar.clone()])),
        }
    }

    fn describe(&self) -> String {
        match self {
            Condition::OneOf(values) => one_of(values),
            Condition::Range { min, max } => range(*min, *max),
            Condition::Present(true) => "set".into(),
            Condition::Present(false) => "not set".into(),
        }
    }
}

/// A cross-field rule: when every `when` condition holds, every `require` must.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub when: Vec<(String, Condition)>,
    pub require: Vec<(String, Condition)>,
    pub message: String,
    pub source: Source,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(default)]
    when: BTreeMap<String, Value>,
    require: BTreeMap<String, Value>,
    message: String,
}

/// An entry as written, every key optional (a manifest override gives only what it changes).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntrySpec {
    page: Option<String>,
    aliases: Option<Vec<String>>,
    client_business_id: Option<bool>,
    images: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, FieldSpec>,
    #[serde(default)]
    rules: Vec<RuleSpec>,
    /// A manifest entry that replaces the built-in one instead of amending it.
    #[serde(default)]
    replace: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueSpec {
    models: BTreeMap<String, EntrySpec>,
}

/// One model: what its requests may carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub model: Model,
    pub aliases: Vec<String>,
    /// The provider's page the entry was transcribed from.
    pub page: String,
    pub client_business_id: bool,
    /// The request field the manifest's `image_urls` (URLs and uploaded files) go to.
    pub images: String,
    /// By path: `duration`, `metadata.resolution`.
    pub fields: BTreeMap<String, FieldSpec>,
    pub rules: Vec<Rule>,
    /// Whether the manifest added or changed this entry.
    pub from_manifest: bool,
}

/// One thing a model does not accept; the message says what is accepted and what was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The request path it is about (`duration`, `metadata.resolution`), so the
    /// caller can point at where it was written.
    pub field: String,
    pub kind: ViolationKind,
    pub message: String,
}

/// What sort of refusal a [`Violation`] is (the simulator's error codes follow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// A field the model does not take.
    Unknown,
    /// A value of the wrong type, not among the allowed ones, or out of range.
    Value,
    /// Too many or too few items in a list.
    Count,
    /// A required field is missing.
    Required,
    /// A cross-field rule.
    Rule,
}

impl Entry {
    /// Whether requests to this model may carry `client_business_id` (SPEC §1).
    pub fn takes_client_business_id(&self) -> bool {
        self.client_business_id
    }

    pub fn field(&self, path: &str) -> Option<&FieldSpec> {
        self.fields.get(path)
    }

    /// A field's default, when the catalogue gives one.
    pub fn default_of(&self, path: &str) -> Option<&Value> {
        self.fields.get(path).and_then(|f| f.default.as_ref())
    }

    /// Seconds when the manifest says nothing: the `duration` default, or its only value.
    pub fn default_duration(&self) -> Option<i64> {
        let field = self.fields.get("duration")?;
        field
            .default
            .as_ref()
            .or(match field.values.as_slice() {
                [only] => Some(only),
                _ => None,
            })
            .and_then(Value::as_i64)
    }

    /// The most images the image field takes (`None`: no limit written; `Some(0)`: none).
    pub fn max_images(&self) -> Option<u64> {
        match self.fields.get(&self.images) {
            None => Some(0),
            Some(f) => f.max.map(|m| m as u64),
        }
    }

    /// The fields at the top level of a request (not `metadata.*`).
    pub fn top_level_fields(&self) -> impl Iterator<Item = &str> {
        self.fields
            .keys()
            .map(String::as_str)
            .filter(|k| !k.starts_with("metadata."))
    }

    /// The accepted values of a field, for listings: `4, 6, 10`, `4 to 12`, `any`.
    pub fn describe_field(&self, path: &str) -> String {
        match self.fields.get(path) {
            None => "—".into(),
            Some(f) if !f.values.is_empty() => {
                f.values.iter().map(plain).collect::<Vec<_>>().join(", ")
            }
            Some(f) if f.min.is_some() || f.max.is_some() => range(f.min, f.max),
            Some(f) => format!("any {}", f.kind.name()),
        }
    }

    /// Everything in the request body `request` (the JSON object sent to the API,
    /// `metadata` nested) that this model does not accept; empty when it is fine.
    pub fn check(&self, request: &Map<String, Value>) -> Vec<Violation> {
        let model = self.model;
        let mut out = Vec::new();
        let mut violation = |field: &str, kind: ViolationKind, message: String| {
            out.push(Violation {
                field: field.to_owned(),
                kind,
                message,
            })
        };

        let top: Vec<&str> = self.top_level_fields().collect();
        for (key, value) in request {
            match key.as_str() {
                "model" | "prompt" => continue,
                "client_business_id" if self.client_business_id => {
                    if !value.is_string() {
                        violation(
                            key,
                            ViolationKind::Value,
                            format!(
                                "client_business_id for {model} must be a string, got {}",
                                describe_json(value)
                            ),
                        );
                    }
                }
                "metadata" => {
                    let Some(meta) = value.as_object() else {
                        violation(
                            "metadata",
                            ViolationKind::Value,
                            format!("metadata must be a table, got {}", describe_json(value)),
                        );
                        continue;
                    };
                    let keys: Vec<&str> = self
                        .fields
                        .keys()
                        .filter_map(|k| k.strip_prefix("metadata."))
                        .collect();
                    for (key, value) in meta {
                        let path = format!("metadata.{key}");
                        match self.fields.get(&path) {
                            Some(spec) => self.check_value(&path, spec, value, &mut violation),
                            None if keys.is_empty() => violation(
                                &path,
                                ViolationKind::Unknown,
                                format!("{model} accepts no metadata, got `{path}`"),
                            ),
                            None => violation(
                                &path,
                                ViolationKind::Unknown,
                                crate::manifest::diag::unknown_key_message(
                                    "metadata key",
                                    key,
                                    &format!(" for {model}"),
                                    &keys,
                                ),
                            ),
                        }
                    }
                }
                _ => match self.fields.get(key) {
                    Some(spec) => self.check_value(key, spec, value, &mut violation),
                    None => {
                        let message = if *key == self.images || key == "image_urls" {
                            format!("{model} accepts no {key}")
                        } else {
                            let mut message = crate::manifest::diag::unknown_key_message(
                                "field",
                                key,
                                &format!(" for {model}"),
                                &top,
                            );
                            if crate::manifest::diag::suggest(key, &top).is_none() {
                                message = format!(
                                    "{model} takes no `{key}` (its fields: {})",
                                    top.join(", ")
                                );
                            }
                            message
                        };
                        violation(key, ViolationKind::Unknown, message);
                    }
                },
            }
        }

        for (path, spec) in &self.fields {
            if spec.required && lookup(request, path).is_none() {
                violation(
                    path,
                    ViolationKind::Required,
                    format!("{model} requires `{path}`"),
                );
            }
        }

        for rule in &self.rules {
            if !rule
                .when
                .iter()
                .all(|(path, c)| self.holds(request, path, c))
            {
                continue;
            }
            for (path, c) in &rule.require {
                if !self.holds_required(request, path, c) {
                    let got = match lookup(request, path).or_else(|| self.default_of(path)) {
                        Some(v) if c_is_count(c) => {
                            format!("{}", v.as_array().map_or(0, Vec::len))
                        }
                        Some(v) => plain(v),
                        None => "nothing".into(),
                    };
                    let from = match rule.source {
                        Source::Manifest => " [rule from the manifest]",
                        Source::Catalogue => "",
                    };
                    let what = if c_is_count(c) {
                        format!("{path} count must be {}", c.describe())
                    } else {
                        match c {
                            Condition::OneOf(values) => format!(
                                "{path} must be {}",
                                values.iter().map(plain).collect::<Vec<_>>().join(" or ")
                            ),
                            _ => format!("{path} must be {}", c.describe()),
                        }
                    };
                    violation(
                        path,
                        ViolationKind::Rule,
                        format!("{model}: {} ({what}, got {got}){from}", rule.message),
                    );
                }
            }
        }
        out
    }

    fn check_value(
        &self,
        path: &str,
        spec: &FieldSpec,
        value: &Value,
        violation: &mut impl FnMut(&str, ViolationKind, String),
    ) {
        let model = self.model;
        let note = spec
            .note
            .as_ref()
            .map_or(String::new(), |n| format!(" ({n})"));
        if !spec.kind.accepts(value) {
            violation(
                path,
                ViolationKind::Value,
                format!(
                    "{path} for {model} must be {}, got {}",
                    spec.kind.describe(),
                    describe_json(value)
                ),
            );
            return;
        }
        if !spec.values.is_empty() && !spec.values.iter().any(|v| same(v, value, spec)) {
            violation(
                path,
                ViolationKind::Value,
                format!(
                    "{model} accepts {path} {}, got {}{note}",
                    one_of(&spec.values),
                    plain(value)
                ),
            );
            return;
        }
        if spec.kind.is_list() {
            let count = value.as_array().map_or(0, Vec::len) as f64;
            if spec.min.is_some_and(|m| count < m) || spec.max.is_some_and(|m| count > m) {
                let message = match (spec.min, spec.max) {
                    (_, Some(max)) if count > max && max == 0.0 => {
                        format!("{model} accepts no {path}, got {count}")
                    }
                    (_, Some(max)) if count > max => {
                        format!("{model} accepts at most {max} {path}, got {count}{note}")
                    }
                    (min, _) => format!(
                        "{model} needs at least {} {path}, got {count}{note}",
                        min.unwrap_or(0.0)
                    ),
                };
                violation(path, ViolationKind::Count, message);
                return;
            }
            if !spec.roles.is_empty()
                && let Some(items) = value.as_array()
            {
                for item in items {
                    let role = item.get("role").and_then(Value::as_str);
                    if !role.is_some_and(|r| spec.roles.iter().any(|a| a == r)) {
                        violation(
                            path,
                            ViolationKind::Value,
                            format!(
                                "{model} accepts {path} items with role {}, got {}",
                                one_of(
                                    &spec
                                        .roles
                                        .iter()
                                        .map(|r| Value::from(r.as_str()))
                                        .collect::<Vec<_>>()
                                ),
                                role.map_or("none".into(), |r| format!("\"{r}\""))
                            ),
                        );
                        return;
                    }
                    if !item.get("url").is_some_and(Value::is_string) {
                        violation(
                            path,
                            ViolationKind::Value,
                            format!("{path} for {model}: every item needs a `url` string"),
                        );
                        return;
                    }
                }
            }
        } else if let Some(n) = value.as_f64()
            && (spec.min.is_some_and(|m| n < m) || spec.max.is_some_and(|m| n > m))
        {
            violation(
                path,
                ViolationKind::Value,
                format!(
                    "{model} accepts {path} {}, got {}{note}",
                    range(spec.min, spec.max),
                    plain(value)
                ),
            );
        }
    }

    /// Whether `when` condition `c` holds for the request (an unsent field is its default).
    fn holds(&self, request: &Map<String, Value>, path: &str, c: &Condition) -> bool {
        let sent = lookup(request, path);
        match c {
            Condition::Present(b) => sent.is_some() == *b,
            Condition::OneOf(values) => sent
                .or_else(|| self.default_of(path))
                .is_some_and(|v| values.iter().any(|a| self.same_at(path, a, v))),
            Condition::Range { min, max } => {
                let n = self.measure(sent.or_else(|| self.default_of(path)), path);
                n.is_some_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m))
            }
        }
    }

    /// Whether a `require` condition holds; a field neither sent nor defaulted satisfies a value condition.
    fn holds_required(&self, request: &Map<String, Value>, path: &str, c: &Condition) -> bool {
        let value = lookup(request, path).or_else(|| self.default_of(path));
        match c {
            Condition::OneOf(_) if value.is_none() => true,
            Condition::Range { .. } if value.is_none() && !c_is_list(self, path) => true,
            _ => self.holds(request, path, c),
        }
    }

    /// A number's value, a list's length (an unsent list has none).
    fn measure(&self, value: Option<&Value>, path: &str) -> Option<f64> {
        match value {
            Some(Value::Array(items)) => Some(items.len() as f64),
            Some(v) => v.as_f64(),
            None if c_is_list(self, path) => Some(0.0),
            None => None,
        }
    }

    fn same_at(&self, path: &str, a: &Value, b: &Value) -> bool {
        match self.fields.get(path) {
            Some(spec) => same(a, b, spec),
            None => a == b,
        }
    }
}

fn c_is_list(entry: &Entry, path: &str) -> bool {
    entry.fields.get(path).is_some_and(|f| f.kind.is_list())
}

fn c_is_count(c: &Condition) -> bool {
    matches!(c, Condition::Range { .. })
}

/// Two values equal for a field (strings case-insensitively where it says so; 8 == 8.0).
fn same(a: &Value, b: &Value, spec: &FieldSpec) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if spec.case_insensitive => x.eq_ignore_ascii_case(y),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The value at `path` in a request (`metadata.x` looks inside `metadata`).
pub fn lookup<'a>(request: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let value = match path.strip_prefix("metadata.") {
        Some(key) => request.get("metadata")?.as_object()?.get(key),
        None => request.get(path),
    };
    value.filter(|v| !v.is_null())
}

/// `8`, `"16:9"`, `true` for messages.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// `8 only`, `"16:9" or "9:16"`, `4, 6 or 10`.
fn one_of(values: &[Value]) -> String {
    let shown: Vec<String> = values.iter().map(plain).collect();
    match shown.as_slice() {
        [] => "nothing".into(),
        [only] => format!("{only} only"),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `from 4 to 12`, `at least 1`, `at most 3`.
fn range(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("from {a} to {b}"),
        (Some(a), None) => format!("at least {a}"),
        (None, Some(b)) => format!("at most {b}"),
        (None, None) => "any".into(),
    }
}

/// "string \"x\"", "integer 3", … for messages.
pub fn describe_json(value: &Value) -> String {
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

/// Every model the runner knows: the shipped catalogue, maybe amended by a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    /// In name order.
    entries: Vec<Entry>,
    /// Canonical names and aliases → index in `entries`.
    names: BTreeMap<String, usize>,
}

/// Why a catalogue (or a manifest's `[models]`) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CatalogueError(pub String);

impl Catalogue {
    /// The shipped catalogue, parsed on first use.
    pub fn builtin() -> &'static Arc<Catalogue> {
        static BUILTIN: OnceLock<Arc<Catalogue>> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The file is part of the program and a test reads it: an error
            // here is a bug of this build, not of anyone's input.
            match Catalogue::parse(CATALOGUE_TOML) {
                Ok(c) => Arc::new(c),
                Err(e) => panic!("the built-in model catalogue is invalid: {e}"),
            }
        })
    }

    /// A catalogue from TOML text in the catalogue format.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let spec: CatalogueSpec =
            toml::from_str(text).map_err(|e| CatalogueError(e.to_string()))?;
        let mut catalogue = Catalogue {
            entries: Vec::new(),
            names: BTreeMap::new(),
        };
        for (name, entry) in spec.models {
            catalogue.apply(&name, entry, Source::Catalogue)?;
        }
        Ok(catalogue)
    }

    /// This catalogue with a manifest's `[models]` table (`name → entry`) applied:
    /// a new name adds an entry, a known one (or an alias) amends it field by field
    /// and appends its rules, or replaces it with `replace = true`.
    /// Entries with errors are left out, each error returned with its model's name.
    pub fn with_overrides(
        &self,
        models: &toml::Table,
    ) -> (Catalogue, Vec<(String, CatalogueError)>) {
        let mut out = self.clone();
        let mut errors = Vec::new();
        for (name, value) in models {
            let spec: Result<EntrySpec, _> = value.clone().try_into();
            let result = spec
                .map_err(|e| CatalogueError(e.to_string().trim().replace('\n', " ")))
                .and_then(|spec| out.apply(name, spec, Source::Manifest));
            if let Err(e) = result {
                errors.push((name.clone(), e));
            }
        }
        (out, errors)
    }

    fn apply(&mut self, name: &str, spec: EntrySpec, source: Source) -> Result<(), CatalogueError> {
        let existing = self.names.get(name).copied();
        let mut entry = match existing {
            Some(i) if !spec.replace => self.entries[i].clone(),
            Some(i) => Entry {
                fields: BTreeMap::new(),
                rules: Vec::new(),
                ..self.entries[i].clone()
            },
            None => Entry {
                model: Model::intern(name),
                aliases: Vec::new(),
                page: String::new(),
                client_business_id: false,
                images: "image_urls".into(),
                fields: BTreeMap::new(),
                rules: Vec::new(),
                from_manifest: false,
            },
        };
        entry.from_manifest |= source == Source::Manifest;
        if let Some(page) = spec.page {
            entry.page = page;
        }
        if let Some(aliases) = spec.aliases {
            entry.aliases = aliases;
        }
        if let Some(b) = spec.client_business_id {
            entry.client_business_id = b;
        }
        if let Some(images) = spec.images {
            entry.images = images;
        }
        for (path, mut field) in spec.fields {
            check_path(&path)?;
            field.source = source;
            entry.fields.insert(path, field);
        }
        for rule in spec.rules {
            let conditions =
                |map: BTreeMap<String, Value>| -> Result<Vec<(String, Condition)>, CatalogueError> {
                    map.into_iter()
                        .map(|(path, v)| {
                            let c = Condition::from_value(&v).map_err(|e| {
                                CatalogueError(format!("model `{name}`, rule `{path}`: {e}"))
                            })?;
                            Ok((path, c))
                        })
                        .collect()
                };
            let when = conditions(rule.when)?;
            let require = conditions(rule.require)?;
            if require.is_empty() {
                return Err(CatalogueError(format!(
                    "model `{name}`: a rule must `require` something"
                )));
            }
            entry.rules.push(Rule {
                when,
                require,
                message: rule.message,
                source,
            });
        }
        for rule in &entry.rules {
            for (path, _) in rule.when.iter().chain(&rule.require) {
                if !entry.fields.contains_key(path) {
                    return Err(CatalogueError(format!(
                        "model `{name}`: rule \"{}\" names `{path}`, which is not one of its fields",
                        rule.message
                    )));
                }
            }
        }
        if entry.default_duration().is_none() && !entry.fields.contains_key("duration") {
            // Every job has a length for plans and prices; say what the provider does.
            return Err(CatalogueError(format!(
                "model `{name}`: give `duration` a field with a default (the provider's length when none is sent)"
            )));
        }
        match existing {
            Some(i) => {
                self.names.retain(|_, v| *v != i);
                self.names
                    .insert(self.entries[i].model.as_str().to_owned(), i);
                for alias in &entry.aliases {
                    self.names.insert(alias.clone(), i);
                }
                self.entries[i] = entry;
            }
            None => {
                if let Some(alias) = entry.aliases.iter().find(|a| self.names.contains_key(*a)) {
                    return Err(CatalogueError(format!(
                        "model `{name}`: alias `{alias}` already names a model"
                    )));
                }
                let i = self.entries.len();
                self.names.insert(name.to_owned(), i);
                for alias in &entry.aliases {
                    self.names.insert(alias.clone(), i);
                }
                self.entries.push(entry);
            }
        }
        Ok(())
    }

    /// The model named `name` (or an alias of it).
    pub fn resolve(&self, name: &str) -> Option<Model> {
        self.names.get(name).map(|&i| self.entries[i].model)
    }

    /// The entry of `model` (or of the name of one).
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.names.get(name).map(|&i| &self.entries[i])
    }

    /// Every entry, by name.
    pub fn entries(&self) -> Vec<&Entry> {
        let mut out: Vec<&Entry> = self.entries.iter().collect();
        out.sort_by_key(|e| e.model.as_str().to_ascii_lowercase());
        out
    }

    /// Every name a manifest may use: models and aliases.
    pub fn names(&self) -> Vec<&str> {
        self.names.keys().map(String::as_str).collect()
    }

    /// Every top-level request field any model takes (what a job may set beyond the common keys).
    pub fn all_top_level_fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .entries
            .iter()
            .flat_map(|e| e.top_level_fields().chain([e.images.as_str()]))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The type of a field in the first model that has it (CSV cells are read as it).
    pub fn kind_of(&self, path: &str) -> Option<Kind> {
        self.entries
            .iter()
            .find_map(|e| e.fields.get(path).map(|f| f.kind))
    }

    /// "unknown model `x`; did you mean `y`?" with the accepted names.
    pub fn unknown_message(&self, name: &str) -> String {
        let all = self.names();
        match crate::manifest::diag::suggest(name, &all) {
            Some(best) => format!(
                "unknown model `{name}`; did you mean `{best}`? (`runner models` lists all {})",
                self.entries.len()
            ),
            None => format!(
                "unknown model `{name}`: not one of the {} in the catalogue (`runner models` lists them), \
                 nor described in the manifest's [models.\"{name}\"]",
                self.entries.len()
            ),
        }
    }

    /// The README model table (`runner models --markdown`).
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| model | aliases | duration | aspect_ratio | resolution | images | page |\n|---|---|---|---|---|---|---|\n",
        );
        for e in self.entries() {
            let aliases: Vec<String> = e.aliases.iter().map(|a| format!("`{a}`")).collect();
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} |\n",
                e.model,
                if aliases.is_empty() {
                    "—".into()
                } else {
                    aliases.join(", ")
                },
                e.describe_field("duration"),
                e.describe_field("aspect_ratio"),
                e.resolution_summary(),
                e.images_summary(),
                e.page,
            ));
        }
        out
    }
}

impl Entry {
    /// `resolution` or `metadata.resolution` values, with the path when it is metadata.
    pub fn resolution_summary(&self) -> String {
        for path in [
            "resolution",
            "metadata.resolution",
            "quality",
            "mode",
            "size",
        ] {
            if self.fields.contains_key(path) {
                let values = self.describe_field(path);
                return if path == "resolution" {
                    values
                } else {
                    format!("`{path}`: {values}")
                };
            }
        }
        "—".into()
    }

    /// `up to 3 in image_urls`, `none`.
    pub fn images_summary(&self) -> String {
        match (self.fields.get(&self.images), self.max_images()) {
            (None, _) => "none".into(),
            (Some(_), Some(max)) => format!("up to {max} in `{}`", self.images),
            (Some(_), None) => format!("`{}`", self.images),
        }
    }

    /// Every rule of the entry, one line each, for `runner models NAME`.
    pub fn describe(&self) -> String {
        let mut out = format!("{}\n", self.model);
        let from = |s: Source| {
            if s == Source::Manifest {
                "  [from the manifest]"
            } else {
                ""
            }
        };
        if !self.aliases.is_empty() {
            out.push_str(&format!("  aliases: {}\n", self.aliases.join(", ")));
        }
        if !self.page.is_empty() {
            out.push_str(&format!("  page: {}\n", self.page));
        }
        out.push_str(&format!("  images: {}\n", self.images_summary()));
        out.push_str(&format!(
            "  client_business_id: {}\n",
            if self.client_business_id { "yes" } else { "no" }
        ));
        out.push_str("  fields:\n");
        for (path, f) in &self.fields {
            let mut line = format!("    {path}: {}", f.kind.name());
            line.push_str(&format!("; {}", self.describe_field(path)));
            if let Some(d) = &f.default {
                line.push_str(&format!("; default {}", plain(d)));
            }
            if f.case_insensitive {
                line.push_str("; any case");
            }
            if !f.roles.is_empty() {
                line.push_str(&format!("; roles {}", f.roles.join(", ")));
            }
            if f.required {
                line.push_str("; required");
            }
            if let Some(note) = &f.note {
                line.push_str(&format!(" ({note})"));
            }
            out.push_str(&line);
            out.push_str(from(f.source));
            out.push('\n');
        }
        if !self.rules.is_empty() {
            out.push_str("  rules:\n");
            for r in &self.rules {
                let cond = |list: &[(String, Condition)], verb: &str| -> String {
                    list.iter()
                        .map(|(p, c)| match c {
                            Condition::OneOf(v) if verb == "is" => format!(
                                "{p} is {}",
                                v.iter().map(plain).collect::<Vec<_>>().join(" or ")
                            ),
                            Condition::Range { .. } if c_is_list(self, p) => {
                                format!("{p} has {} items", c.describe())
                            }
                            _ => format!("{p} {verb} {}", c.describe()),
                        })
                        .collect::<Vec<_>>()
                        .join(" and ")
                };
                let when = if r.when.is_empty() {
                    String::new()
                } else {
                    format!("when {}: ", cond(&r.when, "is"))
                };
                out.push_str(&format!(
                    "    {when}{} ({}){}\n",
                    cond(&r.require, "must be"),
                    r.message,
                    from(r.source)
                ));
            }
        }
        out
    }
}

fn check_path(path: &str) -> Result<(), CatalogueError> {
    let bare = path.strip_prefix("metadata.").unwrap_or(path);
    if bare.is_empty() || bare.contains('.') || COMMON_KEYS.contains(&path) {
        return Err(CatalogueError(format!(
            "field `{path}`: a field is a top-level name or `metadata.NAME` (not model, prompt or metadata)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    fn request(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn messages(model: &str, v: Value) -> Vec<String> {
        let catalogue = Catalogue::builtin();
        let Some(entry) = catalogue.entry(model) else {
            return vec![format!("no entry {model}")];
        };
        entry
            .check(&request(v))
            .into_iter()
            .map(|v| v.message)
            .collect()
    }

    /// A small catalogue in the documented format, to test the engine on its own.
    const TOY: &str = r#"
[models."toy"]
page = "toy.mdx"
aliases = ["toy_alias"]
client_business_id = true
fields.duration = { type = "integer", min = 2, max = 6, default = 4 }
fields.size = { type = "string", values = ["S", "L"], default = "S", case_insensitive = true }
fields.image_urls = { type = "string list", max = 2 }
fields.roles = { type = "object list", roles = ["first_frame"] }
fields.audio = { type = "bool" }
fields."metadata.seed" = { type = "integer", required = true }

[[models."toy".rules]]
when = { size = "L" }
require = { duration = [4], image_urls = { max = 1 } }
message = "L is 4 s with one image"

[[models."toy".rules]]
when = { audio = { present = true } }
require = { roles = { present = false } }
message = "audio and roles do not mix"
"#;

    fn toy() -> Catalogue {
        match Catalogue::parse(TOY) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn toy_messages(v: Value) -> Vec<String> {
        let c = toy();
        let Some(entry) = c.entry("toy") else {
            return Vec::new();
        };
        entry
            .check(&request(v))
            .into_iter()
            .map(|v| v.message)
            .collect()
    }

    #[test]
    fn the_shipped_catalogue_parses_and_names_resolve() {
        let c = Catalogue::builtin();
        assert!(c.entries().len() >= 30);
        assert_eq!(
            c.resolve("gemini_omni_flash").map(Model::as_str),
            Some("gemini-omni-flash")
        );
        for name in ["seedance-2", "seedance-2-5", "MiniMax-H3"] {
            assert!(
                c.entry(name).is_some_and(Entry::takes_client_business_id),
                "{name}"
            );
        }
        assert!(
            !c.entry("veo3.1-fast")
                .is_some_and(Entry::takes_client_business_id)
        );
        // A model that stores one accepts it in a request; others refuse it.
        assert!(messages("seedance-2", json!({"client_business_id": "order-7"})).is_empty());
        assert_eq!(
            messages("veo3.1-fast", json!({"client_business_id": "order-7"})).len(),
            1
        );
        for e in c.entries() {
            assert!(!e.page.is_empty(), "{} names its page", e.model);
        }
    }

    #[test]
    fn types_values_ranges_and_case() {
        let c = toy();
        assert_eq!(c.resolve("toy_alias").map(Model::as_str), Some("toy"));
        assert!(
            toy_messages(json!({"metadata": {"seed": 1}, "size": "l", "duration": 4})).is_empty()
        );
        assert_eq!(
            toy_messages(json!({"metadata": {"seed": 1}, "duration": 7})),
            ["toy accepts duration from 2 to 6, got 7"]
        );
        assert_eq!(
            toy_messages(json!({"metadata": {"seed": 1}, "size": "M"})),
            ["toy accepts size \"S\" or \"L\", got \"M\""]
        );
        assert_eq!(
            toy_messages(json!({"metadata": {"seed": "x"}, "audio": "yes"})),
            [
                "audio for toy must be true or false, got string \"yes\"",
                "metadata.seed for toy must be an integer, got string \"x\""
            ]
        );
        assert_eq!(
            toy_messages(json!({"metadata": {"seed": 1}, "image_urls": ["a", "b", "c"]})),
            ["toy accepts at most 2 image_urls, got 3"]
        );
        assert_eq!(
            toy_messages(
                json!({"metadata": {"seed": 1}, "roles": [{"url": "u", "role": "last_frame"}]})
            ),
            ["toy accepts roles items with role \"first_frame\" only, got \"last_frame\""]
        );
        assert_eq!(toy_messages(json!({})), ["toy requires `metadata.seed`"]);
    }

    #[test]
    fn unknown_fields_suggest_the_nearest() {
        assert_eq!(
            toy_messages(json!({"metadata": {"seed": 1, "sed": 2}, "sise": "S"})),
            [
                "unknown metadata key `sed` for toy; did you mean `seed`?",
                "unknown field `sise` for toy; did you mean `size`?"
            ]
        );
        assert_eq!(
            toy_messages(json!({"metadata": {"seed": 1}, "zzzzzz": 1})),
            ["toy takes no `zzzzzz` (its fields: audio, duration, image_urls, roles, size)"]
        );
    }

    #[test]
    fn rules_see_defaults_and_presence() {
        // size L (any case), duration defaults to 4: fine with one image.
        assert!(
            toy_messages(json!({"metadata": {"seed": 1}, "size": "L", "image_urls": ["a"]}))
                .is_empty()
        );
        assert_eq!(
            toy_messages(
                json!({"metadata": {"seed": 1}, "size": "L", "duration": 5, "image_urls": ["a", "b"]})
            ),
            [
                "toy: L is 4 s with one image (duration must be 4, got 5)",
                "toy: L is 4 s with one image (image_urls count must be at most 1, got 2)"
            ]
        );
        assert_eq!(
            toy_messages(json!({"metadata": {"seed": 1}, "audio": false, "roles": []})),
            ["toy: audio and roles do not mix (roles must be not set, got [])"]
        );
    }

    #[test]
    fn bad_catalogues_are_refused_with_the_model_named() {
        let bad = [
            (
                "[models.x]\nfields.duration = { type = \"int\" }",
                "unknown variant",
            ),
            (
                "[models.x]\nfields.duration = { type = \"integer\", default = 4, colour = 1 }",
                "colour",
            ),
            (
                "[models.x]\nfields.duration = { type = \"integer\", default = 4 }\n[[models.x.rules]]\nwhen = { mode = \"a\" }\nrequire = { duration = [4] }\nmessage = \"m\"",
                "model `x`: rule \"m\" names `mode`",
            ),
            (
                "[models.x]\nfields.size = { type = \"string\" }",
                "model `x`: give `duration`",
            ),
            (
                "[models.x]\nfields.\"metadata.\" = { type = \"string\" }",
                "field `metadata.`",
            ),
        ];
        for (text, expect) in bad {
            match Catalogue::parse(text) {
                Ok(_) => panic!("accepted {text}"),
                Err(e) => assert!(e.to_string().contains(expect), "{text}: {e}"),
            }
        }
    }

    #[test]
    fn overrides_amend_or_add() {
        let Ok(toml::Value::Table(models)) = toml::from_str::<toml::Value>(
            r#"
"veo3.1-fast" = { fields = { duration = { type = "integer", values = [8, 10], default = 8 } } }
"my-model" = { page = "in house", fields = { duration = { type = "integer", values = [5], default = 5 } } }
"#,
        ) else {
            return;
        };
        let (c, errors) = Catalogue::builtin().with_overrides(&models);
        assert!(errors.is_empty(), "{errors:?}");
        let veo = c.entry("veo3.1-fast");
        assert!(veo.is_some_and(|e| e.from_manifest));
        assert_eq!(
            veo.and_then(|e| e.field("duration")).map(|f| f.source),
            Some(Source::Manifest)
        );
        assert_eq!(
            veo.and_then(|e| e.field("aspect_ratio")).map(|f| f.source),
            Some(Source::Catalogue),
            "the other fields stay"
        );
        assert!(c.entry("my-model").is_some());
        assert!(Catalogue::builtin().entry("my-model").is_none());
    }

    #[test]
    fn spec_rules_for_veo_and_gemini() {
        // gemini: 4 s at 1080p 16:9 with 3 images; 1080p portrait refused; 8 s refused.
        let three = json!(["a", "b", "c"]);
        assert!(messages("gemini-omni-flash", json!({"duration": 4, "resolution": "1080P", "aspect_ratio": "16:9", "image_urls": three})).is_empty());
        assert_eq!(
            messages(
                "gemini-omni-flash",
                json!({"resolution": "1080p", "aspect_ratio": "9:16"})
            ),
            [
                "gemini-omni-flash: 1080p is landscape only (aspect_ratio must be \"16:9\", got \"9:16\")"
            ]
        );
        assert_eq!(
            messages("gemini-omni-flash", json!({"duration": 8})),
            ["gemini-omni-flash accepts duration 4, 6 or 10, got 8"]
        );
        // veo: reference with 3 on fast and lite, never on quality; frame takes 2; gif at 720p only.
        for model in ["veo3.1-fast", "veo3.1-lite"] {
            assert!(
                messages(
                    model,
                    json!({"image_urls": three, "metadata": {"generation_type": "reference"}})
                )
                .is_empty()
            );
            assert!(
                messages(model, json!({"image_urls": three})).is_empty(),
                "the count decides"
            );
            assert!(messages(model, json!({"metadata": {"resolution": "4k"}})).is_empty());
        }
        assert_eq!(
            messages(
                "veo3.1-fast",
                json!({"image_urls": three, "metadata": {"generation_type": "frame"}})
            ),
            [
                "veo3.1-fast: frame mode takes 2 images (start frame, end frame) (image_urls count must be at most 2, got 3)"
            ]
        );
        assert_eq!(
            messages(
                "veo3.1-quality",
                json!({"metadata": {"generation_type": "reference"}})
            ),
            [
                "veo3.1-quality accepts metadata.generation_type \"frame\" only, got \"reference\" (veo3.1-quality has no reference mode)"
            ]
        );
        assert_eq!(
            messages("veo3.1-quality", json!({"image_urls": three})).len(),
            1
        );
        assert_eq!(
            messages(
                "veo3.1-fast",
                json!({"metadata": {"enable_gif": true, "resolution": "1080p"}})
            ),
            [
                "veo3.1-fast: GIF output is not available at 1080p or 4k (metadata.resolution must be \"720p\", got \"1080p\")"
            ]
        );
        assert!(messages("veo3.1-fast", json!({"metadata": {"enable_gif": true}})).is_empty());
        assert_eq!(
            messages("veo3.1-fast", json!({"image_urls": ["a", "b", "c", "d"]})),
            ["veo3.1-fast accepts at most 3 image_urls, got 4"]
        );
    }

    #[test]
    fn unknown_model_suggests() {
        let c = Catalogue::builtin();
        assert!(
            c.unknown_message("veo3.1-fats")
                .contains("did you mean `veo3.1-fast`?")
        );
        assert!(
            c.unknown_message("qqqqqqq")
                .contains("[models.\"qqqqqqq\"]")
        );
    }
}
