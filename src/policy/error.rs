//! Configuration errors that point at a file, a line and a column, and say what to write.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration problem. Displayed as `file:line:column: message` (or `file: message` when no
/// position applies); `message` says what is wrong and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column (in characters) of the offending key or value.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// 1-based (line, column) of a byte offset; the column counts characters. Offsets past the end
/// or inside a character are clamped to something printable rather than failing.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// One file being read: turns spans into positions.
pub(crate) struct Doc<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Doc<'_> {
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.to_path_buf(),
            position: Some(line_col(self.text, span.start)),
            message: message.into(),
        }
    }

    pub fn whole(&self, message: impl Into<String>) -> ConfigError {
        ConfigError { file: self.path.to_path_buf(), position: None, message: message.into() }
    }

    /// A TOML syntax or schema error. Serde's messages already list the accepted keys and
    /// values; multi-line parser messages are joined so the error stays on one line.
    pub fn toml(&self, e: &toml::de::Error) -> ConfigError {
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        match e.span() {
            Some(span) => self.at(span, message),
            None => self.whole(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 4), (1, 5));
        assert_eq!(line_col(t, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_col(t, 9), (2, 4));
        // Inside 'é' (byte 8) clamps back to its start.
        assert_eq!(line_col(t, 8), (2, 2));
        assert_eq!(line_col(t, 1000), (3, 1));
    }

    #[test]
    fn display_with_and_without_position() {
        let e = ConfigError { file: "/etc/x.toml".into(), position: Some((3, 7)), message: "bad".into() };
        assert_eq!(e.to_string(), "/etc/x.toml:3:7: bad");
        let e = ConfigError { file: "/etc/x.toml".into(), position: None, message: "bad".into() };
        assert_eq!(e.to_string(), "/etc/x.toml: bad");
    }
}
