//! Command lines from arbitrary bytes: framing never loses or invents bytes, parsing never
//! panics, and every address that parses is written back (Display) in a form that parses to the
//! same address, alone and inside MAIL/RCPT paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_codec::{
    Address, Command, ForwardPath, LineFrame, ReversePath, frame_line, parse_command,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match frame_line(rest, 512) {
            LineFrame::Line { len, consumed } => {
                assert!(len < consumed && consumed <= rest.len() && consumed <= 512);
                assert_eq!(rest[consumed - 1], b'\n');
                check_line(&rest[..len]);
                rest = &rest[consumed..];
            }
            LineFrame::NeedMore => {
                assert!(rest.len() <= 512 && !rest.contains(&b'\n'));
                check_line(rest);
                break;
            }
            LineFrame::TooLong {
                consumed,
                terminated,
            } => {
                assert!(consumed > 512 && consumed <= rest.len());
                if !terminated {
                    assert_eq!(consumed, rest.len());
                }
                rest = &rest[consumed..];
            }
        }
    }
});

fn check_line(line: &[u8]) {
    match parse_command(line) {
        Ok(Command::Mail {
            from: ReversePath::Address(a),
            ..
        }) => round_trip(&a),
        Ok(Command::Rcpt {
            to: ForwardPath::Address(a),
            ..
        }) => round_trip(&a),
        _ => {}
    }
    if let Ok(text) = std::str::from_utf8(line) {
        if let Ok(a) = Address::parse(text) {
            round_trip(&a);
        }
    }
}

fn round_trip(a: &Address) {
    let shown = a.to_string();
    assert_eq!(Address::parse(&shown).as_ref(), Ok(a), "{shown:?}");
    match parse_command(format!("MAIL FROM:<{shown}>").as_bytes()) {
        Ok(Command::Mail {
            from: ReversePath::Address(b),
            ..
        }) => assert_eq!(&b, a, "{shown:?}"),
        other => panic!("MAIL FROM:<{shown}> gave {other:?}"),
    }
    match parse_command(format!("RCPT TO:<{shown}> NOTIFY=NEVER").as_bytes()) {
        Ok(Command::Rcpt {
            to: ForwardPath::Address(b),
            ..
        }) => assert_eq!(&b, a, "{shown:?}"),
        other => panic!("RCPT TO:<{shown}> gave {other:?}"),
    }
}
