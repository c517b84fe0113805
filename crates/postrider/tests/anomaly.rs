//! Unusual-activity detection over real sockets: a leaked credential that bursts is suspended
//! and its mail held; a login from a never-seen network is reported to the postmaster.

use std::time::{Duration, Instant};
use testkit::{TestServer, b64};

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_postrider"))
}

/// Mail for remote.test goes to a port where nothing listens: it stays in the queue.
fn server(anomaly: &str) -> (TestServer, String) {
    let s = TestServer::start(
        bin(),
        &format!(
            "[anomaly]\n{anomaly}\n[[transport]]\ndomain = \"remote.test\"\nsmarthost = \"127.0.0.1:1\"\n"
        ),
    )
    .unwrap();
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "alice-pw");
    let out = s.admin_ok(&["credential", "add", "alice@example.test", "app"]);
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_string();
    (s, secret)
}

fn held(s: &TestServer) -> usize {
    s.admin_ok(&["queue", "list", "--state", "held"])
        .lines()
        .filter(|l| l.split_whitespace().next().is_some_and(|w| w.len() == 13))
        .count()
}

/// Waits for the postmaster's alert and returns it.
fn alert(s: &TestServer) -> String {
    let ids = s.wait_for_mail("postmaster@example.test", 1);
    String::from_utf8(s.mailbox_show("postmaster@example.test", ids[0])).unwrap()
}

#[test]
fn a_leaked_credential_that_bursts_is_suspended_and_its_burst_held() {
    let (s, secret) = server("action = \"hold\"\nmin_volume = 5\nspike_factor = 10.0\n");
    let mut c = s.login("alice@example.test", &secret);
    for i in 0..5 {
        let r = c.send_mail(
            "alice@example.test",
            &[&format!("victim{i}@remote.test")],
            &format!("From: alice@example.test\r\nSubject: spam {i}\r\n\r\nbuy now\r\n"),
        );
        // The fifth message crosses the threshold: it is still accepted (kept, held).
        assert_eq!(r.code, 250, "{r:?}");
    }
    // The rest of the burst is refused at once, with a temporary reply.
    let r = c.cmd("MAIL FROM:<alice@example.test>");
    assert_eq!(r.code, 451, "{r:?}");
    assert!(r.text.contains("Unusual activity"), "{r:?}");
    // Everything it sent that was still queued is held, the triggering message included.
    let deadline = Instant::now() + Duration::from_secs(10);
    while held(&s) < 5 {
        assert!(
            Instant::now() < deadline,
            "held: {}",
            s.admin_ok(&["queue", "list"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The postmaster is told what happened and what to do.
    let mail = alert(&s);
    for want in [
        "Subject: Unusual activity: credential \"app\" of alice@example.test",
        "5 messages in the last hour",
        "postrider credential resume alice@example.test app",
        "postrider queue list --state held",
    ] {
        assert!(mail.contains(want), "missing {want:?}:\n{mail}");
    }
    // The credential is suspended: it fails like a wrong password. The account's other
    // credential still works.
    let mut c = s.connect(s.ports.submission);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    c.expect(
        &format!(
            "AUTH PLAIN {}",
            b64(&format!("\0alice@example.test\0{secret}"))
        ),
        "535 5.7.8",
    );
    s.login("alice@example.test", "alice-pw");
    let list = s.admin_ok(&["credential", "list", "alice@example.test"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("app") && l.contains("suspended")),
        "{list}"
    );
    // An admin resumes it; it sends again. The held mail stays held until released.
    let out = s.admin_ok(&["credential", "resume", "alice@example.test", "app"]);
    assert!(out.contains("resumed"), "{out}");
    let mut c = s.login("alice@example.test", &secret);
    c.expect("MAIL FROM:<alice@example.test>", "250");
    assert_eq!(held(&s), 5);
    assert!(s.log().contains("unusual activity"), "{}", s.log());
}

#[test]
fn with_action_alert_a_burst_is_only_reported() {
    let (s, secret) = server("action = \"alert\"\nmin_volume = 3\n");
    let mut c = s.login("alice@example.test", &secret);
    for i in 0..4 {
        let r = c.send_mail(
            "alice@example.test",
            &["x@remote.test"],
            &format!("From: alice@example.test\r\nSubject: {i}\r\n\r\nx\r\n"),
        );
        assert_eq!(r.code, 250, "{r:?}");
    }
    assert!(alert(&s).contains("Nothing was stopped"));
    assert_eq!(held(&s), 0);
}

#[test]
fn a_login_from_a_network_never_seen_for_the_credential_is_reported() {
    // Each address is a network of its own here (/32), so 127.0.0.2 is new after 127.0.0.1.
    let (s, secret) = server("ipv4_prefix = 32\n");
    s.login("alice@example.test", &secret);
    s.login("alice@example.test", &secret);
    // The first network of a credential is its baseline, not news.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        s.admin_ok(&["mailbox", "list", "postmaster@example.test"])
            .contains("no messages")
    );
    let mut c = s.connect_from("127.0.0.2", s.ports.submission);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    c.expect(
        &format!(
            "AUTH PLAIN {}",
            b64(&format!("\0alice@example.test\0{secret}"))
        ),
        "235",
    );
    let mail = alert(&s);
    assert!(
        mail.contains("a login from 127.0.0.2, in 127.0.0.2/32, a network never seen for it"),
        "{mail}"
    );
}

#[test]
fn mail_sprayed_over_many_domains_is_reported() {
    // Every remote domain goes to a closed local port (never to the world).
    let s = TestServer::start(
        bin(),
        "[anomaly]\nmin_volume = 1000\nmin_domains = 4\n\
         [[transport]]\ndomain = \"*\"\nsmarthost = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "alice-pw");
    let mut c = s.login("alice@example.test", "alice-pw");
    let r = c.send_mail(
        "alice@example.test",
        &["a@d1.test", "b@d2.test", "c@d3.test"],
        "From: alice@example.test\r\nSubject: 1\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.admin_ok(&["mailbox", "list", "postmaster@example.test"])
            .contains("no messages"),
        "three domains are not a spray yet"
    );
    let r = c.send_mail(
        "alice@example.test",
        &["d@D4.test", "e@d1.test"],
        "From: alice@example.test\r\nSubject: 2\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    let mail = alert(&s);
    assert!(
        mail.contains("mail to 4 different domains in the last hour"),
        "{mail}"
    );
}

#[test]
fn a_storm_of_bounces_is_reported() {
    // The receiving side knows nobody: every recipient is refused with 550 5.1.1.
    let b = TestServer::start_named(bin(), "mx.remote.test", "").unwrap();
    b.admin_ok(&["domain", "add", "remote.test"]);
    let s = TestServer::start(
        bin(),
        &format!(
            "[anomaly]\nmin_volume = 1000\nmin_domains = 1000\nmin_bounces = 3\nbounce_rate = 0.5\n\
             [[transport]]\ndomain = \"remote.test\"\nsmarthost = \"127.0.0.1:{}\"\n",
            b.ports.mx
        ),
    )
    .unwrap();
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "alice-pw");
    let started = Instant::now();
    let mut c = s.login("alice@example.test", "alice-pw");
    for i in 0..3 {
        let r = c.send_mail(
            "alice@example.test",
            &[&format!("guess{i}@remote.test")],
            &format!("From: alice@example.test\r\nSubject: {i}\r\n\r\nx\r\n"),
        );
        assert_eq!(r.code, 250, "{r:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.log().matches("failed: ").count() < 3 {
        assert!(Instant::now() < deadline, "{}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The bounce count is reread every few seconds; the next message shows the storm.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(started.elapsed()));
    let r = c.send_mail(
        "alice@example.test",
        &["guess9@remote.test"],
        "From: alice@example.test\r\nSubject: 9\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    let mail = alert(&s);
    assert!(
        mail.contains("3 recipients refused by remote servers for 4 messages in the last hour"),
        "{mail}"
    );
}

#[test]
fn with_action_throttle_a_burst_pauses_the_credential_without_suspending_it() {
    let (s, secret) = server("action = \"throttle\"\nmin_volume = 3\n");
    let mut c = s.login("alice@example.test", &secret);
    for i in 0..3 {
        let r = c.send_mail(
            "alice@example.test",
            &["x@remote.test"],
            &format!("From: alice@example.test\r\nSubject: {i}\r\n\r\nx\r\n"),
        );
        assert_eq!(r.code, 250, "{r:?}");
    }
    // Further mail of the credential waits (temporary reply), in this session and the next.
    let r = c.cmd("MAIL FROM:<alice@example.test>");
    assert_eq!(r.code, 451, "{r:?}");
    let mut c = s.login("alice@example.test", &secret);
    let r = c.cmd("MAIL FROM:<alice@example.test>");
    assert_eq!(r.code, 451, "{r:?}");
    assert!(alert(&s).contains("action \"throttle\""));
    // Nothing is held and the credential is not suspended; the account's password still sends.
    assert_eq!(held(&s), 0);
    let list = s.admin_ok(&["credential", "list", "alice@example.test"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("app") && l.contains("active")),
        "{list}"
    );
    let mut c = s.login("alice@example.test", "alice-pw");
    c.expect("MAIL FROM:<alice@example.test>", "250");
}
