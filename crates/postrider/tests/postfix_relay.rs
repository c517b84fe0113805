//! Postfix as a real peer MTA: a private Postfix instance (scripts/postfix-instance, relay
//! mode) relays everything it accepts to Postrider's mx listener. Messages go in at Postfix
//! with Python smtplib and must come out in Postrider's mailbox with their body and Subject
//! unchanged, and with Postrider's Received naming Postfix's EHLO name.
//!
//! Postfix must be installed: a missing one fails the test with "run scripts/install-test-deps".

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::TestServer;

const ALICE: &str = "alice@example.test";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postfix-instance")
}

/// A running Postfix instance, stopped on drop (also when the test fails).
struct Postfix {
    dir: PathBuf,
    port: u16,
}

impl Postfix {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog"))
            .unwrap_or_else(|e| format!("(no maillog: {e})"))
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if self.dir.join("etc/main.cf").exists() {
            let out = Command::new(script()).arg("stop").arg(&self.dir).output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "postfix-instance stop {} failed: {}",
                    self.dir.display(),
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => eprintln!("postfix-instance stop {}: {e}", self.dir.display()),
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn message(n: usize) -> Vec<u8> {
    format!(
        "From: Carol <carol@remote.test>\r\nTo: Alice <alice@example.test>\r\nSubject: via postfix {n}\r\n\
         Message-ID: <postfix-relay-{n}@remote.test>\r\nDate: Sat, 28 Nov 2026 10:00:0{n} +0000\r\n\r\n\
         Message {n} through Postfix.\r\n.a line with a leading dot\r\n.\r\ntrailing blanks  \r\n\r\n{}\r\nend {n}\r\n",
        "0123456789".repeat(90)
    )
    .into_bytes()
}

const PY_SEND: &str = r#"
import smtplib, socket, sys
port, files = int(sys.argv[1]), sys.argv[2:]
class Loopback(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        return socket.create_connection(('127.0.0.1', port), timeout)
with Loopback('127.0.0.1', port, local_hostname='python.client.test', timeout=30) as s:
    for f in files:
        refused = s.sendmail('carol@remote.test', ['alice@example.test'], open(f, 'rb').read())
        assert not refused, refused
        print('sent', f)
"#;

fn split_head_body(m: &[u8]) -> (&[u8], &[u8]) {
    let at = m
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header/body separator");
    (&m[..at + 2], &m[at + 4..])
}

/// Fails (never skips, never installs) when Postfix or python3 is missing.
fn require_tools() {
    assert!(
        Path::new("/usr/sbin/postfix").exists() && Path::new("/usr/sbin/postconf").exists(),
        "Postfix is not installed: run scripts/install-test-deps"
    );
    let py = Command::new("python3")
        .args(["-c", "import smtplib"])
        .output();
    assert!(
        py.is_ok_and(|o| o.status.success()),
        "python3 with smtplib is not available: run scripts/install-test-deps"
    );
}

#[test]
fn postfix_relays_three_messages_into_postrider_with_bodies_and_subjects_intact() {
    require_tools();
    let s =
        TestServer::start(Path::new(env!("CARGO_BIN_EXE_postrider")), "").expect("start server");
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account(ALICE, "alice-password");

    let root = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let pf = Postfix {
        dir: root.path().join("postfix"),
        port,
    };
    let relayhost = format!("127.0.0.1:{}", s.ports.mx);
    let started = Command::new(script())
        .arg("start")
        .arg(&pf.dir)
        .args([
            "--port",
            &pf.port.to_string(),
            "--mode",
            "relay",
            "--relayhost",
            &relayhost,
        ])
        .output()
        .expect("run scripts/postfix-instance");
    assert!(
        started.status.success(),
        "scripts/postfix-instance start failed ({}); is Postfix installed? run scripts/install-test-deps\n{}{}",
        started.status,
        String::from_utf8_lossy(&started.stdout),
        String::from_utf8_lossy(&started.stderr)
    );

    let sent: Vec<Vec<u8>> = (1..=3).map(message).collect();
    let mut files = Vec::new();
    for (i, m) in sent.iter().enumerate() {
        let f = root.path().join(format!("m{}.eml", i + 1));
        std::fs::write(&f, m).unwrap();
        files.push(f);
    }
    let script_file = root.path().join("send.py");
    std::fs::write(&script_file, PY_SEND).unwrap();
    let out = Command::new("timeout")
        .arg("60")
        .arg("python3")
        .arg(&script_file)
        .arg(pf.port.to_string())
        .args(&files)
        .output()
        .expect("python3 missing: run scripts/install-test-deps");
    assert!(
        out.status.success(),
        "smtplib to Postfix failed: {}{}\nmaillog:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        pf.log()
    );

    // Postfix relays at once; wait up to 60 s for all three.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ids = loop {
        let list = s.admin_ok(&["mailbox", "list", ALICE]);
        let ids: Vec<i64> = list
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        if ids.len() >= 3 {
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s Postrider has {} of 3 messages:\n{list}\nPostfix maillog:\n{}\nPostrider log:\n{}",
            ids.len(),
            pf.log(),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ids.len(), 3, "no duplicates");

    let helo = format!("pf-{}.bench.invalid", pf.port);
    let mut seen = Vec::new();
    for id in ids {
        let stored = s.mailbox_show(ALICE, id);
        let text = String::from_utf8_lossy(&stored).into_owned();
        let n: usize = text
            .split("\r\nSubject: via postfix ")
            .nth(1)
            .and_then(|rest| rest.get(..1))
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("no Subject of ours in:\n{text}"));
        seen.push(n);
        let want = &sent[n - 1];
        let (want_head, want_body) = split_head_body(want);
        let (head, body) = split_head_body(&stored);
        assert!(
            body == want_body,
            "message {n}: body changed\n--- stored\n{}\n--- sent\n{}",
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(want_body)
        );
        let head = String::from_utf8_lossy(head);
        for line in String::from_utf8_lossy(want_head).split_terminator("\r\n") {
            assert!(
                head.contains(&format!("\r\n{line}\r\n")),
                "message {n}: header line {line:?} missing:\n{head}"
            );
        }
        // Our block comes first; Postfix's own Received follows it.
        let start = format!(
            "Return-Path: <carol@remote.test>\r\nDelivered-To: {ALICE}\r\nReceived: from {helo} ([127.0.0.1])\r\n"
        );
        assert!(
            head.starts_with(&start),
            "message {n}: Postrider's Received names Postfix's EHLO {helo:?}:\n{head}"
        );
        assert!(
            head.contains("by mx.test (Postrider) with ESMTP id "),
            "{head}"
        );
        let postfix_received = head.matches("\r\nReceived: ").count();
        assert_eq!(
            postfix_received, 2,
            "one Received from Postrider, one from Postfix:\n{head}"
        );
        assert!(
            head.contains(&format!("by {helo} (Postfix) with ESMTP id")),
            "Postfix's Received:\n{head}"
        );
    }
    seen.sort();
    assert_eq!(seen, vec![1, 2, 3], "each message exactly once");
    drop(pf);
}

/// A Postfix instance in store mode: accepts mail for bench.test into DIR/mail/bench, offers
/// no STARTTLS (nothing configured for it).
fn postfix_store(root: &Path) -> Postfix {
    let pf = Postfix {
        dir: root.join("postfix-store"),
        port: free_port(),
    };
    let started = Command::new(script())
        .arg("start")
        .arg(&pf.dir)
        .args(["--port", &pf.port.to_string(), "--mode", "store"])
        .output()
        .expect("run scripts/postfix-instance");
    assert!(
        started.status.success(),
        "postfix-instance start: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    pf
}

fn maildir_count(pf: &Postfix) -> usize {
    ["new", "cur"]
        .iter()
        .filter_map(|d| std::fs::read_dir(pf.dir.join("mail/bench").join(d)).ok())
        .map(|entries| entries.count())
        .sum()
}

/// Relays to the smarthost route given in `transport` and returns the queue id.
fn relay_through(transport: &str) -> (TestServer, String) {
    let s = TestServer::start_named(
        Path::new(env!("CARGO_BIN_EXE_postrider")),
        "relay.example.test",
        &format!(
            "[relay]\nnetworks = [\"127.0.0.0/8\"]\n[delivery]\nretry_initial = \"1h\"\n{transport}"
        ),
    )
    .expect("start server");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO app.example.test", "250");
    let r = c.send_mail(
        "app@example.test",
        &["user@bench.test"],
        "Subject: to postfix\r\n\r\nhello\r\n",
    );
    assert_eq!(r.code, 250);
    (s, r.text.rsplit(' ').next().unwrap().to_string())
}

#[test]
fn a_smarthost_without_starttls_gets_mail_in_plain_text_unless_tls_is_required() {
    require_tools();
    let root = tempfile::tempdir().expect("tempdir");
    let pf = postfix_store(root.path());
    // Opportunistic (the default): Postfix offers no STARTTLS, so the mail goes in plain text.
    let (_a, _) = relay_through(&format!(
        "[[transport]]\ndomain = \"*\"\nsmarthost = \"127.0.0.1:{}\"\n",
        pf.port
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while maildir_count(&pf) < 1 {
        assert!(
            Instant::now() < deadline,
            "Postfix never stored the message:\n{}",
            pf.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Required: no STARTTLS means no delivery; the message waits, deferred with 4.7.10.
    let (b, id) = relay_through(&format!(
        "[[transport]]\ndomain = \"bench.test\"\nsmarthost = \"127.0.0.1:{}\"\ntls = \"required\"\n",
        pf.port
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = b.admin_ok(&["queue", "show", &id]);
        if shown.contains("[deferred]") {
            assert!(shown.contains("4.7.10 TLS is required"), "{shown}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never deferred:\n{shown}\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        maildir_count(&pf),
        1,
        "nothing more reached Postfix in plain text"
    );
}

#[test]
fn a_smarthost_that_requires_auth_gets_mail_over_tls_with_credentials() {
    // The smarthost is another Postrider's submission port: STARTTLS, then AUTH.
    let bin = Path::new(env!("CARGO_BIN_EXE_postrider"));
    let hub = TestServer::start_named(
        bin,
        "hub.test",
        "[senders.allowed]\n\"relay@hub.test\" = [\"*\"]\n",
    )
    .expect("hub");
    hub.admin_ok(&["domain", "add", "hub.test"]);
    hub.admin_ok(&["domain", "add", "bench.test"]);
    hub.add_account("relay@hub.test", "hub-secret");
    hub.add_account("user@bench.test", "pw");
    let (_a, _) = relay_through(&format!(
        "[[transport]]\ndomain = \"*\"\nsmarthost = \"127.0.0.1:{}\"\ntls = \"required\"\nusername = \"relay@hub.test\"\npassword = \"hub-secret\"\n",
        hub.ports.submission
    ));
    let ids = hub.wait_for_mail("user@bench.test", 1);
    let stored = String::from_utf8(hub.mailbox_show("user@bench.test", ids[0])).unwrap();
    assert!(
        stored.contains("(authenticated as relay@hub.test)") && stored.contains("with ESMTPSA id"),
        "{stored}"
    );
    assert!(stored.ends_with("Subject: to postfix\r\n\r\nhello\r\n"));
}

#[test]
fn a_server_without_dsn_gets_the_mail_and_the_sender_gets_a_relayed_report() {
    require_tools();
    let root = tempfile::tempdir().expect("tempdir");
    let pf = Postfix {
        dir: root.path().join("postfix-nodsn"),
        port: free_port(),
    };
    let started = Command::new(script())
        .arg("start")
        .arg(&pf.dir)
        .args([
            "--port",
            &pf.port.to_string(),
            "--mode",
            "store",
            "--set",
            "smtpd_discard_ehlo_keywords=dsn",
        ])
        .output()
        .expect("run scripts/postfix-instance");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let a = TestServer::start_named(
        Path::new(env!("CARGO_BIN_EXE_postrider")),
        "relay.example.test",
        &format!(
            "[[transport]]\ndomain = \"*\"\nsmarthost = \"127.0.0.1:{}\"\n",
            pf.port
        ),
    )
    .expect("start server");
    a.admin_ok(&["domain", "add", "example.test"]);
    a.add_account(ALICE, "alice-password");
    let mut c = a.login(ALICE, "alice-password");
    c.expect(&format!("MAIL FROM:<{ALICE}>"), "250");
    c.expect("RCPT TO:<user@bench.test> NOTIFY=SUCCESS", "250");
    c.expect("DATA", "354");
    c.send_raw(b"From: alice@example.test\r\nSubject: tell me\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    let ids = a.wait_for_mail(ALICE, 1);
    let report = String::from_utf8(a.mailbox_show(ALICE, ids[0])).unwrap();
    assert!(
        report.contains("Action: relayed")
            && report.contains("Final-Recipient: rfc822; user@bench.test"),
        "{report}"
    );
    assert!(
        report.contains("Diagnostic-Code: smtp; 250 "),
        "the remote reply is kept: {report}"
    );
    assert_eq!(maildir_count(&pf), 1);
}

/// A store-mode Postfix with extra settings.
fn postfix_store_with(root: &Path, name: &str, settings: &[&str]) -> Postfix {
    let pf = Postfix {
        dir: root.join(name),
        port: free_port(),
    };
    let mut args: Vec<String> = vec![
        "--port".into(),
        pf.port.to_string(),
        "--mode".into(),
        "store".into(),
    ];
    for s in settings {
        args.push("--set".into());
        args.push(s.to_string());
    }
    let started = Command::new(script())
        .arg("start")
        .arg(&pf.dir)
        .args(&args)
        .output()
        .expect("postfix-instance");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    pf
}

#[test]
fn what_the_remote_server_cannot_take_is_bounced_with_the_right_status() {
    require_tools();
    let root = tempfile::tempdir().expect("tempdir");
    // No 8BITMIME, no SMTPUTF8, and a 2000-octet size limit.
    let pf = postfix_store_with(
        root.path(),
        "postfix-strict",
        &[
            "smtpd_discard_ehlo_keywords=8bitmime,smtputf8",
            "message_size_limit=2000",
        ],
    );
    let a = TestServer::start_named(
        Path::new(env!("CARGO_BIN_EXE_postrider")),
        "relay.example.test",
        &format!(
            "[[transport]]\ndomain = \"*\"\nsmarthost = \"127.0.0.1:{}\"\n",
            pf.port
        ),
    )
    .expect("start server");
    a.admin_ok(&["domain", "add", "example.test"]);
    a.add_account(ALICE, "alice-password");
    let mut c = a.login(ALICE, "alice-password");
    assert_eq!(
        c.send_mail(
            ALICE,
            &["user@bench.test"],
            "From: alice@example.test\r\nSubject: eight\r\n\r\nGrüße\r\n"
        )
        .code,
        250
    );
    c.expect(&format!("MAIL FROM:<{ALICE}> SMTPUTF8"), "250");
    c.expect("RCPT TO:<jürgen@bench.test>", "250");
    c.expect("DATA", "354");
    c.send_raw(b"From: alice@example.test\r\nSubject: utf8\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    let big = format!(
        "From: alice@example.test\r\nSubject: big\r\n\r\n{}",
        "0123456789\r\n".repeat(400)
    );
    assert_eq!(c.send_mail(ALICE, &["user@bench.test"], &big).code, 250);
    let ids = a.wait_for_mail(ALICE, 3);
    let reports: Vec<String> = ids
        .iter()
        .map(|i| String::from_utf8_lossy(&a.mailbox_show(ALICE, *i)).into_owned())
        .collect();
    for status in ["Status: 5.6.3", "Status: 5.6.7", "Status: 5.3.4"] {
        assert!(
            reports.iter().any(|r| r.contains(status)),
            "no report with {status}:\n{reports:#?}"
        );
    }
    assert_eq!(
        maildir_count(&pf),
        0,
        "nothing was sent that the server could not take"
    );
}
