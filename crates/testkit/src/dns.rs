//! A DNS server for tests: answers MX, A, AAAA, TXT and CNAME queries from records the test adds,
//! on an address in 127.0.0.0/8, over UDP and TCP on the same free port.
//!
//! It acts as an authoritative server for every name: a name with no records gets NXDOMAIN, a
//! name with records but none of the asked type gets NODATA, both with a made-up SOA of the
//! parent in the authority section (minimum = the configured TTL) so negative caching works.
//! Messages are parsed and encoded with `hickory-proto`; each transport is served by plain std
//! threads (one for UDP, one accepting TCP, one per TCP connection).

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The UDP payload size we advertise in our OPT record, and the most we send over UDP to an EDNS
/// client (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;
/// Without EDNS, a UDP response may be at most this long (RFC 1035).
const PLAIN_UDP_LIMIT: usize = 512;
/// Longest CNAME chain followed in one answer.
const MAX_CNAME_CHAIN: usize = 8;
/// An idle TCP connection is closed after this long.
const TCP_IDLE: Duration = Duration::from_secs(30);

/// A DNS server on 127.0.0.x for tests; see the module docs. Stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    zone: Mutex<Zone>,
    stop: AtomicBool,
    /// Open TCP connections (clones), shut down on drop so their threads end.
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
}

struct Zone {
    /// Lower-case name without trailing dot → its records.
    records: HashMap<String, Vec<RData>>,
    servfail: HashSet<String>,
    dropped: HashSet<String>,
    ttl: u32,
    queries: Vec<(String, String)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parses a name given by a test ("example.com", "Example.COM.", "." or "" for the root).
/// Panics on a name that is not a valid DNS name: that is a bug in the test.
fn parse_name(name: &str) -> Name {
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() {
        return Name::root();
    }
    Name::from_ascii(format!("{trimmed}."))
        .unwrap_or_else(|e| panic!("TestDns: invalid DNS name {name:?}: {e}"))
}

/// The lookup key of a name: lower case, no trailing dot ("" for the root).
fn key(name: &Name) -> String {
    name.to_lowercase()
        .to_ascii()
        .trim_end_matches('.')
        .to_string()
}

fn key_of(name: &str) -> String {
    key(&parse_name(name))
}

/// A made-up SOA record for the parent of `name`, with TTL and minimum `ttl`.
fn soa_for(name: &Name, ttl: u32) -> Record {
    let zone = if name.is_root() {
        Name::root()
    } else {
        name.base_name()
    };
    let host = |label: &str| {
        Name::from_labels([label, "testdns", "invalid"]).unwrap_or_else(|_| Name::root())
    };
    let soa = SOA::new(host("ns"), host("hostmaster"), 1, 3600, 600, 86400, ttl);
    Record::from_rdata(zone, ttl, RData::SOA(soa))
}

impl TestDns {
    /// Starts a DNS server on `ip` (must be in 127.0.0.0/8, e.g. 127.0.0.53) on a free port, UDP
    /// and TCP on the same port, each served by a background thread; stops when dropped.
    pub fn start(ip: Ipv4Addr) -> io::Result<TestDns> {
        if ip.octets()[0] != 127 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TestDns must listen on 127.0.0.0/8, not {ip}"),
            ));
        }
        let (udp, tcp) = bind_pair(ip)?;
        let addr = udp.local_addr()?;
        // The UDP thread wakes up now and then to see whether it should stop.
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        let shared = Arc::new(Shared {
            zone: Mutex::new(Zone {
                records: HashMap::new(),
                servfail: HashSet::new(),
                dropped: HashSet::new(),
                ttl: 300,
                queries: Vec::new(),
            }),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        });
        let s = shared.clone();
        let udp_thread = std::thread::Builder::new()
            .name("testdns-udp".into())
            .spawn(move || serve_udp(&udp, &s))?;
        let s = shared.clone();
        let tcp_thread = std::thread::Builder::new()
            .name("testdns-tcp".into())
            .spawn(move || serve_tcp(&tcp, &s))?;
        Ok(TestDns {
            addr,
            shared,
            threads: vec![udp_thread, tcp_thread],
        })
    }

    /// "127.0.0.53:PORT", to put in the server's config as a nameserver.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn add(&self, name: &str, data: RData) {
        let k = key_of(name);
        lock(&self.shared.zone)
            .records
            .entry(k)
            .or_default()
            .push(data);
    }

    /// An MX record; `exchange` may end with a dot or not.
    pub fn add_mx(&self, domain: &str, preference: u16, exchange: &str) {
        self.add(domain, RData::MX(MX::new(preference, parse_name(exchange))));
    }

    /// RFC 7505 null MX: one MX record with preference 0 and exchange "." (the root).
    pub fn add_null_mx(&self, domain: &str) {
        self.add(domain, RData::MX(MX::new(0, Name::root())));
    }

    /// An A record; call again for more addresses.
    pub fn add_a(&self, name: &str, ip: Ipv4Addr) {
        self.add(name, RData::A(A(ip)));
    }

    /// An AAAA record; call again for more addresses.
    pub fn add_aaaa(&self, name: &str, ip: Ipv6Addr) {
        self.add(name, RData::AAAA(AAAA(ip)));
    }

    /// One TXT record; text longer than 255 octets is split into several 255-octet
    /// character-strings (which a reader concatenates, as for SPF and DKIM).
    pub fn add_txt(&self, name: &str, text: &str) {
        let mut parts: Vec<&[u8]> = text.as_bytes().chunks(255).collect();
        if parts.is_empty() {
            parts.push(b"");
        }
        self.add(name, RData::TXT(TXT::from_bytes(parts)));
    }

    /// A CNAME at `name`: queries of any type but CNAME follow it to `target`.
    pub fn add_cname(&self, name: &str, target: &str) {
        self.add(name, RData::CNAME(CNAME(parse_name(target))));
    }

    /// Answer every query for `name` with SERVFAIL (also when `name` is reached via a CNAME).
    pub fn servfail(&self, name: &str) {
        lock(&self.shared.zone).servfail.insert(key_of(name));
    }

    /// Drop (never answer) every query for `name` (also when reached via a CNAME), to test
    /// timeouts.
    pub fn drop_queries(&self, name: &str) {
        lock(&self.shared.zone).dropped.insert(key_of(name));
    }

    /// TTL of answers and of the SOA of negative answers, and the SOA minimum (default 300).
    pub fn set_ttl(&self, seconds: u32) {
        lock(&self.shared.zone).ttl = seconds;
    }

    /// Removes all records and behaviours (SERVFAIL, dropping) for `name`.
    pub fn remove(&self, name: &str) {
        let k = key_of(name);
        let mut zone = lock(&self.shared.zone);
        zone.records.remove(&k);
        zone.servfail.remove(&k);
        zone.dropped.remove(&k);
    }

    /// Queries received so far, in order: (lower-case name without trailing dot, record type as
    /// text like "MX", "A"). Malformed messages are not recorded.
    pub fn queries(&self) -> Vec<(String, String)> {
        lock(&self.shared.zone).queries.clone()
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread; if that fails, leave it running rather than hang here.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        for (i, t) in self.threads.drain(..).enumerate() {
            // Thread 0 is UDP (polls the stop flag), thread 1 is the TCP acceptor.
            if i == 0 || woke {
                let _ = t.join();
            }
        }
        for (_, c) in lock(&self.shared.conns).drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// Binds UDP on a free port of `ip`, then TCP on the same port; retries if TCP's is taken.
fn bind_pair(ip: Ipv4Addr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = io::Error::other("no free port");
    for _ in 0..50 {
        let udp = UdpSocket::bind((ip, 0))?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind((ip, port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn serve_udp(socket: &UdpSocket, shared: &Shared) {
    let mut buf = vec![0u8; 65535];
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if let Some(response) = shared.answer(&buf[..n], true) {
            let _ = socket.send_to(&response, peer);
        }
    }
}

fn serve_tcp(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.conns).insert(id, clone);
        }
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("testdns-tcp-conn".into())
            .spawn(move || {
                serve_tcp_conn(stream, &s);
                lock(&s.conns).remove(&id);
            });
        if spawned.is_err() {
            lock(&shared.conns).remove(&id);
        }
    }
}

/// Serves DNS messages with a 2-byte length prefix until the client closes, an error, or idleness.
fn serve_tcp_conn(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(TCP_IDLE));
    let _ = stream.set_nodelay(true);
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut msg).is_err() || shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(response) = shared.answer(&msg, false) else {
            continue;
        };
        let Ok(len) = u16::try_from(response.len()) else {
            continue;
        };
        let mut out = Vec::with_capacity(2 + response.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&response);
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

impl Shared {
    /// The encoded response to one request, or None to send nothing (malformed or dropped).
    fn answer(&self, packet: &[u8], udp: bool) -> Option<Vec<u8>> {
        let request = Message::from_vec(packet).ok()?;
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.add_queries(request.queries.iter().cloned());
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            response.set_edns(edns);
        }
        if request.metadata.op_code != OpCode::Query {
            response.metadata.response_code = ResponseCode::NotImp;
        } else if let [query] = request.queries.as_slice() {
            self.resolve(query, &mut response)?;
        } else {
            response.metadata.response_code = ResponseCode::FormErr;
        }
        let mut bytes = response.to_vec().ok()?;
        let limit = match (&request.edns, udp) {
            (_, false) => usize::from(u16::MAX),
            (None, true) => PLAIN_UDP_LIMIT,
            (Some(edns), true) => usize::from(
                edns.max_payload()
                    .clamp(PLAIN_UDP_LIMIT as u16, EDNS_PAYLOAD),
            ),
        };
        if bytes.len() > limit {
            // Keep the question (and OPT), drop the records, set TC: the client retries over TCP.
            response.answers.clear();
            response.authorities.clear();
            response.additionals.clear();
            response.metadata.truncation = true;
            bytes = response.to_vec().ok()?;
        }
        Some(bytes)
    }

    /// Fills the answer and authority sections and the rcode; None to drop the query.
    fn resolve(&self, query: &Query, response: &mut Message) -> Option<()> {
        let qtype = query.query_type();
        let mut zone = lock(&self.zone);
        zone.queries.push((key(query.name()), qtype.to_string()));
        let ttl = zone.ttl;
        let mut name = query.name().clone();
        let mut seen = HashSet::new();
        loop {
            let k = key(&name);
            if zone.dropped.contains(&k) {
                return None;
            }
            if zone.servfail.contains(&k) {
                response.answers.clear();
                response.metadata.response_code = ResponseCode::ServFail;
                return Some(());
            }
            if !seen.insert(k.clone()) || seen.len() > MAX_CNAME_CHAIN {
                // A CNAME loop or too long a chain: answer with what we have.
                return Some(());
            }
            let Some(records) = zone.records.get(&k).filter(|r| !r.is_empty()) else {
                // Also at the end of a CNAME chain (RFC 6604: the rcode is about the last name).
                response.metadata.response_code = ResponseCode::NXDomain;
                response.add_authority(soa_for(&name, ttl));
                return Some(());
            };
            let cname = records.iter().find_map(|r| match r {
                RData::CNAME(c) => Some(c.0.clone()),
                _ => None,
            });
            if let Some(target) = cname
                && qtype != RecordType::CNAME
            {
                response.add_answer(Record::from_rdata(
                    name.clone(),
                    ttl,
                    RData::CNAME(CNAME(target.clone())),
                ));
                name = target;
                continue;
            }
            let mut found = false;
            for r in records {
                if qtype == RecordType::ANY || r.record_type() == qtype {
                    response.add_answer(Record::from_rdata(name.clone(), ttl, r.clone()));
                    found = true;
                }
            }
            if !found {
                response.add_authority(soa_for(&name, ttl));
            }
            return Some(());
        }
    }
}
