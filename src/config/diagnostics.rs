//! Config problems and where they are: [`ConfigError`], each
//! [`Diagnostic`] with its file, line and column, the [`SourceMap`] that
//! turns an offset in the merged document into such a position, and the
//! edit distance behind "did you mean".
//!
//! It knows nothing of the config's tables and reads no file.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::paths::PathsError;

/// A configuration error, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// One or more problems in the file, each with its line and column.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// The home directory, which `~` and the built-in targets need, is
    /// unknown.
    #[error("{path}: cannot resolve `~` and the built-in targets")]
    Home {
        /// The config file.
        path: PathBuf,
        /// Why the home directory is unknown.
        #[source]
        source: PathsError,
    },
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// One file read: its name in diagnostics, its text, its offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    /// The path, or the `oci://` reference of a remote fragment.
    pub name: PathBuf,
    /// The text.
    pub text: String,
    /// The first offset of this file in the [`SourceMap`].
    pub base: usize,
    /// The directory relative paths in it are resolved against (none for
    /// a remote fragment).
    pub dir: Option<PathBuf>,
    /// Whether it is a remote fragment.
    pub remote: bool,
    /// The offset (in `text`) where each line starts, for positions in
    /// O(log n) however many settings a big file has.
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// 1-based line and column (in characters) of `offset` in `text`.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line.saturating_sub(1).min(self.line_starts.len() - 1)];
        let column = self.text[start..offset].chars().count() + 1;
        (line.max(1), column)
    }
}

/// Every file read for one config, each with its own range of offsets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    end: usize,
    /// Some skills may come from elsewhere: a remote include (fetched or
    /// not) or a collection.
    pub(crate) open: bool,
}

impl SourceMap {
    /// One file at offset 0.
    pub fn single(path: &Path, text: &str) -> SourceMap {
        let mut map = SourceMap::default();
        map.add(
            path.to_path_buf(),
            text.to_string(),
            path.parent().map(Path::to_path_buf),
            false,
        );
        map
    }

    /// Adds a file; returns its index.
    pub fn add(
        &mut self,
        name: PathBuf,
        text: String,
        dir: Option<PathBuf>,
        remote: bool,
    ) -> usize {
        let base = self.end;
        // One spare offset, so that an empty file has a position too.
        self.end = base + text.len() + 1;
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.files.push(SourceFile {
            name,
            text,
            base,
            dir,
            remote,
            line_starts,
        });
        self.files.len() - 1
    }

    /// Every offset is below this.
    pub fn len(&self) -> usize {
        self.end
    }

    /// No file yet.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The files, in the order read.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// The file holding `offset`.
    pub fn file_at(&self, offset: usize) -> Option<&SourceFile> {
        let i = self.files.partition_point(|f| f.base <= offset);
        self.files.get(i.checked_sub(1)?)
    }

    /// The file, 1-based line and column of `offset`.
    pub fn locate(&self, offset: usize) -> Option<(&SourceFile, usize, usize)> {
        let file = self.file_at(offset)?;
        let (line, column) = file.line_column(offset - file.base);
        Some((file, line, column))
    }

    /// A problem at `offset`; at line 1, column 1 of `fallback` when no
    /// file holds it.
    pub fn diagnostic(&self, offset: usize, message: String, fallback: &Path) -> Diagnostic {
        let (path, line, column) = match self.locate(offset) {
            Some((file, line, column)) => (file.name.clone(), line, column),
            None => (fallback.to_path_buf(), 1, 1),
        };
        Diagnostic {
            path,
            line,
            column,
            message,
        }
    }

    /// `file:line:column` of `offset`.
    pub fn describe(&self, offset: usize) -> String {
        match self.locate(offset) {
            Some((f, line, column)) => format!("{}:{line}:{column}", f.name.display()),
            None => "?".to_string(),
        }
    }

    /// The text at `span`, on one line, shortened.
    pub(crate) fn snippet(&self, span: Range<usize>) -> String {
        let Some(f) = self.file_at(span.start) else {
            return String::new();
        };
        let start = span.start - f.base;
        let end = (span.end.saturating_sub(f.base)).min(f.text.len());
        let text = f.text.get(start..end).unwrap_or("");
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.chars().count() > 60 {
            let short: String = one_line.chars().take(59).collect();
            format!("{short}…")
        } else {
            one_line
        }
    }
}

/// Levenshtein distance, for "did you mean".
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
