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
    state: State,
    /// Octets of the current line written to the output so far (after unstuffing; a CR waiting
    /// for its LF included).
    line_len: usize,
    flaws: BodyFlaws,
}

/// Where the decoder stands between two input bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line: the first line, or right after a CRLF.
    LineStart,
    /// A `.` at the start of a line was read (and not written).
    Dot,
    /// `.` CR at the start of a line were read (and not written): an LF now ends the body.
    DotCr,
    /// Inside a line; the last byte written was not a CR.
    Mid,
    /// Inside a line; the last byte written was a CR whose LF may follow.
    MidCr,
    /// The terminating `CRLF . CRLF` was read.
    Done,
}

impl DataDecoder {
    /// `max_line_len` counts a line with its CRLF (1000 by default).
    pub fn new(max_line_len: usize) -> Self {
        DataDecoder {
            max_line_len,
            state: State::LineStart,
            line_len: 0,
            flaws: BodyFlaws::default(),
        }
    }

    /// Decodes from `input`, appending message bytes (unstuffed, CRLF kept; the CRLF before
    /// the final dot is part of the message) to `out`. Returns how many input bytes were used
    /// and whether the end was reached. With `NeedMore`, all of `input` was used.
    ///
    /// Once the end was reached, further calls use nothing and return `Done`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, DataStatus) {
        if self.state == State::Done {
            return (0, DataStatus::Done);
        }
        out.reserve(input.len());
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                State::LineStart => {
                    if b == b'.' {
                        self.state = State::Dot;
                        i += 1;
                    } else {
                        self.state = State::Mid;
                    }
                }
                State::Dot => {
                    if b == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                    } else {
                        // RFC 5321 §4.5.2: a line starting with a dot has that dot removed.
                        self.state = State::Mid;
                    }
                }
                State::DotCr => {
                    if b == b'\n' {
                        // RFC 5321 §4.1.1.4: CRLF "." CRLF ends the mail data.
                        self.state = State::Done;
                        return (i + 1, DataStatus::Done);
                    }
                    // `.` CR then something else: the dot was stuffing, the CR is bare.
                    out.push(b'\r');
                    self.flaws.bare_cr = true;
                    self.add_len(1);
                    self.state = State::Mid;
                }
                State::MidCr => {
                    if b == b'\n' {
                        out.push(b'\n');
                        self.end_line();
                        i += 1;
                    } else {
                        self.flaws.bare_cr = true;
                        self.state = State::Mid;
                    }
                }
                State::Mid => {
                    let rest = input.get(i..).unwrap_or_default();
                    let Some(k) = find_special(rest) else {
                        out.extend_from_slice(rest);
                        self.add_len(rest.len());
                        return (input.len(), DataStatus::NeedMore);
                    };
                    match (rest.get(k), rest.get(k + 1)) {
                        (Some(b'\r'), Some(b'\n')) => {
                            // The common case: the run and its CRLF in one copy.
                            out.extend_from_slice(rest.get(..k + 2).unwrap_or_default());
                            self.add_len(k + 1);
                            self.end_line();
                            i += k + 2;
                        }
                        (Some(&special), _) => {
                            out.extend_from_slice(rest.get(..k + 1).unwrap_or_default());
                            self.add_len(k + 1);
                            match special {
                                b'\r' => self.state = State::MidCr,
                                b'\n' => self.flaws.bare_lf = true,
                                _ => self.flaws.nul = true,
                            }
                            i += k + 1;
                        }
                        // `find_special` returns an index inside `rest`.
                        (None, _) => return (input.len(), DataStatus::NeedMore),
                    }
                }
                State::Done => return (i, DataStatus::Done),
            }
        }
        (input.len(), DataStatus::NeedMore)
    }

    /// Flaws seen so far.
    pub fn flaws(&self) -> BodyFlaws {
        self.flaws
    }

    /// Counts `n` more octets of the current line.
    fn add_len(&mut self, n: usize) {
        self.line_len = self.line_len.saturating_add(n);
        if self.line_len > self.max_line_len {
            // RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF (the
            // stuffing dot not counted).
            self.flaws.long_line = true;
        }
    }

    /// The LF of a CRLF was written (and not counted yet).
    fn end_line(&mut self) {
        self.add_len(1);
        self.line_len = 0;
        self.state = State::LineStart;
    }
}

/// The index of the first CR, LF or NUL in `hay`.
///
/// Scans eight bytes at a time (SWAR): a byte equal to `x` becomes a zero byte of `word ^ x`,
/// and `(v - 0x01..01) & !v & 0x80..80` flags zero bytes. Flags above a real zero can be
/// spurious (the borrow), flags below cannot, so the lowest flag, read little-endian, is exact.
pub(crate) fn find_special(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const CR: u64 = LO * b'\r' as u64;
    const LF: u64 = LO * b'\n' as u64;
    #[inline(always)]
    fn zero_bytes(v: u64) -> u64 {
        v.wrapping_sub(LO) & !v & HI
    }
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(bytes);
        let m = zero_bytes(w ^ CR) | zero_bytes(w ^ LF) | zero_bytes(w);
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\r' || b == b'\n' || b == 0)
        .map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: BodyFlaws = BodyFlaws {
        bare_cr: false,
        bare_lf: false,
        nul: false,
        long_line: false,
    };
    const BARE_CR: BodyFlaws = BodyFlaws {
        bare_cr: true,
        ..NONE
    };
    const BARE_LF: BodyFlaws = BodyFlaws {
        bare_lf: true,
        ..NONE
    };
    const NUL: BodyFlaws = BodyFlaws { nul: true, ..NONE };
    const LONG: BodyFlaws = BodyFlaws {
        long_line: true,
        ..NONE
    };

    /// Everything the decoder reports for one input.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        out: Vec<u8>,
        consumed: usize,
        done: bool,
        flaws: BodyFlaws,
    }

    /// Feeds `input` in pieces as a session would: stops at `Done`.
    fn run(feeds: &[&[u8]], max: usize) -> Outcome {
        let mut decoder = DataDecoder::new(max);
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut done = false;
        for feed in feeds {
            let (used, status) = decoder.decode(feed, &mut out);
            consumed += used;
            if status == DataStatus::Done {
                done = true;
                break;
            }
            assert_eq!(used, feed.len(), "NeedMore must use all input");
        }
        Outcome {
            out,
            consumed,
            done,
            flaws: decoder.flaws(),
        }
    }

    /// (input, message, consumed, done, flaws) with a line limit of 10.
    type Case = (&'static [u8], &'static [u8], usize, bool, BodyFlaws);
    const CASES: &[Case] = &[
        (b".\r\n", b"", 3, true, NONE),
        (b"a\r\n.\r\n", b"a\r\n", 6, true, NONE),
        (b"\r\n.\r\n", b"\r\n", 5, true, NONE),
        (b"a\r\n.\r\nQUIT\r\n", b"a\r\n", 6, true, NONE),
        (b"..a\r\n.\r\n", b".a\r\n", 8, true, NONE),
        (b".a\r\n.\r\n", b"a\r\n", 7, true, NONE),
        (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", 10, true, NONE),
        (b"a\r\n...\r\n.\r\n", b"a\r\n..\r\n", 11, true, NONE),
        (b". \r\n.\r\n", b" \r\n", 7, true, NONE),
        (b"a.\r\n.\r\n", b"a.\r\n", 7, true, NONE),
        (b"abc", b"abc", 3, false, NONE),
        (b"a\r\n.", b"a\r\n", 4, false, NONE),
        (b"a\r\n.\r", b"a\r\n", 5, false, NONE),
        (b"a\r", b"a\r", 2, false, NONE),
        // SMTP smuggling: none of these end the message.
        (b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n", 10, true, BARE_LF),
        (b"a\r.\rb\r\n.\r\n", b"a\r.\rb\r\n", 10, true, BARE_CR),
        (b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n", 11, true, BARE_LF),
        (b"a\r\n.\nb\r\n.\r\n", b"a\r\n\nb\r\n", 11, true, BARE_LF),
        (b"a\r\n.\rb\r\n.\r\n", b"a\r\n\rb\r\n", 11, true, BARE_CR),
        (b"a\r.\r\nb\r\n.\r\n", b"a\r.\r\nb\r\n", 11, true, BARE_CR),
        (b"a\r\r\n.\r\n", b"a\r\r\n", 7, true, BARE_CR),
        (b"a\r\n.\r\r\n.\r\n", b"a\r\n\r\r\n", 10, true, BARE_CR),
        (b"a\n\r\n.\r\n", b"a\n\r\n", 7, true, BARE_LF),
        (b"\n.\n", b"\n.\n", 3, false, BARE_LF),
        (b"\r.\r", b"\r.\r", 3, false, BARE_CR),
        (b"\n.\r\n", b"\n.\r\n", 4, false, BARE_LF),
        (b"a\r\n.\n", b"a\r\n\n", 5, false, BARE_LF),
        (b"a\0b\r\n.\r\n", b"a\0b\r\n", 8, true, NUL),
        (b"\0\r\n.\r\n", b"\0\r\n", 6, true, NUL),
        // Line limit 10 with CRLF; the stuffing dot does not count.
        (b"12345678\r\n.\r\n", b"12345678\r\n", 13, true, NONE),
        (b"123456789\r\n.\r\n", b"123456789\r\n", 14, true, LONG),
        (b"..2345678\r\n.\r\n", b".2345678\r\n", 14, true, NONE),
        (
            b"12345678\r\n12345678\r\n.\r\n",
            b"12345678\r\n12345678\r\n",
            23,
            true,
            NONE,
        ),
        (b"1234567890123", b"1234567890123", 13, false, LONG),
    ];

    #[test]
    fn data_decoding_follows_the_table() {
        for (input, message, consumed, done, flaws) in CASES {
            let want = Outcome {
                out: message.to_vec(),
                consumed: *consumed,
                done: *done,
                flaws: *flaws,
            };
            assert_eq!(
                run(&[input], 10),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn bare_lf_dot_lf_does_not_end_data() {
        let outcome = run(&[b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@x>\n"], 1000);
        assert!(!outcome.done);
        assert!(outcome.flaws.bare_lf && outcome.flaws.any());
    }

    #[test]
    fn bare_cr_dot_cr_does_not_end_data() {
        let outcome = run(&[b"hi\r.\rMAIL FROM:<evil@x>\r"], 1000);
        assert!(!outcome.done);
        assert!(outcome.flaws.bare_cr);
    }

    #[test]
    fn lf_dot_crlf_and_crlf_dot_lf_do_not_end_data() {
        assert!(!run(&[b"hi\n.\r\nMAIL FROM:<evil@x>\r\n"], 1000).done);
        assert!(!run(&[b"hi\r\n.\nMAIL FROM:<evil@x>\r\n"], 1000).done);
    }

    #[test]
    fn clean_message_has_no_flaws() {
        let outcome = run(&[b"Subject: x\r\n\r\nbody\r\n.\r\n"], 1000);
        assert!(outcome.done);
        assert!(!outcome.flaws.any());
        assert_eq!(outcome.out, b"Subject: x\r\n\r\nbody\r\n");
    }

    #[test]
    fn decode_after_done_uses_nothing() {
        let mut decoder = DataDecoder::new(1000);
        let mut out = Vec::new();
        assert_eq!(
            decoder.decode(b".\r\nQUIT\r\n", &mut out),
            (3, DataStatus::Done)
        );
        assert_eq!(decoder.decode(b"QUIT\r\n", &mut out), (0, DataStatus::Done));
        assert!(out.is_empty());
    }

    /// A long input touching every state, with stuffed dots, smuggling attempts, a NUL, a long
    /// line and pipelined bytes after the end.
    fn mixed_input() -> Vec<u8> {
        b"..a\r\nb\n.\nc\r.\rd\n.\r\ne\r\n.\nf\r\n.\rg\r\n..\r\n.x\r\n\
          h\0i\r\n12345678901234\r\n\r\r\n.\r\r\n\r\n.\r\nQUIT\r\n"
            .to_vec()
    }

    fn assert_split_invariant(input: &[u8], max: usize) {
        let whole = run(&[input], max);
        for size in 1..=input.len() {
            let feeds: Vec<&[u8]> = input.chunks(size).collect();
            assert_eq!(run(&feeds, max), whole, "chunk size {size} of {input:?}");
        }
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(run(&[a, b], max), whole, "split at {at} of {input:?}");
            assert_eq!(
                run(&[a, b"", b], max),
                whole,
                "empty feed at {at} of {input:?}"
            );
        }
    }

    #[test]
    fn data_decoding_is_the_same_however_the_input_is_split() {
        let mixed = mixed_input();
        let whole = run(&[&mixed], 10);
        assert!(whole.done && whole.flaws.bare_cr && whole.flaws.bare_lf && whole.flaws.nul);
        assert!(whole.flaws.long_line);
        assert_eq!(&mixed[whole.consumed..], b"QUIT\r\n");
        assert_split_invariant(&mixed, 10);
        for (input, ..) in CASES {
            assert_split_invariant(input, 10);
        }
    }

    /// A plain reference implementation over the whole input: find the end, split lines at
    /// CRLF, unstuff, look for flaws byte by byte.
    fn reference(input: &[u8], max: usize) -> Option<Outcome> {
        let (body, consumed) = if input.starts_with(b".\r\n") {
            (&input[..0], 3)
        } else {
            let p = input.windows(5).position(|w| w == b"\r\n.\r\n")?;
            (&input[..p + 2], p + 5)
        };
        let mut out = Vec::new();
        let mut flaws = BodyFlaws::default();
        for line in body.split_inclusive(|&b| b == b'\n') {
            // `split_inclusive` on LF; glue back lines that did not end with CRLF.
            out.extend_from_slice(line);
        }
        let mut unstuffed = Vec::new();
        let mut start = 0;
        for i in 0..out.len() {
            if out[i] == b'\n' && i > 0 && out[i - 1] == b'\r' || i + 1 == out.len() {
                let line = &out[start..=i];
                let line = line.strip_prefix(b".").unwrap_or(line);
                if line.len() > max {
                    flaws.long_line = true;
                }
                unstuffed.extend_from_slice(line);
                start = i + 1;
            }
        }
        for (i, &b) in body.iter().enumerate() {
            match b {
                b'\r' if body.get(i + 1) != Some(&b'\n') => flaws.bare_cr = true,
                b'\n' if i == 0 || body[i - 1] != b'\r' => flaws.bare_lf = true,
                0 => flaws.nul = true,
                _ => {}
            }
        }
        Some(Outcome {
            out: unstuffed,
            consumed,
            done: true,
            flaws,
        })
    }

    #[test]
    fn data_decoding_matches_a_reference_on_generated_inputs() {
        let tokens: [&[u8]; 9] = [
            b"\r\n", b".", b"a", b"b", b"\r", b"\n", b"\0", b".\r\n", b"\r\n.",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut ended = 0;
        for _ in 0..20_000 {
            let len = next() % 12;
            let input: Vec<u8> = (0..len)
                .flat_map(|_| {
                    tokens[(next() % tokens.len() as u64) as usize]
                        .iter()
                        .copied()
                })
                .collect();
            let whole = run(&[&input], 4);
            if let Some(want) = reference(&input, 4) {
                assert_eq!(whole, want, "{input:?}");
                ended += 1;
            } else {
                assert!(!whole.done && whole.consumed == input.len(), "{input:?}");
            }
            let at = (next() % (input.len() as u64 + 1)) as usize;
            let (a, b) = input.split_at(at);
            assert_eq!(run(&[a, b], 4), whole, "{input:?} split at {at}");
        }
        assert!(
            ended > 3000,
            "the generator should end many messages: {ended}"
        );
    }

    #[test]
    fn find_special_finds_the_first_cr_lf_or_nul_at_every_offset() {
        for len in 0..40 {
            for pos in 0..=len {
                for special in [b'\r', b'\n', 0] {
                    let mut hay: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    hay.extend_from_slice(&[0x0c, 0x0e, 0x8d, 0xff]);
                    if pos < len {
                        hay[pos] = special;
                    }
                    let want = if pos < len { Some(pos) } else { None };
                    assert_eq!(find_special(&hay), want, "len {len} pos {pos}");
                }
            }
        }
    }
}
