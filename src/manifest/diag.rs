//! Diagnostics: every manifest problem with its file, line, column and job, collected rather than thrown.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One problem in a manifest, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    /// The job the problem belongs to, when it is a job-level problem.
    pub job: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(job) = &self.job {
            write!(f, "job `{job}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A manifest that cannot be run, with every problem found in it.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ManifestError {
    /// The manifest given on the command line (named in the summary line).
    pub manifest: PathBuf,
    /// Never empty; in file order (the manifest first, then its CSV sources).
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.diagnostics {
            writeln!(f, "{diagnostic}")?;
        }
        let count = self.diagnostics.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        write!(f, "{count} {noun} in {}", self.manifest.display())
    }
}

/// A place in an input file. Columns are only known for TOML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<Path>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Loc {
    /// The whole file, no line.
    pub fn file(file: &Arc<Path>) -> Loc {
        Loc {
            file: Arc::clone(file),
            line: None,
            column: None,
        }
    }

    pub fn line(file: &Arc<Path>, line: usize) -> Loc {
        Loc {
            file: Arc::clone(file),
            line: Some(line),
            column: None,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        Ok(())
    }
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub loc: Loc,
}

impl<T> Located<T> {
    pub fn new(value: T, loc: Loc) -> Self {
        Located { value, loc }
    }
}

/// The sink every stage writes its problems into, so that all of them are reported together.
#[derive(Debug, Default)]
pub struct Diags {
    list: Vec<Diagnostic>,
}

impl Diags {
    pub fn new() -> Self {
        Diags::default()
    }

    /// A problem with the manifest itself.
    pub fn error(&mut self, loc: &Loc, message: impl Into<String>) {
        self.push(loc, None, message.into());
    }

    /// A problem with one job.
    pub fn job_error(&mut self, loc: &Loc, job: &str, message: impl Into<String>) {
        self.push(loc, Some(job.to_owned()), message.into());
    }

    fn push(&mut self, loc: &Loc, job: Option<String>, message: String) {
        self.list.push(Diagnostic {
            file: loc.file.to_path_buf(),
            line: loc.line,
            column: loc.column,
            job,
            message,
        });
    }

    /// `other`'s problems after these (the parts of a manifest checked in parallel).
    pub fn append(&mut self, mut other: Diags) {
        self.list.append(&mut other.list);
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.list
    }

    /// The final list: the manifest's own problems first, then each other file's, by
    /// line; a problem that many jobs share (a bad value in `[defaults]`, say) is
    /// reported once with a count instead of once per job.
    pub fn finish(self, manifest: &Path) -> Vec<Diagnostic> {
        type Key = (PathBuf, Option<usize>, Option<usize>, String, bool);
        let mut merged: Vec<(Diagnostic, usize)> = Vec::new();
        let mut seen: HashMap<Key, usize> = HashMap::new();
        for diagnostic in self.list {
            let key = (
                diagnostic.file.clone(),
                diagnostic.line,
                diagnostic.column,
                diagnostic.message.clone(),
                diagnostic.job.is_some(),
            );
            match seen.get(&key).and_then(|&i| merged.get_mut(i)) {
                Some((first, count)) => {
                    if first.job != diagnostic.job {
                        *count += 1;
                    }
                }
                None => {
                    seen.insert(key, merged.len());
                    merged.push((diagnostic, 0));
                }
            }
        }
        let mut out: Vec<Diagnostic> = merged
            .into_iter()
            .map(|(mut diagnostic, more)| {
                if more > 0 {
                    let jobs = if more == 1 { "job" } else { "jobs" };
                    diagnostic.message = format!("{} (and {more} more {jobs})", diagnostic.message);
                }
                diagnostic
            })
            .collect();
        out.sort_by(|a, b| {
            (a.file != manifest, &a.file, a.line, a.column).cmp(&(
                b.file != manifest,
                &b.file,
                b.line,
                b.column,
            ))
        });
        out
    }
}

/// Byte offset → 1-based line and column, for one text.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// Line and column (in characters) of `offset` in `text`; an offset past the end
    /// or inside a character is clamped rather than trusted.
    pub fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = match text.get(start..offset) {
            Some(prefix) => prefix.chars().count(),
            None => offset.saturating_sub(start),
        };
        (line, column + 1)
    }
}

/// The known word closest to `word`, if any is close enough to be a plausible typo:
/// few edits for its length (transpositions count once), or a high Jaro-Winkler score.
pub fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let allowed_edits = (word.chars().count() / 3).max(1);
    known
        .iter()
        .filter_map(|&candidate| {
            let edits = strsim::damerau_levenshtein(&word, candidate);
            let score = strsim::jaro_winkler(&word, candidate);
            (edits <= allowed_edits || score >= 0.8).then_some((edits, score, candidate))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, candidate)| candidate)
}

/// "unknown key `x` in [defaults]; did you mean `y`?" (or the list of known keys).
pub fn unknown_key_message(what: &str, key: &str, place: &str, known: &[&str]) -> String {
    match suggest(key, known) {
        Some(best) => format!("unknown {what} `{key}`{place}; did you mean `{best}`?"),
        None => {
            let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            format!(
                "unknown {what} `{key}`{place}; expected one of {}",
                list.join(", ")
            )
        }
    }
}

/// A string shortened for a message, quoted.
pub fn quoted(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() > MAX {
        let short: String = text.chars().take(MAX).collect();
        format!("{:?}…", short)
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_counts_from_one_in_characters() {
        let text = "a = 1\nbé = 2\n";
        let index = LineIndex::new(text);
        assert_eq!(index.position(text, 0), (1, 1));
        assert_eq!(index.position(text, 6), (2, 1));
        // `=` after the two-byte é is the fourth character of line 2.
        assert_eq!(index.position(text, 10), (2, 4));
        // Out of range and mid-character offsets do not panic.
        assert_eq!(index.position(text, 1000).0, 3);
        let _ = index.position(text, 8);
    }

    #[test]
    fn suggestions() {
        let known = ["aspect_ratio", "duration", "model"];
        assert_eq!(suggest("aspect_ratoi", &known), Some("aspect_ratio"));
        assert_eq!(suggest("durration", &known), Some("duration"));
        assert_eq!(suggest("zzz", &known), None);
        assert_eq!(suggest("cvs", &["csv"]), Some("csv"));
        assert_eq!(suggest("x", &["id"]), None);
    }

    #[test]
    fn display_forms() {
        let d = Diagnostic {
            file: "campaign.toml".into(),
            line: Some(12),
            column: Some(5),
            job: None,
            message: "boom".into(),
        };
        assert_eq!(d.to_string(), "campaign.toml:12:5: boom");
        let j = Diagnostic {
            line: Some(3),
            column: None,
            job: Some("dolphins-9x16".into()),
            ..d.clone()
        };
        assert_eq!(j.to_string(), "campaign.toml:3: job `dolphins-9x16`: boom");
        let e = ManifestError {
            manifest: "campaign.toml".into(),
            diagnostics: vec![d, j],
        };
        assert_eq!(
            e.to_string(),
            "campaign.toml:12:5: boom\ncampaign.toml:3: job `dolphins-9x16`: boom\n2 problems in campaign.toml"
        );
    }
}
