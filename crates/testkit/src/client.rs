//! A small blocking SMTP client for dialog tests, plain or TLS.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A reply: code and the text of all its lines joined with '\n'.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

pub struct Conn {
    stream: Option<Box<dyn Stream>>,
    tcp: Option<TcpStream>,
    buf: Vec<u8>,
    cert: PathBuf,
    /// The greeting (or, after STARTTLS, nothing).
    pub greeting: Option<Reply>,
}

fn tls_config(cert: &PathBuf) -> Arc<ClientConfig> {
    let pem = std::fs::read(cert).expect("read the server certificate");
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.expect("certificate PEM")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

impl Conn {
    fn tcp(port: u16) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        s
    }

    /// Connects without TLS and reads the greeting.
    pub fn plain(port: u16, cert: PathBuf) -> Conn {
        let tcp = Self::tcp(port);
        let mut c = Conn {
            stream: Some(Box::new(tcp.try_clone().expect("clone"))),
            tcp: Some(tcp),
            buf: Vec::new(),
            cert,
            greeting: None,
        };
        c.greeting = Some(c.reply());
        c
    }

    /// Connects with implicit TLS (RFC 8314) and reads the greeting.
    pub fn implicit_tls(port: u16, cert: PathBuf) -> Conn {
        let tcp = Self::tcp(port);
        let mut c = Conn {
            stream: None,
            tcp: Some(tcp),
            buf: Vec::new(),
            cert,
            greeting: None,
        };
        c.wrap_tls();
        c.greeting = Some(c.reply());
        c
    }

    /// Wraps a connected socket (e.g. one bound to another loopback source address) and reads
    /// the greeting.
    pub fn from_tcp(tcp: TcpStream, cert: PathBuf) -> Conn {
        tcp.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut c = Conn {
            stream: Some(Box::new(tcp.try_clone().expect("clone"))),
            tcp: Some(tcp),
            buf: Vec::new(),
            cert,
            greeting: None,
        };
        c.greeting = Some(c.reply());
        c
    }

    /// Connects without reading anything.
    pub fn raw(port: u16, cert: PathBuf) -> Conn {
        let tcp = Self::tcp(port);
        Conn {
            stream: Some(Box::new(tcp.try_clone().expect("clone"))),
            tcp: Some(tcp),
            buf: Vec::new(),
            cert,
            greeting: None,
        }
    }

    fn wrap_tls(&mut self) {
        let tcp = self.tcp.take().expect("tcp stream");
        let conn = ClientConnection::new(
            tls_config(&self.cert),
            ServerName::try_from("localhost").expect("name"),
        )
        .expect("tls client");
        self.stream = Some(Box::new(StreamOwned::new(conn, tcp)));
        self.buf.clear();
    }

    /// Sends STARTTLS, expects 220, and performs the handshake.
    pub fn starttls(&mut self) {
        self.send("STARTTLS");
        let r = self.reply();
        assert_eq!(r.code, 220, "STARTTLS refused: {r:?}");
        self.start_tls_handshake();
    }

    /// Performs the TLS handshake on the current connection (after a 220 to STARTTLS that the
    /// caller read itself). Anything buffered but unread is dropped.
    pub fn start_tls_handshake(&mut self) {
        self.stream = None;
        self.wrap_tls();
    }

    /// Sends one command line (CRLF added).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let s = self.stream.as_mut().expect("stream");
        s.write_all(bytes).expect("write");
        s.flush().expect("flush");
    }

    /// Sends bytes as they are, returning the error instead of panicking (the server may close
    /// the connection while a long input is still being written).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let s = self.stream.as_mut().expect("stream");
        s.write_all(bytes)?;
        s.flush()
    }

    /// What the server sends within `wait` without being asked: anything already buffered plus
    /// what arrives in that time (plain connections only; empty when nothing came).
    pub fn unsolicited(&mut self, wait: Duration) -> Vec<u8> {
        if let Some(tcp) = self.tcp.as_ref().and_then(|t| t.try_clone().ok()) {
            tcp.set_read_timeout(Some(wait)).ok();
            self.fill();
            tcp.set_read_timeout(Some(Duration::from_secs(30))).ok();
        }
        std::mem::take(&mut self.buf)
    }

    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 8192];
        let s = self.stream.as_mut().expect("stream");
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    /// Reads one (possibly multi-line) reply. Panics if the connection closes first.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .expect("connection closed while waiting for a reply")
    }

    /// Reads one reply, or `None` if the server closed the connection.
    pub fn try_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            while let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let line = String::from_utf8_lossy(&line[..pos]).into_owned();
                let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                let more = line.as_bytes().get(3) == Some(&b'-');
                lines.push(line.get(4..).unwrap_or("").to_string());
                if !more {
                    return Some(Reply {
                        code,
                        text: lines.join("\n"),
                    });
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Sends a command and returns the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.reply()
    }

    /// Sends a command and asserts the reply starts with `expect` (e.g. "250 2.1.5" or "550").
    pub fn expect(&mut self, line: &str, expect: &str) -> Reply {
        let r = self.cmd(line);
        let wire = format!("{} {}", r.code, r.text);
        assert!(
            wire.starts_with(expect),
            "after {line:?} expected {expect:?}, got {wire:?}"
        );
        r
    }

    /// True once the server has closed the connection (reads EOF).
    pub fn is_closed(&mut self) -> bool {
        !self.fill()
    }

    /// Runs a dialog script: lines `C: text` are sent, lines `S: prefix` must match the next
    /// reply's start ("S: 250 2.1.0" or "S: 5"). Blank lines and `#` comments are skipped.
    pub fn dialog(&mut self, script: &str) {
        for (n, line) in script.lines().map(str::trim).enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(cmd) = line.strip_prefix("C: ") {
                self.send(cmd);
            } else if let Some(want) = line.strip_prefix("S: ") {
                let r = self.reply();
                let wire = format!("{} {}", r.code, r.text);
                assert!(
                    wire.starts_with(want),
                    "script line {}: expected {want:?}, got {wire:?}",
                    n + 1
                );
            } else {
                panic!("script line {}: start with 'C: ' or 'S: ': {line}", n + 1);
            }
        }
    }

    /// MAIL, RCPT(s), DATA with `message` (dot-stuffed here), returning the final reply.
    pub fn send_mail(&mut self, from: &str, to: &[&str], message: &str) -> Reply {
        self.expect(&format!("MAIL FROM:<{from}>"), "250");
        for t in to {
            self.expect(&format!("RCPT TO:<{t}>"), "250");
        }
        self.expect("DATA", "354");
        let mut data = String::new();
        for line in message.split("\r\n") {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        if message.ends_with("\r\n") {
            data.truncate(data.len() - 2);
        }
        data.push_str(".\r\n");
        self.send_raw(data.as_bytes());
        self.reply()
    }
}
