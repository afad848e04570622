//! Prompt templates: `"A {style} shot of {subject}"`, filled from a job's own fields and `vars`.
//!
//! `{name}` is a placeholder; `{{` and `}}` are literal braces. Only prompts written
//! in the TOML manifest (`[defaults]`, `[[job]]`) are templates: a prompt read from a
//! CSV cell is taken as it is.

use super::diag::quoted;

/// Job keys a template may not name: the prompt itself, and values that are not text.
pub const NOT_PLACEHOLDERS: [&str; 4] = ["prompt", "image_urls", "metadata", "vars"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Var(String),
}

/// A parsed prompt template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    pieces: Vec<Piece>,
}

impl PromptTemplate {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<PromptTemplate, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|&(_, n)| n == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().is_some_and(|&(_, n)| n == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(format!(
                        "unmatched `}}` in prompt {} (write `}}}}` for a literal brace)",
                        quoted(text)
                    ));
                }
                '{' => {
                    let rest = text.get(i + 1..).unwrap_or_default();
                    let Some(end) = rest
                        .find(['{', '}'])
                        .filter(|&e| rest.as_bytes().get(e) == Some(&b'}'))
                    else {
                        return Err(format!(
                            "unclosed `{{` in prompt {} (write `{{{{` for a literal brace)",
                            quoted(text)
                        ));
                    };
                    let name = rest.get(..end).unwrap_or_default().trim();
                    if name.is_empty() {
                        return Err(format!(
                            "empty placeholder `{{}}` in prompt {} (write `{{{{}}}}` for literal braces)",
                            quoted(text)
                        ));
                    }
                    if NOT_PLACEHOLDERS.contains(&name) {
                        return Err(format!(
                            "`{{{name}}}` cannot be used in a prompt template (placeholders name `vars`, CSV columns or the job's `id`, `model`, `aspect_ratio`, `duration`, `resolution`)"
                        ));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Var(name.to_owned()));
                    // Skip the name and the closing brace.
                    let skip_to = i + 1 + end;
                    while chars.next_if(|&(j, _)| j <= skip_to).is_some() {}
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(PromptTemplate { pieces })
    }

    /// Whether `text` needs [`PromptTemplate::parse`]: it has a brace.
    pub fn is_template(text: &str) -> bool {
        text.contains(['{', '}'])
    }

    /// The placeholder names, in order of first use, each once.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for piece in &self.pieces {
            if let Piece::Var(name) = piece
                && !out.contains(&name.as_str())
            {
                out.push(name);
            }
        }
        out
    }

    /// The text with every placeholder replaced by `value(name)`; the names `value`
    /// has no answer for are returned instead (each once, in order).
    pub fn fill(&self, value: impl Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
        let mut out = String::new();
        let mut missing: Vec<String> = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Var(name) => match value(name) {
                    Some(v) => out.push_str(&v),
                    None if !missing.contains(name) => missing.push(name.clone()),
                    None => {}
                },
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(missing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(text: &str, vars: &[(&str, &str)]) -> Result<String, Vec<String>> {
        let template = PromptTemplate::parse(text).map_err(|e| vec![e])?;
        template.fill(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn placeholders_are_filled() {
        let vars = [("style", "noir"), ("subject", "a cat")];
        assert_eq!(
            fill("A {style} shot of {subject}", &vars),
            Ok("A noir shot of a cat".into())
        );
        assert_eq!(fill("{ style }{style}", &vars), Ok("noirnoir".into()));
        assert_eq!(fill("plain", &vars), Ok("plain".into()));
        assert_eq!(fill("é {style} ü", &vars), Ok("é noir ü".into()));
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(fill("{{x}} and }}{{", &[]), Ok("{x} and }{".into()));
        assert_eq!(fill("{{{style}}}", &[("style", "s")]), Ok("{s}".into()));
    }

    #[test]
    fn missing_names_are_listed_once() {
        assert_eq!(
            fill("{a} {b} {a}", &[("b", "x")]),
            Err(vec!["a".to_owned()])
        );
        let t = PromptTemplate::parse("{b} {a} {b}").unwrap();
        assert_eq!(t.names(), ["b", "a"]);
    }

    #[test]
    fn syntax_errors() {
        let err = |t: &str| PromptTemplate::parse(t).unwrap_err();
        assert!(err("a {b").contains("unclosed `{`"), "{}", err("a {b"));
        assert!(err("a {b {c}").contains("unclosed `{`"));
        assert!(err("a } b").contains("unmatched `}`"));
        assert!(err("a {} b").contains("empty placeholder"));
        assert!(err("{prompt}").contains("`{prompt}` cannot be used"));
        assert!(PromptTemplate::is_template("a {b}"));
        assert!(!PromptTemplate::is_template("a b"));
    }
}
