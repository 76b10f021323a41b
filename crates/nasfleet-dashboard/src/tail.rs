//! An incremental reader of an append-only JSON-lines file, keyed by byte
//! offset: each [`Tail::read_new`] reads only the bytes appended since the
//! last call, so following a run of 20,000 children costs the new lines,
//! not the whole file, and nothing of a line is kept once it is handed on.
//!
//! Tolerant by design, because the writer may crash mid-line and a resumed
//! controller cuts its files back to the checkpointed length:
//! - a last line without its newline is not read yet (the writer may still
//!   be writing it); its length is reported ([`Tail::partial_bytes`]) so a
//!   page can say "the last line is incomplete";
//! - a complete line that is not JSON is counted ([`Tail::bad_lines`]) and
//!   skipped;
//! - a file shorter than what was read means it was cut back:
//!   [`TailRead::Reset`] tells the caller to drop what it derived and read
//!   again from the start.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// At most this many bytes are read per call, so one refresh of a huge file
/// never holds more than this in memory; the rest comes on the next calls
/// (a longer single line is skipped as bad).
const MAX_CHUNK: u64 = 4 << 20;

/// What one [`Tail::read_new`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailRead {
    /// Lines (possibly none) were handed on; `more` when the file has more
    /// bytes than one call reads.
    Lines {
        /// Complete lines handed on.
        count: usize,
        /// Bytes remain past [`MAX_CHUNK`]: call again.
        more: bool,
    },
    /// The file is missing (not written yet).
    Missing,
    /// The file is shorter than what was read before (cut back on resume, or
    /// replaced): the tail restarted at offset 0; drop derived state.
    Reset,
}

/// The read position in one JSON-lines file.
#[derive(Debug, Clone)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: u64,
    bad_lines: u64,
    first_bad: Option<String>,
}

impl Tail {
    /// A tail at the start of `path`.
    pub fn new(path: PathBuf) -> Self {
        Tail { path, offset: 0, partial: 0, bad_lines: 0, first_bad: None }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of complete lines read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Length of an unterminated last line (0 when the file ends with a newline).
    pub fn partial_bytes(&self) -> u64 {
        self.partial
    }

    /// Complete lines that were not valid JSON for the caller.
    pub fn bad_lines(&self) -> u64 {
        self.bad_lines
    }

    /// Where the first bad line was and why (for a notice).
    pub fn first_bad(&self) -> Option<&str> {
        self.first_bad.as_deref()
    }

    /// Counts a line the caller could not use (`why` of the first is kept).
    pub fn bad_line(&mut self, at: u64, why: &str) {
        self.bad_lines += 1;
        if self.first_bad.is_none() {
            self.first_bad = Some(format!("byte {at}: {why}"));
        }
    }

    /// Reads the lines appended since the last call, handing each complete
    /// line (without its newline) and its starting byte offset to `line`.
    pub fn read_new(&mut self, mut line: impl FnMut(&mut Self, &[u8], u64)) -> io::Result<TailRead> {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let was_read = self.offset > 0;
                self.reset();
                return Ok(if was_read { TailRead::Reset } else { TailRead::Missing });
            }
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        if len < self.offset {
            self.reset();
            return Ok(TailRead::Reset);
        }
        let want = (len - self.offset).min(MAX_CHUNK);
        if want == 0 {
            self.partial = 0;
            return Ok(TailRead::Lines { count: 0, more: false });
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::with_capacity(want as usize);
        f.by_ref().take(want).read_to_end(&mut buf)?;
        let mut start = 0usize;
        let mut count = 0usize;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            let at = self.offset + start as u64;
            let text = &buf[start..end];
            // A blank line (e.g. "\n\n") is not a record; skip it silently.
            if !text.iter().all(u8::is_ascii_whitespace) {
                line(self, text, at);
                count += 1;
            }
            start = end + 1;
        }
        let more = self.offset + want < len;
        self.offset += start as u64;
        if start == 0 && want == MAX_CHUNK {
            // One line longer than a whole chunk is not a record we can use:
            // skip past it rather than stall on it forever.
            let at = self.offset;
            self.bad_line(at, "a line longer than 4 MiB");
            self.offset += want;
        }
        // What is left without a newline: an unfinished (or crashed) write.
        self.partial = if more { 0 } else { len - self.offset };
        Ok(TailRead::Lines { count, more })
    }

    fn reset(&mut self) {
        self.offset = 0;
        self.partial = 0;
        self.bad_lines = 0;
        self.first_bad = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(t: &mut Tail) -> (TailRead, Vec<(String, u64)>) {
        let mut v = Vec::new();
        let r = t.read_new(|_, l, at| v.push((String::from_utf8_lossy(l).into_owned(), at))).unwrap();
        (r, v)
    }

    #[test]
    fn reads_only_new_complete_lines_and_reports_a_partial_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.jsonl");
        let mut t = Tail::new(p.clone());
        assert_eq!(collect(&mut t).0, TailRead::Missing);
        std::fs::write(&p, "{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        let (_, v) = collect(&mut t);
        assert_eq!(v, vec![("{\"a\":1}".into(), 0), ("{\"a\":2}".into(), 8)]);
        assert_eq!(t.partial_bytes(), 5);
        // The writer finishes the line: it is read then, once.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"3}\n").unwrap();
        let (_, v) = collect(&mut t);
        assert_eq!(v, vec![("{\"a\":3}".into(), 16)]);
        assert_eq!(t.partial_bytes(), 0);
        assert!(collect(&mut t).1.is_empty());
    }

    #[test]
    fn a_file_cut_back_restarts_the_tail() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.jsonl");
        std::fs::write(&p, "1\n2\n3\n").unwrap();
        let mut t = Tail::new(p.clone());
        assert_eq!(collect(&mut t).1.len(), 3);
        std::fs::write(&p, "1\n").unwrap();
        assert_eq!(collect(&mut t).0, TailRead::Reset);
        assert_eq!(collect(&mut t).1, vec![("1".into(), 0)]);
    }
}
