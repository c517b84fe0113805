//! Framing of command lines (RFC 5321 §2.3.8, §4.5.3.1.4).
//!
//! Commands end with CRLF. A bare LF is accepted as a command terminator (many hand-typed and
//! scripted clients send it, and a command line carries no message content, so it cannot smuggle
//! anything); the CR before it, if any, is not part of the returned line. Inside DATA the rules are
//! strict: see [`crate::data`].

/// The result of looking for one command line at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFrame {
    /// A complete line: `buf[..len]` is the line without its terminator; `consumed` bytes
    /// (line plus CRLF or LF) should be removed from the buffer.
    Line { len: usize, consumed: usize },
    /// No line terminator yet and the buffer is still within the limit: read more.
    NeedMore,
    /// The line (with its terminator) exceeds `max_len` octets. If the terminator was found,
    /// `consumed` covers the whole line and the caller resumes normally; if not
    /// (`consumed == buf.len()`), the caller must discard input with [`skip_line`] until the
    /// end of the line arrives.
    TooLong { consumed: usize, terminated: bool },
}

/// Looks for one command line at the start of `buf`. `max_len` counts the line including its
/// CRLF, as RFC 5321 §4.5.3.1.4 does (512 by default).
pub fn frame_line(buf: &[u8], max_len: usize) -> LineFrame {
    let _ = (buf, max_len);
    todo!("smtp-codec helper")
}

/// While discarding the rest of an over-long line: returns `Some(consumed)` up to and including
/// the first LF in `buf`, or `None` if there is none (discard all of `buf` and call again).
pub fn skip_line(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n').map(|i| i + 1)
}
