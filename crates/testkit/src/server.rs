//! A real server process for tests.

use crate::Conn;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The ports of the four default listeners.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub mx: u16,
    pub submission: u16,
    pub submissions: u16,
}

pub struct TestServer {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    pub config: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    // Bind to port 0 and release it: the kernel picked a free port. A race with another test
    // is possible but unlikely; start() retries a few times.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl TestServer {
    /// Starts `bin serve` with a config made of the three listeners on free ports, hostname
    /// `mx.test`, and `extra` TOML appended (other sections, e.g. `"[smtp]\nmax_recipients = 3"`).
    pub fn start(bin: &Path, extra: &str) -> anyhow::Result<TestServer> {
        TestServer::start_named(bin, "mx.test", extra)
    }

    /// Like [`TestServer::start`] with another hostname (for tests with two servers).
    pub fn start_named(bin: &Path, hostname: &str, extra: &str) -> anyhow::Result<TestServer> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("postrider.toml");
        let mut s = TestServer {
            bin: bin.to_path_buf(),
            dir,
            ports: Ports {
                mx: 0,
                submission: 0,
                submissions: 0,
            },
            config,
            child: None,
        };
        // A port found free can be taken by a test running in parallel before the server binds
        // it; the server then exits with "Address already in use" and we try other ports.
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The three are found while all are held, so they differ (one after the other, the
            // kernel may hand out the same port twice).
            let held: Vec<TcpListener> = (0..3)
                .filter_map(|_| TcpListener::bind("127.0.0.1:0").ok())
                .collect();
            let port = |i: usize| {
                held.get(i)
                    .and_then(|l| l.local_addr().ok())
                    .map_or_else(free_port, |a| a.port())
            };
            s.ports = Ports {
                mx: port(0),
                submission: port(1),
                submissions: port(2),
            };
            drop(held);
            let text = format!(
                "[server]\nhostname = \"{hostname}\"\ndata_dir = \"{data}\"\n{extra}\n\
                 [[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:{}\"\nrole = \"mx\"\n\
                 [[listener]]\nname = \"submission\"\naddress = \"127.0.0.1:{}\"\nrole = \"submission\"\n\
                 [[listener]]\nname = \"submissions\"\naddress = \"127.0.0.1:{}\"\nrole = \"submissions\"\n",
                s.ports.mx,
                s.ports.submission,
                s.ports.submissions,
                data = s.dir.path().join("data").display(),
            );
            std::fs::write(&s.config, text)?;
            match s.spawn() {
                Ok(()) => return Ok(s),
                Err(e) if attempt < 5 && e.to_string().contains("Address already in use") => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts (or restarts) the process and waits until every listener accepts connections.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))?;
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [self.ports.mx, self.ports.submission, self.ports.submissions] {
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                if let Some(c) = &mut self.child
                    && let Some(status) = c.try_wait()?
                {
                    anyhow::bail!("server exited with {status}; log:\n{}", self.log());
                }
                if Instant::now() > deadline {
                    anyhow::bail!(
                        "server did not listen on port {port} within 30 s; log:\n{}",
                        self.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The process id of the running server (to send it signals).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's resident memory in KiB (`VmRSS` of `/proc/<pid>/status`; Linux only).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Kills the process with SIGKILL (no shutdown at all), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `postrider --config <ours> ARGS` and returns its output.
    pub fn admin(&self, args: &[&str]) -> Output {
        self.admin_with_stdin(args, None)
    }

    /// Like [`TestServer::admin`], with standard input.
    pub fn admin_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run postrider");
        if let Some(mut si) = child.stdin.take()
            && let Some(text) = stdin
        {
            let _ = si.write_all(text.as_bytes());
        }
        child.wait_with_output().expect("wait for postrider")
    }

    /// Runs an admin command that must succeed; returns its stdout.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "postrider {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds an account with a known password.
    pub fn add_account(&self, address: &str, password: &str) {
        let out = self.admin_with_stdin(
            &["account", "add", address, "--password-stdin"],
            Some(password),
        );
        assert!(
            out.status.success(),
            "account add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits until `owner` has `n` messages (the delivery worker runs asynchronously), and
    /// returns their ids.
    pub fn wait_for_mail(&self, owner: &str, n: usize) -> Vec<i64> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.admin(&["mailbox", "list", owner]);
            let text = String::from_utf8_lossy(&out.stdout);
            let ids: Vec<i64> = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                .collect();
            if ids.len() >= n {
                return ids;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} messages for {owner}, have {}:\n{text}\nlog:\n{}",
                ids.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The raw stored message.
    pub fn mailbox_show(&self, owner: &str, id: i64) -> Vec<u8> {
        let out = self.admin(&["mailbox", "show", owner, &id.to_string()]);
        assert!(
            out.status.success(),
            "mailbox show failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The certificate file the server presents (its self-signed one).
    pub fn certificate(&self) -> PathBuf {
        self.data_dir().join("tls").join("self-signed.crt")
    }

    /// A session on the submission port, encrypted with STARTTLS and logged in with AUTH PLAIN
    /// (asserting 235), ready for MAIL.
    pub fn login(&self, user: &str, password: &str) -> Conn {
        let mut c = self.connect(self.ports.submission);
        c.expect("EHLO client.test", "250");
        c.starttls();
        c.expect("EHLO client.test", "250");
        c.expect(
            &format!(
                "AUTH PLAIN {}",
                crate::b64(&format!("\0{user}\0{password}"))
            ),
            "235",
        );
        c
    }

    /// A plain connection to a port, greeting read.
    pub fn connect(&self, port: u16) -> Conn {
        Conn::plain(port, self.certificate())
    }

    /// Like [`TestServer::connect`], from another loopback source address (e.g. "127.0.0.2"),
    /// to look like a second client host.
    pub fn connect_from(&self, source: &str, port: u16) -> Conn {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let tcp = rt.block_on(async {
            let sock = tokio::net::TcpSocket::new_v4().expect("socket");
            sock.bind(format!("{source}:0").parse().expect("source address"))
                .expect("bind the source address");
            sock.connect(([127, 0, 0, 1], port).into())
                .await
                .expect("connect")
        });
        let tcp = tcp.into_std().expect("std stream");
        tcp.set_nonblocking(false).expect("blocking");
        Conn::from_tcp(tcp, self.certificate())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}
