//! Credentials over real sockets: several per account, rotation with a grace period, expiry,
//! revocation, last use, and failures that look the same in reply and timing.

use std::time::{Duration, Instant};
use testkit::{Conn, TestServer, b64};

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_postrider"))
}

/// Failures are answered 400 ms after AUTH began (no growth with repeated failures).
fn server() -> TestServer {
    let s = TestServer::start(
        bin(),
        "[auth]\nfailure_delay = \"400ms\"\nmax_failure_delay = \"400ms\"\n",
    )
    .unwrap();
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "alice-pw");
    s
}

/// STARTTLS, then AUTH PLAIN; the reply and how long it took.
fn auth(s: &TestServer, user: &str, password: &str) -> (u16, String, Duration) {
    let mut c: Conn = s.connect(s.ports.submission);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    let started = Instant::now();
    let r = c.cmd(&format!(
        "AUTH PLAIN {}",
        b64(&format!("\0{user}\0{password}"))
    ));
    (r.code, r.text, started.elapsed())
}

/// The secret printed by `credential add` or `credential rotate`.
fn secret(out: &str) -> String {
    out.lines()
        .find_map(|l| {
            l.strip_prefix("secret: ")
                .or_else(|| l.strip_prefix("new secret: "))
        })
        .unwrap_or_else(|| panic!("no secret in {out}"))
        .trim()
        .to_string()
}

#[test]
fn an_account_logs_in_with_any_active_credential_and_the_last_use_is_recorded() {
    let s = server();
    let out = s.admin_ok(&["credential", "add", "alice@example.test", "billing-app"]);
    let app = secret(&out);
    assert_eq!(auth(&s, "alice@example.test", "alice-pw").0, 235);
    assert_eq!(auth(&s, "alice@example.test", &app).0, 235);
    let list = s.admin_ok(&["credential", "list", "alice@example.test"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("billing-app"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("active"), "{list}");
    assert!(row.contains("from 127.0.0.1"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("default") && l.contains("active")),
        "{list}"
    );
    assert!(s.log().contains("credential=billing-app"), "{}", s.log());
    // A second active credential with the same label is refused with a hint.
    let o = s.admin(&["credential", "add", "alice@example.test", "billing-app"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("credential rotate"),
        "{o:?}"
    );
}

#[test]
fn rotation_keeps_the_old_secret_for_the_grace_period_then_it_fails_like_a_wrong_password() {
    let s = server();
    let old = secret(&s.admin_ok(&["credential", "add", "alice@example.test", "app"]));
    let out = s.admin_ok(&[
        "credential",
        "rotate",
        "alice@example.test",
        "app",
        "--grace",
        "3s",
    ]);
    assert!(out.contains("keeps working until"), "{out}");
    let new = secret(&out);
    assert_ne!(old, new);
    assert_eq!(auth(&s, "alice@example.test", &old).0, 235);
    assert_eq!(auth(&s, "alice@example.test", &new).0, 235);
    std::thread::sleep(Duration::from_millis(3500));
    let (code, text, _) = auth(&s, "alice@example.test", &old);
    let wrong = auth(&s, "alice@example.test", "not-the-password");
    assert_eq!((code, &text), (wrong.0, &wrong.1));
    assert_eq!(code, 535);
    assert!(text.starts_with("5.7.8"), "{text}");
    assert_eq!(auth(&s, "alice@example.test", &new).0, 235);
    let list = s.admin_ok(&["credential", "list", "alice@example.test"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("app") && l.contains("expired")),
        "{list}"
    );
    // Rotating a label the account does not have says what to do.
    let o = s.admin(&["credential", "rotate", "alice@example.test", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("credential add"),
        "{o:?}"
    );
}

#[test]
fn expired_and_revoked_credentials_fail_like_a_wrong_password() {
    let s = server();
    let short = secret(&s.admin_ok(&[
        "credential",
        "add",
        "alice@example.test",
        "short",
        "--expires",
        "1s",
    ]));
    let app = secret(&s.admin_ok(&["credential", "add", "alice@example.test", "app"]));
    assert_eq!(auth(&s, "alice@example.test", &short).0, 235);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(auth(&s, "alice@example.test", &short).0, 535);
    let out = s.admin_ok(&["credential", "revoke", "alice@example.test", "app"]);
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(auth(&s, "alice@example.test", &app).0, 535);
    // The account password is untouched.
    assert_eq!(auth(&s, "alice@example.test", "alice-pw").0, 235);
    let o = s.admin(&["credential", "revoke", "alice@example.test", "app"]);
    assert_eq!(o.status.code(), Some(1));
    let o = s.admin(&[
        "credential",
        "add",
        "alice@example.test",
        "x",
        "--expires",
        "soon",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("7d"), "{o:?}");
}

#[test]
fn unknown_users_and_wrong_passwords_get_the_same_reply_at_the_same_time() {
    let s = server();
    // An account with several credentials costs more argon2 work on a wrong password than an
    // unknown user; the fixed failure time hides it.
    for label in ["a", "b", "c"] {
        s.admin_ok(&["credential", "add", "alice@example.test", label]);
    }
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for _ in 0..3 {
        let u = auth(&s, "nobody@example.test", "whatever");
        let w = auth(&s, "alice@example.test", "whatever");
        assert_eq!((u.0, &u.1), (w.0, &w.1));
        assert_eq!(u.0, 535);
        unknown.push(u.2);
        wrong.push(w.2);
    }
    for d in unknown.iter().chain(&wrong) {
        assert!(
            *d >= Duration::from_millis(400) && *d < Duration::from_millis(1500),
            "a failure took {d:?}; unknown {unknown:?}, wrong {wrong:?}"
        );
    }
}

#[test]
fn auth_needs_tls_unless_the_dangerous_setting_names_the_client_network() {
    // By default: no AUTH offered before STARTTLS, and AUTH there is refused with 530 5.7.0.
    let s = server();
    let mut c = s.connect(s.ports.submission);
    let ehlo = c.cmd("EHLO client.test");
    assert!(!ehlo.text.contains("AUTH"), "{ehlo:?}");
    let r = c.cmd(&format!(
        "AUTH PLAIN {}",
        b64("\0alice@example.test\0alice-pw")
    ));
    assert_eq!(r.code, 530, "{r:?}");
    assert!(r.text.starts_with("5.7.0"), "{r:?}");
    // Malformed SASL gets 501 5.5.2 (after TLS).
    let mut c = s.connect(s.ports.submission);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    c.expect("AUTH PLAIN !!!not-base64!!!", "501 5.5.2");

    // A legacy device's network allowed to send its password in clear text.
    let s = TestServer::start(
        bin(),
        "[auth]\ndangerous_plaintext_auth_networks = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "alice-pw");
    let mut c = s.connect(s.ports.submission);
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.text.contains("AUTH PLAIN LOGIN"), "{ehlo:?}");
    c.expect(
        &format!("AUTH PLAIN {}", b64("\0alice@example.test\0alice-pw")),
        "235",
    );
    // Another network is not named: still refused there (the setting is per network).
    let s2 = TestServer::start(
        bin(),
        "[auth]\ndangerous_plaintext_auth_networks = [\"192.0.2.0/24\"]\n",
    )
    .unwrap();
    let mut c = s2.connect(s2.ports.submission);
    c.expect("EHLO client.test", "250");
    c.expect(
        &format!("AUTH PLAIN {}", b64("\0alice@example.test\0alice-pw")),
        "530",
    );
}

#[test]
fn a_credential_listed_in_lanes_bulk_credentials_sends_in_the_bulk_lane() {
    let s = TestServer::start(
        bin(),
        "[lanes]\nbulk_credentials = [\"Alice@example.test/newsletter\"]\n",
    )
    .unwrap();
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "alice-pw");
    s.add_account("bob@example.test", "bob-pw");
    let news = secret(&s.admin_ok(&["credential", "add", "alice@example.test", "newsletter"]));
    let msg = "From: alice@example.test\r\nSubject: x\r\n\r\nx\r\n";
    let id_of = |r: testkit::Reply| r.text.rsplit(' ').next().unwrap().to_string();
    let bulk = id_of(s.login("alice@example.test", &news).send_mail(
        "alice@example.test",
        &["bob@example.test"],
        msg,
    ));
    let transactional = id_of(s.login("alice@example.test", "alice-pw").send_mail(
        "alice@example.test",
        &["bob@example.test"],
        msg,
    ));
    let log = s.log();
    let lane = |id: &str| {
        log.lines()
            .find(|l| l.contains("message accepted") && l.contains(id))
            .and_then(|l| l.split("lane=").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or_else(|| panic!("no accepted line for {id}:\n{log}"))
            .to_string()
    };
    assert_eq!(lane(&bulk), "bulk");
    assert_eq!(lane(&transactional), "transactional");
}
