//! Dot-stuffing of message bodies for DATA (RFC 5321 §4.5.2), and the 8-bit check for servers
//! without 8BITMIME (RFC 6152 §3).

use crate::data::find_special;

/// Incremental dot-stuffing encoder for DATA (RFC 5321 §4.5.2, §4.1.1.4). The output is the
/// same whatever the split of the input.
///
/// - A line starting with `.` gets an extra `.`.
/// - Line ends are passed through (the message is already CRLF from our store).
/// - [`DotStuffer::finish`] adds a CRLF when the message does not end with one (and is not
///   empty), then the terminator `.` CRLF.
///
/// A line is taken to start at the beginning of the message, after every LF and after a bare
/// CR, so a dot after a bare CR or LF is doubled as well. Our store holds CRLF-only messages,
/// but should a bare line end slip through, no receiver — strict or one that ends lines at a
/// bare CR or LF — can find the end of the data inside the message (SMTP smuggling): the body
/// never contains CR or LF followed by `.` and CR or LF.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    /// The next byte starts a line.
    line_start: bool,
    /// The last byte was a CR.
    last_cr: bool,
    /// The last two bytes were CR LF.
    ends_crlf: bool,
    /// No byte was seen yet.
    empty: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    pub fn new() -> Self {
        DotStuffer {
            line_start: true,
            last_cr: false,
            ends_crlf: false,
            empty: true,
        }
    }

    /// Appends the stuffed form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        let mut rest = input;
        while let Some(&first) = rest.first() {
            self.empty = false;
            if self.line_start && first == b'.' {
                // RFC 5321 §4.5.2: "If the first character is a period, insert an additional
                // period at the beginning of the line."
                out.push(b'.');
            }
            // The next CR or LF (a NUL, which `find_special` reports too, is an ordinary octet).
            let Some(k) = find_special(rest) else {
                out.extend_from_slice(rest);
                self.line_start = false;
                self.last_cr = false;
                self.ends_crlf = false;
                return;
            };
            let (run, tail) = rest.split_at_checked(k + 1).unwrap_or((rest, &[]));
            out.extend_from_slice(run);
            rest = tail;
            let special = run.last().copied().unwrap_or(0);
            // A CR or LF that is the first octet of its run follows the previous run's last octet.
            let after_cr = if k == 0 { self.last_cr } else { false };
            match special {
                b'\n' => {
                    self.ends_crlf = after_cr;
                    self.line_start = true;
                    self.last_cr = false;
                }
                b'\r' => {
                    // Whatever follows a CR starts a line, unless it is the LF (which is no dot).
                    self.ends_crlf = false;
                    self.line_start = true;
                    self.last_cr = true;
                }
                _ => {
                    self.ends_crlf = false;
                    self.line_start = false;
                    self.last_cr = false;
                }
            }
        }
    }

    /// Ends the message: a CRLF if the message does not end with one (an empty message needs
    /// none: its data is just the terminator), then `.` CRLF (RFC 5321 §4.1.1.4).
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.empty && !self.ends_crlf {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// True if any octet is at or above 0x80: such a body must not be sent to a server that did not
/// offer 8BITMIME (RFC 6152 §3); the relay converts it or returns it.
pub fn has_8bit(data: &[u8]) -> bool {
    !data.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataDecoder, DataStatus};

    fn stuff(feeds: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = DotStuffer::new();
        let mut out = Vec::new();
        for feed in feeds {
            stuffer.encode(feed, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    /// A plain reference: line by line, splitting after every LF and every bare CR.
    fn reference(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut line_start = true;
        for (i, &b) in message.iter().enumerate() {
            if line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            line_start = b == b'\n' || (b == b'\r' && message.get(i + 1) != Some(&b'\n'));
        }
        if !message.is_empty() && !message.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    const CASES: &[(&[u8], &[u8])] = &[
        (b"", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b"\r\n", b"\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"..\r\n", b"...\r\n.\r\n"),
        (b".a\r\n", b"..a\r\n.\r\n"),
        (b"a.\r\n", b"a.\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r\n.", b"a\r\n..\r\n.\r\n"),
        (b"a\r\n.b", b"a\r\n..b\r\n.\r\n"),
        (b"a\r\n\r\n.\r\n", b"a\r\n\r\n..\r\n.\r\n"),
        (b"a. b .c\r\n", b"a. b .c\r\n.\r\n"),
        // Bare line ends pass through; a dot after them is doubled too.
        (b"a\n.\n", b"a\n..\n\r\n.\r\n"),
        (b"a\r.\r", b"a\r..\r\r\n.\r\n"),
        (b"a\n.\r\n", b"a\n..\r\n.\r\n"),
        (b"a\r", b"a\r\r\n.\r\n"),
        (b"a\n", b"a\n\r\n.\r\n"),
        (b"\n", b"\n\r\n.\r\n"),
        (b"a\0.\r\n", b"a\0.\r\n.\r\n"),
        (b"\0\r\n.\r\n", b"\0\r\n..\r\n.\r\n"),
    ];

    #[test]
    fn dot_stuffing_follows_the_table() {
        for (input, want) in CASES {
            assert_eq!(
                String::from_utf8_lossy(&stuff(&[input])),
                String::from_utf8_lossy(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(reference(input), *want);
        }
    }

    fn mixed_input() -> Vec<u8> {
        b".start\r\nline\r\n.\r\n..\r\n\r\n.x\r\nbare\n.lf\r.cr\r\n\0.\r\n\
          12345678901234567890.\r\n.end"
            .to_vec()
    }

    #[test]
    fn dot_stuffing_is_the_same_however_the_input_is_split() {
        let mut inputs: Vec<Vec<u8>> = CASES.iter().map(|(i, _)| i.to_vec()).collect();
        inputs.push(mixed_input());
        for input in inputs {
            let whole = stuff(&[&input]);
            assert_eq!(whole, reference(&input));
            for at in 0..=input.len() {
                let (a, b) = input.split_at(at);
                assert_eq!(stuff(&[a, b]), whole, "split {input:?} at {at}");
                assert_eq!(stuff(&[a, b"", b]), whole, "empty feed at {at}");
            }
            for size in 1..=input.len() {
                let feeds: Vec<&[u8]> = input.chunks(size).collect();
                assert_eq!(stuff(&feeds), whole, "{input:?} in chunks of {size}");
            }
        }
    }

    /// Decodes stuffed output with our strict server decoder.
    fn unstuff(wire: &[u8]) -> (Vec<u8>, usize, bool) {
        let mut decoder = DataDecoder::new(usize::MAX);
        let mut out = Vec::new();
        let (used, status) = decoder.decode(wire, &mut out);
        (out, used, status == DataStatus::Done)
    }

    #[test]
    fn stuffed_messages_decode_back_and_end_only_at_the_terminator() {
        let tokens: [&[u8]; 8] = [b"\r\n", b".", b"a", b"\r", b"\n", b"\0", b".\r\n", b"\r\n."];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = next() % 12;
            let message: Vec<u8> = (0..len)
                .flat_map(|_| {
                    tokens[(next() % tokens.len() as u64) as usize]
                        .iter()
                        .copied()
                })
                .collect();
            let wire = stuff(&[&message]);
            assert_eq!(wire, reference(&message), "{message:?}");
            let at = (next() % (message.len() as u64 + 1)) as usize;
            let (a, b) = message.split_at(at);
            assert_eq!(stuff(&[a, b]), wire, "{message:?} split at {at}");
            // Only the terminator ends the data, for the strict decoder ...
            let (decoded, used, done) = unstuff(&wire);
            assert!(done && used == wire.len(), "{message:?}");
            // ... and for a lenient receiver: no CR or LF, dot, CR or LF in the body.
            let body = &wire[..wire.len() - 3];
            assert!(!body.starts_with(b".\r") && !body.starts_with(b".\n"));
            for w in body.windows(3) {
                let eol = |b: u8| b == b'\r' || b == b'\n';
                assert!(!(eol(w[0]) && w[1] == b'.' && eol(w[2])), "{message:?}");
            }
            // A clean message (CRLF line ends only) decodes to itself, plus a CRLF when it
            // lacked a final one.
            let clean = !message.iter().enumerate().any(|(i, &b)| {
                (b == b'\r' && message.get(i + 1) != Some(&b'\n'))
                    || (b == b'\n' && (i == 0 || message[i - 1] != b'\r'))
            });
            if clean {
                let mut want = message.clone();
                if !want.is_empty() && !want.ends_with(b"\r\n") {
                    want.extend_from_slice(b"\r\n");
                }
                assert_eq!(decoded, want, "{message:?}");
            }
        }
    }

    #[test]
    fn has_8bit_finds_any_octet_at_or_above_0x80() {
        assert!(!has_8bit(b""));
        assert!(!has_8bit(b"plain ASCII\r\n\x7f\0"));
        assert!(has_8bit(b"\x80"));
        assert!(has_8bit("Grüße".as_bytes()));
        let mut long = vec![b'a'; 1000];
        assert!(!has_8bit(&long));
        long[999] = 0xff;
        assert!(has_8bit(&long));
    }
}
