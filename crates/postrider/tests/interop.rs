//! Interoperability: real SMTP clients (Python smtplib, swaks, curl) against the real server,
//! over plain SMTP, STARTTLS and implicit TLS, with and without AUTH.
//!
//! Each test sends a message file, then checks that the stored message is exactly the added
//! header block (Return-Path, Delivered-To, Received, and on submission Message-ID/Date when the
//! client sent none) followed by the sent bytes, byte for byte, and that Received names the
//! protocol (RFC 3848: ESMTP, ESMTPS, ESMTPSA; RFC 6531: UTF8SMTP).
//!
//! TLS clients verify the server's self-signed certificate (valid for "localhost") while
//! connecting to 127.0.0.1 only. The tools must be installed: a missing tool fails the test
//! with "run scripts/install-test-deps".

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::TestServer;

const ALICE: &str = "alice@example.test";
const ALICE_PW: &str = "alice-password";
const CAROL: &str = "carol@remote.test";

fn server() -> TestServer {
    let s =
        // The same messages (From: carol@remote.test) go through MX and submission here, so
        // alice may send as anyone; the sender rules themselves are tested in smtp_dialog.rs.
        TestServer::start(
            Path::new(env!("CARGO_BIN_EXE_postrider")),
            "[senders.allowed]\n\"alice@example.test\" = [\"*\"]\n",
        )
        .expect("start server");
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account(ALICE, ALICE_PW);
    s
}

/// Fails (never skips) when a client tool is missing.
fn require(tool: &str, probe: &[&str]) {
    match Command::new(tool).args(probe).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{tool} {probe:?} failed ({}): {}{}\nrun scripts/install-test-deps",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("{tool} is not installed ({e}): run scripts/install-test-deps"),
    }
}

/// Runs a client under `timeout` so a hung dialog fails the test instead of hanging it.
fn run(tool: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}): run scripts/install-test-deps"))
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_ok(tool: &str, args: &[&str]) -> String {
    let out = run(tool, args);
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\n{}",
        text(&out)
    );
    text(&out)
}

/// The queue id from a "250 2.0.0 Ok: queued as <ID>" line in a client's transcript.
fn queue_id(transcript: &str) -> String {
    let at = transcript
        .find("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("no 'queued as' reply in:\n{transcript}"));
    let id: String = transcript[at + 24..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    assert_eq!(id.len(), 13, "queue id in {transcript}");
    id
}

/// A message with what tends to break naive handling: a line starting with a dot (stuffed on
/// the wire), a lone dot line, trailing white space, a tab, an empty line in the body, a
/// folded header, and a line of 998 octets.
fn message(subject: &str, with_id_and_date: bool) -> Vec<u8> {
    let mut m = String::new();
    m.push_str("From: Carol <carol@remote.test>\r\n");
    m.push_str("To: Alice <alice@example.test>\r\n");
    m.push_str(&format!("Subject: {subject}\r\n"));
    if with_id_and_date {
        m.push_str(&format!(
            "Message-ID: <{}@remote.test>\r\n",
            subject.replace(' ', ".")
        ));
        m.push_str("Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n");
    }
    m.push_str("X-Folded: first part\r\n\tsecond part\r\n");
    m.push_str("\r\nHello Alice,\r\n\r\n.a line that starts with a dot\r\n.\r\n..two dots\r\ntrailing space   \r\n\ttab\r\n");
    m.push_str(&"x".repeat(998));
    m.push_str("\r\n-- \r\nCarol\r\n");
    m.into_bytes()
}

fn write(s: &TestServer, name: &str, bytes: &[u8]) -> PathBuf {
    let p = s.dir.path().join(name);
    std::fs::write(&p, bytes).expect("write file");
    p
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace('\r', "\\r")
}

/// Checks the one message in `owner`'s mailbox: the sent bytes after the added headers, and
/// the added headers themselves. Returns the added header block.
fn check_stored(
    s: &TestServer,
    owner: &str,
    sender: &str,
    helo: &str,
    with: &str,
    id: Option<&str>,
    sent: &[u8],
) -> String {
    let ids = s.wait_for_mail(owner, 1);
    assert_eq!(ids.len(), 1, "exactly one message for {owner}");
    let stored = s.mailbox_show(owner, ids[0]);
    let first_line = &sent[..sent
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a CRLF in the sent message")
        + 2];
    let mut needle = b"\r\n".to_vec();
    needle.extend_from_slice(first_line);
    let at = stored
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap_or_else(|| {
            panic!(
                "the sent first line {:?} is not in the stored message:\n{}",
                show(first_line),
                show(&stored)
            )
        })
        + 2;
    assert!(
        stored[at..] == *sent,
        "the stored message differs from the sent one after the added headers\n--- stored\n{}\n--- sent\n{}",
        show(&stored[at..]),
        show(sent)
    );
    let added = String::from_utf8(stored[..at].to_vec()).expect("added headers are UTF-8");
    let start = format!(
        "Return-Path: <{sender}>\r\nDelivered-To: {owner}\r\nReceived: from {helo} ([127.0.0.1])\r\n"
    );
    assert!(
        added.starts_with(&start),
        "added headers start with {start:?}:\n{added}"
    );
    let want = match id {
        Some(id) => format!("by mx.test (Postrider) with {with} id {id}"),
        None => format!(" with {with} id "),
    };
    assert!(added.contains(&want), "Received says {want:?}:\n{added}");
    // Received is the only multi-line field added; every added line belongs to a known field.
    for line in added.split_terminator("\r\n") {
        assert!(
            line.starts_with('\t')
                || [
                    "Return-Path: ",
                    "Delivered-To: ",
                    "Received: ",
                    "Message-ID: ",
                    "Date: "
                ]
                .iter()
                .any(|f| line.starts_with(f)),
            "unexpected added line {line:?} in:\n{added}"
        );
    }
    added
}

// ---------------------------------------------------------------------------------------------
// Python smtplib
// ---------------------------------------------------------------------------------------------

/// One script for every smtplib scenario: `client.py MODE PORT CAFILE MSGFILE OUTFILE`.
/// It connects to 127.0.0.1 only, and verifies TLS as "localhost" (smtplib uses the host it
/// was given as the TLS server name, so the socket is opened by hand).
const PY_CLIENT: &str = r#"
import smtplib, socket, ssl, sys
from email.message import EmailMessage
from email import policy

mode, port, cafile, msgfile, outfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
USER, PASSWORD, CAROL, ALICE = 'alice@example.test', 'alice-password', 'carol@remote.test', 'alice@example.test'
HELO = 'python.client.test'
ctx = ssl.create_default_context(cafile=cafile)
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED

class Report:
    # Print the reply to the end of data (it has the queue id) and keep the bytes sent.
    def data(self, msg):
        code, resp = super().data(msg)
        print('DATA-REPLY', code, resp.decode())
        return code, resp
    def sendmail(self, from_addr, to_addrs, msg, mail_options=(), rcpt_options=()):
        with open(outfile, 'wb') as f:
            f.write(msg if isinstance(msg, bytes) else msg.encode('ascii'))
        print('MAIL-OPTIONS', ' '.join(mail_options))
        return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)

class Loopback(Report, smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        return socket.create_connection(('127.0.0.1', port), timeout)

class LoopbackSSL(Report, smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection(('127.0.0.1', port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self._host)

def plain():
    return Loopback('localhost', port, local_hostname=HELO, timeout=30)

def data():
    return open(msgfile, 'rb').read()

if mode == 'plain':
    with plain() as s:
        s.ehlo()
        assert not s.has_extn('auth'), 'mx offers no AUTH'
        s.sendmail(CAROL, [ALICE], data())
elif mode == 'starttls':
    with plain() as s:
        s.ehlo()
        s.starttls(context=ctx)
        s.ehlo()
        assert not s.has_extn('starttls'), 'no STARTTLS after TLS'
        s.sendmail(CAROL, [ALICE], data())
elif mode == 'starttls-login':
    with plain() as s:
        s.starttls(context=ctx)
        s.login(USER, PASSWORD)
        s.sendmail(USER, [ALICE], data())
elif mode == 'ssl-login':
    with LoopbackSSL('localhost', port, local_hostname=HELO, timeout=30, context=ctx) as s:
        s.ehlo()
        assert s.has_extn('auth') and 'PLAIN' in s.esmtp_features['auth'] and 'LOGIN' in s.esmtp_features['auth'], s.esmtp_features
        assert not s.has_extn('starttls'), 'no STARTTLS on implicit TLS'
        s.login(USER, PASSWORD)
        s.sendmail(USER, [ALICE], data())
elif mode == 'plaintext-login':
    with plain() as s:
        s.ehlo()
        print('EHLO-AUTH', s.has_extn('auth'))
        try:
            s.login(USER, PASSWORD)
            print('LOGIN-ACCEPTED')
        except smtplib.SMTPNotSupportedError as e:
            print('LOGIN-REFUSED SMTPNotSupportedError', e)
        except smtplib.SMTPException as e:
            print('LOGIN-REFUSED', type(e).__name__, e)
        # Sending the credentials anyway must be refused too.
        code, resp = s.docmd('AUTH', 'PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wYXNzd29yZA==')
        print('RAW-AUTH', code, resp.decode())
        try:
            s.sendmail(USER, [ALICE], data())
            print('SEND-ACCEPTED')
        except smtplib.SMTPSenderRefused as e:
            print('SEND-REFUSED', e.smtp_code, e.smtp_error.decode())
elif mode == 'utf8-envelope':
    # A non-ASCII envelope sender: send_message turns on SMTPUTF8 and BODY=8BITMIME itself and
    # writes the UTF-8 headers raw.
    msg = EmailMessage(policy=policy.SMTP)
    msg['From'] = 'Jürgen Müller <jürgen@bücher.test>'
    msg['To'] = 'Alice <alice@example.test>'
    msg['Subject'] = 'Grüße aus Köln ✉'
    msg['Message-ID'] = '<utf8-envelope@remote.test>'
    msg['Date'] = 'Sat, 28 Nov 2026 10:00:00 +0000'
    msg.set_content('Hallo Alice,\n\nschöne Grüße — 日本語 — ✉\n.Punkt am Zeilenanfang\n', cte='8bit')
    with plain() as s:
        s.ehlo()
        assert s.has_extn('smtputf8') and s.has_extn('8bitmime'), s.esmtp_features
        s.send_message(msg, from_addr='jürgen@bücher.test', to_addrs=[ALICE])
elif mode == 'utf8-options':
    # ASCII envelope, UTF-8 header and 8-bit body: SMTPUTF8 asked for explicitly.
    msg = EmailMessage(policy=policy.SMTPUTF8)
    msg['From'] = 'Jürgen Müller <carol@remote.test>'
    msg['To'] = 'Alice <alice@example.test>'
    msg['Subject'] = 'Grüße aus Köln ✉'
    msg['Message-ID'] = '<utf8-options@remote.test>'
    msg['Date'] = 'Sat, 28 Nov 2026 10:00:00 +0000'
    msg.set_content('Hallo Alice,\n\nschöne Grüße — 日本語 — ✉\n', cte='8bit')
    with plain() as s:
        s.ehlo()
        s.send_message(msg, from_addr=CAROL, to_addrs=[ALICE], mail_options=['SMTPUTF8', 'BODY=8BITMIME'])
else:
    sys.exit('unknown mode ' + mode)
print('DONE')
"#;

/// Runs the smtplib client; returns its transcript and the bytes it sent as the message.
fn python(s: &TestServer, mode: &str, port: u16, msg: &[u8]) -> (String, Vec<u8>) {
    require("python3", &["-c", "import smtplib, ssl, email.policy"]);
    let script = write(s, "client.py", PY_CLIENT.as_bytes());
    let msgfile = write(s, "message.eml", msg);
    let outfile = s.dir.path().join("sent.eml");
    let cert = s.certificate();
    let out = run_ok(
        "python3",
        &[
            script.to_str().unwrap(),
            mode,
            &port.to_string(),
            cert.to_str().unwrap(),
            msgfile.to_str().unwrap(),
            outfile.to_str().unwrap(),
        ],
    );
    assert!(out.contains("\nDONE\n"), "{out}");
    let sent = std::fs::read(&outfile).unwrap_or_default();
    (out, sent)
}

#[test]
fn python_smtplib_delivers_over_plain_smtp_to_mx_unchanged() {
    let s = server();
    let msg = message("smtplib plain", true);
    let (out, sent) = python(&s, "plain", s.ports.mx, &msg);
    assert_eq!(sent, msg);
    let added = check_stored(
        &s,
        ALICE,
        CAROL,
        "python.client.test",
        "ESMTP",
        Some(&queue_id(&out)),
        &msg,
    );
    assert!(
        !added.contains("Message-ID:") && !added.contains("Date:"),
        "mx adds no Message-ID/Date:\n{added}"
    );
}

#[test]
fn python_smtplib_delivers_over_starttls_to_mx_unchanged() {
    let s = server();
    let msg = message("smtplib starttls", true);
    let (out, _) = python(&s, "starttls", s.ports.mx, &msg);
    let added = check_stored(
        &s,
        ALICE,
        CAROL,
        "python.client.test",
        "ESMTPS",
        Some(&queue_id(&out)),
        &msg,
    );
    assert!(
        added.contains("\t(using TLSv1."),
        "Received notes TLS:\n{added}"
    );
}

#[test]
fn python_smtplib_submits_over_implicit_tls_with_login_and_gets_message_id_and_date_added() {
    let s = server();
    let msg = message("smtplib smtps", false);
    let (out, _) = python(&s, "ssl-login", s.ports.submissions, &msg);
    let added = check_stored(
        &s,
        ALICE,
        ALICE,
        "python.client.test",
        "ESMTPSA",
        Some(&queue_id(&out)),
        &msg,
    );
    assert!(
        added.contains("\t(authenticated as alice@example.test)\r\n"),
        "{added}"
    );
    assert!(
        added.contains("\r\nMessage-ID: <") && added.contains("@mx.test>\r\n"),
        "Message-ID added on submission:\n{added}"
    );
    assert!(
        added.contains("\r\nDate: "),
        "Date added on submission:\n{added}"
    );
}

#[test]
fn python_smtplib_submits_with_starttls_and_login_and_keeps_its_own_message_id() {
    let s = server();
    let msg = message("smtplib submission", true);
    let (out, _) = python(&s, "starttls-login", s.ports.submission, &msg);
    let added = check_stored(
        &s,
        ALICE,
        ALICE,
        "python.client.test",
        "ESMTPSA",
        Some(&queue_id(&out)),
        &msg,
    );
    assert!(
        !added.contains("Message-ID:") && !added.contains("Date:"),
        "the client's own Message-ID/Date are kept:\n{added}"
    );
}

#[test]
fn python_smtplib_login_over_plain_text_submission_is_refused_because_auth_is_not_offered() {
    let s = server();
    let (out, _) = python(
        &s,
        "plaintext-login",
        s.ports.submission,
        &message("no tls", true),
    );
    assert!(
        out.contains("EHLO-AUTH False"),
        "AUTH is not offered before TLS:\n{out}"
    );
    assert!(
        out.contains("LOGIN-REFUSED SMTPNotSupportedError"),
        "smtplib refuses to log in:\n{out}"
    );
    assert!(!out.contains("LOGIN-ACCEPTED"), "{out}");
    assert!(
        out.contains("RAW-AUTH 530 5.7.0") || out.contains("RAW-AUTH 538 5.7.11"),
        "AUTH before TLS is refused:\n{out}"
    );
    assert!(
        out.contains("SEND-REFUSED 530 5.7.0"),
        "mail without TLS and AUTH is refused:\n{out}"
    );
    let list = s.admin_ok(&["mailbox", "list", ALICE]);
    assert!(list.starts_with("no messages"), "{list}");
}

#[test]
fn python_smtplib_send_message_with_a_utf8_sender_uses_smtputf8_and_stores_8bit_text_unchanged() {
    let s = server();
    let (out, sent) = python(&s, "utf8-envelope", s.ports.mx, b"unused\r\n");
    assert!(out.contains("MAIL-OPTIONS SMTPUTF8 BODY=8BITMIME"), "{out}");
    let text = String::from_utf8(sent.clone()).expect("smtplib sent UTF-8");
    assert!(
        text.contains("Subject: Grüße aus Köln ✉\r\n")
            && text.contains("schöne Grüße — 日本語 — ✉\r\n"),
        "raw UTF-8 on the wire:\n{text}"
    );
    assert!(text.contains("\r\n.Punkt am Zeilenanfang\r\n"));
    check_stored(
        &s,
        ALICE,
        "jürgen@bücher.test",
        "python.client.test",
        "UTF8SMTP",
        Some(&queue_id(&out)),
        &sent,
    );
}

#[test]
fn python_smtplib_send_message_with_smtputf8_in_mail_options_stores_utf8_headers_unchanged() {
    let s = server();
    let (out, sent) = python(&s, "utf8-options", s.ports.mx, b"unused\r\n");
    assert!(out.contains("MAIL-OPTIONS SMTPUTF8 BODY=8BITMIME"), "{out}");
    let text = String::from_utf8(sent.clone()).expect("smtplib sent UTF-8");
    assert!(
        text.contains("From: Jürgen Müller <carol@remote.test>\r\n")
            && text.contains("Subject: Grüße aus Köln ✉\r\n"),
        "{text}"
    );
    let added = check_stored(
        &s,
        ALICE,
        CAROL,
        "python.client.test",
        "UTF8SMTP",
        Some(&queue_id(&out)),
        &sent,
    );
    assert!(added.contains("\tfor <alice@example.test>;"), "{added}");
}

// ---------------------------------------------------------------------------------------------
// swaks
// ---------------------------------------------------------------------------------------------

/// swaks sends `--data @FILE` with a CRLF and the final dot appended (and dots stuffed), so the
/// file has no final CRLF and the stored message is the file plus CRLF. TLS is verified against
/// the server certificate with --tls-verify --tls-ca-path; note that swaks (20201014) checks the
/// chain only, not the host name.
fn swaks(s: &TestServer, port: u16, extra: &[&str], msg: &[u8]) -> String {
    require("swaks", &["--version"]);
    assert!(msg.ends_with(b"\r\n"));
    let file = write(s, "swaks.eml", &msg[..msg.len() - 2]);
    let data = format!("@{}", file.display());
    let port = port.to_string();
    let cert = s.certificate();
    let mut args = vec![
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--ehlo",
        "swaks.client.test",
        "--to",
        ALICE,
        "--data",
        &data,
    ];
    if extra.iter().any(|a| a.starts_with("-tls")) {
        args.extend([
            "--tls-verify",
            "--tls-ca-path",
            cert.to_str().unwrap(),
            "--tls-sni",
            "localhost",
        ]);
    }
    args.extend(extra);
    run_ok("swaks", &args)
}

#[test]
fn swaks_delivers_over_plain_smtp_to_mx_unchanged() {
    let s = server();
    let msg = message("swaks plain", true);
    let out = swaks(&s, s.ports.mx, &["--from", CAROL], &msg);
    check_stored(
        &s,
        ALICE,
        CAROL,
        "swaks.client.test",
        "ESMTP",
        Some(&queue_id(&out)),
        &msg,
    );
}

#[test]
fn swaks_with_pipelining_sends_mail_rcpt_and_data_in_one_flight() {
    let s = server();
    let msg = message("swaks pipeline", true);
    let out = swaks(&s, s.ports.mx, &["--from", CAROL, "--pipeline"], &msg);
    // With PIPELINING swaks writes MAIL, RCPT and DATA before reading any of their replies.
    let flight = " -> MAIL FROM:<carol@remote.test>\n -> RCPT TO:<alice@example.test>\n -> DATA\n<-  250 2.1.0";
    assert!(out.contains(flight), "pipelined transcript:\n{out}");
    check_stored(
        &s,
        ALICE,
        CAROL,
        "swaks.client.test",
        "ESMTP",
        Some(&queue_id(&out)),
        &msg,
    );
}

#[test]
fn swaks_submits_with_starttls_and_auth_plain() {
    let s = server();
    let msg = message("swaks starttls", true);
    let out = swaks(
        &s,
        s.ports.submission,
        &[
            "--from",
            ALICE,
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            ALICE,
            "--auth-password",
            ALICE_PW,
        ],
        &msg,
    );
    assert!(out.contains("235 2.7.0"), "{out}");
    check_stored(
        &s,
        ALICE,
        ALICE,
        "swaks.client.test",
        "ESMTPSA",
        Some(&queue_id(&out)),
        &msg,
    );
}

#[test]
fn swaks_submits_over_implicit_tls_with_auth_login() {
    let s = server();
    let msg = message("swaks tlsc", false);
    let out = swaks(
        &s,
        s.ports.submissions,
        &[
            "--from",
            ALICE,
            "-tlsc",
            "--auth",
            "LOGIN",
            "--auth-user",
            ALICE,
            "--auth-password",
            ALICE_PW,
        ],
        &msg,
    );
    assert!(out.contains("235 2.7.0"), "{out}");
    let added = check_stored(
        &s,
        ALICE,
        ALICE,
        "swaks.client.test",
        "ESMTPSA",
        Some(&queue_id(&out)),
        &msg,
    );
    assert!(
        added.contains("\r\nMessage-ID: <") && added.contains("\r\nDate: "),
        "{added}"
    );
}

// ---------------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------------

/// curl uploads the file as the message (dots stuffed; the file ends with CRLF so only ".\r\n"
/// follows). The URL path is the EHLO name. TLS goes to "localhost" pinned to 127.0.0.1.
fn curl(s: &TestServer, scheme: &str, port: u16, extra: &[&str], from: &str, msg: &[u8]) -> String {
    require("curl", &["--version"]);
    let file = write(s, "curl.eml", msg);
    let url = format!("{scheme}://localhost:{port}/curl.client.test");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let cert = s.certificate();
    let mut args = vec![
        "-sS",
        "-v",
        "--max-time",
        "30",
        &url,
        "--resolve",
        &resolve,
        "--cacert",
        cert.to_str().unwrap(),
        "--mail-from",
        from,
        "--mail-rcpt",
        ALICE,
        "-T",
        file.to_str().unwrap(),
    ];
    args.extend(extra);
    run_ok("curl", &args)
}

#[test]
fn curl_uploads_over_plain_smtp_to_mx_unchanged() {
    let s = server();
    let msg = message("curl plain", true);
    let out = curl(&s, "smtp", s.ports.mx, &[], CAROL, &msg);
    check_stored(
        &s,
        ALICE,
        CAROL,
        "curl.client.test",
        "ESMTP",
        Some(&queue_id(&out)),
        &msg,
    );
}

#[test]
fn curl_with_ssl_reqd_submits_over_starttls_with_a_user() {
    let s = server();
    let user = format!("{ALICE}:{ALICE_PW}");
    let msg = message("curl starttls", true);
    let out = curl(
        &s,
        "smtp",
        s.ports.submission,
        &["--ssl-reqd", "--user", &user],
        ALICE,
        &msg,
    );
    assert!(out.contains("< 235 2.7.0"), "{out}");
    check_stored(
        &s,
        ALICE,
        ALICE,
        "curl.client.test",
        "ESMTPSA",
        Some(&queue_id(&out)),
        &msg,
    );
}

#[test]
fn curl_smtps_submits_over_implicit_tls_with_a_user() {
    let s = server();
    let user = format!("{ALICE}:{ALICE_PW}");
    let msg = message("curl smtps", true);
    let out = curl(
        &s,
        "smtps",
        s.ports.submissions,
        &["--user", &user],
        ALICE,
        &msg,
    );
    assert!(out.contains("< 235 2.7.0"), "{out}");
    check_stored(
        &s,
        ALICE,
        ALICE,
        "curl.client.test",
        "ESMTPSA",
        Some(&queue_id(&out)),
        &msg,
    );
}

#[test]
fn curl_refuses_the_server_certificate_without_it_as_a_trusted_ca() {
    // The other TLS tests would also pass without verification; this shows it is on.
    let s = server();
    require("curl", &["--version"]);
    let port = s.ports.submissions;
    let url = format!("smtps://localhost:{port}/curl.client.test");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let out = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "30",
            &url,
            "--resolve",
            &resolve,
            "--mail-rcpt",
            ALICE,
            "-T",
            "/dev/null",
        ],
    );
    // 60: "Peer certificate cannot be authenticated with known CA certificates".
    assert_eq!(
        out.status.code(),
        Some(60),
        "curl must not trust the self-signed certificate by default:\n{}",
        text(&out)
    );
}
