//! Where a message body goes while it arrives: memory up to `spool_memory_limit`, then a file
//! in the spool directory. Past the message size limit nothing more is kept (the rest is only
//! read and discarded), so an oversized message costs neither memory nor disk.

use std::io::Write;
use std::path::PathBuf;
use store::NewBody;

/// Octets of the message start kept in memory for the header scan when the body is on disk.
const HEAD_KEEP: usize = 64 * 1024;
/// Staging buffer size when writing to the spool file.
const FILE_CHUNK: usize = 64 * 1024;

pub(crate) struct BodySink {
    /// Message bytes in memory; after a spill, the not yet written tail.
    pub buf: Vec<u8>,
    file: Option<(std::io::BufWriter<std::fs::File>, PathBuf)>,
    head: Vec<u8>,
    size: u64,
    max_size: u64,
    memory_limit: u64,
    spool_dir: PathBuf,
    pub oversized: bool,
    /// The content is flawed and the message will be refused: nothing more is kept.
    refused: bool,
    pub io_error: Option<std::io::Error>,
}

impl BodySink {
    pub fn new(max_size: u64, memory_limit: u64, spool_dir: PathBuf) -> BodySink {
        BodySink {
            buf: Vec::new(),
            file: None,
            head: Vec::new(),
            size: 0,
            max_size,
            memory_limit,
            spool_dir,
            oversized: false,
            refused: false,
            io_error: None,
        }
    }

    /// Octets received so far.
    pub fn size(&self) -> u64 {
        self.size
            + if self.file.is_some() {
                0
            } else {
                self.buf.len() as u64
            }
    }

    /// Call after appending to `buf`: enforces the size limit and spills to disk.
    pub fn settle(&mut self) {
        if self.oversized || self.io_error.is_some() {
            self.buf.clear();
            return;
        }
        let total = self.size + self.buf.len() as u64;
        if total > self.max_size {
            self.oversized = true;
            self.buf = Vec::new();
            self.discard_file();
            return;
        }
        if self.refused {
            // Only counted, for the size limit and the BDAT chunk replies.
            self.size = total;
            self.buf.clear();
            return;
        }
        if self.file.is_none()
            && self.buf.len() as u64 > self.memory_limit
            && let Err(e) = self.spill()
        {
            self.io_error = Some(e);
            self.buf = Vec::new();
            return;
        }
        if self.file.is_some()
            && self.buf.len() >= FILE_CHUNK
            && let Err(e) = self.flush_buf()
        {
            self.io_error = Some(e);
        }
    }

    /// The message will be refused for its content (bare CR or LF, NUL, a long line): keep
    /// nothing more of it in memory or on disk, so a message already refused costs neither,
    /// however long it goes on. Its size is still counted.
    pub fn discard(&mut self) {
        if self.refused {
            return;
        }
        self.refused = true;
        // Octets written to the file are in `size` already; the rest are in `buf`.
        self.size += self.buf.len() as u64;
        self.buf = Vec::new();
        self.discard_file();
    }

    fn spill(&mut self) -> std::io::Result<()> {
        let name = format!("{:016x}.part", rand_u64());
        let path = self.spool_dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        self.head = self.buf[..self.buf.len().min(HEAD_KEEP)].to_vec();
        self.file = Some((std::io::BufWriter::with_capacity(FILE_CHUNK, file), path));
        self.flush_buf()
    }

    fn flush_buf(&mut self) -> std::io::Result<()> {
        if let Some((w, _)) = &mut self.file {
            w.write_all(&self.buf)?;
            self.size += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn discard_file(&mut self) {
        if let Some((_, path)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The complete body and its head (the header section, for intake's scan).
    pub fn finish(mut self) -> std::io::Result<(Vec<u8>, NewBody)> {
        if let Some(e) = self.io_error.take() {
            self.discard_file();
            return Err(e);
        }
        if self.file.is_some() {
            self.flush_buf()?;
            let Some((w, path)) = self.file.take() else {
                unreachable!("checked above")
            };
            w.into_inner().map_err(|e| e.into_error())?;
            let head = std::mem::take(&mut self.head);
            return Ok((
                head,
                NewBody::File {
                    path,
                    size: self.size,
                },
            ));
        }
        let buf = std::mem::take(&mut self.buf);
        let end = header_end(&buf).unwrap_or(buf.len().min(HEAD_KEEP));
        Ok((buf[..end].to_vec(), NewBody::Memory(buf)))
    }
}

impl Drop for BodySink {
    fn drop(&mut self) {
        self.discard_file();
    }
}

/// The end of the header section: just after the first empty line, if any.
fn header_end(buf: &[u8]) -> Option<usize> {
    let window = &buf[..buf.len().min(HEAD_KEEP)];
    window
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_body_stays_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BodySink::new(1000, 100, dir.path().into());
        s.buf.extend_from_slice(b"Subject: x\r\n\r\nhello\r\n");
        s.settle();
        let (head, body) = s.finish().unwrap();
        assert_eq!(head, b"Subject: x\r\n\r\n");
        assert!(matches!(body, NewBody::Memory(v) if v.len() == 21));
    }

    #[test]
    fn a_body_over_the_memory_limit_goes_to_a_spool_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BodySink::new(10_000, 100, dir.path().into());
        for _ in 0..50 {
            s.buf.extend_from_slice(b"0123456789\r\n");
            s.settle();
        }
        let (head, body) = s.finish().unwrap();
        assert_eq!(&head[..12], b"0123456789\r\n");
        let NewBody::File { path, size } = body else {
            panic!("expected a file")
        };
        assert_eq!(size, 600);
        assert_eq!(std::fs::read(&path).unwrap().len(), 600);
    }

    #[test]
    fn a_discarded_body_keeps_nothing_but_is_still_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BodySink::new(1000, 100, dir.path().into());
        for _ in 0..20 {
            s.buf.extend_from_slice(b"0123456789\r\n");
            s.settle();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "spilled");
        s.discard();
        for _ in 0..20 {
            s.buf.extend_from_slice(b"0123456789\r\n");
            s.settle();
            assert!(s.buf.is_empty());
        }
        assert_eq!(s.size(), 480);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        for _ in 0..50 {
            s.buf.extend_from_slice(b"0123456789\r\n");
            s.settle();
        }
        assert!(s.oversized, "the size limit still applies");
    }

    #[test]
    fn an_oversized_body_is_dropped_from_memory_and_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BodySink::new(500, 100, dir.path().into());
        for _ in 0..100 {
            s.buf.extend_from_slice(b"0123456789\r\n");
            s.settle();
        }
        assert!(s.oversized);
        assert!(s.buf.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
