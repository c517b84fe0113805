//! smtp-bench: an SMTP load generator for benchmarks.
//!
//! Opens `--sessions` concurrent plain-TCP SMTP connections to a server on the
//! loopback interface and sends `--messages` messages of `--size` bytes through
//! them, one command at a time (no PIPELINING, so every server is treated alike).
//! Sessions take message numbers from a shared counter; each message is timed
//! from writing `MAIL FROM` to reading the reply to the final dot.
//!
//! Output: accepted/errors, wall time (first measured MAIL to last accepted
//! message), messages/s and latency p50/p90/p99/max, as text or (`--json`) as one
//! JSON object. Exit status: 0 all messages accepted, 1 some were refused (figures
//! are still printed), 2 the run was aborted (bad arguments, connection refused,
//! server closed the connection or stopped answering for `--timeout` seconds).
//!
//! Relay mode (`--sink IP:PORT`): smtp-bench also runs a minimal SMTP sink on that address
//! (`sink.rs`, a thread of its own) and `--server` is a relay that forwards to it. Every message
//! carries `X-Bench-Token: RUN/SEQ`; the sink notes when each one's final dot arrived. After
//! sending, smtp-bench waits until every accepted message has arrived (giving up when none has
//! for `--arrival-timeout` seconds) and adds: arrived/missing/duplicates, end-to-end messages/s
//! (accepted messages / time from the first measured MAIL to the last arrival at the sink) and
//! the relay latency per message (from the relay's 250 to the arrival at the sink) p50/p99.
//! With `--await-delivery` each session waits for its message to arrive at the sink before
//! sending the next one (with `--sessions 1`: the latency of one transactional message). Warm-up
//! messages must have arrived before the measured phase starts. Exit status 1 also when an
//! accepted message never arrived.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod sink;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// Longest reply line we accept (RFC 5321 says 512; be generous).
const MAX_REPLY_LINE: u64 = 4096;
/// Most lines in one (multi-line) reply.
const MAX_REPLY_LINES: usize = 200;
/// Distinct error replies printed before further ones are only counted.
const MAX_PRINTED_ERRORS: usize = 20;
/// Text line length in generated bodies (without CRLF).
const LINE_LEN: usize = 76;
const EHLO_NAME: &str = "bench.client";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "smtp-bench",
    version,
    about = "SMTP load generator for benchmarks (talks only to loopback servers)"
)]
struct Args {
    /// Server to load, IP:PORT on 127.0.0.0/8 or `[::1]` (no other address is accepted).
    #[arg(long)]
    server: String,
    /// Concurrent SMTP connections.
    #[arg(long, default_value_t = 20)]
    sessions: u32,
    /// Measured messages in total, shared by all sessions.
    #[arg(long, default_value_t = 2000)]
    messages: u64,
    /// Size of each message in bytes (headers + body, CRLF line ends, without the final dot).
    #[arg(long, default_value_t = 5120)]
    size: usize,
    /// Envelope and header sender.
    #[arg(long, default_value = "a@bench.test")]
    from: String,
    /// Envelope and header recipient.
    #[arg(long, default_value = "user@bench.test")]
    to: String,
    /// At most N messages per connection, then QUIT and reconnect (default: no limit).
    /// Reconnect time counts in the wall time, not in the per-message latency.
    #[arg(long, value_name = "N")]
    per_session: Option<u64>,
    /// Messages sent first (by the same sessions) and not measured.
    #[arg(long, default_value_t = 0, value_name = "N")]
    warmup: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Timeout in seconds for each connect, socket read and socket write.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    timeout: u64,
    /// Client runtime threads; 1 (default) keeps the client on one core so the
    /// server under test gets the rest of the machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Relay mode: run an SMTP sink on IP:PORT (loopback only) for the relay under test
    /// (`--server`) to deliver to, and measure when each message arrives there.
    #[arg(long, value_name = "IP:PORT")]
    sink: Option<String>,
    /// Relay mode: after each accepted message, wait until it has arrived at the sink before the
    /// session sends the next one.
    #[arg(long, requires = "sink")]
    await_delivery: bool,
    /// Relay mode: give up waiting for messages at the sink after this many seconds without
    /// any arrival.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    arrival_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smtp-bench: error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args.clone())) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if let Some(relay) = &report.relay
                && relay.missing > 0
            {
                eprintln!(
                    "smtp-bench: error: {} of {} accepted messages never arrived at the sink \
                     (none arrived for {} s); first missing: {:?}",
                    relay.missing, report.accepted, args.arrival_timeout, relay.first_missing
                );
            }
            if report.errors > 0 || report.relay.as_ref().is_some_and(|r| r.missing > 0) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("smtp-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Resolves `--server` and refuses anything that is not loopback.
fn resolve_server(server: &str) -> Result<SocketAddr> {
    resolve_loopback("--server", server)
}

fn resolve_loopback(option: &str, server: &str) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = match server.parse::<SocketAddr>() {
        Ok(a) => vec![a],
        Err(_) => server
            .to_socket_addrs()
            .with_context(|| format!("{option} {server:?} is not IP:PORT"))?
            .collect(),
    };
    let Some(first) = addrs.first().copied() else {
        bail!("{option} {server:?} resolved to no address");
    };
    if let Some(bad) = addrs.iter().find(|a| !is_allowed_ip(a.ip())) {
        bail!(
            "refusing to send to {bad}: smtp-bench only talks to servers on loopback \
             (127.0.0.0/8 or [::1])"
        );
    }
    Ok(first)
}

fn is_allowed_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// What every session shares.
struct Shared {
    addr: SocketAddr,
    from: String,
    to: String,
    size: usize,
    per_session: Option<u64>,
    io_timeout: Duration,
    run_id: String,
    warmup_total: u64,
    warmup_next: AtomicU64,
    total: u64,
    next: AtomicU64,
    /// All sessions connected and warmed up before the measured phase starts.
    barrier: Barrier,
    errors_seen: Mutex<HashSet<String>>,
    /// Relay mode: what arrived at the sink.
    arrivals: Option<Arc<sink::Arrivals>>,
    await_delivery: bool,
    arrival_timeout: Duration,
    /// Warm-up messages the relay accepted (relay mode waits for them at the sink).
    warmup_accepted: AtomicU64,
}

impl Shared {
    /// Prints a refused message's reply, once per distinct (stage, reply).
    fn note_error(&self, stage: &str, reply: &Reply) {
        let key = format!("{stage}: {}", reply.text());
        let mut seen = self.errors_seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() < MAX_PRINTED_ERRORS && seen.insert(key.clone()) {
            eprintln!("smtp-bench: message refused at {key}");
            if seen.len() == MAX_PRINTED_ERRORS {
                eprintln!("smtp-bench: (further distinct error replies are counted, not printed)");
            }
        }
    }
}

#[derive(Default)]
struct SessionStats {
    accepted: u64,
    errors: u64,
    latencies_ns: Vec<u64>,
    first_mail: Option<Instant>,
    last_accept: Option<Instant>,
    /// Relay mode: (message number, instant of the relay's 250) per accepted measured message.
    acks: Vec<(u64, Instant)>,
}

/// Relay-mode figures.
struct RelayReport {
    sink: SocketAddr,
    await_delivery: bool,
    arrived: u64,
    missing: u64,
    first_missing: Vec<u64>,
    duplicates: u64,
    foreign: u64,
    untagged: u64,
    sink_connections: u64,
    /// First measured MAIL to the last arrival of a measured message at the sink.
    e2e_wall: Duration,
    /// Sorted: relay's 250 to the arrival at the sink, per arrived message.
    relay_latencies_ns: Vec<u64>,
    /// How many arrived (by the sink's clock) before the load generator read the relay's 250;
    /// counted as 0 in the latencies.
    arrived_before_ack: u64,
    /// CPU time smtp-bench itself (load generator and sink) used during the run, where the
    /// system tells it (Linux).
    bench_cpu: Option<Duration>,
}

impl RelayReport {
    fn e2e_throughput(&self, accepted: u64) -> f64 {
        let secs = self.e2e_wall.as_secs_f64();
        if secs > 0.0 && self.missing == 0 {
            accepted as f64 / secs
        } else {
            0.0
        }
    }
}

struct Report {
    server: SocketAddr,
    sessions: u32,
    messages: u64,
    size: usize,
    warmup: u64,
    accepted: u64,
    errors: u64,
    wall: Duration,
    /// Sorted latencies of the accepted measured messages.
    latencies_ns: Vec<u64>,
    relay: Option<RelayReport>,
}

impl Report {
    fn throughput(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.accepted as f64 / secs
        } else {
            0.0
        }
    }

    /// Nearest-rank percentile in milliseconds.
    fn percentile_ms(&self, p: f64) -> Option<f64> {
        percentile(&self.latencies_ns, p).map(|ns| ns as f64 / 1e6)
    }

    fn mean_ms(&self) -> Option<f64> {
        mean_ns(&self.latencies_ns).map(|n| n / 1e6)
    }

    fn to_json(&self) -> serde_json::Value {
        let ms = |v: Option<f64>| v.map(|x| (x * 1000.0).round() / 1000.0);
        let mut j = serde_json::json!({
            "server": self.server.to_string(),
            "sessions": self.sessions,
            "messages": self.messages,
            "size": self.size,
            "warmup": self.warmup,
            "accepted": self.accepted,
            "errors": self.errors,
            "wall_s": (self.wall.as_secs_f64() * 1e6).round() / 1e6,
            "messages_per_s": (self.throughput() * 10.0).round() / 10.0,
            "latency_ms": {
                "p50": ms(self.percentile_ms(50.0)),
                "p90": ms(self.percentile_ms(90.0)),
                "p99": ms(self.percentile_ms(99.0)),
                "max": ms(self.percentile_ms(100.0)),
                "mean": ms(self.mean_ms()),
            },
        });
        if let Some(r) = &self.relay {
            let lat = &r.relay_latencies_ns;
            let pct = |p: f64| ms(percentile(lat, p).map(|ns| ns as f64 / 1e6));
            j["relay"] = serde_json::json!({
                "sink": r.sink.to_string(),
                "await_delivery": r.await_delivery,
                "arrived": r.arrived,
                "missing": r.missing,
                "duplicates": r.duplicates,
                "foreign": r.foreign,
                "untagged": r.untagged,
                "sink_connections": r.sink_connections,
                "e2e_wall_s": (r.e2e_wall.as_secs_f64() * 1e6).round() / 1e6,
                "e2e_messages_per_s": (r.e2e_throughput(self.accepted) * 10.0).round() / 10.0,
                "arrived_before_ack": r.arrived_before_ack,
                "bench_cpu_s": r.bench_cpu.map(|d| (d.as_secs_f64() * 1e3).round() / 1e3),
                "relay_latency_ms": {
                    "p50": pct(50.0),
                    "p90": pct(90.0),
                    "p99": pct(99.0),
                    "max": pct(100.0),
                    "mean": ms(mean_ns(lat).map(|n| n / 1e6)),
                },
            });
        }
        j
    }

    fn to_text(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.3}"));
        let mut text = format!(
            "smtp-bench: {} sessions to {}, {} messages of {} bytes (warmup {})\n\
             accepted:   {} ({} errors)\n\
             wall time:  {:.3} s\n\
             throughput: {:.1} messages/s\n\
             latency ms: p50 {}  p90 {}  p99 {}  max {}  (mean {})\n",
            self.sessions,
            self.server,
            self.messages,
            self.size,
            self.warmup,
            self.accepted,
            self.errors,
            self.wall.as_secs_f64(),
            self.throughput(),
            ms(self.percentile_ms(50.0)),
            ms(self.percentile_ms(90.0)),
            ms(self.percentile_ms(99.0)),
            ms(self.percentile_ms(100.0)),
            ms(self.mean_ms()),
        );
        if let Some(r) = &self.relay {
            let lat = &r.relay_latencies_ns;
            let pct = |p: f64| ms(percentile(lat, p).map(|ns| ns as f64 / 1e6));
            text += &format!(
                "relay to sink {}{}:\n\
                 arrived:    {} ({} missing, {} duplicates, {} foreign, {} untagged; {} sink connections)\n\
                 end to end: {:.3} s, {:.1} messages/s\n\
                 250 -> sink ms: p50 {}  p90 {}  p99 {}  max {}  (mean {})\n\
                 smtp-bench CPU: {} s (load generator and sink)\n",
                r.sink,
                if r.await_delivery {
                    ", each message awaited"
                } else {
                    ""
                },
                r.arrived,
                r.missing,
                r.duplicates,
                r.foreign,
                r.untagged,
                r.sink_connections,
                r.e2e_wall.as_secs_f64(),
                r.e2e_throughput(self.accepted),
                pct(50.0),
                pct(90.0),
                pct(99.0),
                pct(100.0),
                ms(mean_ns(lat).map(|n| n / 1e6)),
                r.bench_cpu
                    .map_or_else(|| "n/a".to_string(), |d| format!("{:.3}", d.as_secs_f64())),
            );
        }
        text
    }
}

fn mean_ns(v: &[u64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let sum: u128 = v.iter().map(|&n| n as u128).sum();
    Some(sum as f64 / v.len() as f64)
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

async fn run(args: Args) -> Result<Report> {
    let addr = resolve_server(&args.server)?;
    if args.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    if args.messages == 0 {
        bail!("--messages must be at least 1");
    }
    if args.per_session == Some(0) {
        bail!("--per-session must be at least 1");
    }
    if args.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    for (name, v) in [("--from", &args.from), ("--to", &args.to)] {
        if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '<' || c == '>') {
            bail!("{name} must be a bare address like user@bench.test, got {v:?}");
        }
    }
    if args.arrival_timeout == 0 {
        bail!("--arrival-timeout must be at least 1 second");
    }
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let run_id = format!("{}.{}", std::process::id(), unix);
    // Relay mode: the sink listens before the first message is sent, and stops (closing its
    // sessions) when this function returns.
    let (arrivals, sink) = match &args.sink {
        Some(s) => {
            let sink_addr = resolve_loopback("--sink", s)?;
            if sink_addr == addr {
                bail!("--sink and --server must differ");
            }
            let arrivals = Arc::new(sink::Arrivals::new(&run_id, args.messages, args.warmup));
            let sink = sink::Sink::start(sink_addr, Arc::clone(&arrivals))?;
            (Some(arrivals), Some(sink))
        }
        None => (None, None),
    };
    let shared = Arc::new(Shared {
        addr,
        from: args.from.clone(),
        to: args.to.clone(),
        size: args.size,
        per_session: args.per_session,
        io_timeout: Duration::from_secs(args.timeout),
        run_id,
        warmup_total: args.warmup,
        warmup_next: AtomicU64::new(0),
        total: args.messages,
        next: AtomicU64::new(0),
        barrier: Barrier::new(args.sessions as usize),
        errors_seen: Mutex::new(HashSet::new()),
        arrivals,
        await_delivery: args.await_delivery,
        arrival_timeout: Duration::from_secs(args.arrival_timeout),
        warmup_accepted: AtomicU64::new(0),
    });

    let cpu_start = process_cpu_ns();
    let mut set = JoinSet::new();
    for id in 0..args.sessions {
        let sh = Arc::clone(&shared);
        set.spawn(async move {
            run_session(&sh)
                .await
                .with_context(|| format!("session {id}"))
        });
    }

    let mut all = SessionStats::default();
    while let Some(joined) = set.join_next().await {
        let stats = match joined {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => {
                set.abort_all();
                return Err(e.context("run aborted"));
            }
            Err(e) => {
                set.abort_all();
                return Err(anyhow!("a session task failed: {e}"));
            }
        };
        all.accepted += stats.accepted;
        all.errors += stats.errors;
        all.latencies_ns.extend(stats.latencies_ns);
        all.first_mail = min_opt(all.first_mail, stats.first_mail);
        all.last_accept = max_opt(all.last_accept, stats.last_accept);
        all.acks.extend(stats.acks);
    }
    all.latencies_ns.sort_unstable();
    let wall = match (all.first_mail, all.last_accept) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    let relay = match (&shared.arrivals, sink) {
        (Some(arrivals), Some(sink)) => {
            let accepted = all.accepted;
            arrivals
                .wait_until(shared.arrival_timeout, |st| st.measured_arrived >= accepted)
                .await;
            let mut report = relay_report(arrivals, sink.addr, &all, args.await_delivery);
            // Measured before the sink thread ends, so its CPU time counts.
            report.bench_cpu = cpu_start
                .zip(process_cpu_ns())
                .map(|(a, b)| Duration::from_nanos(b.saturating_sub(a)));
            sink.stop();
            Some(report)
        }
        _ => None,
    };
    Ok(Report {
        server: addr,
        sessions: args.sessions,
        messages: args.messages,
        size: args.size,
        warmup: args.warmup,
        accepted: all.accepted,
        errors: all.errors,
        wall,
        latencies_ns: all.latencies_ns,
        relay,
    })
}

/// Matches the relay's 250s with the arrivals at the sink.
fn relay_report(
    arrivals: &sink::Arrivals,
    sink: SocketAddr,
    all: &SessionStats,
    await_delivery: bool,
) -> RelayReport {
    let st = arrivals.lock();
    let mut latencies = Vec::with_capacity(all.acks.len());
    let mut missing = Vec::new();
    let mut last_arrival: Option<Instant> = None;
    let mut arrived_before_ack = 0;
    for &(seq, ack) in &all.acks {
        match st.at.get(seq as usize).copied().flatten() {
            Some(at) => {
                if at < ack {
                    arrived_before_ack += 1;
                }
                latencies.push(
                    u64::try_from(at.saturating_duration_since(ack).as_nanos()).unwrap_or(u64::MAX),
                );
                last_arrival = max_opt(last_arrival, Some(at));
            }
            None => missing.push(seq),
        }
    }
    latencies.sort_unstable();
    missing.sort_unstable();
    let e2e_wall = match (all.first_mail, last_arrival) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    RelayReport {
        sink,
        await_delivery,
        arrived: latencies.len() as u64,
        missing: missing.len() as u64,
        first_missing: missing.iter().take(10).copied().collect(),
        duplicates: st.duplicates,
        foreign: st.foreign,
        untagged: st.untagged,
        sink_connections: arrivals.connections(),
        e2e_wall,
        relay_latencies_ns: latencies,
        arrived_before_ack,
        bench_cpu: None,
    }
}

/// CPU time of this process's threads so far, in nanoseconds (Linux: the first field of
/// /proc/self/task/*/schedstat; threads that already ended are not counted).
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// One session: connect, warm up, wait for all others, then take measured
/// messages from the shared counter until none are left, then QUIT.
async fn run_session(sh: &Shared) -> Result<SessionStats> {
    let mut stats = SessionStats::default();
    let mut conn = Some(Conn::open(sh).await?);

    // Warm-up: same code path, nothing recorded. Bounded by the shared counter.
    loop {
        let w = sh.warmup_next.fetch_add(1, Ordering::Relaxed);
        if w >= sh.warmup_total {
            break;
        }
        // Warm-up messages are numbered after the measured ones.
        let seq = sh.total + w;
        let c = ready_conn(sh, &mut conn).await?;
        match send_message(sh, c, seq).await? {
            Outcome::Accepted => {
                sh.warmup_accepted.fetch_add(1, Ordering::Relaxed);
                if sh.await_delivery {
                    await_arrival(sh, seq).await?;
                }
            }
            Outcome::Refused { closing: true } => conn = None,
            Outcome::Refused { closing: false } => {}
        }
    }

    let leader = sh.barrier.wait().await.is_leader();
    if let Some(arrivals) = &sh.arrivals {
        // Relay mode: the warm-up messages leave the relay before the measured phase starts.
        if leader {
            let want = sh.warmup_accepted.load(Ordering::Relaxed);
            if !arrivals
                .wait_until(sh.arrival_timeout, |st| st.warmup_arrived >= want)
                .await
            {
                bail!(
                    "warm-up messages did not arrive at the sink (none arrived for {} s)",
                    sh.arrival_timeout.as_secs()
                );
            }
        }
        sh.barrier.wait().await;
    }

    // Measured phase. Each iteration consumes one message number, so the loop
    // runs at most `total` times overall.
    loop {
        let seq = sh.next.fetch_add(1, Ordering::Relaxed);
        if seq >= sh.total {
            break;
        }
        let c = ready_conn(sh, &mut conn).await?;
        let start = Instant::now();
        stats.first_mail = min_opt(stats.first_mail, Some(start));
        match send_message(sh, c, seq).await? {
            Outcome::Accepted => {
                let end = Instant::now();
                stats.accepted += 1;
                stats
                    .latencies_ns
                    .push(u64::try_from(end.duration_since(start).as_nanos()).unwrap_or(u64::MAX));
                stats.last_accept = Some(end);
                if sh.arrivals.is_some() {
                    stats.acks.push((seq, end));
                    if sh.await_delivery {
                        await_arrival(sh, seq).await?;
                    }
                }
            }
            Outcome::Refused { closing } => {
                stats.errors += 1;
                if closing {
                    conn = None;
                }
            }
        }
    }

    if let Some(c) = conn {
        c.quit().await;
    }
    Ok(stats)
}

/// Relay mode: waits until message `seq` has arrived at the sink.
async fn await_arrival(sh: &Shared, seq: u64) -> Result<()> {
    let Some(arrivals) = &sh.arrivals else {
        return Ok(());
    };
    let i = seq as usize;
    if !arrivals
        .wait_until(sh.arrival_timeout, |st| {
            st.at.get(i).is_some_and(Option::is_some)
        })
        .await
    {
        bail!(
            "message {seq} did not arrive at the sink within {} s",
            sh.arrival_timeout.as_secs()
        );
    }
    Ok(())
}

/// Returns an open connection, reconnecting when there is none or when the
/// current one has sent `--per-session` messages.
async fn ready_conn<'a>(sh: &Shared, conn: &'a mut Option<Conn>) -> Result<&'a mut Conn> {
    let used_up =
        matches!((sh.per_session, conn.as_ref()), (Some(limit), Some(c)) if c.sent >= limit);
    if used_up && let Some(old) = conn.take() {
        old.quit().await;
    }
    if conn.is_none() {
        *conn = Some(Conn::open(sh).await?);
    }
    Ok(conn.as_mut().expect("connection was just opened"))
}

enum Outcome {
    Accepted,
    /// A 4xx/5xx reply; `closing` when the server said 421 and closes the connection.
    Refused {
        closing: bool,
    },
}

/// MAIL, RCPT, DATA, body + dot, one command and one reply at a time.
async fn send_message(sh: &Shared, c: &mut Conn, seq: u64) -> Result<Outcome> {
    c.sent += 1;
    let steps: [(&'static str, String); 3] = [
        ("MAIL FROM", format!("MAIL FROM:<{}>\r\n", sh.from)),
        ("RCPT TO", format!("RCPT TO:<{}>\r\n", sh.to)),
        ("DATA", "DATA\r\n".to_string()),
    ];
    for (stage, cmd) in steps {
        c.send(cmd.as_bytes(), stage).await?;
        let reply = c.reply(stage).await?;
        let ok = if stage == "DATA" {
            reply.code == 354
        } else {
            reply.is_positive()
        };
        if !ok {
            sh.note_error(stage, &reply);
            let closing = reply.code == 421;
            if !closing {
                // Abandon the transaction and carry on with the next message.
                c.send(b"RSET\r\n", "RSET").await?;
                c.reply("RSET").await?;
            }
            return Ok(Outcome::Refused { closing });
        }
    }
    let msg = build_message(sh, seq);
    c.send(&msg, "message body").await?;
    let reply = c.reply("end of DATA").await?;
    if reply.is_positive() {
        Ok(Outcome::Accepted)
    } else {
        sh.note_error("end of DATA", &reply);
        Ok(Outcome::Refused {
            closing: reply.code == 421,
        })
    }
}

/// A complete message of `size` bytes (at least the headers; sizes that would
/// need a 1-byte line end one byte longer), CRLF line ends, followed by ".\r\n".
fn build_message(sh: &Shared, seq: u64) -> Vec<u8> {
    let headers = format!(
        "From: {from}\r\n\
         To: {to}\r\n\
         Subject: smtp-bench message {seq}\r\n\
         Message-ID: <{seq}.{run}@{EHLO_NAME}>\r\n\
         Date: {date}\r\n\
         {token}\
         \r\n",
        from = sh.from,
        to = sh.to,
        run = sh.run_id,
        date = rfc5322_date(SystemTime::now()),
        token = sh
            .arrivals
            .as_ref()
            .map(|a| a.header(seq))
            .unwrap_or_default(),
    );
    let mut msg = Vec::with_capacity(sh.size.max(headers.len()) + 8);
    msg.extend_from_slice(headers.as_bytes());
    fill_body(&mut msg, sh.size.saturating_sub(headers.len()));
    msg.extend_from_slice(b".\r\n");
    msg
}

/// Appends `len` bytes of text lines (76 characters + CRLF, the last one
/// shorter). No line starts with '.', so no dot-stuffing is needed.
fn fill_body(out: &mut Vec<u8>, len: usize) {
    const PATTERN: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";
    let line = |out: &mut Vec<u8>, i: usize, n: usize| {
        let off = i % (PATTERN.len() - LINE_LEN);
        out.extend_from_slice(&PATTERN[off..off + n]);
        out.extend_from_slice(b"\r\n");
    };
    let full_len = LINE_LEN + 2;
    let mut full = len / full_len;
    let rem = len % full_len;
    // A remainder of 1 cannot be a line of its own: shorten one full line by one
    // and add an empty line instead (75 + 2 + 2 = 78 + 1).
    let short_then_empty = rem == 1 && full > 0;
    if short_then_empty {
        full -= 1;
    }
    for i in 0..full {
        line(out, i, LINE_LEN);
    }
    if short_then_empty {
        line(out, full, LINE_LEN - 1);
        out.extend_from_slice(b"\r\n");
    } else if rem >= 3 {
        line(out, full, rem - 2);
    } else if rem > 0 {
        out.extend_from_slice(b"\r\n");
    }
}

/// RFC 5322 date-time in UTC, e.g. "Sat, 28 Nov 2026 19:27:10 +0000".
fn rfc5322_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// An SMTP reply; `lines` holds the text after "NNN-" / "NNN ".
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
}

struct Conn {
    io: BufReader<TcpStream>,
    timeout: Duration,
    /// Messages started on this connection.
    sent: u64,
    line: Vec<u8>,
}

impl Conn {
    /// Connects, reads the 220 greeting and says EHLO.
    async fn open(sh: &Shared) -> Result<Conn> {
        let stream = tokio::time::timeout(sh.io_timeout, TcpStream::connect(sh.addr))
            .await
            .map_err(|_| {
                anyhow!(
                    "connecting to {} timed out after {} s",
                    sh.addr,
                    sh.io_timeout.as_secs()
                )
            })?
            .with_context(|| format!("cannot connect to {}", sh.addr))?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let mut c = Conn {
            io: BufReader::new(stream),
            timeout: sh.io_timeout,
            sent: 0,
            line: Vec::with_capacity(512),
        };
        let greeting = c.reply("greeting").await?;
        if greeting.code != 220 {
            bail!("server greeting was not 220: {}", greeting.text());
        }
        c.send(format!("EHLO {EHLO_NAME}\r\n").as_bytes(), "EHLO")
            .await?;
        let ehlo = c.reply("EHLO").await?;
        if !ehlo.is_positive() {
            bail!("EHLO refused: {}", ehlo.text());
        }
        Ok(c)
    }

    async fn send(&mut self, data: &[u8], what: &str) -> Result<()> {
        let secs = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, self.io.get_mut().write_all(data))
            .await
            .map_err(|_| {
                anyhow!("writing {what} timed out after {secs} s: the server stopped answering")
            })?
            .with_context(|| format!("writing {what} failed"))
    }

    /// Reads one reply, following multi-line continuations ("250-...").
    async fn reply(&mut self, what: &str) -> Result<Reply> {
        let secs = self.timeout.as_secs();
        let mut lines = Vec::new();
        for _ in 0..MAX_REPLY_LINES {
            self.line.clear();
            let mut limited = (&mut self.io).take(MAX_REPLY_LINE);
            let read = limited.read_until(b'\n', &mut self.line);
            let n = tokio::time::timeout(self.timeout, read)
                .await
                .map_err(|_| {
                    anyhow!("no reply to {what} within {secs} s: the server stopped answering")
                })?
                .with_context(|| format!("reading the reply to {what} failed"))?;
            if n == 0 {
                bail!("the server closed the connection instead of replying to {what}");
            }
            let text = String::from_utf8_lossy(&self.line);
            let text = text.trim_end_matches(['\r', '\n']);
            let bytes = text.as_bytes();
            let code = (bytes.len() >= 3 && bytes[..3].iter().all(u8::is_ascii_digit))
                .then(|| text[..3].parse::<u16>().ok())
                .flatten()
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| anyhow!("malformed reply to {what}: {text:?}"))?;
            let more = bytes.get(3) == Some(&b'-');
            if bytes.len() > 3 && !more && bytes[3] != b' ' {
                bail!("malformed reply to {what}: {text:?}");
            }
            lines.push(text.get(4..).unwrap_or("").to_string());
            if !more {
                return Ok(Reply { code, lines });
            }
        }
        bail!("reply to {what} has more than {MAX_REPLY_LINES} lines")
    }

    /// Polite QUIT; failures here don't affect the figures, so they are only reported.
    async fn quit(mut self) {
        let result = async {
            self.send(b"QUIT\r\n", "QUIT").await?;
            self.reply("QUIT").await
        }
        .await;
        if let Err(e) = result {
            eprintln!("smtp-bench: warning: QUIT failed: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn shared(size: usize) -> Shared {
        Shared {
            addr: "127.0.0.1:25".parse().unwrap(),
            from: "a@bench.test".into(),
            to: "user@bench.test".into(),
            size,
            per_session: None,
            io_timeout: Duration::from_secs(60),
            run_id: "1.2".into(),
            warmup_total: 0,
            warmup_next: AtomicU64::new(0),
            total: 10,
            next: AtomicU64::new(0),
            barrier: Barrier::new(1),
            errors_seen: Mutex::new(HashSet::new()),
            arrivals: None,
            await_delivery: false,
            arrival_timeout: Duration::from_secs(60),
            warmup_accepted: AtomicU64::new(0),
        }
    }

    #[test]
    fn message_has_requested_size_and_valid_lines() {
        for size in [
            0, 100, 250, 251, 252, 253, 254, 255, 330, 331, 1000, 5120, 65_536,
        ] {
            let sh = shared(size);
            let msg = build_message(&sh, 1234);
            assert!(msg.ends_with(b"\r\n.\r\n"), "size {size}");
            let body = &msg[..msg.len() - 3];
            let header_len = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            if size >= header_len + 2 {
                assert_eq!(body.len(), size, "size {size}");
            } else {
                assert!(body.len() <= header_len.max(size) + 1, "size {size}");
            }
            let text = std::str::from_utf8(body).unwrap();
            assert!(text.contains("Subject: smtp-bench message 1234\r\n"));
            assert!(text.contains("Message-ID: <1234.1.2@bench.client>\r\n"));
            for line in text.split_terminator("\r\n") {
                assert!(line.len() <= LINE_LEN, "size {size}: {line:?}");
                assert!(!line.starts_with('.'));
                assert!(!line.contains('\n') && !line.contains('\r'));
            }
        }
    }

    #[test]
    fn date_is_rfc5322() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_894_030);
        assert_eq!(rfc5322_date(t), "Sat, 28 Nov 2026 19:27:10 +0000");
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn only_loopback_servers_are_accepted() {
        assert!(resolve_server("127.0.0.1:2525").is_ok());
        assert!(resolve_server("127.3.2.1:25").is_ok());
        assert!(resolve_server("[::1]:25").is_ok());
        for bad in [
            "192.0.2.1:25",
            "10.0.0.1:25",
            "[2001:db8::1]:25",
            "0.0.0.0:25",
        ] {
            let err = resolve_server(bad).unwrap_err().to_string();
            assert!(err.contains("loopback"), "{bad}: {err}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    async fn w(io: &mut BufReader<TcpStream>, s: &str) -> std::io::Result<()> {
        io.get_mut().write_all(s.as_bytes()).await
    }

    /// A minimal SMTP server: multi-line EHLO, refuses recipients containing
    /// "reject", says 421 to "bye" recipients, counts accepted messages.
    async fn fake_server(silent: bool) -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let conns = Arc::new(AtomicU64::new(0));
        let (acc, cn) = (Arc::clone(&accepted), Arc::clone(&conns));
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                cn.fetch_add(1, Ordering::Relaxed);
                let acc = Arc::clone(&acc);
                tokio::spawn(async move {
                    let mut io = BufReader::new(sock);
                    if silent {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    w(&mut io, "220-fake\r\n220 ready\r\n").await.unwrap();
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let up = line.to_ascii_uppercase();
                        let r = if up.starts_with("EHLO") {
                            "250-fake\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n"
                        } else if up.starts_with("RCPT") && up.contains("REJECT") {
                            "550 5.1.1 no such user\r\n"
                        } else if up.starts_with("RCPT") && up.contains("BYE") {
                            "421 4.3.2 shutting down\r\n"
                        } else if up.starts_with("DATA") {
                            w(&mut io, "354 go ahead\r\n").await.unwrap();
                            let mut n = 0usize;
                            loop {
                                line.clear();
                                if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                n += line.len();
                            }
                            assert_eq!(n, 1000);
                            acc.fetch_add(1, Ordering::Relaxed);
                            "250 2.0.0 queued\r\n"
                        } else if up.starts_with("QUIT") {
                            w(&mut io, "221 bye\r\n").await.unwrap();
                            return;
                        } else {
                            "250 ok\r\n"
                        };
                        w(&mut io, r).await.unwrap();
                        if r.starts_with("421") {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted, conns)
    }

    fn args(addr: SocketAddr, extra: &[&str]) -> Args {
        let server = addr.to_string();
        let mut v = vec!["smtp-bench", "--server", &server, "--size", "1000"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }

    #[tokio::test]
    async fn sends_all_messages_with_warmup_and_reconnects() {
        let (addr, accepted, conns) = fake_server(false).await;
        let a = args(
            addr,
            &[
                "--sessions",
                "3",
                "--messages",
                "30",
                "--warmup",
                "6",
                "--per-session",
                "4",
            ],
        );
        let r = run(a).await.unwrap();
        assert_eq!(r.accepted, 30);
        assert_eq!(r.errors, 0);
        assert_eq!(r.latencies_ns.len(), 30);
        assert_eq!(accepted.load(Ordering::Relaxed), 36);
        // 36 messages, at most 4 per connection: at least 9 connections.
        assert!(conns.load(Ordering::Relaxed) >= 9);
        assert!(r.wall > Duration::ZERO);
        let j = r.to_json();
        assert_eq!(j["accepted"], 30);
        assert!(j["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
        assert!(r.to_text().contains("messages/s"));
    }

    #[tokio::test]
    async fn refusals_are_counted_not_fatal() {
        let (addr, accepted, _) = fake_server(false).await;
        let a = args(
            addr,
            &[
                "--sessions",
                "2",
                "--messages",
                "10",
                "--to",
                "reject@bench.test",
            ],
        );
        let r = run(a).await.unwrap();
        assert_eq!((r.accepted, r.errors), (0, 10));
        assert_eq!(accepted.load(Ordering::Relaxed), 0);
        assert_eq!(r.to_json()["latency_ms"]["p50"], serde_json::Value::Null);

        // 421 closes the connection; the session reconnects for the next message.
        let a = args(
            addr,
            &[
                "--sessions",
                "1",
                "--messages",
                "3",
                "--to",
                "bye@bench.test",
            ],
        );
        let r = run(a).await.unwrap();
        assert_eq!((r.accepted, r.errors), (0, 3));
    }

    #[tokio::test]
    async fn silent_server_aborts_the_run() {
        let (addr, _, _) = fake_server(true).await;
        let a = args(
            addr,
            &["--sessions", "2", "--messages", "5", "--timeout", "1"],
        );
        let err = format!("{:#}", run(a).await.err().expect("run must fail"));
        assert!(err.contains("stopped answering"), "{err}");
    }

    /// A store-and-forward relay: answers 250 to the final dot, then forwards the message to
    /// `sink` on a new connection; messages to "drop@..." are accepted and never forwarded.
    async fn fake_relay(sink: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut io = BufReader::new(sock);
                    w(&mut io, "220 relay\r\n").await.unwrap();
                    let mut line = String::new();
                    let mut drop_it = false;
                    loop {
                        line.clear();
                        if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let up = line.to_ascii_uppercase();
                        if up.starts_with("RCPT") {
                            drop_it = up.contains("DROP@");
                        }
                        if up.starts_with("DATA") {
                            w(&mut io, "354 go ahead\r\n").await.unwrap();
                            let mut msg = String::new();
                            loop {
                                line.clear();
                                io.read_line(&mut line).await.unwrap();
                                msg.push_str(&line);
                                if line == ".\r\n" {
                                    break;
                                }
                            }
                            w(&mut io, "250 queued\r\n").await.unwrap();
                            if !drop_it {
                                tokio::spawn(forward(sink, msg));
                            }
                        } else if up.starts_with("QUIT") {
                            w(&mut io, "221 bye\r\n").await.unwrap();
                            return;
                        } else {
                            w(&mut io, "250 ok\r\n").await.unwrap();
                        }
                    }
                });
            }
        });
        addr
    }

    /// One pipelined delivery, as a relay's client would do it.
    async fn forward(sink: SocketAddr, msg: String) {
        let mut io = BufReader::new(TcpStream::connect(sink).await.unwrap());
        let mut replies = String::new();
        let mut read = async |io: &mut BufReader<TcpStream>, n: usize| {
            for _ in 0..n {
                let mut l = String::new();
                io.read_line(&mut l).await.unwrap();
                replies.push_str(&l);
            }
        };
        read(&mut io, 1).await;
        w(&mut io, "EHLO relay\r\n").await.unwrap();
        read(&mut io, 5).await;
        w(
            &mut io,
            "MAIL FROM:<a@b>\r\nRCPT TO:<c@sink.test>\r\nDATA\r\n",
        )
        .await
        .unwrap();
        read(&mut io, 3).await;
        w(&mut io, &msg).await.unwrap();
        w(&mut io, "QUIT\r\n").await.unwrap();
        read(&mut io, 2).await;
        assert!(replies.contains("\r\n354 ") && replies.ends_with("221 2.0.0 Bye\r\n"));
    }

    fn free_port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    #[tokio::test]
    async fn relay_mode_matches_arrivals_with_acks() {
        let sink = free_port();
        let relay = fake_relay(sink).await;
        let sink_arg = sink.to_string();
        let a = args(
            relay,
            &[
                "--sessions",
                "3",
                "--messages",
                "40",
                "--warmup",
                "5",
                "--sink",
                &sink_arg,
            ],
        );
        let r = run(a).await.unwrap();
        assert_eq!((r.accepted, r.errors), (40, 0));
        let rel = r.relay.as_ref().unwrap();
        assert_eq!((rel.arrived, rel.missing, rel.duplicates), (40, 0, 0));
        assert_eq!((rel.foreign, rel.untagged), (0, 0));
        assert_eq!(rel.sink_connections, 45);
        assert_eq!(rel.relay_latencies_ns.len(), 40);
        assert!(rel.e2e_wall >= r.wall);
        let j = r.to_json();
        assert_eq!(j["relay"]["arrived"], 40);
        assert!(j["relay"]["e2e_messages_per_s"].as_f64().unwrap() > 0.0);
        assert!(j["relay"]["relay_latency_ms"]["p99"].as_f64().is_some());
        assert!(j["relay"]["bench_cpu_s"].as_f64().is_some());
        assert!(r.to_text().contains("end to end"));
        // Plain messages keep their size with the token header.
        assert!(j["latency_ms"]["p50"].as_f64().is_some());

        // One session, each message awaited at the sink; the sink can be restarted on the
        // same port.
        let a = args(
            relay,
            &[
                "--sessions",
                "1",
                "--messages",
                "10",
                "--sink",
                &sink_arg,
                "--await-delivery",
            ],
        );
        let r = run(a).await.unwrap();
        let rel = r.relay.as_ref().unwrap();
        assert_eq!((rel.arrived, rel.missing), (10, 0));
        assert!(rel.await_delivery);
    }

    #[tokio::test]
    async fn relay_mode_reports_messages_that_never_arrive() {
        let sink = free_port();
        let relay = fake_relay(sink).await;
        let sink_arg = sink.to_string();
        let a = args(
            relay,
            &[
                "--sessions",
                "2",
                "--messages",
                "4",
                "--to",
                "drop@sink.test",
                "--sink",
                &sink_arg,
                "--arrival-timeout",
                "1",
            ],
        );
        let r = run(a).await.unwrap();
        let rel = r.relay.as_ref().unwrap();
        assert_eq!((r.accepted, rel.arrived, rel.missing), (4, 0, 4));
        assert_eq!(rel.first_missing, vec![0, 1, 2, 3]);
        assert_eq!(r.to_json()["relay"]["e2e_messages_per_s"], 0.0);

        // Awaiting a message that never arrives aborts the run.
        let a = args(
            relay,
            &[
                "--sessions",
                "1",
                "--messages",
                "2",
                "--to",
                "drop@sink.test",
                "--sink",
                &sink_arg,
                "--arrival-timeout",
                "1",
                "--await-delivery",
            ],
        );
        let err = format!("{:#}", run(a).await.err().expect("run must fail"));
        assert!(err.contains("did not arrive at the sink"), "{err}");
    }

    #[tokio::test]
    async fn non_loopback_is_refused_before_connecting() {
        let a = Args::try_parse_from(["smtp-bench", "--server", "192.0.2.7:25"]).unwrap();
        let err = format!("{:#}", run(a).await.err().expect("run must fail"));
        assert!(err.contains("only talks to servers on loopback"), "{err}");
        let a = Args::try_parse_from([
            "smtp-bench",
            "--server",
            "127.0.0.1:25",
            "--sink",
            "192.0.2.7:2525",
        ])
        .unwrap();
        let err = format!("{:#}", run(a).await.err().expect("run must fail"));
        assert!(err.contains("only talks to servers on loopback"), "{err}");
        assert!(
            Args::try_parse_from(["smtp-bench", "--server", "127.0.0.1:25", "--await-delivery"])
                .is_err(),
            "--await-delivery needs --sink"
        );
    }
}
