//! Queue administration against a running server: list filters, hold and release, retry,
//! bounce, delete, bulk actions and the qshape-like summary.
//!
//! Mail stays in the queue either because delivery is paused or because it is relayed to
//! `slow.test`, whose MX (127.0.0.9, published by a test DNS server on 127.0.0.53) refuses
//! connections, so every attempt is deferred for an hour.

use std::net::Ipv4Addr;
use std::process::Output;
use std::time::{Duration, Instant};
use testkit::{TestDns, TestServer};

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_postrider"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// DNS where slow.test and far.test have MX hosts nothing listens on.
fn dead_mx_dns() -> TestDns {
    let dns = TestDns::start(Ipv4Addr::new(127, 0, 0, 53)).unwrap();
    for domain in ["slow.test", "far.test"] {
        let mx = format!("mx.{domain}");
        dns.add_mx(domain, 10, &mx);
        dns.add_a(&mx, Ipv4Addr::new(127, 0, 0, 9));
    }
    dns
}

/// A server that relays for 127.0.0.0/8 through `dns`, retries after an hour, and has the
/// local account alice@example.test.
fn relaying_server(dns: &TestDns) -> TestServer {
    let s = TestServer::start(
        bin(),
        &format!(
            "[outbound]\nnameservers = [\"{}\"]\nmx_port = 2\n\
             [relay]\nnetworks = [\"127.0.0.0/8\"]\n\
             [delivery]\nretry_initial = \"1h\"\npoll_interval = \"200ms\"\n",
            dns.addr()
        ),
    )
    .unwrap();
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "pw");
    s
}

/// A server that keeps everything it accepts in the queue (delivery paused), relaying allowed.
fn paused_server() -> TestServer {
    TestServer::start(
        bin(),
        "[relay]\nnetworks = [\"127.0.0.0/8\"]\n[delivery]\npaused = true\n",
    )
    .unwrap()
}

/// Sends one message on the mx port and returns its queue id.
fn send(s: &TestServer, from: &str, to: &[&str]) -> String {
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO app.example.test", "250");
    let r = c.send_mail(
        from,
        to,
        &format!(
            "From: {from}\r\nSubject: to {}\r\n\r\nhello\r\n",
            to.join(", ")
        ),
    );
    assert_eq!(r.code, 250, "{r:?}");
    r.text.rsplit(' ').next().unwrap().to_string()
}

/// Waits until `queue show ID` contains `want` (or, with `want` empty, the entry is gone).
fn wait_show(s: &TestServer, id: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = s.admin(&["queue", "show", id]);
        let text = stdout(&out);
        if (want.is_empty() && !out.status.success()) || (!want.is_empty() && text.contains(want)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "queue entry {id} never showed {want:?}:\n{text}\nlog:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The ids in a `queue list` output.
fn listed(s: &TestServer, args: &[&str]) -> Vec<String> {
    let mut full = vec!["queue", "list"];
    full.extend_from_slice(args);
    s.admin_ok(&full)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.len() == 13)
        .map(str::to_string)
        .collect()
}

/// The `queue list` row of one message.
fn row(s: &TestServer, id: &str) -> String {
    s.admin_ok(&["queue", "list"])
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not listed"))
        .to_string()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn list_filters_by_sender_recipient_domain_state_and_lane_and_combines_them() {
    let dns = dead_mx_dns();
    let s = relaying_server(&dns);
    let m1 = send(&s, "alice@example.test", &["x@slow.test"]);
    let m2 = send(&s, "bob@other.test", &["y@slow.test"]);
    let m3 = send(&s, "alice@example.test", &["z@far.test"]);
    for id in [&m1, &m2, &m3] {
        let shown = wait_show(&s, id, "[deferred]");
        assert!(shown.contains("next attempt"), "{shown}");
    }
    assert!(row(&s, &m1).ends_with("1 pending"), "{}", row(&s, &m1));

    assert_eq!(
        listed(&s, &["--sender", "Alice@EXAMPLE.test"]),
        sorted(vec![m1.clone(), m3.clone()])
    );
    assert_eq!(
        listed(&s, &["--recipient", "Y@Slow.Test"]),
        vec![m2.clone()]
    );
    assert_eq!(listed(&s, &["--domain", "FAR.test"]), vec![m3.clone()]);
    assert_eq!(
        listed(
            &s,
            &["--domain", "slow.test", "--sender", "alice@example.test"]
        ),
        vec![m1.clone()],
        "filters combine with AND"
    );
    assert_eq!(
        listed(&s, &["--state", "deferred"]),
        sorted(vec![m1.clone(), m2.clone(), m3.clone()])
    );
    assert_eq!(listed(&s, &["--lane", "Transactional"]).len(), 3);
    let none = s.admin_ok(&["queue", "list", "--lane", "bulk"]);
    assert!(
        none.contains("no message matches (3 in the queue)"),
        "{none}"
    );

    assert_eq!(
        s.admin_ok(&["queue", "hold", &m1]).trim(),
        format!("held {m1}")
    );
    assert_eq!(listed(&s, &["--state", "held"]), vec![m1.clone()]);
    assert_eq!(
        listed(&s, &["--state", "deferred"]),
        sorted(vec![m2.clone(), m3.clone()]),
        "a held message is listed as held, not deferred"
    );
    assert!(row(&s, &m1).ends_with("held"), "{}", row(&s, &m1));
    let filtered = s.admin_ok(&["queue", "list", "--state", "held"]);
    assert!(
        filtered.contains("1 message(s) of 3 in the queue"),
        "{filtered}"
    );
}

#[test]
fn a_held_message_is_left_alone_until_released_and_retry_makes_it_due_at_once() {
    let dns = dead_mx_dns();
    let s = relaying_server(&dns);
    let id = send(&s, "alice@example.test", &["x@slow.test"]);
    wait_show(&s, &id, "attempts 1");

    s.admin_ok(&["queue", "hold", &id]);
    let shown = s.admin_ok(&["queue", "show", &id]);
    assert!(
        shown.contains("held since") && shown.contains("lane:      transactional"),
        "{shown}"
    );
    // Retrying a held message makes it due but does not release it: the scheduler, which looks
    // every 200 ms, still leaves it alone.
    let retried = s.admin_ok(&["queue", "retry", &id]);
    assert!(
        retried.starts_with(&format!("retried {id}\n")) && retried.contains("is held"),
        "{retried}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let shown = s.admin_ok(&["queue", "show", &id]);
    assert!(
        shown.contains("attempts 1") && shown.contains("[deferred]"),
        "{shown}"
    );

    // Released, it is due (the retry set its next attempt to now) and is tried again at once,
    // not an hour later.
    assert_eq!(
        s.admin_ok(&["queue", "release", &id]).trim(),
        format!("released {id}")
    );
    let shown = wait_show(&s, &id, "attempts 2");
    assert!(!shown.contains("held since"), "{shown}");
    assert!(row(&s, &id).ends_with("1 pending"));

    // A plain retry, with the next attempt an hour away, is also tried at once.
    s.admin_ok(&["queue", "retry", &id]);
    wait_show(&s, &id, "attempts 3");
}

#[test]
fn bounce_returns_the_message_to_its_sender_and_the_entry_leaves_the_queue() {
    let dns = dead_mx_dns();
    let s = relaying_server(&dns);
    let id = send(&s, "alice@example.test", &["x@slow.test"]);
    wait_show(&s, &id, "[deferred]");
    assert_eq!(
        s.admin_ok(&["queue", "bounce", &id]).trim(),
        format!("bounced {id}")
    );
    let ids = s.wait_for_mail("alice@example.test", 1);
    let dsn = String::from_utf8(s.mailbox_show("alice@example.test", ids[0])).unwrap();
    assert!(
        dsn.contains("Return-Path: <>")
            && dsn.contains("Final-Recipient: rfc822; x@slow.test")
            && dsn.contains("Status: 5.0.0")
            && dsn.contains("returned by the administrator"),
        "{dsn}"
    );
    wait_show(&s, &id, "");
}

#[test]
fn bulk_actions_select_by_filter_or_all_and_print_one_summary_line() {
    let s = paused_server();
    let slow: Vec<String> = (0..3)
        .map(|i| send(&s, &format!("app{i}@example.net"), &["a@slow.test"]))
        .collect();
    let far: Vec<String> = (0..2)
        .map(|_| send(&s, "news@example.net", &["b@far.test"]))
        .collect();
    let local = send(&s, "app0@example.net", &["postmaster@localhost"]);

    let out = s.admin_ok(&["queue", "hold", "--domain", "slow.test"]);
    assert_eq!(
        out, "held 3 message(s)\n",
        "one summary line, no line per message"
    );
    assert_eq!(listed(&s, &["--state", "held"]), slow);
    assert_eq!(
        s.admin_ok(&["queue", "release", "--all"]),
        "released 6 message(s)\n"
    );
    assert!(listed(&s, &["--state", "held"]).is_empty());

    assert_eq!(
        s.admin_ok(&["queue", "delete", "--sender", "NEWS@example.net"]),
        "deleted 2 message(s)\n"
    );
    let left = listed(&s, &[]);
    assert!(far.iter().all(|id| !left.contains(id)), "{left:?}");
    assert_eq!(left.len(), 4);

    // Delivery is paused, so a bounced message stays with its failed recipient.
    assert_eq!(
        s.admin_ok(&["queue", "bounce", "--sender", "app2@example.net"]),
        "bounced 1 message(s)\n"
    );
    assert_eq!(listed(&s, &["--state", "failed"]), vec![slow[2].clone()]);
    assert!(row(&s, &slow[2]).ends_with("1 failed"));
    let shown = s.admin_ok(&["queue", "show", &slow[2]]);
    assert!(
        shown.contains("[failed]")
            && shown.contains("last error: 5.0.0 returned by the administrator"),
        "{shown}"
    );
    assert_eq!(
        listed(&s, &["--state", "queued"]),
        vec![slow[0].clone(), slow[1].clone(), local.clone()]
    );
    assert_eq!(
        s.admin_ok(&["queue", "retry", "--state", "queued"]),
        "retried 3 message(s)\n"
    );
}

#[test]
fn summary_counts_pending_recipients_per_domain_largest_first_after_a_total_row() {
    let s = paused_server();
    for _ in 0..3 {
        send(&s, "app@example.net", &["a@slow.test"]);
    }
    send(&s, "app@example.net", &["b@far.test", "c@far.test"]);
    send(&s, "app@example.net", &["postmaster@localhost"]);
    let out = s.admin_ok(&["queue", "summary"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "DOMAIN", "TOTAL", "5m", "10m", "20m", "40m", "80m", "160m", "320m", "640m", "1280m",
            "1280m+"
        ],
        "{out}"
    );
    fn expect<'a>(name: &'a str, n: &'a str) -> Vec<&'a str> {
        let mut v = vec![name, n, n];
        v.extend(["0"; 9]);
        v
    }
    assert_eq!(rows[1], expect("TOTAL", "6"), "{out}");
    assert_eq!(rows[2], expect("slow.test", "3"), "{out}");
    assert_eq!(rows[3], expect("far.test", "2"), "{out}");
    assert_eq!(rows[4], expect("(local)", "1"), "{out}");
    assert_eq!(rows.len(), 5, "{out}");
}

#[test]
fn unknown_ids_and_bulk_actions_without_a_selection_are_refused_with_a_hint() {
    let s = paused_server();
    let id = send(&s, "app@example.net", &["a@slow.test"]);
    for action in ["show", "retry", "hold", "release", "bounce", "delete"] {
        let out = s.admin(&["queue", action, "0000000000000"]);
        assert_eq!(out.status.code(), Some(1), "{action}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("no message 0000000000000 in the queue")
                && err.contains("`postrider queue list`"),
            "{action}: {err}"
        );
    }
    for action in ["retry", "hold", "release", "bounce", "delete"] {
        let out = s.admin(&["queue", action]);
        assert_eq!(out.status.code(), Some(1), "{action}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("say which messages to {action}"))
                && err.contains("--all")
                && err.contains("queue id"),
            "{action}: {err}"
        );
    }
    // An id together with a selection is a usage error.
    let out = s.admin(&["queue", "hold", &id, "--all"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Nothing was changed by the refused commands; ids are accepted in lower case.
    assert!(row(&s, &id).ends_with("1 pending"));
    assert_eq!(
        s.admin_ok(&["queue", "hold", &id.to_lowercase()]).trim(),
        format!("held {id}")
    );
}
