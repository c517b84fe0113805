//! Strict decoding of the DATA body (RFC 5321 §4.1.1.4, §4.5.2).
//!
//! The body ends only at `CRLF . CRLF` (the first line may be `. CRLF` directly). A line that
//! starts with `.` has that dot removed (transparency). Line ends inside the body must be CRLF:
//! a bare CR or a bare LF never ends a line nor the body and is recorded as a flaw, and so is a
//! NUL or a line longer than the limit; the session refuses a flawed message once the real end
//! arrives. This closes SMTP smuggling (`LF . LF`, `CR . CR`, `LF . CRLF`, ... end nothing here).

/// Problems seen in a body. Any of them makes the session refuse the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodyFlaws {
    pub bare_cr: bool,
    pub bare_lf: bool,
    pub nul: bool,
    /// A line longer than the limit (RFC 5321 §4.5.3.1.6: 1000 octets with CRLF).
    pub long_line: bool,
}

impl BodyFlaws {
    pub fn any(&self) -> bool {
        self.bare_cr || self.bare_lf || self.nul || self.long_line
    }
}

/// Whether the terminating `CRLF.CRLF` has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStatus {
    NeedMore,
    /// The end was found; bytes after it in the input belong to the next command.
    Done,
}

/// Incremental DATA decoder. Feed it input in pieces of any size; the output is the same.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    max_line_len: usize,
    // implementation state (helper)
}

impl DataDecoder {
    /// `max_line_len` counts a line with its CRLF (1000 by default).
    pub fn new(max_line_len: usize) -> Self {
        let _ = max_line_len;
        todo!("smtp-codec helper")
    }

    /// Decodes from `input`, appending message bytes (unstuffed, CRLF kept; the CRLF before
    /// the final dot is part of the message) to `out`. Returns how many input bytes were used
    /// and whether the end was reached. With `NeedMore`, all of `input` was used.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, DataStatus) {
        let _ = (input, out);
        todo!("smtp-codec helper")
    }

    /// Flaws seen so far.
    pub fn flaws(&self) -> BodyFlaws {
        todo!("smtp-codec helper")
    }
}
