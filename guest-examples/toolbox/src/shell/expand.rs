//! Word expansion, in POSIX order: tilde, parameters, command
//! substitution and arithmetic; then field splitting of unquoted results,
//! pathname expansion of unquoted pattern characters, quote removal.

use brush_parser::ast::Word;
use brush_parser::word::{
    self, Parameter, ParameterExpr, ParameterTestType, SpecialParameter, WordPiece,
};

use super::Shell;
use crate::io::{Io, Output};

/// A run of text inside a field; `quoted` text is never a pattern.
struct Piece {
    text: String,
    quoted: bool,
}

/// Builds the fields a word expands to.
#[derive(Default)]
struct Fields {
    done: Vec<Vec<Piece>>,
    current: Vec<Piece>,
    /// The current field exists even if empty (`""` makes an empty field).
    started: bool,
}

impl Fields {
    fn push(&mut self, text: &str, quoted: bool) {
        self.started = true;
        if !text.is_empty() {
            self.current.push(Piece {
                text: text.to_string(),
                quoted,
            });
        }
    }

    fn end_field(&mut self) {
        if self.started {
            self.done.push(std::mem::take(&mut self.current));
        }
        self.started = false;
    }

    /// Text from an unquoted expansion: split on IFS characters.
    fn push_split(&mut self, text: &str, ifs: &str) {
        let mut chunk = String::new();
        for c in text.chars() {
            if ifs.contains(c) {
                if !chunk.is_empty() {
                    self.push(&std::mem::take(&mut chunk), false);
                }
                self.end_field();
            } else {
                chunk.push(c);
            }
        }
        if !chunk.is_empty() {
            self.push(&chunk, false);
        }
    }

    fn finish(mut self) -> Vec<Vec<Piece>> {
        self.end_field();
        self.done
    }
}

/// How much of the expansion to do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Split fields and expand pathnames (command arguments, `for` lists).
    Fields,
    /// One string, no splitting, no globbing (assignments, redirections).
    Single,
    /// One string kept as a pattern: quoted characters escaped (`case`).
    Pattern,
}

type Result<T> = std::result::Result<T, String>;

/// The value of a parameter.
enum Value {
    Unset,
    One(String),
    /// `$@` and `$*`: the positional parameters, kept apart for `"$@"`.
    Many(Vec<String>, bool),
}

impl Value {
    fn joined(&self) -> Option<String> {
        match self {
            Value::Unset => None,
            Value::One(s) => Some(s.clone()),
            Value::Many(v, _) => Some(v.join(" ")),
        }
    }
}

fn escape_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Shell {
    /// Expands words into fields (argv, `for` lists).
    pub(super) fn expand_words(&mut self, words: &[Word], io: &Io) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for w in words {
            for field in self.expand(&w.value, io, Mode::Fields)? {
                let pattern: String = field
                    .iter()
                    .map(|p| {
                        if p.quoted {
                            escape_pattern(&p.text)
                        } else {
                            p.text.clone()
                        }
                    })
                    .collect();
                let plain: String = field.iter().map(|p| p.text.as_str()).collect();
                if crate::glob::has_magic(&pattern) {
                    let matches = crate::glob::expand(&pattern);
                    if !matches.is_empty() {
                        out.extend(matches);
                        continue;
                    }
                }
                out.push(plain);
            }
        }
        Ok(out)
    }

    /// Expands a word to one string (no field splitting or globbing).
    pub(super) fn expand_single(&mut self, w: &Word, io: &Io) -> Result<String> {
        self.expand_str(&w.value, io)
    }

    pub(super) fn expand_str(&mut self, text: &str, io: &Io) -> Result<String> {
        let fields = self.expand(text, io, Mode::Single)?;
        Ok(fields.iter().flatten().map(|p| p.text.as_str()).collect())
    }

    /// Expands a `case` pattern: quoted parts match literally.
    pub(super) fn expand_pattern(&mut self, w: &Word, io: &Io) -> Result<String> {
        let fields = self.expand(&w.value, io, Mode::Pattern)?;
        Ok(fields
            .iter()
            .flatten()
            .map(|p| {
                if p.quoted {
                    escape_pattern(&p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect())
    }

    pub(super) fn expand_heredoc(&mut self, text: &str, io: &Io) -> Result<String> {
        let pieces =
            word::parse_heredoc(text, &super::parser_options()).map_err(|e| e.to_string())?;
        let mut fields = Fields::default();
        for p in &pieces {
            self.expand_piece(&p.piece, true, Mode::Single, io, &mut fields)?;
        }
        Ok(fields
            .finish()
            .iter()
            .flatten()
            .map(|p| p.text.as_str())
            .collect())
    }

    fn expand(&mut self, text: &str, io: &Io, mode: Mode) -> Result<Vec<Vec<Piece>>> {
        let pieces = word::parse(text, &super::parser_options()).map_err(|e| format!("{e}"))?;
        let mut fields = Fields::default();
        for p in &pieces {
            self.expand_piece(&p.piece, false, mode, io, &mut fields)?;
        }
        let mut done = fields.finish();
        if mode != Mode::Fields && done.is_empty() {
            done.push(Vec::new());
        }
        Ok(done)
    }

    fn expand_piece(
        &mut self,
        piece: &WordPiece,
        quoted: bool,
        mode: Mode,
        io: &Io,
        out: &mut Fields,
    ) -> Result<()> {
        let split = mode == Mode::Fields && !quoted;
        let emit = |sh: &Shell, out: &mut Fields, text: &str| {
            if split {
                let ifs = sh.var("IFS").unwrap_or(" \t\n").to_string();
                out.push_split(text, &ifs);
            } else {
                out.push(text, quoted);
            }
        };
        match piece {
            WordPiece::Text(t) => out.push(t, quoted),
            WordPiece::SingleQuotedText(t) => out.push(t, true),
            WordPiece::AnsiCQuotedText(t) => out.push(&crate::applets::unescape_c(t).0, true),
            WordPiece::DoubleQuotedSequence(inner)
            | WordPiece::GettextDoubleQuotedSequence(inner) => {
                out.push("", true);
                for p in inner {
                    self.expand_piece(&p.piece, true, mode, io, out)?;
                }
            }
            WordPiece::TildeExpansion(expr) => match expr {
                word::TildeExpr::Home => {
                    let home = self.var("HOME").unwrap_or("/").to_string();
                    out.push(&home, true);
                }
                word::TildeExpr::WorkingDir => {
                    let pwd = self.var("PWD").unwrap_or("/").to_string();
                    out.push(&pwd, true);
                }
                _ => return Err("this form of ~ is not supported".into()),
            },
            WordPiece::EscapeSequence(seq) => {
                let mut chars = seq.chars();
                chars.next(); // the backslash
                match chars.next() {
                    None | Some('\n') => {}
                    Some(c) if quoted && !matches!(c, '$' | '`' | '"' | '\\') => {
                        out.push(&format!("\\{c}"), true)
                    }
                    Some(c) => out.push(&c.to_string(), true),
                }
            }
            WordPiece::ParameterExpansion(expr) => {
                let value = self.parameter(expr, io)?;
                match value {
                    Value::Many(items, false) if quoted && mode == Mode::Fields => {
                        // "$@": one field per positional parameter.
                        for (i, item) in items.iter().enumerate() {
                            if i > 0 {
                                out.end_field();
                            }
                            out.push(item, true);
                        }
                        if items.is_empty() {
                            out.started = !out.current.is_empty();
                        }
                    }
                    Value::Many(items, _) if split => {
                        for item in items {
                            emit(self, out, &item);
                            out.end_field();
                        }
                    }
                    other => {
                        if let Some(text) = other.joined() {
                            emit(self, out, &text);
                        }
                    }
                }
            }
            WordPiece::CommandSubstitution(src) | WordPiece::BackquotedCommandSubstitution(src) => {
                let text = self.substitute(src, io);
                emit(self, out, &text);
            }
            WordPiece::ArithmeticExpression(expr) => {
                let n = self.eval_arith(&expr.value, io)?;
                emit(self, out, &n.to_string());
            }
        }
        Ok(())
    }

    /// `$(...)`: runs the commands in a subshell and returns their output
    /// without trailing newlines.
    fn substitute(&mut self, source: &str, io: &Io) -> String {
        let (stdout, buffer) = Output::buffer();
        let sub_io = Io {
            stdin: io.stdin.clone(),
            stdout,
            stderr: io.stderr.clone(),
        };
        let status = self.subshell(|sh| sh.run_source(source, &sub_io));
        self.last_substitution_status = Some(status);
        let mut text = String::from_utf8_lossy(&buffer.borrow()).into_owned();
        while text.ends_with('\n') {
            text.pop();
        }
        text
    }

    fn parameter_value(&self, p: &Parameter) -> Result<Value> {
        Ok(match p {
            Parameter::Positional(0) => Value::One(self.arg0.clone()),
            Parameter::Positional(n) => match self.positional.get(*n as usize - 1) {
                Some(v) => Value::One(v.clone()),
                None => Value::Unset,
            },
            Parameter::Named(name) => match self.var(name) {
                Some(v) => Value::One(v.to_string()),
                None => Value::Unset,
            },
            Parameter::Special(s) => match s {
                SpecialParameter::AllPositionalParameters { concatenate } => {
                    Value::Many(self.positional.clone(), *concatenate)
                }
                SpecialParameter::PositionalParameterCount => {
                    Value::One(self.positional.len().to_string())
                }
                SpecialParameter::LastExitStatus => Value::One(self.last_status.to_string()),
                SpecialParameter::CurrentOptionFlags => {
                    let mut f = String::new();
                    if self.errexit {
                        f.push('e');
                    }
                    if self.xtrace {
                        f.push('x');
                    }
                    Value::One(f)
                }
                // Its pid in the pod's process table, as `ps` shows it.
                SpecialParameter::ProcessId => {
                    Value::One(crate::host::own_pid().unwrap_or(1).to_string())
                }
                SpecialParameter::LastBackgroundProcessId => Value::Unset,
                SpecialParameter::ShellName => Value::One(self.arg0.clone()),
            },
            Parameter::NamedWithIndex { .. } | Parameter::NamedWithAllIndices { .. } => {
                return Err("arrays are not supported".into());
            }
        })
    }

    fn parameter(&mut self, expr: &ParameterExpr, io: &Io) -> Result<Value> {
        use ParameterExpr as E;
        // Every supported form names one parameter: check and read it once.
        let (parameter, indirect) = match expr {
            E::Parameter {
                parameter,
                indirect,
            }
            | E::UseDefaultValues {
                parameter,
                indirect,
                ..
            }
            | E::AssignDefaultValues {
                parameter,
                indirect,
                ..
            }
            | E::IndicateErrorIfNullOrUnset {
                parameter,
                indirect,
                ..
            }
            | E::UseAlternativeValue {
                parameter,
                indirect,
                ..
            }
            | E::ParameterLength {
                parameter,
                indirect,
            }
            | E::RemoveSmallestSuffixPattern {
                parameter,
                indirect,
                ..
            }
            | E::RemoveLargestSuffixPattern {
                parameter,
                indirect,
                ..
            }
            | E::RemoveSmallestPrefixPattern {
                parameter,
                indirect,
                ..
            }
            | E::RemoveLargestPrefixPattern {
                parameter,
                indirect,
                ..
            }
            | E::Substring {
                parameter,
                indirect,
                ..
            }
            | E::ReplaceSubstring {
                parameter,
                indirect,
                ..
            } => (parameter, *indirect),
            _ => return Err("bad substitution: this ${...} form is not supported".into()),
        };
        if indirect {
            return Err("indirect expansion (${!x}) is not supported".into());
        }
        let value = self.parameter_value(parameter)?;
        let missing = |test: &ParameterTestType| match (&value, test) {
            (Value::Unset, _) => true,
            (Value::One(s), ParameterTestType::UnsetOrNull) => s.is_empty(),
            (Value::Many(items, _), ParameterTestType::UnsetOrNull) => items.is_empty(),
            _ => false,
        };
        Ok(match expr {
            E::UseDefaultValues {
                test_type,
                default_value,
                ..
            } if missing(test_type) => {
                Value::One(self.expand_str(default_value.as_deref().unwrap_or(""), io)?)
            }
            E::AssignDefaultValues {
                test_type,
                default_value,
                ..
            } if missing(test_type) => {
                let assigned = self.expand_str(default_value.as_deref().unwrap_or(""), io)?;
                let Parameter::Named(name) = parameter else {
                    return Err("can only assign to a named variable".into());
                };
                self.set_var(name, &assigned);
                Value::One(assigned)
            }
            E::IndicateErrorIfNullOrUnset {
                test_type,
                error_message,
                ..
            } if missing(test_type) => {
                let msg = match error_message {
                    Some(m) if !m.is_empty() => self.expand_str(m, io)?,
                    _ => "parameter null or not set".to_string(),
                };
                let name = param_name(parameter);
                crate::applets::complain(&mut io.stderr.clone(), "sh", &format!("{name}: {msg}"));
                // Fatal in a non-interactive shell.
                return Err(FATAL.to_string());
            }
            E::UseAlternativeValue {
                test_type,
                alternative_value,
                ..
            } => {
                if missing(test_type) {
                    Value::One(String::new())
                } else {
                    Value::One(self.expand_str(alternative_value.as_deref().unwrap_or(""), io)?)
                }
            }
            E::ParameterLength { .. } => {
                let n = match &value {
                    Value::Many(items, _) => items.len(),
                    other => other.joined().unwrap_or_default().chars().count(),
                };
                Value::One(n.to_string())
            }
            E::RemoveSmallestSuffixPattern { pattern, .. }
            | E::RemoveLargestSuffixPattern { pattern, .. }
            | E::RemoveSmallestPrefixPattern { pattern, .. }
            | E::RemoveLargestPrefixPattern { pattern, .. } => {
                let text = value.joined().unwrap_or_default();
                let pat = self.expand_pattern_str(pattern.as_deref().unwrap_or(""), io)?;
                let largest = matches!(
                    expr,
                    E::RemoveLargestSuffixPattern { .. } | E::RemoveLargestPrefixPattern { .. }
                );
                let suffix = matches!(
                    expr,
                    E::RemoveSmallestSuffixPattern { .. } | E::RemoveLargestSuffixPattern { .. }
                );
                Value::One(remove_affix(&text, &pat, suffix, largest))
            }
            E::Substring { offset, length, .. } => {
                let chars: Vec<char> = value.joined().unwrap_or_default().chars().collect();
                let len = chars.len() as i64;
                let mut start = self.eval_arith(&offset.value, io)?;
                if start < 0 {
                    start = (len + start).max(0);
                }
                let start = start.min(len);
                let end = match length {
                    Some(l) => {
                        let l = self.eval_arith(&l.value, io)?;
                        if l < 0 {
                            (len + l).max(start)
                        } else {
                            (start + l).min(len)
                        }
                    }
                    None => len,
                };
                Value::One(chars[start as usize..end as usize].iter().collect())
            }
            E::ReplaceSubstring {
                pattern,
                replacement,
                match_kind,
                ..
            } => {
                let text = value.joined().unwrap_or_default();
                let pat = self.expand_pattern_str(pattern, io)?;
                let rep = self.expand_str(replacement.as_deref().unwrap_or(""), io)?;
                Value::One(replace(&text, &pat, &rep, match_kind))
            }
            // `${x}`, and the defaulting forms when the value is there.
            _ => value,
        })
    }

    fn expand_pattern_str(&mut self, text: &str, io: &Io) -> Result<String> {
        let w = Word {
            value: text.to_string(),
            loc: None,
        };
        self.expand_pattern(&w, io)
    }
}

/// The marker error of `${x:?}`: the shell must exit.
pub(super) const FATAL: &str = "\u{0}fatal";

fn param_name(p: &Parameter) -> String {
    match p {
        Parameter::Positional(n) => n.to_string(),
        Parameter::Named(n) => n.clone(),
        _ => "parameter".into(),
    }
}

fn remove_affix(value: &str, pattern: &str, suffix: bool, largest: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let candidates: Vec<usize> = if suffix == largest {
        (0..=n).collect()
    } else {
        (0..=n).rev().collect()
    };
    for cut in candidates {
        let (keep, part) = if suffix {
            (
                chars[..cut].iter().collect::<String>(),
                chars[cut..].iter().collect::<String>(),
            )
        } else {
            (
                chars[cut..].iter().collect::<String>(),
                chars[..cut].iter().collect::<String>(),
            )
        };
        if crate::glob::matches(pattern, &part) {
            return keep;
        }
    }
    value.to_string()
}

/// `${x/p/r}` (first occurrence), `${x//p/r}` (all), `${x/#p/r}`, `${x/%p/r}`.
fn replace(value: &str, pattern: &str, rep: &str, kind: &word::SubstringMatchKind) -> String {
    let all = matches!(kind, word::SubstringMatchKind::Anywhere);
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let text = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    match kind {
        word::SubstringMatchKind::Prefix => {
            for end in (0..=n).rev() {
                if crate::glob::matches(pattern, &text(0, end)) {
                    return format!("{rep}{}", text(end, n));
                }
            }
            value.to_string()
        }
        word::SubstringMatchKind::Suffix => {
            for start in 0..=n {
                if crate::glob::matches(pattern, &text(start, n)) {
                    return format!("{}{rep}", text(0, start));
                }
            }
            value.to_string()
        }
        _ => {
            let mut out = String::new();
            let mut i = 0;
            let mut replaced = false;
            while i < n {
                if !replaced || all {
                    if let Some(end) = (i + 1..=n)
                        .rev()
                        .find(|&e| crate::glob::matches(pattern, &text(i, e)))
                    {
                        out.push_str(rep);
                        i = end;
                        replaced = true;
                        continue;
                    }
                }
                out.push(chars[i]);
                i += 1;
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affixes() {
        assert_eq!(remove_affix("file.tar.gz", ".*", true, false), "file.tar");
        assert_eq!(remove_affix("file.tar.gz", ".*", true, true), "file");
        assert_eq!(remove_affix("/a/b/c", "*/", false, true), "c");
        assert_eq!(remove_affix("/a/b/c", "*/", false, false), "a/b/c");
    }
}
