//! Protocol hardening (issue 4, point 6): each attack or abuse case against the real server over
//! real sockets, with the behaviour expected of it in the test name.
//!
//! Cases already covered in `smtp_dialog.rs` are named in comments here instead of repeated.

use std::time::{Duration, Instant};
use testkit::{Conn, TestServer, b64};

fn server(extra: &str) -> TestServer {
    let s = TestServer::start(std::path::Path::new(env!("CARGO_BIN_EXE_postrider")), extra)
        .expect("start server");
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "alice-password");
    s.add_account("bob@example.test", "bob-password");
    s
}

fn has_no_mail(s: &TestServer, owner: &str) -> bool {
    s.admin_ok(&["mailbox", "list", owner])
        .contains("no messages")
}

fn queue_is_empty(s: &TestServer) -> bool {
    s.admin_ok(&["queue", "list"]).contains("queue is empty")
}

/// "code text" of a reply, for prefix checks.
fn wire(r: &testkit::Reply) -> String {
    format!("{} {}", r.code, r.text)
}

// ---- SMTP smuggling ----------------------------------------------------------------------------
// Also: smtp_dialog.rs `smuggling_line_ends_do_not_end_data_and_the_message_is_refused` and
// `bdat_with_a_bare_lf_is_refused`.

/// End-of-data look-alikes a lenient server (or one in front of us) might take for `CRLF.CRLF`.
const SMUGGLING_SEQUENCES: [&[u8]; 10] = [
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\n.\r",
    b"\r.\n",
    b"\r\n.\r\r\n",
    b"\r\n\x00.\r\n",
];

/// A second transaction a smuggler hides after the fake end of data.
const SMUGGLED: &[u8] = b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n\
      From: evil@remote.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n";

#[test]
fn smuggling_sequences_in_data_never_end_the_message_which_is_refused_and_nothing_is_queued() {
    let s = server("[delivery]\npaused = true\n");
    for seq in SMUGGLING_SEQUENCES {
        let mut c = s.connect(s.ports.mx);
        c.expect("EHLO client.test", "250");
        c.expect("MAIL FROM:<a@remote.test>", "250");
        c.expect("RCPT TO:<alice@example.test>", "250");
        c.expect("DATA", "354");
        let mut data = b"Subject: first\r\n\r\nfirst".to_vec();
        data.extend_from_slice(seq);
        data.extend_from_slice(SMUGGLED);
        data.extend_from_slice(b".\r\n");
        c.send_raw(&data);
        let r = c.reply();
        assert!(
            wire(&r).starts_with("554 5.6.0"),
            "{:?}: {r:?}",
            seq.escape_ascii().to_string()
        );
        // Exactly one reply for all of it: the smuggled MAIL, RCPT and DATA were message text.
        let r = c.cmd("NOOP");
        assert_eq!(
            wire(&r),
            "250 2.0.0 Ok",
            "{:?}",
            seq.escape_ascii().to_string()
        );
        assert!(c.unsolicited(Duration::from_millis(100)).is_empty());
    }
    assert!(queue_is_empty(&s), "{}", s.admin_ok(&["queue", "list"]));
    assert!(has_no_mail(&s, "alice@example.test") && has_no_mail(&s, "bob@example.test"));
}

#[test]
fn bdat_content_is_literal_so_a_dot_line_and_commands_inside_a_chunk_stay_message_text() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.expect("RCPT TO:<alice@example.test>", "250");
    // Clean CRLF line ends: a valid message whose text contains what DATA would take as its end
    // and a second transaction.
    let mut chunk = b"Subject: literal\r\n\r\nfirst\r\n.\r\n".to_vec();
    chunk.extend_from_slice(SMUGGLED);
    let mut input = format!("BDAT {} LAST\r\n", chunk.len()).into_bytes();
    input.extend_from_slice(&chunk);
    c.send_raw(&input);
    let r = c.reply();
    assert!(r.text.contains("queued as"), "{r:?}");
    assert_eq!(wire(&c.cmd("NOOP")), "250 2.0.0 Ok");
    let ids = s.wait_for_mail("alice@example.test", 1);
    let stored = s.mailbox_show("alice@example.test", ids[0]);
    assert!(stored.ends_with(&chunk), "stored exactly as sent");
    std::thread::sleep(Duration::from_millis(300));
    assert!(has_no_mail(&s, "bob@example.test"));
}

#[test]
fn smuggling_sequences_in_bdat_chunks_refuse_the_message_and_nothing_is_queued() {
    let s = server("[delivery]\npaused = true\n");
    for seq in SMUGGLING_SEQUENCES {
        let mut c = s.connect(s.ports.mx);
        c.expect("EHLO client.test", "250");
        c.expect("MAIL FROM:<a@remote.test>", "250");
        c.expect("RCPT TO:<alice@example.test>", "250");
        let mut first = b"Subject: first\r\n\r\nfirst".to_vec();
        first.extend_from_slice(seq);
        first.extend_from_slice(SMUGGLED);
        let last = b"end\r\n";
        let mut input = format!("BDAT {}\r\n", first.len()).into_bytes();
        input.extend_from_slice(&first);
        input.extend_from_slice(format!("BDAT {} LAST\r\n", last.len()).as_bytes());
        input.extend_from_slice(last);
        c.send_raw(&input);
        let name = seq.escape_ascii().to_string();
        assert!(
            wire(&c.reply()).starts_with("250 2.0.0"),
            "{name}: first chunk"
        );
        let r = c.reply();
        assert!(wire(&r).starts_with("554 5.6.0"), "{name}: {r:?}");
        assert_eq!(wire(&c.cmd("NOOP")), "250 2.0.0 Ok", "{name}");
    }
    assert!(queue_is_empty(&s), "{}", s.admin_ok(&["queue", "list"]));
}

// ---- STARTTLS ----------------------------------------------------------------------------------
// Also: smtp_dialog.rs `a_command_injected_with_starttls_is_not_executed_after_the_handshake`.

#[test]
fn commands_pipelined_after_starttls_are_discarded_unanswered_and_not_run_after_the_handshake() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    // CVE-2011-0411: plain-text commands in the same packet as STARTTLS.
    c.send_raw(b"STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\nRCPT TO:<bob@example.test>\r\n");
    assert_eq!(c.reply().code, 220);
    assert!(
        c.unsolicited(Duration::from_millis(500)).is_empty(),
        "the injected commands get no answer"
    );
    c.start_tls_handshake();
    c.expect("EHLO client.test", "250");
    // Had the injected MAIL run, RCPT would be accepted here and MAIL would be nested.
    c.expect("RCPT TO:<alice@example.test>", "503 5.5.1");
    c.expect("MAIL FROM:<a@remote.test>", "250 2.1.0");
}

#[test]
fn auth_pipelined_after_starttls_on_submission_does_not_authenticate_the_tls_session() {
    let s = server("");
    let mut c = s.connect(s.ports.submission);
    c.expect("EHLO client.test", "250");
    let ir = b64("\0alice@example.test\0alice-password");
    c.send_raw(format!("STARTTLS\r\nEHLO client.test\r\nAUTH PLAIN {ir}\r\n").as_bytes());
    assert_eq!(c.reply().code, 220);
    assert!(c.unsolicited(Duration::from_millis(500)).is_empty());
    c.start_tls_handshake();
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<alice@example.test>", "530 5.7.0");
}

// ---- Open relay probes -------------------------------------------------------------------------
// Also: smtp_dialog.rs `unknown_local_users_are_refused_at_rcpt_and_other_domains_are_not_relayed`.

/// Relay tricks against a server for `example.test`, from a client without relay rights, with
/// the refusal each must get.
const RELAY_PROBES: [(&str, &str); 20] = [
    // The percent hack: a lenient server would route to other.test.
    ("user%other.test@example.test", "550 5.1.1"),
    ("\"user%other.test\"@example.test", "550 5.1.1"),
    ("user%other.test", "501 5.1.3"),
    // UUCP bang paths.
    ("other.test!user@example.test", "550 5.1.1"),
    ("other.test!user", "501 5.1.3"),
    // Source routes (RFC 5321 Appendix C), refused outright.
    ("@example.test:user@other.test", "501 5.1.3"),
    ("@example.test,@mx.test:user@other.test", "501 5.1.3"),
    // A quoted local part with an @.
    ("\"user@other.test\"@example.test", "550 5.1.1"),
    ("\"user@other.test\"", "501 5.1.3"),
    ("user@other.test@example.test", "501 5.1.3"),
    // Address literals are never relayed to, not even our own address.
    ("user@[127.0.0.1]", "550 5.7.1"),
    ("user@[IPv6:::1]", "550 5.7.1"),
    ("postmaster@[127.0.0.1]", "550 5.7.1"),
    // Trailing dots (RFC 5321 §2.3.5 forbids them in SMTP).
    ("user@other.test.", "501 5.1.3"),
    ("user@example.test.", "501 5.1.3"),
    // Mixed case is still another domain.
    ("USER@OTHER.TEST", "550 5.7.1"),
    ("User@Other.Test", "550 5.7.1"),
    ("postmaster@other.test", "550 5.7.1"),
    // Plain relaying.
    ("user@other.test", "550 5.7.1"),
    ("alice@example.test.other.test", "550 5.7.1"),
];

#[test]
fn open_relay_probes_from_an_unauthenticated_client_are_all_refused_and_nothing_is_queued() {
    let s = server("[smtp]\nmax_errors = 100\n[delivery]\npaused = true\n");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@remote.test>", "250");
    for (probe, want) in RELAY_PROBES {
        let r = c.cmd(&format!("RCPT TO:<{probe}>"));
        assert!(
            wire(&r).starts_with(want),
            "{probe}: want {want}, got {r:?}"
        );
    }
    c.expect("DATA", "554 5.5.1");
    c.expect("RSET", "250");
    // BDAT too: no recipient, no message.
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.send_raw(b"BDAT 5 LAST\r\nhi\r\n\r\n");
    assert_eq!(c.reply().code, 554);
    // The same probes on the submission port without authentication stop at MAIL.
    let mut c = s.connect(s.ports.submission);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@remote.test>", "530");
    assert!(queue_is_empty(&s), "{}", s.admin_ok(&["queue", "list"]));
}

#[test]
fn with_a_catch_all_the_percent_hack_and_bang_paths_are_delivered_locally_never_relayed() {
    let s = server("[delivery]\npaused = true\n");
    s.admin_ok(&["domain", "catch-all", "example.test", "bob@example.test"]);
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@remote.test>", "250");
    for probe in [
        "user%other.test@example.test",
        "other.test!user@example.test",
        "\"user@other.test\"@example.test",
    ] {
        c.expect(&format!("RCPT TO:<{probe}>"), "250");
    }
    c.expect("RCPT TO:<user@other.test>", "550 5.7.1");
    c.expect("DATA", "354");
    c.send_raw(b"Subject: catch-all\r\n\r\nx\r\n.\r\n");
    let r = c.reply();
    let id = r.text.rsplit(' ').next().unwrap_or_default().to_string();
    assert!(r.text.contains("queued as"), "{r:?}");
    // Delivery is paused: the queue entry shows where each recipient goes.
    let shown = s.admin_ok(&["queue", "show", &id]);
    let destinations: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.split_once('→').map(|(_, d)| d.trim()))
        .collect();
    assert_eq!(destinations.len(), 3, "{shown}");
    assert!(
        destinations
            .iter()
            .all(|d| d.starts_with("mailbox bob@example.test ")),
        "every recipient goes to the catch-all mailbox: {shown}"
    );
}

// ---- Over-long input ---------------------------------------------------------------------------
// Also: smtp_dialog.rs `an_over_long_command_line_is_refused_and_the_session_recovers` and
// `nul_bytes_and_over_long_text_lines_are_refused`.

#[test]
fn a_command_line_of_512_octets_is_accepted_and_one_of_513_gets_500_5_5_2() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    // "NOOP " + padding + CRLF: RFC 5321 §4.5.3.1.4 counts the CRLF.
    let at_limit = format!("NOOP {}", "x".repeat(512 - 5 - 2));
    c.expect(&at_limit, "250");
    let over = format!("NOOP {}", "x".repeat(512 - 5 - 1));
    c.expect(&over, "500 5.5.2");
    // An over-long line pipelined with a good command: the good one is still answered.
    c.send_raw(format!("NOOP {}\r\nNOOP\r\n", "y".repeat(2000)).as_bytes());
    assert!(wire(&c.reply()).starts_with("500 5.5.2"));
    assert_eq!(wire(&c.reply()), "250 2.0.0 Ok");
    c.expect("QUIT", "221");
}

/// Sends `total` octets of `A` in 64 KiB writes; stops early if the server closed.
fn flood(c: &mut Conn, total: usize) -> usize {
    let block = vec![b'A'; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        if c.try_send_raw(&block).is_err() {
            break;
        }
        sent += block.len();
    }
    sent
}

#[test]
fn a_megabyte_command_line_without_a_line_end_closes_the_session_and_memory_stays_bounded() {
    let s = server("");
    let before = s.rss_kib().expect("VmRSS");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    let start = Instant::now();
    flood(&mut c, 1024 * 1024);
    let r = c.try_reply().expect("a reply");
    assert!(wire(&r).starts_with("500 5.5.2"), "{r:?}");
    // Then 421 (unless the close raced our last writes), and the connection is closed.
    if let Some(r) = c.try_reply() {
        assert!(wire(&r).starts_with("421 4.7.0"), "{r:?}");
    }
    assert!(c.is_closed());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "closed at once, not at a timeout: {:?}",
        start.elapsed()
    );
    let after = s.rss_kib().expect("VmRSS");
    assert!(
        after < before + 8 * 1024 && after < 64 * 1024,
        "VmRSS {before} KiB before, {after} KiB after"
    );
    // The server still serves others.
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
}

#[test]
fn a_megabyte_auth_line_without_a_line_end_closes_the_session() {
    let s = server("");
    let mut c = s.connect(s.ports.submission);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    c.expect("AUTH PLAIN", "334");
    let start = Instant::now();
    let block = vec![b'A'; 64 * 1024];
    for _ in 0..16 {
        if c.try_send_raw(&block).is_err() {
            break;
        }
    }
    let r = c.try_reply().expect("a reply");
    assert!(wire(&r).starts_with("500 5.5.6"), "{r:?}");
    if let Some(r) = c.try_reply() {
        assert!(wire(&r).starts_with("421 4.7.0"), "{r:?}");
    }
    assert!(c.is_closed());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "closed at once, not at a timeout: {:?}",
        start.elapsed()
    );
}

#[test]
fn a_megabyte_text_line_in_data_is_neither_kept_in_memory_nor_spooled_and_the_message_is_refused() {
    let s = server("");
    let before = s.rss_kib().expect("VmRSS");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.expect("RCPT TO:<alice@example.test>", "250");
    c.expect("DATA", "354");
    c.send_raw(b"Subject: long\r\n\r\n");
    // 3 MiB: past the 1 MiB spool memory limit, within the 50 MiB message size limit.
    assert_eq!(flood(&mut c, 3 * 1024 * 1024), 3 * 1024 * 1024);
    std::thread::sleep(Duration::from_millis(500));
    let spooled: Vec<_> = std::fs::read_dir(s.data_dir().join("spool"))
        .expect("spool dir")
        .collect();
    assert!(
        spooled.is_empty(),
        "a message already refused is not spooled: {spooled:?}"
    );
    let during = s.rss_kib().expect("VmRSS");
    c.send_raw(b"\r\n.\r\n");
    let r = c.reply();
    assert!(wire(&r).starts_with("554 5.6.0"), "{r:?}");
    assert_eq!(wire(&c.cmd("NOOP")), "250 2.0.0 Ok");
    assert!(
        during < before + 8 * 1024 && during < 64 * 1024,
        "VmRSS {before} KiB before, {during} KiB during the message"
    );
    assert!(has_no_mail(&s, "alice@example.test"));
}

#[test]
fn an_over_long_text_line_in_bdat_refuses_the_message() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.expect("RCPT TO:<alice@example.test>", "250");
    let body = format!("Subject: long\r\n\r\n{}\r\n", "x".repeat(1000));
    c.send_raw(format!("BDAT {} LAST\r\n{body}", body.len()).as_bytes());
    let r = c.reply();
    assert!(wire(&r).starts_with("554 5.6.0"), "{r:?}");
}

// ---- Slow and idle connections -----------------------------------------------------------------
// Also: smtp_dialog.rs `connections_over_the_per_ip_cap_get_421`,
// `connections_over_the_total_cap_get_421` and
// `an_idle_client_is_disconnected_with_421_after_the_command_timeout`.

#[test]
fn idle_connections_at_the_per_ip_cap_do_not_keep_a_client_from_another_address_waiting() {
    let s = server("[smtp]\nmax_connections_per_ip = 5\n");
    let _idle: Vec<Conn> = (0..5).map(|_| s.connect(s.ports.mx)).collect();
    let mut over = Conn::raw(s.ports.mx, s.certificate());
    assert!(wire(&over.reply()).starts_with("421 4.7.0"));
    let start = Instant::now();
    let mut c = s.connect_from("127.0.0.2", s.ports.mx);
    assert_eq!(c.greeting.as_ref().map(|g| g.code), Some(220));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    c.expect("EHLO other-client.test", "250");
    let r = c.send_mail(
        "carol@remote.test",
        &["alice@example.test"],
        "Subject: served\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    s.wait_for_mail("alice@example.test", 1);
    assert!(
        s.log().contains("127.0.0.2"),
        "the client came from 127.0.0.2"
    );
}

#[test]
fn idle_connections_holding_the_per_ip_cap_get_421_at_the_command_timeout_and_free_their_slots() {
    let s = server("[smtp]\nmax_connections_per_ip = 3\ncommand_timeout = \"2s\"\n");
    let mut idle: Vec<Conn> = (0..3).map(|_| s.connect(s.ports.mx)).collect();
    idle[0].expect("EHLO client.test", "250");
    idle[1].expect("EHLO client.test", "250");
    idle[1].expect("MAIL FROM:<a@remote.test>", "250");
    let mut over = Conn::raw(s.ports.mx, s.certificate());
    assert!(wire(&over.reply()).starts_with("421 4.7.0"));
    for c in &mut idle {
        let r = c.reply();
        assert!(wire(&r).starts_with("421 4.4.2"), "{r:?}");
        assert!(c.is_closed());
    }
    // The slots are free again (the session ends just after its 421).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Conn::raw(s.ports.mx, s.certificate());
        let r = c.reply();
        if r.code == 220 {
            break;
        }
        assert!(Instant::now() < deadline, "slots not freed: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends one byte every 300 ms (each read well within the timeout, the line never ending) until
/// the server answers; returns the answer and when it came.
fn trickle(c: &mut Conn, start: Instant) -> (Vec<u8>, Duration) {
    for b in b"NOOP".iter().chain([b' '; 40].iter()) {
        if c.try_send_raw(&[*b]).is_err() {
            break;
        }
        let answer = c.unsolicited(Duration::from_millis(300));
        if !answer.is_empty() {
            return (answer, start.elapsed());
        }
    }
    (Vec::new(), start.elapsed())
}

#[test]
fn a_client_trickling_a_command_byte_by_byte_is_cut_off_at_the_command_timeout() {
    let s = server("[smtp]\ncommand_timeout = \"2s\"\n");
    let mut c = s.connect(s.ports.mx);
    let (answer, elapsed) = trickle(&mut c, Instant::now());
    assert!(
        answer.starts_with(b"421 4.4.2") && elapsed < Duration::from_secs(5),
        "got {:?} after {elapsed:?}",
        answer.escape_ascii().to_string()
    );
    assert!(c.is_closed());
    // The same while the rest of an over-long line is being discarded.
    let mut c = s.connect(s.ports.mx);
    let start = Instant::now();
    c.send_raw(&[b'x'; 600]);
    assert!(wire(&c.reply()).starts_with("500 5.5.2"));
    let (answer, elapsed) = trickle(&mut c, start);
    assert!(
        answer.starts_with(b"421 4.4.2") && elapsed < Duration::from_secs(5),
        "got {:?} after {elapsed:?}",
        answer.escape_ascii().to_string()
    );
}

// ---- Other protocols on the SMTP port ----------------------------------------------------------

#[test]
fn an_http_request_gets_421_and_the_connection_is_closed_at_once() {
    let s = server("");
    for request in [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD /index.html HTTP/1.0\r\n\r\n",
        "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "CONNECT mx.test:25 HTTP/1.1\r\nHost: mx.test:25\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "DELETE /x HTTP/1.1\r\n\r\n",
    ] {
        let start = Instant::now();
        let mut c = s.connect(s.ports.mx);
        c.send_raw(request.as_bytes());
        let r = c.reply();
        assert!(wire(&r).starts_with("421 4.7.0"), "{request:?}: {r:?}");
        assert!(c.is_closed(), "{request:?}: nothing after the 421");
        assert!(start.elapsed() < Duration::from_secs(3), "{request:?}");
    }
    // Later in a session too.
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.send_raw(b"GET /favicon.ico HTTP/1.1\r\n");
    assert!(wire(&c.reply()).starts_with("421 4.7.0"));
    assert!(c.is_closed());
}

#[test]
fn smtp_commands_in_the_body_of_an_http_post_are_never_run() {
    let s = server("[delivery]\npaused = true\n");
    // A cross-protocol attack: a web page makes a browser POST SMTP commands to port 25.
    let body = "EHLO x\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n\
                Subject: from a browser\r\n\r\nx\r\n.\r\nQUIT\r\n";
    let request = format!(
        "POST /submit HTTP/1.1\r\nHost: mx.test:25\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut c = s.connect(s.ports.mx);
    c.send_raw(request.as_bytes());
    let r = c.reply();
    assert!(wire(&r).starts_with("421 4.7.0"), "{r:?}");
    assert!(c.is_closed(), "one reply, then the connection is closed");
    std::thread::sleep(Duration::from_millis(300));
    assert!(queue_is_empty(&s));
    assert!(has_no_mail(&s, "alice@example.test"));
}

// ---- NUL and invalid UTF-8 ---------------------------------------------------------------------

#[test]
fn nul_bytes_in_commands_are_refused_and_the_session_goes_on() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.send_raw(b"EHLO client\0.test\r\n");
    assert!(wire(&c.reply()).starts_with("501 5.5.4"));
    c.expect("EHLO client.test", "250");
    c.send_raw(b"MAIL FROM:<a\0@remote.test>\r\n");
    assert!(wire(&c.reply()).starts_with("501 5.5.4"));
    c.send_raw(b"MAIL FROM:<a@remote.test>\0\r\n");
    assert!(wire(&c.reply()).starts_with("501 5.5.4"));
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.send_raw(b"RCPT TO:<alice\0@example.test>\r\n");
    assert!(wire(&c.reply()).starts_with("501 5.5.4"));
    // A NUL in the verb: not a command at all.
    c.send_raw(b"NO\0OP\r\n");
    assert!(wire(&c.reply()).starts_with("500 5.5.2"));
    c.send_raw(b"\0\0\0\r\n");
    assert!(wire(&c.reply()).starts_with("500 5.5.2"));
    // Nothing was accepted: DATA has no recipient.
    c.expect("DATA", "554 5.5.1");
    c.expect("NOOP", "250");
}

#[test]
fn nul_bytes_in_data_and_in_bdat_refuse_the_message() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.expect("RCPT TO:<alice@example.test>", "250");
    c.expect("DATA", "354");
    c.send_raw(b"Subject: nul\r\n\r\na\0b\r\n.\r\n");
    assert!(wire(&c.reply()).starts_with("554 5.6.0"));
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.expect("RCPT TO:<alice@example.test>", "250");
    let body = b"Subject: nul\r\n\r\na\0b\r\n";
    let mut input = format!("BDAT {} LAST\r\n", body.len()).into_bytes();
    input.extend_from_slice(body);
    c.send_raw(&input);
    assert!(wire(&c.reply()).starts_with("554 5.6.0"));
    c.expect("NOOP", "250");
    std::thread::sleep(Duration::from_millis(300));
    assert!(has_no_mail(&s, "alice@example.test"));
}

#[test]
fn invalid_utf8_in_mail_and_rcpt_is_refused_with_or_without_smtputf8() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    let cases: [&[u8]; 8] = [
        // Latin-1 ö, without and with SMTPUTF8.
        b"MAIL FROM:<j\xf6rg@remote.test>",
        b"MAIL FROM:<j\xf6rg@remote.test> SMTPUTF8",
        // An over-long encoding of '/', a UTF-16 surrogate, a truncated sequence.
        b"MAIL FROM:<a\xc0\xafb@remote.test> SMTPUTF8",
        b"MAIL FROM:<a\xed\xa0\x80b@remote.test> SMTPUTF8",
        b"MAIL FROM:<a@r\xc3emote.test> SMTPUTF8",
        b"MAIL FROM:<a@remote.test> SMTPUTF8 ENVID=\xff",
        // C1 control characters are valid UTF-8 but not allowed.
        "MAIL FROM:<a\u{85}b@remote.test> SMTPUTF8".as_bytes(),
        "MAIL FROM:<a\u{9b}b@remote.test> SMTPUTF8".as_bytes(),
    ];
    for line in cases {
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\n");
        c.send_raw(&input);
        let r = c.reply();
        assert!(
            wire(&r).starts_with("501 5.5.4"),
            "{}: {r:?}",
            line.escape_ascii()
        );
    }
    // Valid UTF-8 without SMTPUTF8 is a different refusal (RFC 6531 §3.7.4.1).
    c.expect("MAIL FROM:<jörg@remote.test>", "553 5.6.7");
    c.expect("MAIL FROM:<jörg@remote.test> SMTPUTF8", "250");
    for line in [
        &b"RCPT TO:<\xff@example.test>"[..],
        b"RCPT TO:<alice@ex\xe4mple.test>",
        b"RCPT TO:<alice@example.test> NOTIFY=\xc3\x28",
    ] {
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\n");
        c.send_raw(&input);
        let r = c.reply();
        assert!(
            wire(&r).starts_with("501 5.5.4"),
            "{}: {r:?}",
            line.escape_ascii()
        );
    }
    c.expect("DATA", "554 5.5.1");
    // Without SMTPUTF8, a valid UTF-8 recipient is refused too.
    c.expect("RSET", "250");
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.expect("RCPT TO:<jörg@example.test>", "553 5.6.7");
}

// ---- SASL --------------------------------------------------------------------------------------

#[test]
fn malformed_sasl_responses_get_501_5_5_2_and_a_good_one_still_works() {
    let s = server("");
    let mut c = s.connect(s.ports.submission);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    for response in [
        "!!!notbase64".to_string(),
        // Not canonical base64: stray bits, missing padding, white space inside.
        "YWJ=".to_string(),
        "YWI".to_string(),
        "YWJj=".to_string(),
        // Two fields, four fields, an empty user, an empty password.
        b64("alice@example.test\0alice-password"),
        b64("\0alice@example.test\0alice-password\0"),
        b64("\0\0alice-password"),
        b64("\0alice@example.test\0"),
    ] {
        c.expect(&format!("AUTH PLAIN {response}"), "501 5.5.2");
    }
    // Invalid UTF-8 in the user name, through the 334 continuation.
    c.expect("AUTH PLAIN", "334");
    c.expect("AGFsaWNl/0BleGFtcGxlLnRlc3QAeA==", "501 5.5.2");
    // A field longer than the limit (1024 octets), in a continuation line (up to 12288 octets).
    c.expect("AUTH PLAIN", "334");
    c.expect(&b64(&format!("\0{}\0x", "a".repeat(2000))), "501 5.5.2");
    // White space inside a response.
    c.expect("AUTH PLAIN", "334");
    c.expect("AGFs aWNl", "501 5.5.2");
    c.expect("AUTH PLAIN", "334");
    c.expect("*", "501 5.0.0");
    // RFC 4954 §4: an over-long response line.
    c.expect("AUTH PLAIN", "334");
    c.expect(&"A".repeat(20_000), "500 5.5.6");
    c.expect(
        &format!("AUTH PLAIN {}", b64("\0alice@example.test\0alice-password")),
        "235 2.7.0",
    );
}
