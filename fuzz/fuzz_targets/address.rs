//! Addresses and paths from arbitrary text: parsing never panics, what parses keeps to the RFC
//! 5321 limits (local part 64, domain 255 octets, no trailing dot), is written back (Display) in
//! a form that parses to the same value, and MAIL/RCPT commands agree with the path parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_codec::{Address, Command, CommandError, ForwardPath, ReversePath, parse_command};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(a) = Address::parse(text) {
        check_address(&a);
        assert!(text.ends_with(&a.domain), "the domain is kept as written");
    }
    let plain = !text.chars().any(|c| c.is_control() && c != '\t')
        && text == text.trim_end_matches([' ', '\t'])
        && !text.trim_start_matches(' ').is_empty();
    match ForwardPath::parse(text) {
        Ok((path, rest)) => {
            assert!(rest.is_empty() || rest.starts_with(' '));
            let shown = match &path {
                ForwardPath::Postmaster => "Postmaster".to_string(),
                ForwardPath::Address(a) => {
                    check_address(a);
                    a.to_string()
                }
            };
            assert_eq!(
                ForwardPath::parse(&format!("<{shown}>")),
                Ok((path.clone(), ""))
            );
            if plain && rest.is_empty() {
                let cmd = parse_command(format!("RCPT TO:{text}").as_bytes());
                assert_eq!(
                    cmd,
                    Ok(Command::Rcpt {
                        to: path,
                        params: Default::default()
                    })
                );
            }
        }
        Err(e) => {
            if plain {
                let cmd = parse_command(format!("RCPT TO:{text}").as_bytes());
                assert_eq!(cmd, Err(CommandError::BadAddress(e)), "{text:?}");
            }
        }
    }
    match ReversePath::parse(text) {
        Ok((path, rest)) => {
            assert!(rest.is_empty() || rest.starts_with(' '));
            let shown = path.to_string();
            assert_eq!(
                ReversePath::parse(&format!("<{shown}>")),
                Ok((path.clone(), ""))
            );
            if let ReversePath::Address(a) = &path {
                check_address(a);
            }
            if plain && rest.is_empty() {
                let cmd = parse_command(format!("MAIL FROM:{text}").as_bytes());
                assert_eq!(
                    cmd,
                    Ok(Command::Mail {
                        from: path,
                        params: Default::default()
                    })
                );
            }
        }
        Err(e) => {
            if plain {
                let cmd = parse_command(format!("MAIL FROM:{text}").as_bytes());
                assert_eq!(cmd, Err(CommandError::BadAddress(e)), "{text:?}");
            }
        }
    }
});

fn check_address(a: &Address) {
    assert!(!a.local_part.is_empty() && a.local_part.len() <= 64);
    assert!(!a.domain.is_empty() && a.domain.len() <= 255);
    assert!(!a.domain.ends_with('.'));
    assert_eq!(a.is_ascii(), a.local_part.is_ascii() && a.domain.is_ascii());
    let shown = a.to_string();
    assert_eq!(Address::parse(&shown).as_ref(), Ok(a), "{shown:?}");
    let _ = a.normalized();
}
