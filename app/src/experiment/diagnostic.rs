//! Errors in experiment files, positioned for the user: file, line, column, key,
//! what was expected and what was found, and a did-you-mean where one fits.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;
use toml::de::{DeTable, DeValue};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Dotted key path, e.g. `strategy[0].params.block_size` (empty for the file).
    pub key: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The offending line of the file, for display.
    pub source_line: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        writeln!(f, "{}", self.message)?;
        if !self.source_line.is_empty() {
            let gutter = self.line.to_string();
            let (shown, caret) = window(&self.source_line, self.column.saturating_sub(1));
            writeln!(f, "  {gutter} | {shown}")?;
            let pad = " ".repeat(gutter.len());
            let col = " ".repeat(caret);
            writeln!(f, "  {pad} | {col}^")?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "  help: {help}")?;
        }
        Ok(())
    }
}

/// Characters of a quoted line shown around the column (a generated file can
/// have lines of megabytes).
const SHOWN: usize = 120;

/// The part of `line` to show around character `column`, and where the caret
/// goes in it.
fn window(line: &str, column: usize) -> (String, usize) {
    let len = line.chars().count();
    if len <= SHOWN {
        return (line.to_string(), column);
    }
    let start = column.saturating_sub(SHOWN / 2).min(len - SHOWN);
    let mut shown: String = line.chars().skip(start).take(SHOWN).collect();
    let mut caret = column - start;
    if start > 0 {
        shown.insert(0, '…');
        caret += 1;
    }
    if start + SHOWN < len {
        shown.push('…');
    }
    (shown, caret)
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub fn key(name: &str) -> Seg {
    Seg::Key(name.to_string())
}

pub fn path_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Positions diagnostics within one file's text.
pub struct Locator<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    pub doc: Option<toml::Spanned<DeTable<'a>>>,
    /// Byte offset of each line's start, found once: a file with many errors must
    /// not be scanned from the top for each.
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        let doc = DeTable::parse(text).ok();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file,
            text,
            doc,
            line_starts,
        }
    }

    /// A diagnostic at a byte offset.
    pub fn at(
        &self,
        offset: usize,
        key: String,
        message: String,
        help: Option<String>,
    ) -> Diagnostic {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..offset].chars().count() + 1;
        let source_line = self.text[line_start..]
            .split('\n')
            .next()
            .unwrap_or("")
            .trim_end_matches('\r')
            .to_string();
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            key,
            message,
            help,
            source_line,
        }
    }

    /// A diagnostic at the value of `path`, or at its key when `at_key`, falling back
    /// to the nearest enclosing table that exists in the file.
    pub fn at_path(
        &self,
        path: &[Seg],
        at_key: bool,
        message: String,
        help: Option<String>,
    ) -> Diagnostic {
        let offset = self.span_of(path, at_key).map_or(0, |s| s.start);
        self.at(offset, path_string(path), message, help)
    }

    pub fn span_of(&self, path: &[Seg], at_key: bool) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut best = None;
        let mut table: Option<&DeTable> = Some(doc.get_ref());
        let mut value: Option<&toml::Spanned<DeValue>> = None;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            match seg {
                Seg::Key(k) => {
                    // A key missing from the file: point at its nearest ancestor.
                    let Some((found_key, found)) = table.and_then(|t| t.get_key_value(k.as_str()))
                    else {
                        return best;
                    };
                    best = Some(if last && at_key {
                        found_key.span()
                    } else {
                        found.span()
                    });
                    if !last && !found.get_ref().is_table() {
                        // A key inside a non-table cannot be found; stay at the value.
                        if let DeValue::Array(_) = found.get_ref() {
                        } else {
                            return best;
                        }
                    }
                    value = Some(found);
                    table = found.get_ref().as_table();
                }
                Seg::Index(n) => {
                    let Some(item) = value.and_then(|v| v.get_ref().get(*n)) else {
                        return best;
                    };
                    best = Some(item.span());
                    value = Some(item);
                    table = item.get_ref().as_table();
                }
            }
        }
        // Tables declared with a `[header]` span their header line; inline ones their
        // braces. Either way the start is a sensible place to point at.
        best
    }
}

/// Words quoted in backticks after "expected" in a serde message.
pub fn expected_words(message: &str) -> Vec<String> {
    let Some(at) = message.find("expected") else {
        return Vec::new();
    };
    message[at..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Best effort: the first backtick-quoted word of a message.
pub fn first_quoted(message: &str) -> Option<String> {
    message.split('`').nth(1).map(str::to_string)
}

pub fn did_you_mean(word: &str, candidates: &[String]) -> Option<String> {
    plugin_api::closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}
