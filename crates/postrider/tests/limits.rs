//! Rate limits over real sockets: per account, per credential, per client address, per
//! destination domain — each answered with a temporary reply where it is crossed.

use std::time::{Duration, Instant};
use testkit::TestServer;

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_postrider"))
}

fn server(limits: &str) -> TestServer {
    let s = TestServer::start(bin(), &format!("[limits]\n{limits}")).unwrap();
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "alice-pw");
    s.add_account("bob@example.test", "bob-pw");
    s
}

const MSG: &str = "From: alice@example.test\r\nSubject: x\r\n\r\nx\r\n";

#[test]
fn an_account_over_its_message_rate_gets_451_4_7_1_at_mail_from() {
    let s = server("account_messages = { minute = 2 }\n");
    let mut c = s.login("alice@example.test", "alice-pw");
    for _ in 0..2 {
        let r = c.send_mail("alice@example.test", &["bob@example.test"], MSG);
        assert_eq!(r.code, 250, "{r:?}");
    }
    let r = c.cmd("MAIL FROM:<alice@example.test>");
    assert_eq!(r.code, 451, "{r:?}");
    assert!(r.text.starts_with("4.7.1"), "{r:?}");
    assert!(r.text.contains("2 per minute for this account"), "{r:?}");
    // Another account is not affected.
    let mut c = s.login("bob@example.test", "bob-pw");
    let r = c.send_mail("bob@example.test", &["alice@example.test"], MSG);
    assert_eq!(r.code, 250, "{r:?}");
    assert_eq!(s.wait_for_mail("bob@example.test", 2).len(), 2);
}

#[test]
fn a_credential_over_its_recipient_rate_gets_452_4_7_1_at_rcpt_and_the_account_password_is_not_limited()
 {
    let s = server("credential_recipients = { hour = 3 }\n");
    let out = s.admin_ok(&["credential", "add", "alice@example.test", "app"]);
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_string();
    let mut c = s.login("alice@example.test", &secret);
    c.expect("MAIL FROM:<alice@example.test>", "250");
    for _ in 0..3 {
        c.expect("RCPT TO:<bob@example.test>", "250");
    }
    let r = c.cmd("RCPT TO:<bob@example.test>");
    assert_eq!(r.code, 452, "{r:?}");
    assert!(r.text.starts_with("4.7.1"), "{r:?}");
    assert!(r.text.contains("3 per hour for this credential"), "{r:?}");
    // The message goes with the recipients taken.
    c.expect("DATA", "354");
    c.send_raw(format!("{MSG}.\r\n").as_bytes());
    assert_eq!(c.reply().code, 250);
    // Both limits count per credential: the "default" one (the password) still sends.
    let mut c = s.login("alice@example.test", "alice-pw");
    let r = c.send_mail(
        "alice@example.test",
        &["bob@example.test", "bob@example.test"],
        MSG,
    );
    assert_eq!(r.code, 250, "{r:?}");
}

#[test]
fn new_connections_past_the_per_minute_rate_of_an_address_get_421() {
    // The test kit's start-up probes (one connection per listener) count too, so the 421 comes
    // at the latest with the seventh connection of the test.
    let s = server("ip_connections_per_minute = 6\n");
    let mut open = Vec::new();
    let mut refused = None;
    for i in 0..7 {
        let c = s.connect(s.ports.mx);
        let g = c.greeting.clone().unwrap();
        if g.code == 421 {
            refused = Some((i, g));
            break;
        }
        assert_eq!(g.code, 220, "{g:?}");
        open.push(c);
    }
    let (i, g) = refused.expect("no connection was refused");
    // ... and not before the limit: the probes took at most 3 of the 6.
    assert!(i >= 3, "only {i} connections were let in");
    assert!(g.text.starts_with("4.7.0"), "{g:?}");
    assert!(s.log().contains("connection rate limit"), "{}", s.log());
}

#[test]
fn mail_to_a_domain_past_its_per_minute_rate_is_deferred_not_lost() {
    let b = TestServer::start_named(bin(), "mx.remote.test", "").unwrap();
    b.admin_ok(&["domain", "add", "remote.test"]);
    b.add_account("carol@remote.test", "pw");
    let a = TestServer::start(
        bin(),
        &format!(
            "[limits]\ndestination_messages_per_minute = 2\n[relay]\nnetworks = [\"127.0.0.0/8\"]\n\
             [[transport]]\ndomain = \"remote.test\"\nsmarthost = \"127.0.0.1:{}\"\n",
            b.ports.mx
        ),
    )
    .unwrap();
    let mut c = a.connect(a.ports.mx);
    c.expect("EHLO app.example.test", "250");
    for i in 0..4 {
        let r = c.send_mail(
            "app@example.test",
            &["carol@remote.test"],
            &format!("Subject: n{i}\r\n\r\nx\r\n"),
        );
        assert_eq!(r.code, 250, "{r:?}");
    }
    b.wait_for_mail("carol@remote.test", 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = a.log();
        if log.matches("rate limit for remote.test").count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Two delivered, two waiting in the queue with the reason.
    let list = a.admin_ok(&["queue", "list", "--state", "deferred"]);
    let ids: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.len() == 13)
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    let show = a.admin_ok(&["queue", "show", ids[0]]);
    assert!(show.contains("2 messages per minute"), "{show}");
}
