//! Checking of BDAT chunks (RFC 3030 §2). BDAT carries the message as is (no dot-stuffing);
//! the session counts chunk sizes. This decoder applies the same line-end rules as DATA across
//! chunk boundaries: CRLF only, no bare CR or LF, no NUL, lines within the limit.

use crate::data::{BodyFlaws, find_special};

/// Incremental BDAT body checker for one message (all its chunks).
#[derive(Debug, Clone)]
pub struct BdatDecoder {
    max_line_len: usize,
    /// The last byte seen was a CR whose LF may start the next chunk.
    pending_cr: bool,
    /// Octets of the current line seen so far (a pending CR included).
    line_len: usize,
    flaws: BodyFlaws,
}

impl BdatDecoder {
    pub fn new(max_line_len: usize) -> Self {
        BdatDecoder {
            max_line_len,
            pending_cr: false,
            line_len: 0,
            flaws: BodyFlaws::default(),
        }
    }

    /// Appends chunk bytes to `out`, recording flaws. A CR at the end of one chunk followed by
    /// LF at the start of the next is a proper CRLF.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(input);
        let mut i = 0;
        if self.pending_cr {
            match input.first() {
                None => return,
                Some(b'\n') => {
                    self.end_line();
                    i = 1;
                }
                Some(_) => self.flaws.bare_cr = true,
            }
            self.pending_cr = false;
        }
        while let Some(rest) = input.get(i..).filter(|r| !r.is_empty()) {
            let Some(k) = find_special(rest) else {
                self.add_len(rest.len());
                return;
            };
            self.add_len(k + 1);
            match (rest.get(k), rest.get(k + 1)) {
                (Some(b'\r'), Some(b'\n')) => {
                    self.end_line();
                    i += k + 2;
                }
                (Some(b'\r'), None) => {
                    self.pending_cr = true;
                    return;
                }
                (Some(b'\r'), Some(_)) => {
                    self.flaws.bare_cr = true;
                    i += k + 1;
                }
                (Some(b'\n'), _) => {
                    self.flaws.bare_lf = true;
                    i += k + 1;
                }
                _ => {
                    self.flaws.nul = true;
                    i += k + 1;
                }
            }
        }
    }

    /// Called after the LAST chunk: a trailing lone CR becomes a bare-CR flaw.
    pub fn finish(&mut self) {
        if self.pending_cr {
            self.flaws.bare_cr = true;
            self.pending_cr = false;
        }
    }

    pub fn flaws(&self) -> BodyFlaws {
        self.flaws
    }

    /// Counts `n` more octets of the current line (RFC 5321 §4.5.3.1.6 limit).
    fn add_len(&mut self, n: usize) {
        self.line_len = self.line_len.saturating_add(n);
        if self.line_len > self.max_line_len {
            self.flaws.long_line = true;
        }
    }

    /// The LF of a CRLF was seen (and not counted yet).
    fn end_line(&mut self) {
        self.add_len(1);
        self.line_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(feeds: &[&[u8]], max: usize) -> (Vec<u8>, BodyFlaws) {
        let mut decoder = BdatDecoder::new(max);
        let mut out = Vec::new();
        for feed in feeds {
            decoder.decode(feed, &mut out);
        }
        decoder.finish();
        (out, decoder.flaws())
    }

    fn flaws(bare_cr: bool, bare_lf: bool, nul: bool, long_line: bool) -> BodyFlaws {
        BodyFlaws {
            bare_cr,
            bare_lf,
            nul,
            long_line,
        }
    }

    #[test]
    fn bdat_chunks_are_copied_as_is_with_flaws_recorded() {
        let cases: &[(&[&[u8]], BodyFlaws)] = &[
            (
                &[b"Subj: x\r\n\r\nhi\r\n"],
                flaws(false, false, false, false),
            ),
            (&[b"a\r\n.\r\n"], flaws(false, false, false, false)),
            (&[b""], flaws(false, false, false, false)),
            (&[b"a\r", b"\nb\r\n"], flaws(false, false, false, false)),
            (&[b"a\r", b"", b"\nb"], flaws(false, false, false, false)),
            (&[b"a\nb\r\n"], flaws(false, true, false, false)),
            (&[b"a\r\n", b"\n"], flaws(false, true, false, false)),
            (&[b"a\rb\r\n"], flaws(true, false, false, false)),
            (&[b"a\r", b"b"], flaws(true, false, false, false)),
            (&[b"a\r"], flaws(true, false, false, false)),
            (&[b"a\r\r\n"], flaws(true, false, false, false)),
            (&[b"a\0\r\n"], flaws(false, false, true, false)),
            (&[b"12345678\r\n"], flaws(false, false, false, false)),
            (&[b"123456789\r\n"], flaws(false, false, false, true)),
            (
                &[b"12345", b"6789\r", b"\n"],
                flaws(false, false, false, true),
            ),
            (&[b"1234567890123"], flaws(false, false, false, true)),
        ];
        for (feeds, want) in cases {
            let (out, got) = run(feeds, 10);
            assert_eq!(out, feeds.concat(), "{feeds:?}");
            assert_eq!(got, *want, "{feeds:?}");
        }
    }

    #[test]
    fn bdat_checking_is_the_same_however_the_chunks_are_split() {
        let input: &[u8] = b"Subject: x\r\n\r\nline\r\n12345678901234\r\nbare\nlf\r\nbare\rcr\r\n\
                             nul\0\r\n\r\r\n.\r\nend\r";
        let whole = run(&[input], 10);
        assert_eq!(whole.1, flaws(true, true, true, true));
        for size in 1..=input.len() {
            let feeds: Vec<&[u8]> = input.chunks(size).collect();
            assert_eq!(run(&feeds, 10), whole, "chunk size {size}");
        }
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(run(&[a, b], 10), whole, "split at {at}");
        }
        // Each flaw alone, at every split.
        for single in [
            &b"ab\r\ncd\ref\r\n"[..],
            b"ab\r\ncd\nef\r\n",
            b"ab\0\r\n",
            b"a\r\n123456789\r\n",
        ] {
            let whole = run(&[single], 10);
            for at in 0..=single.len() {
                let (a, b) = single.split_at(at);
                assert_eq!(run(&[a, b], 10), whole, "split {single:?} at {at}");
            }
        }
    }
}
