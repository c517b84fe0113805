//! Checking of BDAT chunks (RFC 3030 §2). BDAT carries the message as is (no dot-stuffing);
//! the session counts chunk sizes. This decoder applies the same line-end rules as DATA across
//! chunk boundaries: CRLF only, no bare CR or LF, no NUL, lines within the limit.

use crate::data::BodyFlaws;

/// Incremental BDAT body checker for one message (all its chunks).
#[derive(Debug, Clone)]
pub struct BdatDecoder {
    max_line_len: usize,
    // implementation state (helper)
}

impl BdatDecoder {
    pub fn new(max_line_len: usize) -> Self {
        let _ = max_line_len;
        todo!("smtp-codec helper")
    }

    /// Appends chunk bytes to `out`, recording flaws. A CR at the end of one chunk followed by
    /// LF at the start of the next is a proper CRLF.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let _ = (input, out);
        todo!("smtp-codec helper")
    }

    /// Called after the LAST chunk: a trailing lone CR becomes a bare-CR flaw.
    pub fn finish(&mut self) {
        todo!("smtp-codec helper")
    }

    pub fn flaws(&self) -> BodyFlaws {
        todo!("smtp-codec helper")
    }
}
