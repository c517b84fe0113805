//! Replies of remote servers (RFC 5321 §4.2), with enhanced status codes (RFC 3463 §2,
//! RFC 2034 §4).
//!
//! ```text
//! Reply-line = *( Reply-code "-" [ textstring ] CRLF )
//!              Reply-code [ SP textstring ] CRLF
//! Reply-code = %x32-35 %x30-35 %x30-39
//! ```

use crate::reply::Enhanced;

/// The longest reply line accepted, in octets with its CRLF. RFC 5321 §4.5.3.1.5 allows 512;
/// real servers send longer lines (long EHLO keyword lists, long rejection texts), so the limit
/// here only bounds memory.
pub const MAX_REPLY_LINE_LEN: usize = 2048;

/// The most lines a reply may have (bounds memory against a server that never sends a last line).
pub const MAX_REPLY_LINES: usize = 256;

/// A reply read from a remote server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// The three-digit reply code; [`parse_reply`] only returns 2xx to 5xx.
    pub code: u16,
    /// The enhanced status code of the first line, when its class matches the reply code.
    pub enhanced: Option<Enhanced>,
    /// The text of each line (at least one), without the reply code, the separator and the
    /// enhanced status code. Bytes that are not UTF-8 are replaced by U+FFFD and control
    /// characters other than TAB by `?`, so the text is safe in logs and DSN fields.
    pub lines: Vec<String>,
}

impl ServerReply {
    /// 2xx and 3xx (RFC 5321 §4.2.1): completion or intermediate success.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 4xx: a transient failure, try again later (RFC 5321 §4.2.1).
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: a permanent failure, do not repeat the same request (RFC 5321 §4.2.1).
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The text of all lines joined with ' ', without codes — for logs and DSNs. Empty lines are
    /// left out and each line is trimmed.
    pub fn message(&self) -> String {
        let mut out = String::new();
        for line in self
            .lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
        {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(line);
        }
        out
    }
}

impl std::fmt::Display for ServerReply {
    /// The single-line form for logs: `550 5.1.1 text...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        let message = self.message();
        if !message.is_empty() {
            write!(f, " {message}")?;
        }
        Ok(())
    }
}

/// Why a reply could not be read. Either way the connection is unusable: the relay should
/// close it and treat the attempt as a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not an SMTP reply: a line without a valid three-digit code and separator, or lines with
    /// different codes.
    #[error("malformed reply from server")]
    Malformed,
    /// A line longer than [`MAX_REPLY_LINE_LEN`] or more than [`MAX_REPLY_LINES`] lines.
    #[error("reply from server too long")]
    TooLong,
}

/// Parses one complete reply at the start of `buf` (RFC 5321 §4.2: `code-text` continuation
/// lines, then a `code text` or `code` last line; all lines must have the same code, else
/// [`ReplyError::Malformed`]).
///
/// Returns `Ok(None)` when more input is needed, `Ok(Some((reply, consumed)))` when complete;
/// bytes after `consumed` belong to the next reply (RFC 2920 pipelining). Lines end with CRLF; a
/// bare LF is accepted too (some servers send it). A line longer than [`MAX_REPLY_LINE_LEN`]
/// octets with its line end, or more than [`MAX_REPLY_LINES`] lines, is
/// [`ReplyError::TooLong`].
///
/// Errors are reported as soon as the input shows them, even before the line is complete, and
/// the result does not depend on how the input arrived: a prefix of the input gives `Ok(None)`
/// or the same result as the whole.
///
/// The enhanced status code (RFC 3463 §2, RFC 2034 §4) is taken from the first line's text when
/// it starts with `class.subject.detail` followed by a space or the end of the line, and its
/// class (2, 4 or 5) matches the reply's first digit; it is then removed, with the space after
/// it, from every line's text that starts with the same code.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(ServerReply, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code: Option<u16> = None;
    let mut texts: Vec<&[u8]> = Vec::new();
    loop {
        let rest = buf.get(pos..).unwrap_or_default();
        let window = rest.get(..MAX_REPLY_LINE_LEN).unwrap_or(rest);
        let Some(lf) = window.iter().position(|&b| b == b'\n') else {
            // An incomplete line (or one already too long): check what is there.
            check_partial_line(rest, code)?;
            if rest.len() >= MAX_REPLY_LINE_LEN {
                // Its line end can only come after MAX_REPLY_LINE_LEN octets.
                return Err(ReplyError::TooLong);
            }
            return Ok(None);
        };
        let line = window.get(..lf).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (line_code, last, text) = split_line(line, code)?;
        code = Some(line_code);
        texts.push(text);
        pos += lf + 1;
        if last {
            return Ok(Some((build(line_code, &texts), pos)));
        }
        if texts.len() >= MAX_REPLY_LINES {
            // A continuation line was the last one allowed: a further line must follow.
            return Err(ReplyError::TooLong);
        }
    }
}

/// The reply code at the start of a line: `%x32-35 %x30-35 %x30-39` (RFC 5321 §4.2). Checks
/// the digits present in `head` (up to three), so a prefix of a line can be checked too.
fn check_code_digits(head: &[u8]) -> Result<(), ReplyError> {
    let ranges = [b'2'..=b'5', b'0'..=b'5', b'0'..=b'9'];
    for (b, range) in head.iter().zip(ranges.iter()) {
        if !range.contains(b) {
            return Err(ReplyError::Malformed);
        }
    }
    Ok(())
}

/// The code of a line whose three digits were checked.
fn code_of(d: &[u8; 3]) -> u16 {
    d.iter()
        .fold(0u16, |acc, &b| acc * 10 + u16::from(b.wrapping_sub(b'0')))
}

/// Splits a complete line (without its line end) into code, whether it is the last line, and
/// text. `first_code` is the code of the reply's first line, if this is not the first line.
fn split_line(line: &[u8], first_code: Option<u16>) -> Result<(u16, bool, &[u8]), ReplyError> {
    let (digits, rest) = line.split_first_chunk::<3>().ok_or(ReplyError::Malformed)?;
    check_code_digits(digits)?;
    let code = code_of(digits);
    if first_code.is_some_and(|c| c != code) {
        // RFC 5321 §4.2: every line of a multi-line reply carries the same code.
        return Err(ReplyError::Malformed);
    }
    match rest.split_first() {
        None => Ok((code, true, &[])),
        Some((b' ', text)) => Ok((code, true, text)),
        Some((b'-', text)) => Ok((code, false, text)),
        Some(_) => Err(ReplyError::Malformed),
    }
}

/// Checks the start of a line whose line end has not arrived (`partial` holds no LF), so that
/// garbage is refused at once rather than after [`MAX_REPLY_LINE_LEN`] octets. Refuses exactly
/// the prefixes that no complete line accepted by [`split_line`] starts with.
fn check_partial_line(partial: &[u8], first_code: Option<u16>) -> Result<(), ReplyError> {
    check_code_digits(partial.get(..3).unwrap_or(partial))?;
    if let (Some(first), Some(digits)) = (first_code, partial.first_chunk::<3>())
        && first != code_of(digits)
    {
        return Err(ReplyError::Malformed);
    }
    match (partial.get(3), partial.get(4)) {
        (None, _) | (Some(b' ' | b'-'), _) => Ok(()),
        // `code CR` may be a last line without text whose LF is still to come.
        (Some(b'\r'), None) => Ok(()),
        _ => Err(ReplyError::Malformed),
    }
}

/// Parses an enhanced status code at the start of `text` (RFC 3463 §2:
/// `class "." subject "." detail`, `class = "2" / "4" / "5"`, `subject = 1*3digit`,
/// `detail = 1*3digit`), followed by a space (RFC 2034 §4) or the end of the text. Returns the
/// code and the text after it and that one space.
fn parse_enhanced(text: &str) -> Option<(Enhanced, &str)> {
    fn number(s: &str) -> Option<(u16, &str)> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        if !(1..=3).contains(&end) {
            return None;
        }
        let (digits, rest) = s.split_at_checked(end)?;
        Some((digits.parse().ok()?, rest))
    }
    let class = match text.as_bytes().first()? {
        b'2' => 2,
        b'4' => 4,
        b'5' => 5,
        _ => return None,
    };
    let rest = text.get(1..)?.strip_prefix('.')?;
    let (subject, rest) = number(rest)?;
    let (detail, rest) = number(rest.strip_prefix('.')?)?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((
        Enhanced(class, subject, detail),
        rest.strip_prefix(' ').unwrap_or(rest),
    ))
}

/// Line text as a string safe for logs and DSNs: invalid UTF-8 becomes U+FFFD, control
/// characters other than TAB become `?` (RFC 5321 §4.2 `textstring` is TAB and printable
/// ASCII; anything else is the server's error, kept visible but harmless).
fn clean_text(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

/// Builds the reply from the line texts (at least one).
fn build(code: u16, texts: &[&[u8]]) -> ServerReply {
    let mut lines: Vec<String> = texts.iter().map(|t| clean_text(t)).collect();
    let enhanced = lines
        .first()
        .and_then(|first| parse_enhanced(first))
        .map(|(e, _)| e)
        .filter(|e| u16::from(e.0) == code / 100);
    if let Some(e) = enhanced {
        for line in &mut lines {
            if let Some((found, rest)) = parse_enhanced(line)
                && found == e
            {
                *line = rest.to_string();
            }
        }
    }
    ServerReply {
        code,
        enhanced,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, enhanced: Option<(u8, u16, u16)>, lines: &[&str]) -> ServerReply {
        ServerReply {
            code,
            enhanced: enhanced.map(|(c, s, d)| Enhanced(c, s, d)),
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
    }

    type Want = Result<Option<(ServerReply, usize)>, ReplyError>;

    fn cases() -> Vec<(Vec<u8>, Want)> {
        use ReplyError::*;
        let ok = |input: &str, r: ServerReply, consumed: usize| {
            (input.as_bytes().to_vec(), Ok(Some((r, consumed))))
        };
        let err = |input: &str, e: ReplyError| (input.as_bytes().to_vec(), Err(e));
        let more = |input: &str| (input.as_bytes().to_vec(), Ok(None));
        let long_line = format!("250 {}\r\n", "x".repeat(MAX_REPLY_LINE_LEN - 6));
        let too_long_line = format!("250 {}\r\n", "x".repeat(MAX_REPLY_LINE_LEN - 5));
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES - 1) + "250 y\r\n";
        let too_many = "250-x\r\n".repeat(MAX_REPLY_LINES) + "250 y\r\n";
        let mut many_lines = vec!["x"; MAX_REPLY_LINES - 1];
        many_lines.push("y");
        vec![
            // Single lines.
            ok("250 Ok\r\n", reply(250, None, &["Ok"]), 8),
            ok(
                "220 mx.example ESMTP\r\n",
                reply(220, None, &["mx.example ESMTP"]),
                22,
            ),
            ok("250\r\n", reply(250, None, &[""]), 5),
            ok("250 \r\n", reply(250, None, &[""]), 6),
            ok("354 go ahead\r\n", reply(354, None, &["go ahead"]), 14),
            ok("250 Ok\r\nQUIT\r\n", reply(250, None, &["Ok"]), 8),
            // Multi-line.
            ok(
                "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
                reply(250, None, &["mx.example", "PIPELINING", "SIZE 100"]),
                46,
            ),
            ok("250-\r\n250\r\n", reply(250, None, &["", ""]), 11),
            ok(
                "250-a\r\n250 b\r\n250 c\r\n",
                reply(250, None, &["a", "b"]),
                14,
            ),
            // Enhanced status codes.
            ok(
                "550 5.1.1 User unknown\r\n",
                reply(550, Some((5, 1, 1)), &["User unknown"]),
                24,
            ),
            ok("250 2.0.0\r\n", reply(250, Some((2, 0, 0)), &[""]), 11),
            ok(
                "451 4.7.650  greylisted\r\n",
                reply(451, Some((4, 7, 650)), &[" greylisted"]),
                25,
            ),
            ok(
                "550-5.7.1 Blocked\r\n550-5.7.1 see\r\n550 http://x\r\n",
                reply(550, Some((5, 7, 1)), &["Blocked", "see", "http://x"]),
                48,
            ),
            ok(
                "550-5.7.1 a\r\n550 5.7.2 b\r\n",
                reply(550, Some((5, 7, 1)), &["a", "5.7.2 b"]),
                26,
            ),
            ok(
                "550 2.1.1 class mismatch\r\n",
                reply(550, None, &["2.1.1 class mismatch"]),
                26,
            ),
            ok(
                "354 3.0.0 no class 3\r\n",
                reply(354, None, &["3.0.0 no class 3"]),
                22,
            ),
            ok("250 2.0.0x\r\n", reply(250, None, &["2.0.0x"]), 12),
            ok("250 2.0\r\n", reply(250, None, &["2.0"]), 9),
            ok("250 2.0.1000 x\r\n", reply(250, None, &["2.0.1000 x"]), 16),
            ok("250 2..0 x\r\n", reply(250, None, &["2..0 x"]), 12),
            ok(
                "250-mx.example\r\n250 2.0.0 Ok\r\n",
                reply(250, None, &["mx.example", "2.0.0 Ok"]),
                30,
            ),
            // Bare LF, and a CR before CRLF.
            ok("250 Ok\n", reply(250, None, &["Ok"]), 7),
            ok(
                "250-a\n250-b\r\n250 c\n",
                reply(250, None, &["a", "b", "c"]),
                19,
            ),
            ok("250\n", reply(250, None, &[""]), 4),
            ok("250 a\r\r\n", reply(250, None, &["a?"]), 8),
            // Text is made safe: controls replaced, invalid UTF-8 replaced, TAB and UTF-8 kept.
            (
                b"250 a\x00b\x1bc\td\xffe \xc3\xbc\r\n".to_vec(),
                Ok(Some((reply(250, None, &["a?b?c\td\u{fffd}e ü"]), 18))),
            ),
            ok("250 a\rb\r\n", reply(250, None, &["a?b"]), 9),
            // Incomplete.
            more(""),
            more("2"),
            more("25"),
            more("250"),
            more("250\r"),
            more("250 Ok"),
            more("250 Ok\r"),
            more("250-a\r\n"),
            more("250-a\r\n25"),
            more("250-a\r\n250-b\n"),
            // Mixed codes.
            err("250-a\r\n251 b\r\n", Malformed),
            err("250-a\r\n251", Malformed),
            err("250-a\r\n350", Malformed),
            err("250-a\r\n550 b\r\n", Malformed),
            // Garbage.
            err("\r\n", Malformed),
            err("\n", Malformed),
            err("x", Malformed),
            err("HTTP/1.1 400 Bad Request\r\n", Malformed),
            err("25\r\n", Malformed),
            err("25\r", Malformed),
            err("2500 x\r\n", Malformed),
            err("250x\r\n", Malformed),
            err("250\tOk\r\n", Malformed),
            err("250\r\r\n", Malformed),
            err("250\rx", Malformed),
            err("150 x\r\n", Malformed),
            err("650 x\r\n", Malformed),
            err("260 x\r\n", Malformed),
            err("25a x\r\n", Malformed),
            err(" 250 x\r\n", Malformed),
            err("250-a\r\n\r\n", Malformed),
            err("250-a\r\nx", Malformed),
            // Limits.
            ok(
                &long_line,
                reply(250, None, &[&"x".repeat(MAX_REPLY_LINE_LEN - 6)]),
                2048,
            ),
            err(&too_long_line, TooLong),
            err(&too_long_line[..MAX_REPLY_LINE_LEN], TooLong),
            more(&too_long_line[..MAX_REPLY_LINE_LEN - 1]),
            ok(&many, reply(250, None, &many_lines), many.len()),
            err(&too_many, TooLong),
            err(&too_many[..MAX_REPLY_LINES * 7], TooLong),
            more(&too_many[..MAX_REPLY_LINES * 7 - 1]),
        ]
    }

    #[test]
    fn replies_parse_according_to_the_table() {
        for (input, want) in cases() {
            assert_eq!(
                parse_reply(&input),
                want,
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    /// Feeds growing prefixes until the parser answers, as a relay reading from a socket would.
    fn parse_fed(input: &[u8], step: usize) -> Result<Option<(ServerReply, usize)>, ReplyError> {
        let mut end = 0;
        loop {
            end = (end + step).min(input.len());
            let result = parse_reply(&input[..end]);
            if result != Ok(None) || end == input.len() {
                return result;
            }
        }
    }

    #[test]
    fn replies_parse_the_same_however_the_input_is_split() {
        for (input, want) in cases() {
            for step in 1..=input.len().clamp(1, 40) {
                assert_eq!(
                    parse_fed(&input, step),
                    want,
                    "{:?} in steps of {step}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }

    #[test]
    fn every_prefix_of_a_reply_needs_more_or_gives_the_whole_result() {
        let input = b"250-mx.example Hello\r\n250-PIPELINING\n250-SIZE 100\r\n250 2.0.0 Ok\r\n";
        let whole = parse_reply(input);
        assert!(matches!(whole, Ok(Some((_, n))) if n == input.len()));
        for end in 0..input.len() {
            assert_eq!(parse_reply(&input[..end]), Ok(None), "prefix {end}");
        }
        let bad = b"250-a\r\n250-b\r\n251 c\r\n";
        for end in 0..=bad.len() {
            let got = parse_reply(&bad[..end]);
            assert!(
                got == Ok(None) || got == Err(ReplyError::Malformed),
                "prefix {end}"
            );
        }
        assert_eq!(parse_reply(&bad[..17]), Err(ReplyError::Malformed));
    }

    #[test]
    fn pipelined_replies_parse_one_after_another() {
        let input =
            b"250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n550 5.1.1 No such user\r\n354 ";
        let mut rest = &input[..];
        let mut codes = Vec::new();
        while let Ok(Some((reply, consumed))) = parse_reply(rest) {
            codes.push((reply.code, reply.enhanced));
            rest = &rest[consumed..];
        }
        assert_eq!(
            codes,
            [
                (250, Some(Enhanced(2, 1, 0))),
                (250, Some(Enhanced(2, 1, 5))),
                (550, Some(Enhanced(5, 1, 1)))
            ]
        );
        assert_eq!(rest, b"354 ");
    }

    #[test]
    fn classes_follow_the_first_digit() {
        let r = |code| reply(code, None, &[""]);
        assert!(r(250).is_positive() && r(354).is_positive());
        assert!(!r(250).is_transient() && !r(250).is_permanent());
        assert!(r(421).is_transient() && !r(421).is_positive() && !r(421).is_permanent());
        assert!(r(554).is_permanent() && !r(554).is_positive() && !r(554).is_transient());
    }

    #[test]
    fn message_and_display_give_one_line_for_logs() {
        let (r, _) = parse_reply(b"550-5.1.1 The email account that you tried to reach\r\n550-5.1.1 \r\n550 5.1.1 does not exist.  \r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            r.message(),
            "The email account that you tried to reach does not exist."
        );
        assert_eq!(
            r.to_string(),
            "550 5.1.1 The email account that you tried to reach does not exist."
        );
        let (r, _) = parse_reply(b"250\r\n").unwrap().unwrap();
        assert_eq!(r.message(), "");
        assert_eq!(r.to_string(), "250");
        let (r, _) = parse_reply(b"421 4.4.2\r\n").unwrap().unwrap();
        assert_eq!(r.to_string(), "421 4.4.2");
        let (r, _) = parse_reply(b"220 mx ESMTP\r\n").unwrap().unwrap();
        assert_eq!(r.to_string(), "220 mx ESMTP");
    }

    #[test]
    fn a_parsed_reply_written_back_out_parses_to_itself() {
        let inputs: &[&[u8]] = &[
            b"250 2.0.0 2.0.0 x\r\n",
            b"250-2.0.0   a\r\n250-  2.0.0 b\r\n250 2.0.0\r\n",
            b"550-5.1.1 a\r\n550-5.1.2 b\r\n550 c\r\n",
            b"250-mx\r\n250 2.0.0 x\r\n",
            b"451 4.7.1\tx\x00\xff\r\n",
        ];
        for input in inputs {
            let (reply, _) = parse_reply(input).unwrap().unwrap();
            let last = reply.lines.len() - 1;
            let mut wire = String::new();
            for (i, line) in reply.lines.iter().enumerate() {
                let sep = if i == last { ' ' } else { '-' };
                match reply.enhanced {
                    Some(e) => wire.push_str(&format!("{}{sep}{e} {line}\r\n", reply.code)),
                    None => wire.push_str(&format!("{}{sep}{line}\r\n", reply.code)),
                }
            }
            assert_eq!(
                parse_reply(wire.as_bytes()),
                Ok(Some((reply, wire.len()))),
                "{wire:?}"
            );
        }
    }

    #[test]
    fn replies_written_by_our_server_parse_back() {
        use crate::reply;
        for r in [
            reply::OK,
            reply::START_DATA,
            reply::USER_UNKNOWN,
            reply::TOO_MANY_RECIPIENTS,
            reply::OK.with_text("one\ntwo\nthree"),
            reply::greeting("mx.test"),
        ] {
            let wire = r.to_wire();
            let (parsed, consumed) = parse_reply(wire.as_bytes()).unwrap().unwrap();
            assert_eq!(consumed, wire.len());
            assert_eq!(parsed.code, r.code);
            assert_eq!(parsed.enhanced, r.enhanced);
            assert_eq!(parsed.lines.join("\n"), r.text);
        }
    }
}
