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
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.file.display(), self.message)
            }
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
        ConfigError {
            file: self.path.to_path_buf(),
            position: None,
            message: message.into(),
        }
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
        let message = explain(&message);
        match e.span() {
            Some(span) => self.at(span, message),
            None => self.whole(message),
        }
    }
}

/// Rewrites serde's wording where it speaks Rust rather than TOML, and suggests the nearest
/// accepted key for a misspelt one.
fn explain(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(field) = rest.strip_suffix('`')
    {
        let hint = match field {
            "role" => "; write role = \"home-agent\" or role = \"mobile-node\"",
            "identity" => "; add an [identity] section with id = \"...\"",
            "id" => "; write id = \"dn:...\" (or fqdn:, email:, ipv6:, ipv4:, keyid:)",
            _ => "",
        };
        return format!("missing key `{field}`{hint}");
    }
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once("`, expected ")
    {
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let best = candidates
            .iter()
            .map(|c| (edit_distance(field, c), *c))
            .min();
        let hint = match best {
            Some((d, c)) if d <= 2 => format!("; did you mean `{c}`?"),
            _ => String::new(),
        };
        return format!("unknown key `{field}`, expected {expected}{hint}");
    }
    let mut m = message.to_string();
    for (rust, toml) in [
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected u32", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
    ] {
        m = m.replace(rust, toml);
    }
    m
}

/// Levenshtein distance (short keys only: the inputs are configuration key names).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #[test]
    fn explanations() {
        assert_eq!(
            explain("unknown field `adress`, expected `address` or `users_dir`"),
            "unknown key `adress`, expected `address` or `users_dir`; did you mean `address`?"
        );
        assert_eq!(
            explain("unknown field `zzz`, expected `address` or `users_dir`"),
            "unknown key `zzz`, expected `address` or `users_dir`"
        );
        assert_eq!(explain("missing field `foo`"), "missing key `foo`");
        assert_eq!(
            explain("invalid type: string \"5\", expected u16"),
            "invalid type: string \"5\", expected an integer from 0 to 65535"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }

    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 4), (1, 5));
        assert_eq!(line_col(t, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_col(t, 9), (2, 3));
        // Inside 'é' (byte 8) clamps back to its start.
        assert_eq!(line_col(t, 8), (2, 2));
        assert_eq!(line_col(t, 1000), (3, 1));
    }

    #[test]
    fn display_with_and_without_position() {
        let e = ConfigError {
            file: "/etc/x.toml".into(),
            position: Some((3, 7)),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "/etc/x.toml:3:7: bad");
        let e = ConfigError {
            file: "/etc/x.toml".into(),
            position: None,
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "/etc/x.toml: bad");
    }
}
