//! The sink of the relay benchmark: a minimal, fast SMTP server that takes every message, keeps
//! nothing, and records when each tagged message arrived.
//!
//! Every message the load generator sends in relay mode carries `X-Bench-Token: RUN/SEQ`. When
//! the final dot of a message arrives, the sink notes the instant for that SEQ (if RUN is this
//! run's) and answers 250; the load generator compares it with the instant the relay answered
//! 250 to the same message. The sink runs on a thread and runtime of its own, so its timestamps
//! do not wait for the load generator's work (and the other way round).
//!
//! Protocol: EHLO (PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES) or HELO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT; any number of messages per connection; pipelined commands are answered in
//! one write (the output is flushed only when no complete line is waiting in the input).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// The header that tags each message.
pub const TOKEN_HEADER: &str = "X-Bench-Token";
/// Longest line the sink reads (command or text); longer means a broken peer.
const MAX_LINE: u64 = 1 << 20;
const GREETING: &[u8] = b"220 sink.bench ESMTP smtp-bench sink\r\n";
const EHLO_REPLY: &[u8] = b"250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 209715200\r\n250 ENHANCEDSTATUSCODES\r\n";

/// What arrived at the sink, shared with the load generator.
pub struct Arrivals {
    run_id: String,
    /// Sequence numbers below this are measured messages, the rest warm-up.
    measured: u64,
    state: Mutex<ArrivalState>,
    /// Bumped after each first arrival of a tagged message of this run.
    changed: watch::Sender<u64>,
    connections: AtomicU64,
}

#[derive(Default)]
pub struct ArrivalState {
    /// Arrival instant per sequence number (measured and warm-up).
    pub at: Vec<Option<Instant>>,
    pub measured_arrived: u64,
    pub warmup_arrived: u64,
    /// Tagged messages of this run that arrived again.
    pub duplicates: u64,
    /// Messages with a token of another run (or out of range): leftovers of an earlier run.
    pub foreign: u64,
    /// Messages without a token (e.g. bounces or reports made by the relay).
    pub untagged: u64,
}

impl Arrivals {
    /// For `measured` measured and `warmup` warm-up messages of run `run_id`.
    pub fn new(run_id: &str, measured: u64, warmup: u64) -> Arrivals {
        let len = usize::try_from(measured + warmup).expect("message count fits in memory");
        Arrivals {
            run_id: run_id.to_string(),
            measured,
            state: Mutex::new(ArrivalState {
                at: vec![None; len],
                ..ArrivalState::default()
            }),
            changed: watch::Sender::new(0),
            connections: AtomicU64::new(0),
        }
    }

    /// The header line (with CRLF) for message `seq`.
    pub fn header(&self, seq: u64) -> String {
        format!("{TOKEN_HEADER}: {}/{seq}\r\n", self.run_id)
    }

    /// Connections the sink accepted.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, ArrivalState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a message whose token header value (if any) was `token`.
    fn record(&self, token: Option<&str>, at: Instant) {
        let seq = token.and_then(|t| {
            let (run, seq) = t.trim().rsplit_once('/')?;
            (run == self.run_id).then_some(())?;
            seq.parse::<u64>().ok()
        });
        let mut st = self.lock();
        let Some(seq) = seq else {
            if token.is_some() {
                st.foreign += 1;
            } else {
                st.untagged += 1;
            }
            return;
        };
        let Some(slot) = usize::try_from(seq).ok().and_then(|i| st.at.get_mut(i)) else {
            st.foreign += 1;
            return;
        };
        if slot.is_some() {
            st.duplicates += 1;
            return;
        }
        *slot = Some(at);
        if seq < self.measured {
            st.measured_arrived += 1;
        } else {
            st.warmup_arrived += 1;
        }
        drop(st);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Waits until `done` holds; gives up (returns false) when no tagged message of this run
    /// has arrived for `idle`.
    pub async fn wait_until(&self, idle: Duration, done: impl Fn(&ArrivalState) -> bool) -> bool {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if done(&self.lock()) {
                return true;
            }
            match tokio::time::timeout(idle, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return done(&self.lock()),
            }
        }
    }
}

/// A running sink; stopped (its connections closed) by `stop` or on drop.
pub struct Sink {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    /// Binds `addr` and serves on a thread of its own.
    pub fn start(addr: SocketAddr, arrivals: Arc<Arrivals>) -> Result<Sink> {
        let std_listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("the sink cannot listen on {addr}"))?;
        std_listener
            .set_nonblocking(true)
            .context("sink listener: set_nonblocking")?;
        let addr = std_listener.local_addr().context("sink listener address")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| anyhow!("cannot start the sink runtime: {e}"))?;
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sink".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("smtp-bench: sink: {e}");
                            return;
                        }
                    };
                    loop {
                        tokio::select! {
                            _ = &mut stop_rx => return,
                            accepted = listener.accept() => match accepted {
                                Ok((sock, _)) => {
                                    arrivals.connections.fetch_add(1, Ordering::Relaxed);
                                    let arrivals = Arc::clone(&arrivals);
                                    tokio::spawn(async move {
                                        // A peer that breaks the protocol or disappears only
                                        // loses its own session; missing messages show up in
                                        // the report.
                                        if let Err(e) = serve(sock, &arrivals).await {
                                            eprintln!("smtp-bench: sink session: {e:#}");
                                        }
                                    });
                                }
                                Err(e) => {
                                    eprintln!("smtp-bench: sink accept: {e}");
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                }
                            },
                        }
                    }
                });
                // Dropping the runtime here closes every open session.
            })
            .context("cannot start the sink thread")?;
        Ok(Sink {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reads one line (with its LF) into `line`; false at end of input.
async fn read_line(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> Result<bool> {
    line.clear();
    let n = r.take(MAX_LINE).read_until(b'\n', line).await?;
    if n == 0 {
        return Ok(false);
    }
    if line.last() != Some(&b'\n') {
        if n as u64 >= MAX_LINE {
            return Err(anyhow!("line longer than {MAX_LINE} bytes"));
        }
        return Ok(false); // the peer closed mid-line
    }
    Ok(true)
}

/// One SMTP session.
async fn serve(sock: TcpStream, arrivals: &Arrivals) -> Result<()> {
    sock.set_nodelay(true)?;
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut line: Vec<u8> = Vec::with_capacity(1024);
    let mut mail = false;
    let mut rcpts = 0u32;
    let mut queued = 0u64;
    out.extend_from_slice(GREETING);
    loop {
        // RFC 2920: answer a group of pipelined commands in one write, i.e. write only when no
        // further complete command is waiting.
        if !out.is_empty() && !r.buffer().contains(&b'\n') {
            w.write_all(&out).await?;
            out.clear();
        }
        if !read_line(&mut r, &mut line).await? {
            return Ok(());
        }
        let verb: Vec<u8> = line
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .map(u8::to_ascii_uppercase)
            .collect();
        match verb.as_slice() {
            b"EHLO" => {
                (mail, rcpts) = (false, 0);
                out.extend_from_slice(EHLO_REPLY);
            }
            b"HELO" => {
                (mail, rcpts) = (false, 0);
                out.extend_from_slice(b"250 sink.bench\r\n");
            }
            b"MAIL" if mail => out.extend_from_slice(b"503 5.5.1 nested MAIL\r\n"),
            b"MAIL" => {
                mail = true;
                out.extend_from_slice(b"250 2.1.0 Ok\r\n");
            }
            b"RCPT" if !mail => out.extend_from_slice(b"503 5.5.1 need MAIL first\r\n"),
            b"RCPT" => {
                rcpts += 1;
                out.extend_from_slice(b"250 2.1.5 Ok\r\n");
            }
            b"DATA" if rcpts == 0 => {
                out.extend_from_slice(b"554 5.5.1 no valid recipients\r\n");
            }
            b"DATA" => {
                out.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
                w.write_all(&out).await?;
                out.clear();
                let Some(token) = read_data(&mut r, &mut line).await? else {
                    return Ok(());
                };
                arrivals.record(token.as_deref(), Instant::now());
                queued += 1;
                out.extend_from_slice(format!("250 2.0.0 Ok: queued as {queued}\r\n").as_bytes());
                (mail, rcpts) = (false, 0);
            }
            b"RSET" => {
                (mail, rcpts) = (false, 0);
                out.extend_from_slice(b"250 2.0.0 Ok\r\n");
            }
            b"NOOP" => out.extend_from_slice(b"250 2.0.0 Ok\r\n"),
            b"QUIT" => {
                out.extend_from_slice(b"221 2.0.0 Bye\r\n");
                w.write_all(&out).await?;
                return Ok(());
            }
            _ => out.extend_from_slice(b"502 5.5.2 command not recognized\r\n"),
        }
    }
}

/// Reads message text up to the final dot. `None`: the peer went away first; otherwise the
/// value of the token header, if the header section had one.
async fn read_data(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> Result<Option<Option<String>>> {
    let mut in_headers = true;
    let mut token = None;
    loop {
        if !read_line(r, line).await? {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(token));
        }
        if in_headers {
            if line == b"\r\n" || line == b"\n" {
                in_headers = false;
            } else if token.is_none()
                && line.len() > TOKEN_HEADER.len()
                && line[..TOKEN_HEADER.len()].eq_ignore_ascii_case(TOKEN_HEADER.as_bytes())
                && line[TOKEN_HEADER.len()] == b':'
            {
                let value = &line[TOKEN_HEADER.len() + 1..];
                token = Some(String::from_utf8_lossy(value).trim().to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn expect(r: &mut BufReader<TcpStream>, code: &str) -> String {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            assert!(
                r.read_line(&mut l).await.unwrap() > 0,
                "closed, wanted {code}"
            );
            all.push_str(&l);
            assert!(l.starts_with(code), "wanted {code}, got {l:?}");
            if l.as_bytes().get(3) == Some(&b' ') {
                return all;
            }
        }
    }

    #[tokio::test]
    async fn pipelined_messages_are_recorded_once_each() {
        let arrivals = Arc::new(Arrivals::new("r1", 3, 1));
        let sink = Sink::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&arrivals)).unwrap();
        let mut c = BufReader::new(TcpStream::connect(sink.addr).await.unwrap());
        expect(&mut c, "220").await;
        c.get_mut().write_all(b"EHLO x\r\n").await.unwrap();
        let ehlo = expect(&mut c, "250").await;
        assert!(ehlo.contains("PIPELINING") && ehlo.contains("SIZE"));
        let cmds = "MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME\r\nRCPT TO:<u@sink.test>\r\n\
                    RCPT TO:<v@sink.test>\r\nDATA\r\n";
        for seq in ["r1/0", "r1/3", "r1/0", "other/1"] {
            let data = format!("Subject: x\r\nx-bench-token: {seq}\r\n\r\nbody\r\n..dot\r\n.\r\n");
            c.get_mut().write_all(cmds.as_bytes()).await.unwrap();
            for code in ["250", "250", "250", "354"] {
                expect(&mut c, code).await;
            }
            c.get_mut().write_all(data.as_bytes()).await.unwrap();
            expect(&mut c, "250").await;
        }
        // No token, then a pipelined RSET, NOOP, unknown command, DATA without RCPT, QUIT.
        c.get_mut()
            .write_all(b"MAIL FROM:<>\r\nRCPT TO:<p@q>\r\nDATA\r\n")
            .await
            .unwrap();
        for code in ["250", "250", "354"] {
            expect(&mut c, code).await;
        }
        c.get_mut()
            .write_all(b"Subject: bounce\r\n\r\nX-Bench-Token: r1/1\r\n.\r\nRSET\r\nNOOP\r\nVRFY x\r\nDATA\r\nQUIT\r\n")
            .await
            .unwrap();
        for code in ["250", "250", "250", "502", "554", "221"] {
            expect(&mut c, code).await;
        }
        let st = arrivals.lock();
        assert!(st.at[0].is_some() && st.at[3].is_some());
        assert!(st.at[1].is_none() && st.at[2].is_none());
        assert_eq!((st.measured_arrived, st.warmup_arrived), (1, 1));
        assert_eq!((st.duplicates, st.foreign, st.untagged), (1, 1, 1));
        drop(st);
        assert_eq!(arrivals.connections(), 1);
        sink.stop();
    }

    #[tokio::test]
    async fn wait_until_gives_up_when_nothing_arrives() {
        let arrivals = Arrivals::new("r", 1, 0);
        let t = Instant::now();
        assert!(
            !arrivals
                .wait_until(Duration::from_millis(50), |s| s.measured_arrived == 1)
                .await
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
        arrivals.record(Some("r/0"), Instant::now());
        assert!(
            arrivals
                .wait_until(Duration::from_millis(50), |s| s.measured_arrived == 1)
                .await
        );
    }
}
