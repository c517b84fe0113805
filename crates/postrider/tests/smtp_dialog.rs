//! Dialog tests: the real server over real sockets, plain and TLS.

use testkit::{Conn, TestServer, b64};

fn server(extra: &str) -> TestServer {
    let s = TestServer::start(std::path::Path::new(env!("CARGO_BIN_EXE_postrider")), extra)
        .expect("start server");
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "alice-password");
    s.add_account("bob@example.test", "bob-password");
    s
}

fn plain_ir(user: &str, pw: &str) -> String {
    b64(&format!("\0{user}\0{pw}"))
}

fn message(subject: &str) -> String {
    format!(
        "From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@remote.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nHello.\r\n"
    )
}

#[test]
fn greeting_and_ehlo_advertise_the_esmtp_extensions() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    assert_eq!(c.greeting.as_ref().unwrap().code, 220);
    assert!(
        c.greeting
            .as_ref()
            .unwrap()
            .text
            .starts_with("mx.test ESMTP")
    );
    let r = c.expect("EHLO client.test", "250");
    for kw in [
        "PIPELINING",
        "SIZE 52428800",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "CHUNKING",
        "DSN",
    ] {
        assert!(
            r.text.lines().any(|l| l == kw),
            "missing {kw} in {:?}",
            r.text
        );
    }
    assert!(!r.text.contains("AUTH"), "mx does not offer AUTH");
    c.expect("HELO client.test", "250 mx.test");
    c.expect("QUIT", "221 2.0.0");
}

#[test]
fn a_message_for_a_local_account_is_queued_then_stored_with_trace_headers() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    let r = c.send_mail(
        "carol@remote.test",
        &["alice@example.test"],
        &message("first"),
    );
    assert_eq!(r.code, 250);
    assert!(r.text.starts_with("2.0.0 Ok: queued as "), "{r:?}");
    let queue_id = r.text.rsplit(' ').next().unwrap().to_string();
    let ids = s.wait_for_mail("alice@example.test", 1);
    let stored = String::from_utf8(s.mailbox_show("alice@example.test", ids[0])).unwrap();
    let expected_tail = message("first");
    assert!(
        stored.ends_with(&expected_tail),
        "the sent message is stored unchanged after the added headers:\n{stored}"
    );
    let added = &stored[..stored.len() - expected_tail.len()];
    assert!(added.starts_with("Return-Path: <carol@remote.test>\r\nDelivered-To: alice@example.test\r\nReceived: from client.test ([127.0.0.1])\r\n"), "{added}");
    assert!(
        added.contains(&format!("by mx.test (Postrider) with ESMTP id {queue_id}")),
        "{added}"
    );
    assert!(added.contains("for <alice@example.test>;"), "{added}");
    assert!(
        !added.contains("Message-ID:"),
        "MX mail keeps its own headers only"
    );
    assert!(
        s.log().contains(&format!("queue_id={queue_id}")),
        "the queue id is in the log"
    );
}

#[test]
fn commands_out_of_order_get_503_with_5_5_1() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.dialog(
        "C: MAIL FROM:<a@remote.test>
         S: 503 5.5.1
         C: EHLO client.test
         S: 250
         C: RCPT TO:<alice@example.test>
         S: 503 5.5.1
         C: DATA
         S: 503 5.5.1
         C: MAIL FROM:<a@remote.test>
         S: 250 2.1.0
         C: MAIL FROM:<a@remote.test>
         S: 503 5.5.1
         C: DATA
         S: 554 5.5.1
         C: RSET
         S: 250 2.0.0
         C: NOOP
         S: 250 2.0.0
         C: VRFY alice
         S: 252 2.5.0
         C: EXPN staff
         S: 502 5.5.1
         C: HELP
         S: 214 2.0.0
         C: FOO bar
         S: 500 5.5.1
         C: MAIL FROM:<no-angle@remote.test
         S: 501 5.1.7",
    );
}

#[test]
fn unknown_local_users_are_refused_at_rcpt_and_other_domains_are_not_relayed() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.dialog(
        "C: EHLO client.test
         S: 250
         C: MAIL FROM:<a@remote.test>
         S: 250
         C: RCPT TO:<nobody@example.test>
         S: 550 5.1.1
         C: RCPT TO:<someone@elsewhere.test>
         S: 550 5.7.1
         C: RCPT TO:<alice@[127.0.0.1]>
         S: 550 5.7.1
         C: RCPT TO:<alice%elsewhere.test@example.test>
         S: 550 5.1.1
         C: RCPT TO:<ALICE@Example.TEST>
         S: 250 2.1.5",
    );
}

#[test]
fn postmaster_is_reachable_in_every_local_domain_and_bare() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<>", "250");
    c.expect("RCPT TO:<postmaster@example.test>", "250 2.1.5");
    c.expect("RCPT TO:<Postmaster>", "250 2.1.5");
    c.expect("DATA", "354");
    c.send_raw(b"Subject: to postmaster\r\n\r\nhi\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    c.expect("QUIT", "221 2.0.0");
    s.wait_for_mail("postmaster@example.test", 1);
}

#[test]
fn aliases_and_catch_all_deliver_to_their_targets() {
    let s = server("");
    s.admin_ok(&["alias", "add", "team@example.test", "alice@example.test"]);
    s.admin_ok(&["alias", "add", "team@example.test", "bob@example.test"]);
    s.admin_ok(&["domain", "catch-all", "example.test", "bob@example.test"]);
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    assert_eq!(
        c.send_mail("a@remote.test", &["team@example.test"], &message("team"))
            .code,
        250
    );
    assert_eq!(
        c.send_mail(
            "a@remote.test",
            &["whoever@example.test"],
            &message("catchall")
        )
        .code,
        250
    );
    s.wait_for_mail("alice@example.test", 1);
    s.wait_for_mail("bob@example.test", 2);
}

#[test]
fn pipelined_commands_are_answered_in_order_in_one_flight() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.send_raw(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n");
    let codes: Vec<u16> = (0..5).map(|_| c.reply().code).collect();
    assert_eq!(codes, vec![250, 250, 550, 250, 354]);
    c.send_raw(b"Subject: p\r\n\r\nx\r\n.\r\nRSET\r\nNOOP\r\n");
    let codes: Vec<u16> = (0..3).map(|_| c.reply().code).collect();
    assert_eq!(codes, vec![250, 250, 250]);
    s.wait_for_mail("bob@example.test", 1);
}

#[test]
fn a_declared_size_over_the_limit_is_refused_at_mail() {
    let s = server("[smtp]\nmax_message_size = \"10KiB\"\n");
    let mut c = s.connect(s.ports.mx);
    let r = c.expect("EHLO client.test", "250");
    assert!(r.text.contains("SIZE 10240"));
    c.expect("MAIL FROM:<a@remote.test> SIZE=10241", "552 5.3.4");
    c.expect("MAIL FROM:<a@remote.test> SIZE=100", "250");
}

#[test]
fn a_message_over_the_size_limit_is_refused_after_data_and_the_session_goes_on() {
    let s = server("[smtp]\nmax_message_size = \"10KiB\"\nspool_memory_limit = \"4KiB\"\n");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    let big = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789012345678901234567890123456789\r\n".repeat(1000)
    );
    let r = c.send_mail("a@remote.test", &["alice@example.test"], &big);
    assert_eq!((r.code, r.text.starts_with("5.3.4")), (552, true), "{r:?}");
    // Between the memory and the size limit the body goes through a spool file.
    let mid = format!(
        "Subject: mid\r\n\r\n{}",
        "0123456789012345678901234567890123456789\r\n".repeat(150)
    );
    assert_eq!(
        c.send_mail("a@remote.test", &["alice@example.test"], &mid)
            .code,
        250
    );
    let ids = s.wait_for_mail("alice@example.test", 1);
    let stored = s.mailbox_show("alice@example.test", ids[0]);
    assert!(stored.ends_with(mid.as_bytes()));
    let spool: Vec<_> = std::fs::read_dir(s.data_dir().join("spool"))
        .unwrap()
        .collect();
    assert!(spool.is_empty(), "no spool files are left behind");
}

#[test]
fn too_many_recipients_get_452_and_the_accepted_ones_still_get_the_message() {
    let s = server("[smtp]\nmax_recipients = 2\n");
    let mut c = s.connect(s.ports.mx);
    c.dialog(
        "C: EHLO client.test
         S: 250
         C: MAIL FROM:<a@remote.test>
         S: 250
         C: RCPT TO:<alice@example.test>
         S: 250
         C: RCPT TO:<bob@example.test>
         S: 250
         C: RCPT TO:<postmaster@example.test>
         S: 452 4.5.3
         C: DATA
         S: 354",
    );
    c.send_raw(b"Subject: two\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    s.wait_for_mail("alice@example.test", 1);
    s.wait_for_mail("bob@example.test", 1);
}

#[test]
fn smuggling_line_ends_do_not_end_data_and_the_message_is_refused() {
    let s = server("");
    for smuggle in [
        &b"\n.\n"[..],
        b"\n.\r\n",
        b"\r.\r\n",
        b"\r\n.\n",
        b"\r\n.\r",
    ] {
        let mut c = s.connect(s.ports.mx);
        c.expect("EHLO client.test", "250");
        c.expect("MAIL FROM:<a@remote.test>", "250");
        c.expect("RCPT TO:<alice@example.test>", "250");
        c.expect("DATA", "354");
        let mut data = b"Subject: smuggle\r\n\r\nfirst".to_vec();
        data.extend_from_slice(smuggle);
        data.extend_from_slice(b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n");
        c.send_raw(&data);
        let r = c.reply();
        assert_eq!(r.code, 554, "{smuggle:?}: {r:?}");
        assert!(r.text.starts_with("5.6.0"), "{r:?}");
        c.expect("NOOP", "250");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        s.admin_ok(&["mailbox", "list", "bob@example.test"])
            .contains("no messages")
    );
    assert!(
        s.admin_ok(&["mailbox", "list", "alice@example.test"])
            .contains("no messages")
    );
}

#[test]
fn nul_bytes_and_over_long_text_lines_are_refused() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    let r = c.send_mail(
        "a@remote.test",
        &["alice@example.test"],
        "Subject: nul\r\n\r\na\0b\r\n",
    );
    assert_eq!(r.code, 554);
    let long = format!("Subject: long\r\n\r\n{}\r\n", "x".repeat(1200));
    let r = c.send_mail("a@remote.test", &["alice@example.test"], &long);
    assert_eq!(r.code, 554);
}

#[test]
fn an_over_long_command_line_is_refused_and_the_session_recovers() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.send(&format!("MAIL FROM:<{}@remote.test>", "a".repeat(600)));
    assert_eq!(c.reply().code, 500);
    c.expect("NOOP", "250");
}

#[test]
fn bdat_chunks_make_one_message_and_bdat_works_with_pipelining() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    let part1 = "Subject: chunked\r\n\r\nfirst part\r\n";
    let part2 = ".line starting with a dot\r\n";
    c.send_raw(format!("MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT {}\r\n{part1}BDAT {} LAST\r\n{part2}", part1.len(), part2.len()).as_bytes());
    let replies: Vec<String> = (0..4)
        .map(|_| {
            let r = c.reply();
            format!("{} {}", r.code, r.text)
        })
        .collect();
    assert!(
        replies[2].starts_with("250 2.0.0") && replies[3].contains("queued as"),
        "{replies:?}"
    );
    let ids = s.wait_for_mail("alice@example.test", 1);
    let stored = s.mailbox_show("alice@example.test", ids[0]);
    assert!(
        stored.ends_with(format!("{part1}{part2}").as_bytes()),
        "BDAT content is stored as sent, without unstuffing"
    );
}

#[test]
fn bdat_without_a_transaction_is_read_and_refused() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.send_raw(b"BDAT 10 LAST\r\nNOOP\r\nNOOPNOOP\r\n");
    assert_eq!(c.reply().code, 503);
    c.expect("NOOP", "250");
}

#[test]
fn bdat_with_a_bare_lf_is_refused() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.expect("RCPT TO:<alice@example.test>", "250");
    let body = "Subject: x\r\n\r\nbare\nlf\r\n";
    c.send_raw(format!("BDAT {} LAST\r\n{body}", body.len()).as_bytes());
    assert_eq!(c.reply().code, 554);
}

#[test]
fn dsn_parameters_are_validated_and_kept_with_the_envelope() {
    let s = server("[delivery]\npaused = true\n");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@remote.test> RET=HDRS ENVID=abc+2Bdef", "250");
    c.expect(
        "RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS",
        "501 5.5.4",
    );
    c.expect(
        "RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+40example.test",
        "250",
    );
    c.expect("RCPT TO:<alice@example.test> FOO=BAR", "555 5.5.4");
    c.expect("DATA", "354");
    c.send_raw(b"Subject: dsn\r\n\r\nx\r\n.\r\n");
    let r = c.reply();
    assert_eq!(r.code, 250);
    let id = r.text.rsplit(' ').next().unwrap().to_string();
    // Delivery is paused, so the message waits in the queue with its envelope.
    let shown = s.admin_ok(&["queue", "show", &id]);
    for want in [
        "envid:     abc+def",
        "ret:       HDRS",
        "notify SUCCESS,FAILURE orcpt rfc822;alice@example.test",
        "[queued]",
    ] {
        assert!(shown.contains(want), "missing {want:?} in:\n{shown}");
    }
    assert!(s.admin_ok(&["queue", "list"]).contains(&id));
}

#[test]
fn utf8_addresses_need_the_smtputf8_parameter() {
    let s = server("");
    s.admin_ok(&["alias", "add", "info@example.test", "alice@example.test"]);
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<jörg@remote.test>", "553 5.6.7");
    c.expect("MAIL FROM:<jörg@remote.test> SMTPUTF8", "250");
    c.expect("RCPT TO:<alice@example.test>", "250");
    c.expect("DATA", "354");
    c.send_raw("Subject: Grüße\r\n\r\nÄpfel\r\n.\r\n".as_bytes());
    assert_eq!(c.reply().code, 250);
    let ids = s.wait_for_mail("alice@example.test", 1);
    let stored = String::from_utf8(s.mailbox_show("alice@example.test", ids[0])).unwrap();
    assert!(
        stored.contains("with UTF8SMTP id") && stored.ends_with("Subject: Grüße\r\n\r\nÄpfel\r\n"),
        "{stored}"
    );
}

#[test]
fn too_many_received_headers_is_a_loop_refused_with_554_5_4_6() {
    let s = server("[smtp]\nmax_received_headers = 5\n");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    let looped = format!(
        "{}Subject: loop\r\n\r\nx\r\n",
        "Received: from a by b; Sat, 28 Nov 2026 10:00:00 +0000\r\n".repeat(5)
    );
    let r = c.send_mail("a@remote.test", &["alice@example.test"], &looped);
    assert_eq!((r.code, &r.text[..5]), (554, "5.4.6"));
}

#[test]
fn too_many_errors_end_the_session_with_421() {
    let s = server("[smtp]\nmax_errors = 3\n");
    let mut c = s.connect(s.ports.mx);
    c.expect("FOO", "500");
    c.expect("BAR", "500");
    c.send("BAZ");
    assert_eq!(c.reply().code, 500);
    assert_eq!(c.reply().code, 421);
    assert!(c.is_closed());
}

#[test]
fn connections_over_the_per_ip_cap_get_421() {
    let s = server("[smtp]\nmax_connections_per_ip = 2\n");
    let _a = s.connect(s.ports.mx);
    let _b = s.connect(s.ports.mx);
    let mut c = Conn::raw(s.ports.mx, s.certificate());
    let r = c.reply();
    assert_eq!((r.code, &r.text[..5]), (421, "4.7.0"));
}

#[test]
fn an_idle_client_is_disconnected_with_421_after_the_command_timeout() {
    let s = server("[smtp]\ncommand_timeout = \"1s\"\n");
    let mut c = s.connect(s.ports.mx);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let r = c.reply();
    assert_eq!((r.code, &r.text[..5]), (421, "4.4.2"));
}

#[test]
fn starttls_upgrades_and_discards_what_was_pipelined_after_it() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.starttls();
    let r = c.expect("EHLO client.test", "250");
    assert!(
        !r.text.contains("STARTTLS"),
        "STARTTLS is not offered twice"
    );
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.expect("RCPT TO:<alice@example.test>", "250");
    c.expect("DATA", "354");
    c.send_raw(b"Subject: tls\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    let ids = s.wait_for_mail("alice@example.test", 1);
    let stored = String::from_utf8(s.mailbox_show("alice@example.test", ids[0])).unwrap();
    assert!(
        stored.contains("(using TLSv1.3 with cipher") && stored.contains("with ESMTPS id"),
        "{stored}"
    );
}

#[test]
fn a_command_injected_with_starttls_is_not_executed_after_the_handshake() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.send_raw(b"STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\n");
    assert_eq!(c.reply().code, 220);
    c.start_tls_handshake();
    // Had the injected MAIL survived, this would be "503 nested MAIL" or a queued reply.
    c.expect("MAIL FROM:<a@remote.test>", "503 5.5.1 Send EHLO");
}

#[test]
fn submission_requires_tls_before_auth_and_auth_before_mail() {
    let s = server("");
    let mut c = s.connect(s.ports.submission);
    let r = c.expect("EHLO client.test", "250");
    assert!(!r.text.contains("AUTH"), "no AUTH before TLS");
    c.expect("MAIL FROM:<alice@example.test>", "530 5.7.0");
    c.expect(
        &format!(
            "AUTH PLAIN {}",
            plain_ir("alice@example.test", "alice-password")
        ),
        "530 5.7.0",
    );
    c.starttls();
    let r = c.expect("EHLO client.test", "250");
    assert!(r.text.lines().any(|l| l == "AUTH PLAIN LOGIN"), "{r:?}");
    c.expect(
        "MAIL FROM:<alice@example.test>",
        "530 5.7.0 Authentication required",
    );
    c.expect(
        &format!("AUTH PLAIN {}", plain_ir("alice@example.test", "wrong")),
        "535 5.7.8",
    );
    c.expect(
        &format!(
            "AUTH PLAIN {}",
            plain_ir("nobody@example.test", "alice-password")
        ),
        "535 5.7.8",
    );
    c.expect("AUTH PLAIN !!!notbase64", "501 5.5.2");
    c.expect("AUTH CRAM-MD5", "504 5.5.4");
    c.expect(
        &format!(
            "AUTH PLAIN {}",
            plain_ir("alice@example.test", "alice-password")
        ),
        "235 2.7.0",
    );
    c.expect("AUTH PLAIN", "503 5.5.1");
    let r = c.send_mail(
        "alice@example.test",
        &["bob@example.test"],
        "Subject: submitted\r\n\r\nno id, no date\r\n",
    );
    assert_eq!(r.code, 250);
    let ids = s.wait_for_mail("bob@example.test", 1);
    let stored = String::from_utf8(s.mailbox_show("bob@example.test", ids[0])).unwrap();
    assert!(
        stored.contains("with ESMTPSA id")
            && stored.contains("(authenticated as alice@example.test)"),
        "{stored}"
    );
    assert!(
        stored.contains("\r\nMessage-ID: <") && stored.contains("@mx.test>\r\n"),
        "Message-ID added on submission: {stored}"
    );
    assert!(
        stored.contains("\r\nDate: "),
        "Date added on submission: {stored}"
    );
}

#[test]
fn auth_login_and_plain_without_initial_response_and_cancel() {
    let s = server("");
    let mut c = s.connect(s.ports.submission);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    c.expect("AUTH PLAIN", "334");
    c.expect("*", "501 5.0.0");
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6");
    c.expect(&b64("alice@example.test"), "334 UGFzc3dvcmQ6");
    c.expect(&b64("alice-password"), "235 2.7.0");
    let mut c = s.connect(s.ports.submission);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    c.expect(
        &format!("AUTH LOGIN {}", b64("bob@example.test")),
        "334 UGFzc3dvcmQ6",
    );
    c.expect(&b64("bob-password"), "235 2.7.0");
}

#[test]
fn submissions_is_tls_from_the_first_byte_and_requires_auth() {
    let s = server("");
    let mut c = Conn::implicit_tls(s.ports.submissions, s.certificate());
    assert_eq!(c.greeting.as_ref().unwrap().code, 220);
    let r = c.expect("EHLO client.test", "250");
    assert!(
        r.text.contains("AUTH PLAIN LOGIN") && !r.text.contains("STARTTLS"),
        "{r:?}"
    );
    c.expect("MAIL FROM:<bob@example.test>", "530 5.7.0");
    c.expect(
        &format!(
            "AUTH PLAIN {}",
            plain_ir("bob@example.test", "bob-password")
        ),
        "235",
    );
    // Submitted mail must be from the account's own domain (the sender rules).
    let own = message("smtps").replace(
        "From: Carol <carol@remote.test>",
        "From: Bob <bob@example.test>",
    );
    assert_eq!(
        c.send_mail("bob@example.test", &["alice@example.test"], &own)
            .code,
        250
    );
    s.wait_for_mail("alice@example.test", 1);
}

#[test]
fn mx_refuses_auth() {
    let s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    c.expect(
        &format!(
            "AUTH PLAIN {}",
            plain_ir("alice@example.test", "alice-password")
        ),
        "502 5.5.1",
    );
}

#[test]
fn connections_over_the_total_cap_get_421() {
    let s = server("[smtp]\nmax_connections = 2\n");
    let _a = s.connect(s.ports.mx);
    let _b = s.connect(s.ports.submission);
    let mut c = Conn::raw(s.ports.mx, s.certificate());
    let r = c.reply();
    assert_eq!(
        (r.code, r.text.as_str()),
        (421, "4.7.0 Too many connections, try again later")
    );
}

#[test]
fn on_sigterm_idle_sessions_get_421_and_the_server_exits() {
    let mut s = server("");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    s.stop();
    let r = c.reply();
    assert_eq!((r.code, &r.text[..5]), (421, "4.3.2"));
    assert!(c.is_closed());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", s.ports.mx)).is_err(),
        "no longer listening"
    );
}

#[test]
fn a_bdat_message_over_the_size_limit_is_refused_and_not_kept() {
    let s = server("[smtp]\nmax_message_size = \"10KiB\"\nspool_memory_limit = \"4KiB\"\n");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<a@remote.test>", "250");
    c.expect("RCPT TO:<alice@example.test>", "250");
    let chunk = "0123456789012345678901234567890123456789\r\n".repeat(300);
    c.send_raw(format!("BDAT {}\r\n{chunk}", chunk.len()).as_bytes());
    let r = c.reply();
    assert_eq!((r.code, &r.text[..5]), (552, "5.3.4"), "{r:?}");
    // Later chunks of the refused message are read and refused too; then the session goes on.
    c.send_raw(format!("BDAT {} LAST\r\n{chunk}", chunk.len()).as_bytes());
    assert_eq!(c.reply().code, 503);
    c.expect("RSET", "250");
    assert!(
        std::fs::read_dir(s.data_dir().join("spool"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn an_account_may_send_only_as_addresses_of_its_own_domain_by_default() {
    let s = server("");
    let mut c = s.login("alice@example.test", "alice-password");
    c.expect(
        "MAIL FROM:<ceo@bank.test>",
        "550 5.7.1 Sender address not allowed",
    );
    c.expect("MAIL FROM:<sales@example.test>", "250");
    c.expect("RCPT TO:<bob@example.test>", "250");
    c.expect("DATA", "354");
    c.send_raw(b"From: The CEO <ceo@bank.test>\r\nSubject: wire money\r\n\r\nnow\r\n.\r\n");
    let r = c.reply();
    assert_eq!(
        (r.code, r.text.as_str()),
        (550, "5.7.1 From: address not allowed for this account")
    );
    let r = c.send_mail(
        "alice@example.test",
        &["bob@example.test"],
        "From: Alice <alice@example.test>\r\nSubject: fine\r\n\r\nok\r\n",
    );
    assert_eq!(r.code, 250);
    s.wait_for_mail("bob@example.test", 1);
}

#[test]
fn sender_rules_in_the_config_widen_or_narrow_what_an_account_may_use() {
    let s = server("[senders.allowed]\n\"alice@example.test\" = [\"@bank.test\"]\n");
    let mut c = s.login("alice@example.test", "alice-password");
    c.expect("MAIL FROM:<ceo@bank.test>", "250");
    c.expect("RSET", "250");
    c.expect("MAIL FROM:<sales@example.test>", "550 5.7.1");
    c.expect("MAIL FROM:<alice@example.test>", "250");
    // Bob has no rule: his own domain only.
    let mut c = s.login("bob@example.test", "bob-password");
    c.expect("MAIL FROM:<ceo@bank.test>", "550 5.7.1");
}

#[test]
fn notify_success_on_a_local_delivery_sends_a_delivered_report_to_the_sender() {
    let s = server("");
    let mut c = s.login("alice@example.test", "alice-password");
    c.expect("MAIL FROM:<alice@example.test> ENVID=abc", "250");
    c.expect("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE", "250");
    c.expect("DATA", "354");
    c.send_raw(b"From: alice@example.test\r\nSubject: did it arrive\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    s.wait_for_mail("bob@example.test", 1);
    let ids = s.wait_for_mail("alice@example.test", 1);
    let report = String::from_utf8(s.mailbox_show("alice@example.test", ids[0])).unwrap();
    for want in [
        "Return-Path: <>",
        "Subject: Successful Mail Delivery Report",
        "report-type=delivery-status",
        "Original-Envelope-Id: abc",
        "Final-Recipient: rfc822; bob@example.test",
        "Action: delivered",
        "Status: 2.0.0",
        "Content-Type: text/rfc822-headers",
    ] {
        assert!(report.contains(want), "missing {want:?} in:\n{report}");
    }
    assert!(
        !report.contains("\r\nbody\r\n"),
        "a success report returns the headers only"
    );
}
