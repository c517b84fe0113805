//! DKIM keys from the command line: keygen stores a key and prints its DNS record; list shows
//! them; mistakes get a message that says what to do.

use testkit::TestServer;

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_postrider"))
}

/// The TXT value in a zone line: its quoted strings joined.
fn value(line: &str) -> String {
    line.split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat()
}

#[test]
fn keygen_stores_a_key_per_selector_and_prints_the_record_to_publish() {
    let s = TestServer::start(bin(), "").unwrap();
    s.admin_ok(&["domain", "add", "example.test"]);
    let out = s.admin_ok(&["dkim", "keygen", "example.test", "--selector", "s1"]);
    assert!(
        out.contains("made a 2048-bit RSA key for example.test with selector s1"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("s1._domainkey.example.test. IN TXT ( \""))
        .unwrap_or_else(|| panic!("{out}"));
    let rsa = value(line);
    assert!(rsa.starts_with("v=DKIM1; k=rsa; p=MII"), "{rsa}");
    // RSA-2048 does not fit one TXT string of 255 octets: it is split.
    assert!(line.matches('"').count() >= 4, "{line}");

    let out = s.admin_ok(&[
        "dkim",
        "keygen",
        "Example.Test",
        "--selector",
        "ed1",
        "--algorithm",
        "ed25519",
    ]);
    let line = out
        .lines()
        .find(|l| l.starts_with("ed1._domainkey.example.test."))
        .unwrap_or_else(|| panic!("{out}"));
    let ed = value(line);
    assert!(ed.starts_with("v=DKIM1; k=ed25519; p="), "{ed}");
    // An Ed25519 public key is 32 octets: 44 base64 characters.
    assert_eq!(ed.len(), "v=DKIM1; k=ed25519; p=".len() + 44, "{ed}");

    // Without --selector: "pr" and the year and month.
    let out = s.admin_ok(&["dkim", "keygen", "example.test", "--algorithm", "ed25519"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("pr2") && l.contains("._domainkey.example.test.")),
        "{out}"
    );

    let list = s.admin_ok(&["dkim", "list", "example.test"]);
    assert!(list.contains("selector s1  rsa"), "{list}");
    assert!(list.contains("selector ed1  ed25519"), "{list}");
    assert!(list.contains(&rsa[..40]), "{list}");

    for (args, hint) in [
        (
            vec!["dkim", "keygen", "example.test", "--selector", "s1"],
            "choose another with --selector",
        ),
        (
            vec!["dkim", "keygen", "other.test"],
            "postrider domain add other.test",
        ),
        (
            vec!["dkim", "keygen", "example.test", "--algorithm", "dsa"],
            "\"rsa\" or \"ed25519\"",
        ),
        (
            vec!["dkim", "keygen", "example.test", "--selector", "bad_sel"],
            "not a usable selector",
        ),
    ] {
        let o = s.admin(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(hint), "{args:?}: {err}");
    }
}
