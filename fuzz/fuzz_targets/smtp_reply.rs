//! Server replies from arbitrary bytes (the client side, for the relay): parsing never panics,
//! its result does not depend on how the input arrives (prefixes grown by a step from the first
//! byte give `Ok(None)` until the whole result), replies stay within the limits and carry no
//! control characters, a parsed reply written back out parses to itself, and reading EHLO
//! capabilities from any parsed reply never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_codec::client::{MAX_REPLY_LINE_LEN, MAX_REPLY_LINES};
use smtp_codec::{ReplyError, ServerReply, parse_ehlo, parse_reply};

type Parsed = Result<Option<(ServerReply, usize)>, ReplyError>;

/// Feeds growing prefixes until the parser answers, as the relay reading a socket would.
fn parse_fed(input: &[u8], step: usize) -> Parsed {
    let mut end = 0;
    loop {
        end = (end + step).min(input.len());
        let result = parse_reply(&input[..end]);
        if result != Ok(None) || end == input.len() {
            return result;
        }
    }
}

/// The reply on the wire again: every line with the code, the enhanced code and the text.
fn encode(reply: &ServerReply) -> Vec<u8> {
    let mut out = Vec::new();
    let last = reply.lines.len().saturating_sub(1);
    for (i, line) in reply.lines.iter().enumerate() {
        let sep = if i == last { ' ' } else { '-' };
        let head = match reply.enhanced {
            Some(e) => format!("{}{sep}{e} ", reply.code),
            None => format!("{}{sep}", reply.code),
        };
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn check(reply: &ServerReply, consumed: usize, input: &[u8]) {
    assert!(consumed > 0 && consumed <= input.len());
    assert_eq!(input[consumed - 1], b'\n');
    assert!((200..600).contains(&reply.code));
    assert!(reply.is_positive() ^ reply.is_transient() ^ reply.is_permanent());
    assert!(!reply.lines.is_empty() && reply.lines.len() <= MAX_REPLY_LINES);
    if let Some(e) = reply.enhanced {
        assert_eq!(u16::from(e.0), reply.code / 100);
    }
    for line in &reply.lines {
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "{line:?}"
        );
    }
    let shown = reply.to_string();
    assert!(!shown.contains(['\r', '\n']));
    let _ = reply.message();
    let caps = parse_ehlo(reply);
    assert!(caps.auth.len() <= 32);
    // Written back out, the reply parses to itself when it fits the limits (the enhanced code
    // is added to every line and U+FFFD is longer than the byte it replaced).
    let wire = encode(reply);
    if wire
        .split_inclusive(|&b| b == b'\n')
        .all(|l| l.len() <= MAX_REPLY_LINE_LEN)
    {
        assert_eq!(parse_reply(&wire), Ok(Some((reply.clone(), wire.len()))));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(first % 64) + 1;
    let whole = parse_reply(input);
    assert_eq!(parse_fed(input, step), whole);
    // Pipelined replies one after another, as the relay reads them.
    let mut rest = input;
    while let Ok(Some((reply, consumed))) = parse_reply(rest) {
        check(&reply, consumed, rest);
        rest = &rest[consumed..];
    }
});
