//! Relaying: two real Postrider servers, the second the MX of `remote.test` as published by a
//! DNS server on 127.0.0.53, all on loopback.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use testkit::{TestDns, TestServer, b64};

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_postrider"))
}

/// The receiving side: `remote.test` with the account bob@remote.test.
fn remote() -> TestServer {
    let b = TestServer::start_named(bin(), "mx.remote.test", "").unwrap();
    b.admin_ok(&["domain", "add", "remote.test"]);
    b.add_account("bob@remote.test", "pw");
    b
}

/// DNS with remote.test's MX pointing at 127.0.0.1.
fn dns() -> TestDns {
    let dns = TestDns::start(Ipv4Addr::new(127, 0, 0, 53)).unwrap();
    dns.add_mx("remote.test", 10, "mx.remote.test");
    dns.add_a("mx.remote.test", Ipv4Addr::LOCALHOST);
    dns
}

/// The relaying side, using `dns` and delivering to MX hosts on `mx_port`.
fn relay(dns: &TestDns, mx_port: u16, extra: &str) -> TestServer {
    let a = TestServer::start_named(
        bin(),
        "relay.example.test",
        &format!(
            "[outbound]\nnameservers = [\"{}\"]\nmx_port = {mx_port}\n\
             [delivery]\nretry_initial = \"1s\"\nretry_max = \"2s\"\npoll_interval = \"200ms\"\n{extra}",
            dns.addr()
        ),
    )
    .unwrap();
    a.admin_ok(&["domain", "add", "example.test"]);
    a.add_account("alice@example.test", "alice-pw");
    a
}

fn submit(a: &TestServer, to: &str, subject: &str) -> String {
    let mut c = a.connect(a.ports.submission);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    c.expect(
        &format!("AUTH PLAIN {}", b64("\0alice@example.test\0alice-pw")),
        "235",
    );
    let r = c.send_mail("alice@example.test", &[to], &format!("From: alice@example.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello over there.\r\n"));
    assert_eq!(r.code, 250, "{r:?}");
    r.text.rsplit(' ').next().unwrap().to_string()
}

/// Waits until `queue show ID` contains `want` (or the entry is gone when `want` is empty).
fn wait_queue(a: &TestServer, id: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = a.admin(&["queue", "show", id]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if (want.is_empty() && !out.status.success()) || (!want.is_empty() && text.contains(want)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "queue entry {id} never showed {want:?}:\n{text}\nlog:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_authenticated_user_relays_to_a_remote_domain_through_its_mx_over_tls() {
    let b = remote();
    let dns = dns();
    let a = relay(&dns, b.ports.mx, "");
    let id = submit(&a, "bob@remote.test", "across");
    let ids = b.wait_for_mail("bob@remote.test", 1);
    let stored = String::from_utf8(b.mailbox_show("bob@remote.test", ids[0])).unwrap();
    assert!(
        stored.ends_with("Subject: across\r\n\r\nHello over there.\r\n"),
        "{stored}"
    );
    // The remote server saw the relay's EHLO name and, opportunistically, TLS.
    assert!(
        stored.contains("Received: from relay.example.test ([127.0.0.1])"),
        "{stored}"
    );
    assert!(
        stored.contains("by mx.remote.test (Postrider) with ESMTPS"),
        "{stored}"
    );
    // ... and the relay's own trace header, noting the submission.
    assert!(
        stored.contains(&format!(
            "by relay.example.test (Postrider) with ESMTPSA id {id}"
        )),
        "{stored}"
    );
    wait_queue(&a, &id, "");
    assert!(
        a.log().contains(&format!("queue_id={id}")) && a.log().contains("sent"),
        "{}",
        a.log()
    );
    assert!(
        dns.queries()
            .iter()
            .any(|(n, t)| n == "remote.test" && t == "MX")
    );
}

#[test]
fn a_trusted_network_relays_without_authentication() {
    let b = remote();
    let dns = dns();
    let a = relay(&dns, b.ports.mx, "[relay]\nnetworks = [\"127.0.0.0/8\"]\n");
    let mut c = a.connect(a.ports.mx);
    c.expect("EHLO app.example.test", "250");
    let r = c.send_mail(
        "app@example.test",
        &["bob@remote.test"],
        "Subject: from the app\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250);
    b.wait_for_mail("bob@remote.test", 1);
}

#[test]
fn clients_outside_the_trusted_networks_cannot_relay() {
    let b = remote();
    let dns = dns();
    let a = relay(&dns, b.ports.mx, "[relay]\nnetworks = [\"192.0.2.0/24\"]\n");
    let mut c = a.connect(a.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<x@elsewhere.test>", "250");
    c.expect("RCPT TO:<bob@remote.test>", "550 5.7.1");
    c.expect("RCPT TO:<bob@[127.0.0.1]>", "550 5.7.1");
}

#[test]
fn a_domain_that_does_not_exist_or_has_a_null_mx_fails_and_stays_visible() {
    let b = remote();
    let dns = dns();
    dns.add_null_mx("nomail.test");
    let a = relay(&dns, b.ports.mx, "");
    let id1 = submit(&a, "x@nowhere.test", "nx");
    let id2 = submit(&a, "x@nomail.test", "null mx");
    let shown = wait_queue(&a, &id1, "[failed]");
    assert!(
        shown.contains("5.1.2") && shown.contains("nowhere.test"),
        "{shown}"
    );
    let shown = wait_queue(&a, &id2, "[failed]");
    assert!(
        shown.contains("5.1.10") && shown.contains("null MX"),
        "{shown}"
    );
}

#[test]
fn a_dns_failure_defers_and_the_retry_delivers_once_dns_works() {
    let b = remote();
    let dns = dns();
    dns.servfail("remote.test");
    let a = relay(&dns, b.ports.mx, "");
    let id = submit(&a, "bob@remote.test", "retry me");
    let shown = wait_queue(&a, &id, "[deferred]");
    assert!(
        shown.contains("4.4.3") && shown.contains("next attempt"),
        "{shown}"
    );
    dns.remove("remote.test");
    dns.add_mx("remote.test", 10, "mx.remote.test");
    b.wait_for_mail("bob@remote.test", 1);
    wait_queue(&a, &id, "");
}

#[test]
fn when_the_first_mx_refuses_connections_the_next_one_is_used() {
    let b = remote();
    let dns = dns();
    dns.remove("remote.test");
    // Nothing listens on 127.0.0.9: the connection is refused at once.
    dns.add_mx("remote.test", 5, "dead.remote.test");
    dns.add_a("dead.remote.test", Ipv4Addr::new(127, 0, 0, 9));
    dns.add_mx("remote.test", 20, "mx.remote.test");
    let a = relay(&dns, b.ports.mx, "");
    submit(&a, "bob@remote.test", "second mx");
    b.wait_for_mail("bob@remote.test", 1);
    assert!(
        a.log().contains("dead.remote.test"),
        "the first MX was tried:\n{}",
        a.log()
    );
}

#[test]
fn a_recipient_the_remote_server_refuses_fails_with_its_reply() {
    let b = remote();
    let dns = dns();
    let a = relay(&dns, b.ports.mx, "");
    let id = submit(&a, "nobody@remote.test", "unknown there");
    let shown = wait_queue(&a, &id, "[failed]");
    assert!(shown.contains("550 5.1.1"), "{shown}");
}
