//! TLS: protocol versions, certificates chosen by SNI, reloads on SIGHUP and on file changes
//! without dropping open sessions, and `postrider tls check`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use testkit::tls::{HelloAnswer, TestCert, Versions, handshake, legacy_hello, starttls_handshake};
use testkit::{Conn, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_postrider"))
}

/// A directory for certificate files, with paths named after the certificate.
struct Certs(tempfile::TempDir);

impl Certs {
    fn new() -> Certs {
        Certs(tempfile::tempdir().expect("temp dir"))
    }

    fn paths(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.0.path().join(format!("{name}.crt")),
            self.0.path().join(format!("{name}.key")),
        )
    }

    /// Writes `cert` as `name.crt` / `name.key` and returns the TOML for these two keys.
    fn put(&self, name: &str, cert: &TestCert) -> String {
        let (c, k) = self.paths(name);
        cert.write(&c, &k);
        format!(
            "certificate = \"{}\"\nprivate_key = \"{}\"\n",
            c.display(),
            k.display()
        )
    }
}

fn message(subject: &str) -> String {
    format!(
        "From: carol@remote.test\r\nTo: postmaster@localhost\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    )
}

/// Repeats a handshake until the server presents `want` (a reload is asynchronous).
fn wait_for_certificate(s: &TestServer, want: &TestCert, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let h =
            handshake(s.ports.submissions, Some("localhost"), Versions::Both).expect("handshake");
        if h.leaf == want.der {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within {within:?}; log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for_log(s: &TestServer, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let log = s.log();
        if let Some(line) = log.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needle:?}; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sighup(s: &TestServer) {
    let pid = s.pid().expect("server running");
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// A session on the MX port, encrypted with STARTTLS (verifying the certificate in `trust`),
/// with MAIL and RCPT accepted, ready for DATA.
fn open_transaction(s: &TestServer, trust: &Path) -> Conn {
    let mut c = Conn::plain(s.ports.mx, trust.to_path_buf());
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    c.expect("MAIL FROM:<carol@remote.test>", "250");
    c.expect("RCPT TO:<postmaster@localhost>", "250");
    c
}

/// Sends the message of a transaction opened by [`open_transaction`]; expects 250.
fn finish_transaction(c: &mut Conn, subject: &str) {
    c.expect("DATA", "354");
    c.send_raw(format!("{}.\r\n", message(subject)).as_bytes());
    let r = c.reply();
    assert_eq!(r.code, 250, "{r:?}");
    c.expect("QUIT", "221");
}

#[test]
fn tls_1_2_and_1_3_are_accepted_and_older_versions_refused_with_a_protocol_version_alert() {
    let s = TestServer::start(bin(), "").expect("start server");
    for (versions, want) in [
        (Versions::Tls12Only, "TLSv1_2"),
        (Versions::Tls13Only, "TLSv1_3"),
        (Versions::Both, "TLSv1_3"),
    ] {
        let h = handshake(s.ports.submissions, Some("localhost"), versions).expect("handshake");
        assert_eq!(h.version, want, "implicit TLS with {versions:?}");
        let h = starttls_handshake(s.ports.mx, Some("localhost"), versions).expect("STARTTLS");
        assert_eq!(h.version, want, "STARTTLS with {versions:?}");
    }
    // The hand-made hello is sound: offering TLS 1.2 with it gets a ServerHello...
    assert_eq!(
        legacy_hello(s.ports.submissions, [3, 3]).unwrap(),
        HelloAnswer::ServerHello([3, 3])
    );
    // ...and offering only TLS 1.1 or 1.0 gets alert 70, protocol_version (RFC 5246 §7.2.2).
    for version in [[3, 2], [3, 1]] {
        assert_eq!(
            legacy_hello(s.ports.submissions, version).unwrap(),
            HelloAnswer::Alert(70),
            "version {version:?}"
        );
    }
    // A real TLS 1.1 client, where the installed OpenSSL can still speak it.
    if let Some(out) = openssl_client(s.ports.submissions, "-tls1_1") {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !text.contains("no protocols available") {
            // OpenSSL offers only CBC suites with TLS 1.1, so the refusal may come as
            // handshake_failure rather than protocol_version: either way, no session.
            assert!(
                !out.status.success(),
                "TLS 1.1 handshake succeeded:\n{text}"
            );
            assert!(
                text.contains("alert protocol version") || text.contains("alert handshake failure"),
                "{text}"
            );
            assert!(!text.contains("Cipher is ECDHE"), "{text}");
        }
        let ok = openssl_client(s.ports.submissions, "-tls1_2").expect("openssl ran before");
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }
}

/// `openssl s_client` with one version flag (and the security level lowered so OpenSSL itself
/// still offers old versions), or `None` when openssl is not installed.
fn openssl_client(port: u16, version: &str) -> Option<Output> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            version,
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"QUIT\r\n");
    }
    child.wait_with_output().ok()
}

#[test]
fn the_certificate_is_chosen_by_sni_with_wildcards_and_the_default_serves_other_names() {
    let certs = Certs::new();
    let default = TestCert::new(&["mx.test", "localhost"], 365);
    let mail = TestCert::new(&["mail.example.com"], 365);
    let wild = TestCert::new(&["*.example.net"], 365);
    let extra = format!(
        "[tls]\n{}\n[[tls.sni]]\nhostnames = [\"mail.example.com\", \"smtp.example.com\"]\n{}\n[[tls.sni]]\n{}",
        certs.put("default", &default),
        certs.put("mail", &mail),
        certs.put("wild", &wild),
    );
    let s = TestServer::start(bin(), &extra).expect("start server");
    let port = s.ports.submissions;
    let served = |sni: Option<&str>| {
        handshake(port, sni, Versions::Both)
            .unwrap_or_else(|e| panic!("handshake for {sni:?}: {e}"))
            .leaf
    };
    assert_eq!(served(Some("mail.example.com")), mail.der);
    assert_eq!(
        served(Some("smtp.example.com")),
        mail.der,
        "configured names"
    );
    assert_eq!(
        served(Some("in.example.net")),
        wild.der,
        "names from the cert"
    );
    assert_eq!(
        served(Some("a.b.example.net")),
        default.der,
        "one label only"
    );
    assert_eq!(served(Some("example.net")), default.der);
    assert_eq!(served(Some("unknown.test")), default.der);
    assert_eq!(served(None), default.der, "no SNI");
    for (version, label) in [(Versions::Tls12Only, "1.2"), (Versions::Tls13Only, "1.3")] {
        let h =
            starttls_handshake(s.ports.mx, Some("mail.example.com"), version).expect("STARTTLS");
        assert_eq!(h.leaf, mail.der, "STARTTLS, TLS {label}");
    }
    let log = s.log();
    assert!(
        log.contains("served for mail.example.com, smtp.example.com"),
        "{log}"
    );
    assert!(
        log.contains("does not cover smtp.example.com"),
        "a configured name the certificate lacks is warned about: {log}"
    );
}

#[test]
fn sighup_reloads_certificates_and_the_tls_section_for_new_connections_while_an_open_session_finishes_its_mail()
 {
    let certs = Certs::new();
    let a = TestCert::new(&["localhost"], 365);
    let b = TestCert::new(&["localhost"], 365);
    let extra = format!(
        "[tls]\n{}reload_interval = \"0s\"\n",
        certs.put("server", &a)
    );
    let s = TestServer::start(bin(), &extra).expect("start server");
    let trust_a = certs.0.path().join("trust-a.pem");
    std::fs::write(&trust_a, &a.cert_pem).unwrap();
    let mut session = open_transaction(&s, &trust_a);

    let (cert, key) = certs.paths("server");
    b.write(&cert, &key);
    std::thread::sleep(Duration::from_millis(1500));
    let h = handshake(s.ports.submissions, Some("localhost"), Versions::Both).unwrap();
    assert_eq!(
        h.leaf, a.der,
        "without a watcher, nothing changes before SIGHUP"
    );

    sighup(&s);
    wait_for_certificate(&s, &b, Duration::from_secs(10));
    finish_transaction(&mut session, "begun before the reload");
    s.wait_for_mail("postmaster@localhost", 1);

    // SIGHUP also re-reads [tls]: a certificate added to the config is served.
    let added = TestCert::new(&["new.example.com"], 365);
    let mut config = std::fs::read_to_string(&s.config).unwrap();
    config.push_str(&format!("\n[[tls.sni]]\n{}", certs.put("added", &added)));
    std::fs::write(&s.config, config).unwrap();
    sighup(&s);
    let deadline = Instant::now() + Duration::from_secs(10);
    while handshake(s.ports.submissions, Some("new.example.com"), Versions::Both)
        .unwrap()
        .leaf
        != added.der
    {
        assert!(Instant::now() < deadline, "not added; log:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let h = handshake(s.ports.submissions, Some("localhost"), Versions::Both).unwrap();
    assert_eq!(h.leaf, b.der, "the default stays");

    // A broken file: the error says what and how; B stays; the server keeps running.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    sighup(&s);
    let line = wait_for_log(&s, "TLS certificate not reloaded", Duration::from_secs(10));
    assert!(line.contains("holds no PEM certificate"), "{line}");
    assert!(
        line.contains("Still serving the one loaded before"),
        "{line}"
    );
    let h = handshake(s.ports.submissions, Some("localhost"), Versions::Both).unwrap();
    assert_eq!(h.leaf, b.der);
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO client.test", "250");
}

#[test]
fn changed_certificate_files_are_picked_up_without_a_signal_and_a_foreign_key_is_refused() {
    let certs = Certs::new();
    let a = TestCert::new(&["localhost"], 365);
    let b = TestCert::new(&["localhost"], 365);
    let extra = format!(
        "[tls]\n{}reload_interval = \"1s\"\n",
        certs.put("server", &a)
    );
    let s = TestServer::start(bin(), &extra).expect("start server");
    let trust_a = certs.0.path().join("trust-a.pem");
    std::fs::write(&trust_a, &a.cert_pem).unwrap();
    let mut session = open_transaction(&s, &trust_a);

    let (cert, key) = certs.paths("server");
    b.write(&cert, &key);
    wait_for_certificate(&s, &b, Duration::from_secs(15));
    finish_transaction(&mut session, "begun before the files changed");
    s.wait_for_mail("postmaster@localhost", 1);
    wait_for_log(&s, "TLS certificate reloaded", Duration::from_secs(1));

    // Only the key replaced, by one of another certificate: refused, B stays.
    let c = TestCert::new(&["localhost"], 365);
    std::fs::write(&key, &c.key_pem).unwrap();
    let line = wait_for_log(&s, "does not belong", Duration::from_secs(15));
    assert!(line.contains(&key.display().to_string()), "{line}");
    let h = handshake(s.ports.submissions, Some("localhost"), Versions::Both).unwrap();
    assert_eq!(h.leaf, b.der);
}

/// Runs `postrider --config FILE tls check ARGS`.
fn tls_check(config: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(["tls", "check"])
        .args(args)
        .output()
        .expect("run postrider");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn tls_check_lists_each_certificate_and_warns_about_one_expiring_within_the_warning_days() {
    let certs = Certs::new();
    let year = TestCert::new(&["mx.test"], 365);
    let soon = TestCert::new(&["soon.example.com"], 5);
    let config = certs.0.path().join("postrider.toml");
    let write_config = |default: &str, sni: &str| {
        let text = format!(
            "[server]\nhostname = \"mx.test\"\ndata_dir = \"{}\"\n[tls]\n{default}\n[[tls.sni]]\n{sni}",
            certs.0.path().join("data").display()
        );
        std::fs::write(&config, text).unwrap();
    };
    write_config(&certs.put("year", &year), &certs.put("soon", &soon));

    let (code, out) = tls_check(&config, &[]);
    assert_eq!(code, 1, "a warning exits with 1:\n{out}");
    for want in [
        "default certificate: ",
        "year.crt",
        "names:       mx.test",
        "issuer:      CN=mx.test (self-signed)",
        "SNI certificate for the names in the certificate: ",
        "names:       soon.example.com",
        "(5 days left)",
        "WARNING: expires in 5 days",
        "within --warn-days 30",
        "2 certificates checked: 1 warning, 0 errors",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(
        out.contains("(364 days left)") || out.contains("(365 days left)"),
        "{out}"
    );
    let (code, out) = tls_check(&config, &["--warn-days", "3"]);
    assert_eq!(code, 0, "{out}");

    // Expired, and a key of another certificate: errors, exit 2.
    let expired = TestCert::new(&["old.example.com"], -2);
    let (_, year_key) = certs.paths("year");
    write_config(
        &format!(
            "certificate = \"{}\"\nprivate_key = \"{}\"\n",
            certs.paths("soon").0.display(),
            year_key.display()
        ),
        &certs.put("expired", &expired),
    );
    let (code, out) = tls_check(&config, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not belong to the certificate"), "{out}");
    assert!(out.contains("ERROR: EXPIRED on "), "{out}");
    assert!(out.contains("renew it"), "{out}");

    // A file that is not there: the config does not load; the key and the fix are named.
    write_config(
        &certs.put("year", &year),
        "certificate = \"/nonexistent/cert.pem\"\nprivate_key = \"/nonexistent/key.pem\"\n",
    );
    let (code, out) = tls_check(&config, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("tls.sni[0].certificate"), "{out}");
    assert!(out.contains("correct the path"), "{out}");
}

#[test]
fn tls_check_shows_the_self_signed_certificate_a_server_made() {
    let s = TestServer::start(bin(), "").expect("start server");
    let (code, out) = tls_check(&s.config, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("self-signed.crt (self-signed, made by postrider"),
        "{out}"
    );
    assert!(out.contains("names:       mx.test, localhost"), "{out}");
    assert!(
        out.contains("note: clients that verify certificates"),
        "{out}"
    );
}
