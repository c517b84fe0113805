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
    match buf.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let consumed = lf + 1;
            if consumed > max_len {
                return LineFrame::TooLong {
                    consumed,
                    terminated: true,
                };
            }
            // CRLF or bare LF; the CR, if any, is not part of the line.
            let len = match lf.checked_sub(1).and_then(|i| buf.get(i)) {
                Some(b'\r') => lf - 1,
                _ => lf,
            };
            LineFrame::Line { len, consumed }
        }
        None if buf.len() > max_len => LineFrame::TooLong {
            consumed: buf.len(),
            terminated: false,
        },
        None => LineFrame::NeedMore,
    }
}

/// While discarding the rest of an over-long line: returns `Some(consumed)` up to and including
/// the first LF in `buf`, or `None` if there is none (discard all of `buf` and call again).
pub fn skip_line(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n').map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_line_handles_terminators_and_limits() {
        use LineFrame::*;
        let long_ok = format!("{}\r\n", "a".repeat(8)); // 10 octets with CRLF
        let long_bad = format!("{}\r\n", "a".repeat(9)); // 11 octets
        let cases: &[(&[u8], LineFrame)] = &[
            (b"", NeedMore),
            (b"EHLO x", NeedMore),
            (b"EHLO x\r", NeedMore),
            (
                b"EHLO x\r\n",
                Line {
                    len: 6,
                    consumed: 8,
                },
            ),
            (
                b"EHLO x\n",
                Line {
                    len: 6,
                    consumed: 7,
                },
            ),
            (
                b"\r\n",
                Line {
                    len: 0,
                    consumed: 2,
                },
            ),
            (
                b"\n",
                Line {
                    len: 0,
                    consumed: 1,
                },
            ),
            (
                b"a\rb\n",
                Line {
                    len: 3,
                    consumed: 4,
                },
            ),
            (
                b"a\r\r\n",
                Line {
                    len: 2,
                    consumed: 4,
                },
            ),
            (
                b"NOOP\r\nQUIT\r\n",
                Line {
                    len: 4,
                    consumed: 6,
                },
            ),
            (
                long_ok.as_bytes(),
                Line {
                    len: 8,
                    consumed: 10,
                },
            ),
            (
                long_bad.as_bytes(),
                TooLong {
                    consumed: 11,
                    terminated: true,
                },
            ),
            (b"aaaaaaaaaa", NeedMore),
            (b"aaaaaaaaa\r", NeedMore),
            (
                b"aaaaaaaaaaa",
                TooLong {
                    consumed: 11,
                    terminated: false,
                },
            ),
            (
                b"aaaaaaaaaaaaaaa\r\nQUIT\r\n",
                TooLong {
                    consumed: 17,
                    terminated: true,
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                frame_line(input, 10),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn skip_line_stops_after_the_first_lf() {
        assert_eq!(skip_line(b"aaa"), None);
        assert_eq!(skip_line(b"aa\r\nQUIT\r\n"), Some(4));
        assert_eq!(skip_line(b"\n"), Some(1));
    }

    #[derive(Debug, PartialEq)]
    enum Event {
        Line(Vec<u8>),
        TooLong,
    }

    /// A caller as the session would be: a buffer, `frame_line`, and `skip_line` while
    /// discarding an over-long line.
    fn frame_all(feeds: &[&[u8]], max: usize) -> Vec<Event> {
        let mut events = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut skipping = false;
        for feed in feeds {
            buf.extend_from_slice(feed);
            loop {
                if skipping {
                    match skip_line(&buf) {
                        Some(n) => {
                            buf.drain(..n);
                            skipping = false;
                        }
                        None => {
                            buf.clear();
                            break;
                        }
                    }
                }
                match frame_line(&buf, max) {
                    LineFrame::Line { len, consumed } => {
                        events.push(Event::Line(buf[..len].to_vec()));
                        buf.drain(..consumed);
                    }
                    LineFrame::NeedMore => break,
                    LineFrame::TooLong {
                        consumed,
                        terminated,
                    } => {
                        events.push(Event::TooLong);
                        buf.drain(..consumed);
                        skipping = !terminated;
                    }
                }
            }
        }
        events
    }

    #[test]
    fn frame_line_gives_the_same_lines_however_the_input_is_split() {
        let input: &[u8] = b"EHLO a\r\nMAIL FROM:<a@b>\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n\
                             RCPT TO:<c@d>\r\nyyyyyyyyyyyyyyyyyy\r\n\r\nyyyyyyyyyyyyyyyyy\n\
                             yyyyyyyyyyyyyyyy\r\nDATA\r\n";
        let max = 18;
        let whole = frame_all(&[input], max);
        assert_eq!(whole.len(), 9);
        assert_eq!(whole[0], Event::Line(b"EHLO a".to_vec()));
        assert_eq!(whole[2], Event::TooLong);
        assert_eq!(whole[4], Event::TooLong);
        assert_eq!(whole[8], Event::Line(b"DATA".to_vec()));
        for size in 1..=input.len() {
            let feeds: Vec<&[u8]> = input.chunks(size).collect();
            assert_eq!(frame_all(&feeds, max), whole, "chunk size {size}");
        }
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(frame_all(&[a, b], max), whole, "split at {at}");
        }
    }
}
