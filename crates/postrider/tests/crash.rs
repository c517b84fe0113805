//! The crash test: clients send mail as fast as they can, the server is killed with SIGKILL
//! in the middle of it, and after a restart every message that got "250 ... queued as <ID>"
//! must be there, complete: still in the queue or delivered into the mailboxes, exactly once.
//! Messages whose 250 never arrived may or may not be there (if they are, they must be whole).
//!
//! Two variants: with delivery paused (every acknowledged message must still be in the queue
//! after the restart: the strict check of the queue's durability; then delivery is turned on
//! and everything must arrive), and with delivery running during the crash (a message may be
//! anywhere between queue and mailbox; none may be lost or delivered twice).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use testkit::TestServer;

const CLIENTS: usize = 8;
const RUN_BEFORE_KILL: Duration = Duration::from_millis(1500);
const OWNERS: [&str; 2] = ["alice@example.test", "bob@example.test"];
const SENDER: &str = "carol@remote.test";
const HELO: &str = "crash.client.test";

/// What became of a message a client sent (at least partly) as DATA.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// "250 2.0.0 Ok: queued as <ID>": must survive the crash.
    Queued(String),
    /// Another final reply (e.g. 451): the server took no responsibility, so it must not be
    /// delivered (the client would send it again: a duplicate).
    Refused(String),
    /// All data sent, the connection died before the reply: may or may not be there.
    NoReply,
    /// Killed while the data was half sent (no end of data): must not be there.
    Partial,
}

/// One message a client sent.
#[derive(Debug, Clone)]
struct Sent {
    client: usize,
    subject: String,
    recipients: Vec<&'static str>,
    message: Vec<u8>,
    outcome: Outcome,
}

impl Sent {
    fn queue_id(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Queued(id) => Some(id),
            _ => None,
        }
    }
}

/// The message number `n` of client `t`: a unique Subject and Message-ID, a few lines that
/// need dot-stuffing, and every 4th one larger than the 4 KiB in-memory spool limit (so its
/// body goes through a spool file). Every 3rd one goes to both mailboxes.
fn make(variant: &str, t: usize, n: usize) -> Sent {
    let subject = format!("crash-{variant}-t{t}-n{n}");
    let mut m = format!(
        "From: Carol <carol@remote.test>\r\nTo: Alice <alice@example.test>\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@remote.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\n\
         Message {n} of client {t}.\r\n.leading dot\r\n.\r\n"
    );
    let lines = if n % 4 == 3 { 200 } else { 3 };
    for i in 0..lines {
        m.push_str(&format!(
            "{subject} line {i:04} {}\r\n",
            "abcdefghij".repeat(5)
        ));
    }
    m.push_str("end\r\n");
    let recipients = if n.is_multiple_of(3) {
        OWNERS.to_vec()
    } else {
        vec![OWNERS[0]]
    };
    Sent {
        client: t,
        subject,
        recipients,
        message: m.into_bytes(),
        outcome: Outcome::NoReply,
    }
}

fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(message.len() + 16);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    data
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_write_timeout(Some(Duration::from_secs(20)))?;
        s.set_nodelay(true)?;
        let mut c = Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        };
        c.expect(220)?;
        c.send(&format!("EHLO {HELO}\r\n"))?;
        c.expect(250)?;
        Ok(c)
    }

    fn send(&mut self, s: &str) -> std::io::Result<()> {
        self.writer.write_all(s.as_bytes())
    }

    /// Reads one reply: (code, last line).
    fn reply(&mut self) -> std::io::Result<(u16, String)> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok((code, line.trim_end().to_string()));
            }
        }
    }

    /// Reads a reply that must have `code`. A dead connection is an error (the kill); any
    /// other reply is a server fault (SIGKILL sends nothing), so the client thread panics.
    fn expect(&mut self, code: u16) -> std::io::Result<String> {
        let (c, line) = self.reply()?;
        assert_eq!(c, code, "expected {code}, got {line:?}");
        Ok(line)
    }

    /// MAIL, RCPT, DATA up to the 354.
    fn start(&mut self, m: &Sent) -> std::io::Result<()> {
        self.send(&format!("MAIL FROM:<{SENDER}>\r\n"))?;
        self.expect(250)?;
        for r in &m.recipients {
            self.send(&format!("RCPT TO:<{r}>\r\n"))?;
            self.expect(250)?;
        }
        self.send("DATA\r\n")?;
        self.expect(354)?;
        Ok(())
    }

    /// One transaction. An error before the message text went out means the message was never
    /// sent (`attempted` stays false); after it, the outcome is `NoReply`.
    fn transaction(&mut self, m: &Sent, attempted: &mut bool) -> std::io::Result<Outcome> {
        self.start(m)?;
        *attempted = true;
        // One write: a second small one would wait for the server's delayed ACK (Nagle).
        let mut data = stuffed(&m.message);
        data.extend_from_slice(b".\r\n");
        self.writer.write_all(&data)?;
        let (code, line) = self.reply()?;
        if code != 250 {
            return Ok(Outcome::Refused(line));
        }
        let id = line.rsplit(' ').next().unwrap_or("").to_string();
        assert!(
            line.starts_with("250 2.0.0 Ok: queued as ") && id.len() == 13,
            "unexpected 250 reply {line:?}"
        );
        Ok(Outcome::Queued(id))
    }
}

/// Sends messages until the connection dies for good (the server was killed) or `until`.
/// Every 10 messages it says QUIT and reconnects, so the kill also hits connects and greetings.
fn client(
    port: u16,
    variant: &'static str,
    t: usize,
    until: Instant,
    acked: Arc<AtomicUsize>,
) -> Vec<Sent> {
    let mut out = Vec::new();
    let mut n = 0;
    'connections: while Instant::now() < until {
        let Ok(mut c) = Client::connect(port) else {
            break;
        };
        for _ in 0..10 {
            let mut m = make(variant, t, n);
            n += 1;
            let mut attempted = false;
            match c.transaction(&m, &mut attempted) {
                Ok(outcome) => {
                    if matches!(outcome, Outcome::Queued(_)) {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    m.outcome = outcome;
                    out.push(m);
                }
                Err(_) => {
                    if attempted {
                        out.push(m);
                    }
                    continue 'connections;
                }
            }
            if Instant::now() >= until {
                break 'connections;
            }
        }
        let _ = c.send("QUIT\r\n");
        let _ = c.reply();
    }
    out
}

/// Starts one large message (bigger than the in-memory spool limit, so it is in a spool file)
/// at `at`, sends half of its data and waits: the kill finds it mid-DATA.
fn stalled_client(port: u16, variant: &'static str, at: Instant) -> Vec<Sent> {
    let mut m = make(variant, 99, 3);
    assert!(m.message.len() > 8192);
    let Ok(mut c) = Client::connect(port) else {
        return Vec::new();
    };
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
    if c.start(&m).is_err() {
        return Vec::new();
    }
    let data = stuffed(&m.message);
    if c.writer.write_all(&data[..data.len() / 2]).is_err() {
        return Vec::new();
    }
    m.outcome = Outcome::Partial;
    // Nothing more comes until the connection dies.
    if let Ok(r) = c.reply() {
        panic!("a reply in the middle of DATA: {r:?}");
    }
    vec![m]
}

fn subject_of(stored: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stored);
    let head = &text[..text.find("\r\n\r\n")?];
    head.split("\r\n")
        .find_map(|l| l.strip_prefix("Subject: "))
        .map(str::to_string)
}

/// Every stored message of `owner`: Subject → the raw messages with that Subject.
fn mailbox(s: &TestServer, owner: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    let list = s.admin_ok(&["mailbox", "list", owner]);
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for id in list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
    {
        let stored = s.mailbox_show(owner, id);
        let subject = subject_of(&stored).unwrap_or_else(|| {
            panic!(
                "message {id} of {owner} has no Subject:\n{}",
                String::from_utf8_lossy(&stored)
            )
        });
        out.entry(subject).or_default().push(stored);
    }
    out
}

/// The Subjects in `mailbox list` (columns: ID 6, RECEIVED 19, FROM 32, SUBJECT 40, SIZE).
fn mailbox_subjects(s: &TestServer, owner: &str) -> BTreeSet<String> {
    let list = s.admin_ok(&["mailbox", "list", owner]);
    list.lines()
        .skip(1)
        .filter(|l| !l.starts_with("no messages"))
        .map(|l| {
            l.get(63..103)
                .unwrap_or_else(|| panic!("a mailbox list line: {l:?}"))
                .trim()
                .to_string()
        })
        .collect()
}

/// The ids in `queue list`; fails on quarantined entries (a damaged queue entry after the crash).
fn queue_ids(s: &TestServer) -> BTreeMap<String, (u64, usize)> {
    let list = s.admin_ok(&["queue", "list"]);
    assert!(
        !list.contains("quarantined"),
        "queue entries were quarantined after the crash:\n{list}\nlog:\n{}",
        s.log()
    );
    if list.trim() == "queue is empty" {
        return BTreeMap::new();
    }
    let lines: Vec<&str> = list.lines().collect();
    // ID  ARRIVED (date time)  SIZE  FROM  RCPTS  STATE
    let ids: BTreeMap<String, (u64, usize)> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let size = f[3].parse().unwrap_or_else(|_| panic!("size in {l:?}"));
            let rcpts = f[5]
                .parse()
                .unwrap_or_else(|_| panic!("recipients in {l:?}"));
            (f[0].to_string(), (size, rcpts))
        })
        .collect();
    assert_eq!(
        lines.last().copied(),
        Some(format!("{} message(s)", ids.len()).as_str()),
        "{list}"
    );
    ids
}

fn wait_for_empty_queue(s: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = s.admin_ok(&["queue", "list"]);
        if list.trim() == "queue is empty" {
            return;
        }
        assert!(
            !list.contains("quarantined"),
            "quarantined entries:\n{list}"
        );
        assert!(
            Instant::now() < deadline,
            "the queue did not empty within 60 s:\n{list}\nlog:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After delivery: every acknowledged message is in each of its recipients' mailboxes exactly
/// once and complete; unacknowledged ones are there at most once and complete; nothing else.
fn check_mailboxes(s: &TestServer, sent: &[Sent]) {
    let boxes: Vec<_> = OWNERS.iter().map(|o| (*o, mailbox(s, o))).collect();
    let by_subject: BTreeMap<&str, &Sent> = sent.iter().map(|m| (m.subject.as_str(), m)).collect();
    let mut unacked_present = 0;
    for (owner, b) in &boxes {
        for (subject, copies) in b {
            let m = by_subject.get(subject.as_str()).unwrap_or_else(|| panic!("{owner} has a message nobody sent (or sent without reaching DATA's end): {subject}"));
            assert!(
                m.recipients.contains(owner),
                "{subject} was delivered to {owner}, not a recipient"
            );
            assert_eq!(
                copies.len(),
                1,
                "{subject} is in {owner}'s mailbox {} times ({:?})",
                copies.len(),
                m.outcome
            );
            let stored = &copies[0];
            assert!(
                stored.ends_with(&m.message),
                "{subject} in {owner}'s mailbox is not the sent message:\n{}",
                String::from_utf8_lossy(stored)
            );
            let added =
                String::from_utf8_lossy(&stored[..stored.len() - m.message.len()]).into_owned();
            let start = format!(
                "Return-Path: <{SENDER}>\r\nDelivered-To: {owner}\r\nReceived: from {HELO} ([127.0.0.1])\r\n"
            );
            assert!(
                added.starts_with(&start),
                "{subject}: added headers\n{added}"
            );
            assert_eq!(
                added.matches("\r\nReceived: ").count(),
                1,
                "{subject}: one Received\n{added}"
            );
            match &m.outcome {
                Outcome::Queued(id) => assert!(
                    added.contains(&format!(" with ESMTP id {id}")),
                    "{subject}: queue id {id} in Received\n{added}"
                ),
                Outcome::NoReply => unacked_present += 1,
                Outcome::Refused(reply) => {
                    panic!("{subject} was refused with {reply:?}, yet delivered to {owner}")
                }
                Outcome::Partial => {
                    panic!("{subject} was cut off in the middle of DATA, yet delivered to {owner}")
                }
            }
        }
    }
    for m in sent.iter().filter(|m| m.queue_id().is_some()) {
        for (owner, b) in &boxes {
            if m.recipients.contains(owner) {
                assert!(
                    b.contains_key(&m.subject),
                    "acknowledged {} ({:?}) is missing from {owner}'s mailbox",
                    m.subject,
                    m.outcome
                );
            }
        }
    }
    eprintln!("unacknowledged deliveries present after the crash: {unacked_present}");
}

/// Runs clients against a fresh server, kills it with SIGKILL while they send, restarts it.
fn crash(paused: bool) -> (TestServer, Vec<Sent>) {
    let variant = if paused { "paused" } else { "running" };
    let extra = format!("[smtp]\nspool_memory_limit = \"4KiB\"\n[delivery]\npaused = {paused}\n");
    let mut s = TestServer::start(Path::new(env!("CARGO_BIN_EXE_postrider")), &extra)
        .expect("start server");
    s.admin_ok(&["domain", "add", "example.test"]);
    for o in OWNERS {
        s.add_account(o, "password");
    }
    let port = s.ports.mx;
    let acked = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(15);
    let mut threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let acked = acked.clone();
            std::thread::spawn(move || client(port, variant, t, until, acked))
        })
        .collect();
    let stall_at = Instant::now() + RUN_BEFORE_KILL - Duration::from_millis(300);
    threads.push(std::thread::spawn(move || {
        stalled_client(port, variant, stall_at)
    }));
    std::thread::sleep(RUN_BEFORE_KILL);
    let at_kill = acked.load(Ordering::Relaxed);
    s.kill();
    let sent: Vec<Sent> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    let count = |f: fn(&Outcome) -> bool| sent.iter().filter(|m| f(&m.outcome)).count();
    let accepted = count(|o| matches!(o, Outcome::Queued(_)));
    eprintln!(
        "{variant}: {accepted} messages acknowledged before the kill ({at_kill} when it was sent), {} refused, {} without a reply to their data, {} cut off in the middle of DATA",
        count(|o| matches!(o, Outcome::Refused(_))),
        count(|o| *o == Outcome::NoReply),
        count(|o| *o == Outcome::Partial),
    );
    assert!(
        accepted > 0,
        "no message was acknowledged before the kill: the test proves nothing\nlog:\n{}",
        s.log()
    );
    let refused: Vec<_> = sent
        .iter()
        .filter_map(|m| {
            if let Outcome::Refused(r) = &m.outcome {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    assert!(
        refused.is_empty(),
        "the server refused messages under load (before the kill): {:?}\nlog:\n{}",
        &refused[..refused.len().min(5)],
        s.log()
    );
    s.spawn().expect("restart after SIGKILL");
    let spool: Vec<_> = std::fs::read_dir(s.data_dir().join("spool"))
        .expect("spool dir")
        .collect();
    assert!(
        spool.is_empty(),
        "recovery leaves no spool files behind: {spool:?}"
    );
    (s, sent)
}

#[test]
fn with_delivery_paused_every_acknowledged_message_survives_sigkill_in_the_queue() {
    let (mut s, sent) = crash(true);
    let queued = queue_ids(&s);
    // `queue show` for the last 3 acknowledged messages of each client (committed just before
    // the kill, the ones at risk) and every 25th; `queue list` covers all of them.
    let mut show = BTreeSet::new();
    for t in 0..CLIENTS {
        let mine: Vec<&Sent> = sent
            .iter()
            .filter(|m| m.client == t && m.queue_id().is_some())
            .collect();
        show.extend(mine.iter().rev().take(3).map(|m| m.subject.clone()));
    }
    for (i, m) in sent.iter().filter(|m| m.queue_id().is_some()).enumerate() {
        let id = m.queue_id().unwrap();
        let Some(&(size, rcpts)) = queued.get(id) else {
            panic!(
                "acknowledged {} ({id}) is not in the queue after the restart\nlog:\n{}",
                m.subject,
                s.log()
            );
        };
        assert_eq!(rcpts, m.recipients.len(), "{id}: recipients");
        assert!(
            size > m.message.len() as u64,
            "{id}: size {size} holds the message ({} octets) and the Received header",
            m.message.len()
        );
        if i % 25 != 0 && !show.contains(&m.subject) {
            continue;
        }
        let out = s.admin(&["queue", "show", id]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "queue show {id} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("size:      {size} octets")),
            "{text}"
        );
        assert!(text.contains(&format!("from:      <{SENDER}>")), "{text}");
        assert!(
            text.contains(&format!(
                "client:    127.0.0.1 (HELO {HELO}) on listener mx"
            )),
            "{text}"
        );
        for r in &m.recipients {
            assert!(
                text.contains(&format!("  {r}  → mailbox {r}  [queued] attempts 0")),
                "{id} has recipient {r} queued:\n{text}"
            );
        }
    }
    let acked: BTreeSet<&str> = sent.iter().filter_map(|m| m.queue_id()).collect();
    eprintln!(
        "queued after restart: {}, of which unacknowledged: {}",
        queued.len(),
        queued
            .keys()
            .filter(|id| !acked.contains(id.as_str()))
            .count()
    );
    for o in OWNERS {
        let list = s.admin_ok(&["mailbox", "list", o]);
        assert!(
            list.starts_with("no messages"),
            "delivery is paused, yet {o} has mail:\n{list}"
        );
    }

    // Now deliver it all and check the content, byte for byte.
    let config = std::fs::read_to_string(&s.config).unwrap();
    assert!(config.contains("paused = true"));
    std::fs::write(&s.config, config.replace("paused = true", "paused = false")).unwrap();
    s.stop();
    s.spawn().expect("restart with delivery on");
    wait_for_empty_queue(&s);
    check_mailboxes(&s, &sent);
}

#[test]
fn with_delivery_running_every_acknowledged_message_survives_sigkill_and_is_delivered_exactly_once()
{
    let (s, sent) = crash(false);
    // Right after the restart: each acknowledged message is still queued or already delivered
    // to all its recipients. (Queue first: delivery goes on meanwhile, only queue → mailbox.)
    let queued = queue_ids(&s);
    let boxes: Vec<(&str, BTreeSet<String>)> = OWNERS
        .iter()
        .map(|o| (*o, mailbox_subjects(&s, o)))
        .collect();
    let mut in_queue = 0;
    for m in sent.iter().filter(|m| m.queue_id().is_some()) {
        let id = m.queue_id().unwrap();
        if queued.contains_key(id) {
            in_queue += 1;
            continue;
        }
        for (owner, subjects) in &boxes {
            if m.recipients.contains(owner) {
                assert!(
                    subjects.contains(&m.subject),
                    "acknowledged {} ({id}) is neither queued nor in {owner}'s mailbox\nlog:\n{}",
                    m.subject,
                    s.log()
                );
            }
        }
    }
    eprintln!("after restart: {in_queue} acknowledged messages still queued");
    wait_for_empty_queue(&s);
    check_mailboxes(&s, &sent);
}
