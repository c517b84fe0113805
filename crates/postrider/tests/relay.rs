//! Relaying: two real Postrider servers, the second the MX of `remote.test` as published by a
//! DNS server on 127.0.0.53, all on loopback.

use mail_parser::MimeHeaders;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use testkit::{TestDns, TestServer};

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

/// The relaying side, using `dns` and delivering to MX hosts on `mx_port`. `extra` continues
/// the `[delivery]` section.
fn relay(dns: &TestDns, mx_port: u16, extra: &str) -> TestServer {
    relay_outbound(dns, mx_port, "", extra)
}

/// Like `relay`, with more keys for `[outbound]`.
fn relay_outbound(dns: &TestDns, mx_port: u16, outbound: &str, extra: &str) -> TestServer {
    let a = TestServer::start_named(
        bin(),
        "relay.example.test",
        &format!(
            "[outbound]\nnameservers = [\"{}\"]\nmx_port = {mx_port}\n{outbound}\
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
    let mut c = a.login("alice@example.test", "alice-pw");
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

/// Waits for the `n`-th bounce in alice's mailbox and returns it raw.
fn bounce_for_alice(a: &TestServer, n: usize) -> Vec<u8> {
    let ids = a.wait_for_mail("alice@example.test", n);
    a.mailbox_show("alice@example.test", ids[n - 1])
}

/// The delivery-status part of a report, as (field, value) pairs per block, checked to be an
/// RFC 3464 multipart/report.
fn delivery_status(raw: &[u8]) -> Vec<Vec<(String, String)>> {
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a parsable report");
    let ct = msg.content_type().expect("a content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let part = msg
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.subtype() == Some("delivery-status"))
        })
        .expect("a message/delivery-status part");
    let text = String::from_utf8_lossy(part.contents()).into_owned();
    text.split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            block
                .lines()
                .filter_map(|l| {
                    l.split_once(": ")
                        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                })
                .collect()
        })
        .collect()
}

fn get<'a>(block: &'a [(String, String)], key: &str) -> &'a str {
    block
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {block:?}"))
}

#[test]
fn a_domain_that_does_not_exist_or_has_a_null_mx_is_bounced_at_once() {
    let b = remote();
    let dns = dns();
    dns.add_null_mx("nomail.test");
    let a = relay(&dns, b.ports.mx, "");
    let id1 = submit(&a, "x@nowhere.test", "nx");
    let report = delivery_status(&bounce_for_alice(&a, 1));
    assert_eq!(get(&report[1], "Final-Recipient"), "rfc822; x@nowhere.test");
    assert_eq!(get(&report[1], "Status"), "5.1.2");
    wait_queue(&a, &id1, "");
    submit(&a, "x@nomail.test", "null mx");
    let report = delivery_status(&bounce_for_alice(&a, 2));
    assert_eq!(get(&report[1], "Status"), "5.1.10");
    assert!(get(&report[1], "Diagnostic-Code").contains("null MX"));
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
fn a_recipient_the_remote_server_refuses_is_bounced_to_the_sender_with_its_reply() {
    let b = remote();
    let dns = dns();
    let a = relay(&dns, b.ports.mx, "");
    let mut c = a.login("alice@example.test", "alice-pw");
    c.expect(
        "MAIL FROM:<alice@example.test> RET=HDRS ENVID=trip-42",
        "250",
    );
    c.expect(
        "RCPT TO:<nobody@remote.test> NOTIFY=FAILURE ORCPT=rfc822;nobody@remote.test",
        "250",
    );
    c.expect("RCPT TO:<bob@remote.test>", "250");
    c.expect("DATA", "354");
    c.send_raw(b"From: alice@example.test\r\nSubject: half of it\r\n\r\nbody text\r\n.\r\n");
    let id = c.reply().text.rsplit(' ').next().unwrap().to_string();
    b.wait_for_mail("bob@remote.test", 1);
    let raw = bounce_for_alice(&a, 1);
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(
        text.starts_with("Return-Path: <>\r\n"),
        "a bounce has a null sender:\n{text}"
    );
    assert!(
        text.contains("Subject: Undelivered Mail Returned to Sender")
            && text.contains("Auto-Submitted: auto-replied")
    );
    let report = delivery_status(&raw);
    assert_eq!(get(&report[0], "Reporting-MTA"), "dns; relay.example.test");
    assert_eq!(get(&report[0], "Original-Envelope-Id"), "trip-42");
    assert_eq!(
        report.len(),
        2,
        "only the failed recipient is reported: {report:?}"
    );
    assert_eq!(
        get(&report[1], "Original-Recipient"),
        "rfc822;nobody@remote.test"
    );
    assert_eq!(
        get(&report[1], "Final-Recipient"),
        "rfc822; nobody@remote.test"
    );
    assert_eq!(get(&report[1], "Action"), "failed");
    assert_eq!(get(&report[1], "Status"), "5.1.1");
    assert!(
        get(&report[1], "Diagnostic-Code").starts_with("smtp; 550 5.1.1"),
        "{report:?}"
    );
    // RET=HDRS: the headers come back, not the body.
    assert!(
        text.contains("Content-Type: text/rfc822-headers")
            && text.contains("Subject: half of it")
            && !text.contains("body text")
    );
    // The readable part says what happened.
    assert!(
        text.contains("<nobody@remote.test>: remote server refused RCPT TO: 550 5.1.1"),
        "{text}"
    );
    wait_queue(&a, &id, "");
}

#[test]
fn notify_never_means_no_bounce_and_a_failed_bounce_is_not_bounced_again() {
    let b = remote();
    let dns = dns();
    let a = relay(&dns, b.ports.mx, "[relay]\nnetworks = [\"127.0.0.0/8\"]\n");
    let mut c = a.connect(a.ports.mx);
    c.expect("EHLO app.example.test", "250");
    c.expect("MAIL FROM:<alice@example.test>", "250");
    c.expect("RCPT TO:<nobody@remote.test> NOTIFY=NEVER", "250");
    c.expect("DATA", "354");
    c.send_raw(b"Subject: never tell\r\n\r\nx\r\n.\r\n");
    let id1 = c.reply().text.rsplit(' ').next().unwrap().to_string();
    let r = c.send_mail(
        "",
        &["nobody@remote.test"],
        "Subject: I am a bounce\r\n\r\nx\r\n",
    );
    let id2 = r.text.rsplit(' ').next().unwrap().to_string();
    wait_queue(&a, &id1, "");
    wait_queue(&a, &id2, "");
    assert!(a.log().contains("a bounce is never bounced"), "{}", a.log());
    assert!(
        a.admin_ok(&["mailbox", "list", "alice@example.test"])
            .contains("no messages")
    );
    assert_eq!(a.admin_ok(&["queue", "list"]).trim(), "queue is empty");
}

#[test]
fn a_recipient_still_undeliverable_after_max_queue_time_expires_and_is_bounced() {
    let b = remote();
    let dns = dns();
    dns.servfail("remote.test");
    let a = relay(&dns, b.ports.mx, "max_queue_time = \"3s\"\n");
    submit(&a, "bob@remote.test", "too late");
    let report = delivery_status(&bounce_for_alice(&a, 1));
    assert_eq!(get(&report[1], "Status"), "4.4.7");
    assert!(
        get(&report[1], "Diagnostic-Code").contains("4.4.3"),
        "the last error is kept: {report:?}"
    );
}

#[test]
fn ip_pools_choose_the_source_address_and_ehlo_name_of_each_message() {
    let b = remote();
    let dns = dns();
    let a = relay(
        &dns,
        b.ports.mx,
        "[relay]\nnetworks = [\"127.0.0.0/8\"]\n\
         [[ip_pool]]\nname = \"shared\"\ndefault = true\naddresses = [\
           { address = \"127.0.0.2\", helo = \"mta2.example.test\" },\
           { address = \"127.0.0.3\", helo = \"mta3.example.test\" } ]\n\
         [[ip_pool]]\nname = \"dedicated\"\naccounts = [\"alice@example.test\"]\n\
         addresses = [ { address = \"127.0.0.4\", helo = \"mta4.example.test\" } ]\n\
         [[ip_pool]]\nname = \"bulk\"\nlanes = [\"bulk\"]\n\
         addresses = [ { address = \"127.0.0.5\", helo = \"mta5.example.test\" } ]\n\
         [lanes]\nbulk_accounts = [\"news@example.test\"]\n",
    );
    a.add_account("news@example.test", "news-pw");
    let mut c = a.connect(a.ports.mx);
    c.expect("EHLO app.example.test", "250");
    for i in 0..4 {
        let r = c.send_mail(
            "app@example.test",
            &["bob@remote.test"],
            &format!("Subject: shared {i}\r\n\r\nx\r\n"),
        );
        assert_eq!(r.code, 250);
    }
    submit(&a, "bob@remote.test", "dedicated");
    submit_as(
        &a,
        "news@example.test",
        "news-pw",
        "bob@remote.test",
        "by lane",
    );
    let ids = b.wait_for_mail("bob@remote.test", 6);
    let mut seen: Vec<(String, String)> = Vec::new();
    for id in ids {
        let m = String::from_utf8(b.mailbox_show("bob@remote.test", id)).unwrap();
        // The receiving server's own Received header is the first one after its prefix.
        let from = m
            .lines()
            .find(|l| l.starts_with("Received: from "))
            .unwrap()
            .to_string();
        let subject = m
            .lines()
            .find(|l| l.starts_with("Subject: "))
            .unwrap()
            .to_string();
        seen.push((subject, from));
    }
    let count = |needle: &str| {
        seen.iter()
            .filter(|(s, f)| s.contains("shared") && f.contains(needle))
            .count()
    };
    assert_eq!(count("from mta2.example.test ([127.0.0.2])"), 2, "{seen:?}");
    assert_eq!(count("from mta3.example.test ([127.0.0.3])"), 2, "{seen:?}");
    let dedicated = seen.iter().find(|(s, _)| s.contains("dedicated")).unwrap();
    assert!(
        dedicated.1.contains("from mta4.example.test ([127.0.0.4])"),
        "{seen:?}"
    );
    // news@ is in the bulk lane, and the bulk lane has a pool of its own.
    let by_lane = seen.iter().find(|(s, _)| s.contains("by lane")).unwrap();
    assert!(
        by_lane.1.contains("from mta5.example.test ([127.0.0.5])"),
        "{seen:?}"
    );
}

#[test]
fn sigkill_during_delivery_loses_nothing_every_acknowledged_message_arrives_after_restart() {
    let b = remote();
    let dns = dns();
    let mut a = relay(&dns, b.ports.mx, "[relay]\nnetworks = [\"127.0.0.0/8\"]\n");
    let port = a.ports.mx;
    let cert = a.certificate();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|t| {
            let stop = stop.clone();
            let cert = cert.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut n = 0;
                'outer: while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                        break;
                    }
                    let mut c = testkit::Conn::plain(port, cert.clone());
                    if c.cmd("EHLO app.example.test").code != 250 {
                        break;
                    }
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let subject = format!("crash-{t}-{n}");
                        n += 1;
                        // Pipelined, as a busy application would.
                        c.send("MAIL FROM:<app@example.test>");
                        c.send("RCPT TO:<bob@remote.test>");
                        c.send("DATA");
                        let replies: Vec<_> = (0..3).map(|_| c.try_reply()).collect();
                        if replies.iter().any(|r| r.is_none()) {
                            break 'outer;
                        }
                        c.send_raw(format!("Subject: {subject}\r\n\r\nx\r\n.\r\n").as_bytes());
                        match c.try_reply() {
                            Some(r) if r.code == 250 => acked.push(subject),
                            Some(_) => {}
                            None => break 'outer,
                        }
                    }
                }
                acked
            })
        })
        .collect();
    // Let mail flow (accepted and being relayed), then crash the relay mid-delivery.
    std::thread::sleep(Duration::from_millis(1500));
    a.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<String> = clients
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        acked.len() > 10,
        "too few messages were acknowledged to test anything: {}",
        acked.len()
    );
    a.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listing = a.admin_ok(&["queue", "list"]);
        if listing.trim() == "queue is empty" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queue never emptied:\n{listing}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ids = b.wait_for_mail("bob@remote.test", acked.len());
    let mut subjects = std::collections::HashMap::new();
    for id in ids {
        let m = String::from_utf8_lossy(&b.mailbox_show("bob@remote.test", id)).into_owned();
        if let Some(s) = m.lines().find_map(|l| l.strip_prefix("Subject: ")) {
            *subjects.entry(s.to_string()).or_insert(0) += 1;
        }
    }
    let missing: Vec<&String> = acked
        .iter()
        .filter(|s| !subjects.contains_key(*s))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    let duplicates = subjects.values().filter(|n| **n > 1).count();
    println!(
        "{} acknowledged, all delivered; {duplicates} delivered twice (at-least-once after a crash)",
        acked.len()
    );
}

fn submit_as(a: &TestServer, user: &str, pw: &str, to: &str, subject: &str) -> String {
    let mut c = a.login(user, pw);
    let r = c.send_mail(
        user,
        &[to],
        &format!("From: {user}\r\nSubject: {subject}\r\n\r\nx\r\n"),
    );
    assert_eq!(r.code, 250, "{r:?}");
    r.text.rsplit(' ').next().unwrap().to_string()
}

/// A mail host on 127.0.0.1 that accepts connections and never says a word; its port.
fn blackhole() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

#[test]
fn bulk_mail_cannot_take_the_delivery_slots_reserved_for_transactional_mail() {
    // A mail host that never says a word: every job sent there waits.
    let hole = blackhole();
    let b = remote();
    let dns = dns();
    let a = relay(
        &dns,
        b.ports.mx,
        &format!(
            "[lanes]\nbulk_accounts = [\"news@example.test\"]\nmax_deliveries = 2\nreserved_transactional = 1\n\
             [[transport]]\ndomain = \"slow.test\"\nsmarthost = \"127.0.0.1:{hole}\"\n"
        ),
    );
    a.add_account("news@example.test", "news-pw");
    let mut bulk_ids = Vec::new();
    for i in 0..3 {
        bulk_ids.push(submit_as(
            &a,
            "news@example.test",
            "news-pw",
            &format!("reader{i}@slow.test"),
            "newsletter",
        ));
    }
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    submit(&a, "bob@remote.test", "password reset");
    b.wait_for_mail("bob@remote.test", 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "transactional mail waited behind bulk mail"
    );
    let bulk = a.admin_ok(&["queue", "list", "--lane", "bulk"]);
    assert!(bulk_ids.iter().all(|id| bulk.contains(id)), "{bulk}");
    assert!(
        a.admin_ok(&["queue", "show", &bulk_ids[0]])
            .contains("bulk")
    );
}

#[test]
fn a_452_for_too_many_recipients_sends_the_rest_in_another_transaction_at_once() {
    let b =
        TestServer::start_named(bin(), "mx.remote.test", "[smtp]\nmax_recipients = 2\n").unwrap();
    b.admin_ok(&["domain", "add", "remote.test"]);
    for u in ["u1", "u2", "u3"] {
        b.add_account(&format!("{u}@remote.test"), "pw");
    }
    let dns = dns();
    let a = relay(&dns, b.ports.mx, "");
    let mut c = a.login("alice@example.test", "alice-pw");
    let r = c.send_mail(
        "alice@example.test",
        &["u1@remote.test", "u2@remote.test", "u3@remote.test"],
        "From: alice@example.test\r\nSubject: three\r\n\r\nx\r\n",
    );
    let id = r.text.rsplit(' ').next().unwrap().to_string();
    b.wait_for_mail("u1@remote.test", 1);
    b.wait_for_mail("u2@remote.test", 1);
    // The third got 452 4.5.3 and went in a second transaction on the same connection, without
    // waiting for a retry (RFC 5321 §4.5.3.1.10).
    b.wait_for_mail("u3@remote.test", 1);
    wait_queue(&a, &id, "");
    let log = a.log();
    assert!(
        log.contains("too many recipients for one transaction; sending the rest in another"),
        "{log}"
    );
    assert!(!log.contains("deferred:"), "{log}");
    // One connection carried both transactions: the third recipient went in the second.
    let sent = |to: &str| {
        log.lines()
            .find(|l| l.contains(" sent") && l.contains(&format!("to=\"{to}\"")))
            .unwrap_or_else(|| panic!("no sent line for {to}:\n{log}"))
            .to_string()
    };
    assert!(sent("u1@remote.test").contains("conn_use=1"), "{log}");
    assert!(sent("u3@remote.test").contains("conn_use=2"), "{log}");
}

#[test]
fn a_long_delay_gets_one_delayed_report_and_the_mail_still_arrives() {
    let b = remote();
    let dns = dns();
    dns.servfail("remote.test");
    let a = relay(&dns, b.ports.mx, "delay_warning = \"1s\"\n");
    let id = submit(&a, "bob@remote.test", "slow road");
    let report = String::from_utf8(bounce_for_alice(&a, 1)).unwrap();
    for want in [
        "Subject: Delayed Mail (still being retried)",
        "Action: delayed",
        "Status: 4.4.3",
        "Final-Recipient: rfc822; bob@remote.test",
    ] {
        assert!(report.contains(want), "missing {want:?}:\n{report}");
    }
    // Some more failed attempts, then DNS works again.
    std::thread::sleep(Duration::from_secs(3));
    dns.remove("remote.test");
    dns.add_mx("remote.test", 10, "mx.remote.test");
    b.wait_for_mail("bob@remote.test", 1);
    wait_queue(&a, &id, "");
    let reports = a.wait_for_mail("alice@example.test", 1);
    assert_eq!(reports.len(), 1, "the delay report is sent once");
    // NOTIFY=NEVER (or a NOTIFY without DELAY) gets none.
    dns.servfail("never.test");
    let mut c = a.login("alice@example.test", "alice-pw");
    c.expect("MAIL FROM:<alice@example.test>", "250");
    c.expect("RCPT TO:<x@never.test> NOTIFY=FAILURE", "250");
    c.expect("DATA", "354");
    c.send_raw(b"From: alice@example.test\r\nSubject: quiet\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        a.wait_for_mail("alice@example.test", 1).len(),
        1,
        "no delay report without DELAY"
    );
}

#[test]
fn a_connection_dropped_in_the_middle_of_data_is_retried_and_then_delivered() {
    // A mail host that takes the message text and hangs up before answering, once; then the
    // real MX takes over.
    let flaky = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let flaky_port = flaky.local_addr().unwrap().port();
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = dropped.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        if let Some(Ok(mut s)) = flaky.incoming().next() {
            let _ = s.write_all(b"220 flaky.test ESMTP\r\n");
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            let mut in_data = false;
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                let cmd = line.to_ascii_uppercase();
                if in_data {
                    if cmd.starts_with("SUBJECT") {
                        // In the middle of the message text: hang up.
                        seen.store(true, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                    line.clear();
                    continue;
                }
                let reply: &[u8] = if cmd.starts_with("EHLO") {
                    b"250 flaky.test\r\n"
                } else if cmd.starts_with("DATA") {
                    in_data = true;
                    b"354 go ahead\r\n"
                } else {
                    b"250 ok\r\n"
                };
                let _ = s.write_all(reply);
                line.clear();
            }
        }
    });
    let b = remote();
    let dns = dns();
    let a = relay(
        &dns,
        b.ports.mx,
        &format!(
            "[[transport]]\ndomain = \"remote.test\"\nsmarthost = \"127.0.0.1:{flaky_port}\"\n"
        ),
    );
    let id = submit(&a, "bob@remote.test", "interrupted");
    let shown = wait_queue(&a, &id, "[deferred]");
    assert!(shown.contains("4.4.2"), "{shown}");
    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    // The flaky host is gone now (its thread ended): point the route back to the real MX by
    // restarting without the transport.
    let mut a = a;
    a.stop();
    let text = std::fs::read_to_string(&a.config).unwrap();
    let cut = text.find("[[transport]]").unwrap();
    let end = text[cut..].find("\n[[listener]]").map(|e| cut + e).unwrap();
    std::fs::write(&a.config, format!("{}{}", &text[..cut], &text[end..])).unwrap();
    a.spawn().unwrap();
    a.admin_ok(&["queue", "retry", &id]);
    b.wait_for_mail("bob@remote.test", 1);
    wait_queue(&a, &id, "");
}

#[test]
fn mx_answers_are_cached_within_their_ttl() {
    let b = remote();
    let dns = dns();
    dns.set_ttl(300);
    let a = relay(&dns, b.ports.mx, "");
    submit(&a, "bob@remote.test", "one");
    b.wait_for_mail("bob@remote.test", 1);
    submit(&a, "bob@remote.test", "two");
    b.wait_for_mail("bob@remote.test", 2);
    let mx_queries = dns
        .queries()
        .iter()
        .filter(|(n, t)| n == "remote.test" && t == "MX")
        .count();
    assert_eq!(
        mx_queries, 1,
        "the second message used the cached MX answer"
    );
}

/// The `conn_use` of each "sent" log line of the relay, in order.
fn conn_uses(a: &TestServer) -> Vec<u32> {
    a.log()
        .lines()
        .filter(|l| l.contains(" sent"))
        .filter_map(|l| l.split("conn_use=").nth(1))
        .filter_map(|v| v.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn messages_to_one_destination_share_a_connection_up_to_the_per_connection_limit() {
    let b = remote();
    let dns = dns();
    // One connection at a time to remote.test, at most 3 messages over each.
    let a = relay_outbound(
        &dns,
        b.ports.mx,
        "max_connections_per_domain = 1\nmax_messages_per_connection = 3\nconnection_idle_time = \"5s\"\n",
        "",
    );
    let mut c = a.login("alice@example.test", "alice-pw");
    for i in 0..7 {
        let r = c.send_mail(
            "alice@example.test",
            &["bob@remote.test"],
            &format!("From: alice@example.test\r\nSubject: m{i}\r\n\r\nbody {i}\r\n"),
        );
        assert_eq!(r.code, 250, "{r:?}");
    }
    b.wait_for_mail("bob@remote.test", 7);
    let uses = conn_uses(&a);
    assert_eq!(uses.len(), 7, "{}", a.log());
    // Reused (a second message over one connection) but never past the limit.
    assert!(
        uses.iter().any(|u| *u > 1),
        "no connection was reused: {uses:?}"
    );
    assert!(uses.iter().all(|u| *u <= 3), "limit exceeded: {uses:?}");
    // 7 messages at most 3 per connection: at least 3 connections, and fewer than 7.
    let fresh = uses.iter().filter(|u| **u == 1).count();
    assert!((3..7).contains(&fresh), "{uses:?}");
}

#[test]
fn with_connection_idle_time_zero_every_message_gets_its_own_connection() {
    let b = remote();
    let dns = dns();
    let a = relay_outbound(
        &dns,
        b.ports.mx,
        "max_connections_per_domain = 1\nconnection_idle_time = \"0s\"\n",
        "",
    );
    for i in 0..3 {
        submit(&a, "bob@remote.test", &format!("m{i}"));
    }
    b.wait_for_mail("bob@remote.test", 3);
    assert_eq!(conn_uses(&a), vec![1, 1, 1], "{}", a.log());
}

#[test]
fn a_reused_connection_the_remote_server_closed_is_replaced_without_a_deferral() {
    // The remote server drops idle clients after 1 s; the relay keeps idle connections for 5 s.
    let b = TestServer::start_named(
        bin(),
        "mx.remote.test",
        "[smtp]\ncommand_timeout = \"1s\"\n",
    )
    .unwrap();
    b.admin_ok(&["domain", "add", "remote.test"]);
    b.add_account("bob@remote.test", "pw");
    let dns = dns();
    let a = relay_outbound(&dns, b.ports.mx, "connection_idle_time = \"5s\"\n", "");
    submit(&a, "bob@remote.test", "first");
    b.wait_for_mail("bob@remote.test", 1);
    std::thread::sleep(Duration::from_millis(2500));
    let id = submit(&a, "bob@remote.test", "second");
    b.wait_for_mail("bob@remote.test", 2);
    wait_queue(&a, &id, "");
    let log = a.log();
    assert!(!log.contains("deferred:"), "{log}");
    assert_eq!(conn_uses(&a), vec![1, 1], "{log}");
}

#[test]
fn a_failed_bounce_is_copied_to_the_configured_postmaster_once_and_a_failed_copy_is_not_copied() {
    let b = remote();
    let dns = dns();
    // The copy goes to a local postmaster mailbox.
    let a = relay(
        &dns,
        b.ports.mx,
        "failed_bounce_copy_to = \"postmaster@example.test\"\n[relay]\nnetworks = [\"127.0.0.0/8\"]\n",
    );
    let mut c = a.connect(a.ports.mx);
    c.expect("EHLO app.example.test", "250");
    let r = c.send_mail(
        "",
        &["nobody@remote.test"],
        "Subject: I am a bounce\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    let ids = a.wait_for_mail("postmaster@example.test", 1);
    let copy = String::from_utf8(a.mailbox_show("postmaster@example.test", ids[0])).unwrap();
    for want in [
        "To: <postmaster@example.test>",
        "(postmaster copy)",
        "Final-Recipient: rfc822; nobody@remote.test",
        "Action: failed",
        "Status: 5.1.1",
    ] {
        assert!(copy.contains(want), "missing {want:?}:\n{copy}");
    }
    drop(a);

    // The copy itself cannot be delivered (unknown at the remote side): it is not copied again.
    let a = relay(
        &dns,
        b.ports.mx,
        "failed_bounce_copy_to = \"no-postmaster@remote.test\"\n[relay]\nnetworks = [\"127.0.0.0/8\"]\n",
    );
    let mut c = a.connect(a.ports.mx);
    c.expect("EHLO app.example.test", "250");
    let r = c.send_mail(
        "",
        &["nobody@remote.test"],
        "Subject: I am a bounce\r\n\r\nx\r\n",
    );
    let id = r.text.rsplit(' ').next().unwrap().to_string();
    wait_queue(&a, &id, "");
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.admin_ok(&["queue", "list"]).trim() != "queue is empty" {
        assert!(Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = a.log();
    assert_eq!(log.matches("delivery report queued").count(), 1, "{log}");
    assert_eq!(log.matches("a bounce is never bounced").count(), 2, "{log}");
}

#[test]
fn a_domain_whose_mail_host_has_only_an_ipv6_address_gets_its_mail_over_ipv6() {
    let port = std::net::TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The receiving server also listens on [::1].
    let b = TestServer::start_named(
        bin(),
        "mx.remote.test",
        &format!("[[listener]]\nname = \"mx6\"\naddress = \"[::1]:{port}\"\nrole = \"mx\"\n"),
    )
    .unwrap();
    b.admin_ok(&["domain", "add", "remote.test"]);
    b.add_account("bob@remote.test", "pw");
    let dns = TestDns::start(Ipv4Addr::new(127, 0, 0, 53)).unwrap();
    dns.add_mx("remote.test", 10, "mx6.remote.test");
    dns.add_aaaa("mx6.remote.test", std::net::Ipv6Addr::LOCALHOST);
    let a = relay(&dns, port, "");
    submit(&a, "bob@remote.test", "over six");
    let ids = b.wait_for_mail("bob@remote.test", 1);
    let stored = String::from_utf8(b.mailbox_show("bob@remote.test", ids[0])).unwrap();
    assert!(
        stored.contains("Received: from relay.example.test ([IPv6:::1])"),
        "{stored}"
    );
    assert!(
        dns.queries()
            .iter()
            .any(|(n, t)| n == "mx6.remote.test" && t == "AAAA")
    );
}

#[test]
fn a_restart_with_a_full_queue_delivers_everything() {
    let mut b = remote();
    let dns = dns();
    let mut a = relay(&dns, b.ports.mx, "[relay]\nnetworks = [\"127.0.0.0/8\"]\n");
    // The remote server is down: everything accepted waits in the queue.
    b.stop();
    let mut c = a.connect(a.ports.mx);
    c.expect("EHLO app.example.test", "250");
    for i in 0..30 {
        let r = c.send_mail(
            "app@example.test",
            &["bob@remote.test"],
            &format!("Subject: queued {i}\r\n\r\nbody {i}\r\n"),
        );
        assert_eq!(r.code, 250, "{r:?}");
    }
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !a.log().contains("deferred:") {
        assert!(Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    a.stop();
    let queued = a.admin_ok(&["queue", "list"]);
    assert_eq!(queued.matches("app@example.test").count(), 30, "{queued}");
    // Both come back; the relay resumes its queue and delivers every message once.
    b.spawn().unwrap();
    a.spawn().unwrap();
    let ids = b.wait_for_mail("bob@remote.test", 30);
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.admin_ok(&["queue", "list"]).trim() != "queue is empty" {
        assert!(Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut subjects: Vec<String> = ids
        .iter()
        .map(|id| {
            let m = String::from_utf8(b.mailbox_show("bob@remote.test", *id)).unwrap();
            m.lines()
                .find(|l| l.starts_with("Subject: "))
                .unwrap()
                .to_string()
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 30, "{subjects:?}");
    assert_eq!(
        b.admin_ok(&["mailbox", "list", "bob@remote.test"])
            .matches("queued ")
            .count(),
        30
    );
}

#[test]
fn a_dead_destination_backlog_is_deferred_at_once_and_other_mail_goes_through() {
    let hole = blackhole();
    let b = remote();
    let dns = dns();
    // One connection at a time per destination, 3 s to wait for a greeting, and (from
    // `relay`) 1 s before the first retry, which is also how long a dead destination is
    // skipped.
    let a = relay_outbound(
        &dns,
        b.ports.mx,
        "command_timeout = \"3s\"\nmax_connections_per_domain = 1\n",
        &format!(
            "[relay]\nnetworks = [\"127.0.0.0/8\"]\n\
             [[transport]]\ndomain = \"dead.test\"\nsmarthost = \"127.0.0.1:{hole}\"\n"
        ),
    );
    let mut c = a.connect(a.ports.mx);
    c.expect("EHLO app.example.test", "250");
    for i in 0..12 {
        let r = c.send_mail(
            "app@example.test",
            &[&format!("user{i}@dead.test")],
            &format!("Subject: to the dead {i}\r\n\r\nx\r\n"),
        );
        assert_eq!(r.code, 250, "{r:?}");
    }
    let started = Instant::now();
    let r = c.send_mail(
        "app@example.test",
        &["bob@remote.test"],
        "Subject: alive\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    b.wait_for_mail("bob@remote.test", 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "mail for a live domain waited behind a dead one: {:?}",
        started.elapsed()
    );
    // One attempt waits out the 3 s timeout; the other messages due meanwhile are deferred
    // without a connection each (without that, 12 × 3 s = 36 s one after the other).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = a.log();
        let deferred = log
            .lines()
            .filter(|l| l.contains("deferred:") && l.contains("dead.test"))
            .count();
        if deferred >= 12 {
            assert!(log.contains("recently unreachable"), "{log}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {deferred} of 12 deferred:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
