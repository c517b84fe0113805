//! DATA decoding: the same result whole or in chunks (size from the first byte), consumed counts
//! that add up, and a clean message that, dot-stuffed again, decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_codec::{BodyFlaws, DataDecoder, DataStatus};

#[derive(Debug, PartialEq)]
struct Outcome {
    out: Vec<u8>,
    consumed: usize,
    done: bool,
    flaws: BodyFlaws,
}

fn run<'a>(feeds: impl Iterator<Item = &'a [u8]>, max: usize) -> Outcome {
    let mut decoder = DataDecoder::new(max);
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut done = false;
    for feed in feeds {
        let (used, status) = decoder.decode(feed, &mut out);
        assert!(used <= feed.len());
        consumed += used;
        if status == DataStatus::Done {
            done = true;
            break;
        }
        assert_eq!(used, feed.len());
    }
    Outcome {
        out,
        consumed,
        done,
        flaws: decoder.flaws(),
    }
}

fn stuff(message: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let max = if first & 0x80 != 0 {
        1000
    } else {
        8 + usize::from(first % 16)
    };
    let whole = run(std::iter::once(input), max);
    assert_eq!(run(input.chunks(chunk), max), whole);
    assert!(whole.consumed <= input.len());
    assert!(whole.out.len() <= whole.consumed);
    if !whole.done {
        assert_eq!(whole.consumed, input.len());
        return;
    }
    assert!(input[..whole.consumed].ends_with(b".\r\n"));
    if !whole.flaws.bare_cr && !whole.flaws.bare_lf {
        // CRLF-only lines: the message ends with CRLF (or is empty), and dot-stuffing it again
        // (as a client would) decodes to the same message with the same flaws.
        assert!(whole.out.is_empty() || whole.out.ends_with(b"\r\n"));
        let wire = stuff(&whole.out);
        let again = run(std::iter::once(&wire[..]), max);
        assert_eq!(again.out, whole.out);
        assert_eq!(
            (again.consumed, again.done, again.flaws),
            (wire.len(), true, whole.flaws)
        );
    }
});
