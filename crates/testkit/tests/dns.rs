//! TestDns: queried with hickory-proto-built messages over UDP and TCP, and through a real
//! hickory Resolver (the one the server uses) configured with only this server.

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;
use testkit::TestDns;

const IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 53);

fn start() -> TestDns {
    TestDns::start(IP).expect("start TestDns")
}

fn request(name: &str, rtype: RecordType, edns: bool) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m.metadata.recursion_desired = true;
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m
}

/// One query over UDP; None if no answer came within `timeout`.
fn udp_with(
    addr: SocketAddr,
    name: &str,
    rtype: RecordType,
    edns: bool,
    timeout: Duration,
) -> Option<Message> {
    let req = request(name, rtype, edns);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(timeout)).unwrap();
    sock.send_to(&req.to_vec().unwrap(), addr).unwrap();
    let mut buf = [0u8; 65535];
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    assert_eq!(from, addr);
    assert!(
        n <= if edns { 1232 } else { 512 },
        "UDP response of {n} bytes"
    );
    let resp = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(resp.metadata.id, req.metadata.id);
    assert_eq!(resp.queries, req.queries);
    Some(resp)
}

fn udp(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    udp_with(addr, name, rtype, true, Duration::from_secs(5)).expect("UDP answer")
}

fn tcp_send(stream: &mut TcpStream, req: &Message) {
    let bytes = req.to_vec().unwrap();
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&bytes);
    stream.write_all(&out).unwrap();
}

fn tcp_recv(stream: &mut TcpStream) -> Option<Message> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).ok()?;
    Some(Message::from_vec(&buf).unwrap())
}

fn tcp_with(addr: SocketAddr, name: &str, rtype: RecordType, edns: bool) -> Message {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let req = request(name, rtype, edns);
    tcp_send(&mut stream, &req);
    let resp = tcp_recv(&mut stream).expect("TCP answer");
    assert_eq!(resp.metadata.id, req.metadata.id);
    assert_eq!(resp.queries, req.queries);
    resp
}

fn tcp(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    tcp_with(addr, name, rtype, false)
}

fn mx_of(m: &Message) -> Vec<(u16, String)> {
    let mut v: Vec<_> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn soa_minimum(records: &[Record]) -> Option<(String, u32, u32)> {
    records.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some((r.name.to_ascii(), r.ttl, soa.minimum)),
        _ => None,
    })
}

fn txt_strings(m: &Message) -> Vec<Vec<Vec<u8>>> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(t.txt_data.iter().map(|s| s.to_vec()).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn mx_records_are_answered_over_udp_and_tcp_with_aa_set() {
    let dns = start();
    assert_eq!(dns.addr().ip(), IP);
    dns.add_mx("example.test", 20, "mx2.example.test");
    dns.add_mx("example.test", 10, "mx1.example.test.");
    let want = vec![
        (10, "mx1.example.test.".to_string()),
        (20, "mx2.example.test.".to_string()),
    ];
    for resp in [
        udp(dns.addr(), "example.test.", RecordType::MX),
        tcp(dns.addr(), "example.test.", RecordType::MX),
    ] {
        assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
        assert!(resp.metadata.authoritative);
        assert!(!resp.metadata.truncation);
        assert_eq!(mx_of(&resp), want);
        assert!(resp.answers.iter().all(|r| r.ttl == 300));
    }
}

#[test]
fn a_and_aaaa_records_are_answered() {
    let dns = start();
    dns.add_a("mx.example.test", Ipv4Addr::new(127, 0, 0, 25));
    dns.add_a("mx.example.test", Ipv4Addr::new(127, 0, 0, 26));
    dns.add_aaaa("mx.example.test", Ipv6Addr::LOCALHOST);
    let a = udp(dns.addr(), "mx.example.test.", RecordType::A);
    let mut ips: Vec<_> = a
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    ips.sort();
    assert_eq!(
        ips,
        [Ipv4Addr::new(127, 0, 0, 25), Ipv4Addr::new(127, 0, 0, 26)]
    );
    let aaaa = tcp(dns.addr(), "mx.example.test.", RecordType::AAAA);
    assert_eq!(aaaa.answers.len(), 1);
    assert!(matches!(&aaaa.answers[0].data, RData::AAAA(x) if x.0 == Ipv6Addr::LOCALHOST));
}

#[test]
fn txt_record_is_answered_and_long_text_is_split_into_255_octet_strings() {
    let dns = start();
    dns.add_txt("example.test", "v=spf1 -all");
    let long = "k".repeat(600);
    dns.add_txt("sel._domainkey.example.test", &long);
    dns.add_txt("empty.example.test", "");
    let short = udp(dns.addr(), "example.test.", RecordType::TXT);
    assert_eq!(txt_strings(&short), vec![vec![b"v=spf1 -all".to_vec()]]);
    let resp = udp(dns.addr(), "sel._domainkey.example.test.", RecordType::TXT);
    let strings = txt_strings(&resp);
    assert_eq!(strings.len(), 1);
    let lens: Vec<_> = strings[0].iter().map(Vec::len).collect();
    assert_eq!(lens, [255, 255, 90]);
    assert_eq!(strings[0].concat(), long.as_bytes());
    let empty = tcp(dns.addr(), "empty.example.test.", RecordType::TXT);
    assert_eq!(txt_strings(&empty), vec![vec![Vec::<u8>::new()]]);
}

#[test]
fn null_mx_is_one_record_with_preference_zero_and_the_root_as_exchange() {
    let dns = start();
    dns.add_null_mx("nomail.test");
    let resp = udp(dns.addr(), "nomail.test.", RecordType::MX);
    assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
    assert_eq!(resp.answers.len(), 1);
    match &resp.answers[0].data {
        RData::MX(mx) => {
            assert_eq!(mx.preference, 0);
            assert!(mx.exchange.is_root());
        }
        other => panic!("not an MX: {other:?}"),
    }
}

#[test]
fn unknown_name_gets_nxdomain_with_an_soa_whose_minimum_is_the_ttl() {
    let dns = start();
    dns.set_ttl(60);
    dns.add_a("other.example.test", Ipv4Addr::new(127, 0, 0, 2));
    for resp in [
        udp(dns.addr(), "missing.example.test.", RecordType::MX),
        tcp(dns.addr(), "missing.example.test.", RecordType::A),
    ] {
        assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain);
        assert!(resp.metadata.authoritative);
        assert!(resp.answers.is_empty());
        assert_eq!(
            soa_minimum(&resp.authorities),
            Some(("example.test.".to_string(), 60, 60))
        );
    }
}

#[test]
fn existing_name_without_the_asked_type_gets_nodata_with_an_soa() {
    let dns = start();
    dns.add_a("host.example.test", Ipv4Addr::new(127, 0, 0, 9));
    for resp in [
        udp(dns.addr(), "host.example.test.", RecordType::MX),
        tcp(dns.addr(), "host.example.test.", RecordType::AAAA),
    ] {
        assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
        assert!(resp.answers.is_empty());
        assert_eq!(
            soa_minimum(&resp.authorities),
            Some(("example.test.".to_string(), 300, 300))
        );
    }
}

#[test]
fn servfail_name_gets_servfail_even_when_it_has_records() {
    let dns = start();
    dns.add_mx("broken.test", 10, "mx.broken.test");
    dns.servfail("broken.test");
    for resp in [
        udp(dns.addr(), "broken.test.", RecordType::MX),
        tcp(dns.addr(), "broken.test.", RecordType::A),
    ] {
        assert_eq!(resp.metadata.response_code, ResponseCode::ServFail);
        assert!(resp.answers.is_empty());
    }
}

#[test]
fn cname_chain_is_followed_to_the_records_of_the_asked_type() {
    let dns = start();
    dns.add_cname("www.example.test", "alias.example.test");
    dns.add_cname("alias.example.test", "real.example.test");
    dns.add_a("real.example.test", Ipv4Addr::new(127, 0, 0, 7));
    let resp = udp(dns.addr(), "www.example.test.", RecordType::A);
    assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
    let answers: Vec<_> = resp
        .answers
        .iter()
        .map(|r| (r.name.to_ascii(), r.data.to_string()))
        .collect();
    assert_eq!(
        answers,
        [
            ("www.example.test.".into(), "alias.example.test.".into()),
            ("alias.example.test.".into(), "real.example.test.".into()),
            ("real.example.test.".into(), "127.0.0.7".to_string()),
        ]
    );
    // The target has no MX: the CNAMEs, no MX, and an SOA (NODATA).
    let mx = tcp(dns.addr(), "www.example.test.", RecordType::MX);
    assert_eq!(mx.metadata.response_code, ResponseCode::NoError);
    assert_eq!(mx.answers.len(), 2);
    assert!(soa_minimum(&mx.authorities).is_some());
    // Asking for the CNAME itself does not follow it.
    let c = udp(dns.addr(), "www.example.test.", RecordType::CNAME);
    assert_eq!(c.answers.len(), 1);
    // A CNAME to a name that does not exist: the CNAME and NXDOMAIN (RFC 6604).
    dns.add_cname("dangling.example.test", "nowhere.example.test");
    let d = udp(dns.addr(), "dangling.example.test.", RecordType::A);
    assert_eq!(d.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(d.answers.len(), 1);
    // A CNAME loop ends without hanging the server.
    dns.add_cname("loop1.example.test", "loop2.example.test");
    dns.add_cname("loop2.example.test", "loop1.example.test");
    let l = tcp(dns.addr(), "loop1.example.test.", RecordType::A);
    assert_eq!(l.answers.len(), 2);
}

#[test]
fn dropped_queries_are_never_answered_so_the_client_times_out() {
    let dns = start();
    dns.add_mx("slow.test", 10, "mx.slow.test");
    dns.drop_queries("slow.test");
    let short = Duration::from_millis(300);
    assert!(udp_with(dns.addr(), "slow.test.", RecordType::MX, true, short).is_none());
    let mut stream = TcpStream::connect(dns.addr()).unwrap();
    stream.set_read_timeout(Some(short)).unwrap();
    tcp_send(&mut stream, &request("slow.test.", RecordType::MX, false));
    assert!(tcp_recv(&mut stream).is_none());
    // Other names are still answered.
    dns.add_a("fast.test", Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(
        udp(dns.addr(), "fast.test.", RecordType::A).answers.len(),
        1
    );
    // After remove() the name is answered again (NXDOMAIN: its records went too).
    dns.remove("slow.test");
    let resp = udp(dns.addr(), "slow.test.", RecordType::MX);
    assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn large_txt_over_udp_without_edns_sets_tc_and_tcp_gets_the_full_answer() {
    let dns = start();
    let text = "x".repeat(900);
    dns.add_txt("big.test", &text);
    let plain = udp_with(
        dns.addr(),
        "big.test.",
        RecordType::TXT,
        false,
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(plain.metadata.truncation);
    assert!(plain.answers.is_empty());
    assert!(plain.edns.is_none());
    // With EDNS (payload 1232) it fits, and the response carries an OPT record.
    let with_edns = udp(dns.addr(), "big.test.", RecordType::TXT);
    assert!(!with_edns.metadata.truncation);
    assert_eq!(with_edns.edns.as_ref().map(Edns::max_payload), Some(1232));
    assert_eq!(txt_strings(&with_edns)[0].concat(), text.as_bytes());
    // Over TCP it is complete.
    let full = tcp(dns.addr(), "big.test.", RecordType::TXT);
    assert!(!full.metadata.truncation);
    assert!(full.edns.is_none());
    assert_eq!(txt_strings(&full)[0].concat(), text.as_bytes());
    // Even larger than the EDNS payload: TC over UDP with EDNS, complete over TCP.
    let huge = "y".repeat(3000);
    dns.add_txt("huge.test", &huge);
    let tc = udp(dns.addr(), "huge.test.", RecordType::TXT);
    assert!(tc.metadata.truncation);
    assert!(tc.edns.is_some());
    let full = tcp_with(dns.addr(), "huge.test.", RecordType::TXT, true);
    assert_eq!(txt_strings(&full)[0].concat(), huge.as_bytes());
}

#[test]
fn queries_are_recorded_with_lower_case_names_and_type_names() {
    let dns = start();
    dns.add_mx("Example.TEST.", 10, "mx.example.test");
    let resp = udp(dns.addr(), "EXAMPLE.test.", RecordType::MX);
    assert_eq!(mx_of(&resp).len(), 1, "names are case-insensitive");
    tcp(dns.addr(), "mx.Example.test.", RecordType::A);
    udp(dns.addr(), "mx.example.test.", RecordType::AAAA);
    udp(dns.addr(), "example.test.", RecordType::TXT);
    assert_eq!(
        dns.queries(),
        [
            ("example.test".to_string(), "MX".to_string()),
            ("mx.example.test".into(), "A".into()),
            ("mx.example.test".into(), "AAAA".into()),
            ("example.test".into(), "TXT".into()),
        ]
    );
}

#[test]
fn set_ttl_and_remove_change_later_answers() {
    let dns = start();
    dns.add_a("h.test", Ipv4Addr::new(127, 0, 0, 4));
    dns.set_ttl(5);
    assert_eq!(udp(dns.addr(), "h.test.", RecordType::A).answers[0].ttl, 5);
    dns.servfail("h.test");
    dns.remove("H.test.");
    let resp = udp(dns.addr(), "h.test.", RecordType::A);
    assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(soa_minimum(&resp.authorities).map(|s| s.2), Some(5));
}

#[test]
fn malformed_packets_are_ignored_and_the_server_keeps_answering() {
    let dns = start();
    dns.add_a("ok.test", Ipv4Addr::new(127, 0, 0, 5));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for junk in [&b""[..], b"\x12", b"\xff\xff\xff\xff\xff\xff", &[0xab; 700]] {
        sock.send_to(junk, dns.addr()).unwrap();
    }
    let mut buf = [0u8; 1024];
    assert!(sock.recv_from(&mut buf).is_err(), "junk got an answer");
    // A response (QR=1) is not answered either.
    let mut resp = request("ok.test.", RecordType::A, false).into_response();
    resp.metadata.id = 7;
    sock.send_to(&resp.to_vec().unwrap(), dns.addr()).unwrap();
    assert!(sock.recv_from(&mut buf).is_err());
    // Junk over TCP: the connection may close, the server goes on.
    let mut stream = TcpStream::connect(dns.addr()).unwrap();
    stream.write_all(b"\x00\x05hello\x00\x01").unwrap();
    drop(stream);
    assert_eq!(udp(dns.addr(), "ok.test.", RecordType::A).answers.len(), 1);
    assert_eq!(tcp(dns.addr(), "ok.test.", RecordType::A).answers.len(), 1);
    assert_eq!(dns.queries().len(), 2);
}

#[test]
fn one_tcp_connection_carries_several_queries_and_many_clients_are_served_at_once() {
    let dns = start();
    dns.add_a("many.test", Ipv4Addr::new(127, 0, 0, 6));
    let mut stream = TcpStream::connect(dns.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..3 {
        tcp_send(&mut stream, &request("many.test.", RecordType::A, false));
        assert_eq!(tcp_recv(&mut stream).unwrap().answers.len(), 1);
    }
    let addr = dns.addr();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let resp = if i % 2 == 0 {
                        udp(addr, "many.test.", RecordType::A)
                    } else {
                        tcp(addr, "many.test.", RecordType::A)
                    };
                    assert_eq!(resp.answers.len(), 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(dns.queries().len(), 3 + 8 * 25);
}

#[test]
fn addresses_outside_loopback_are_refused_and_drop_frees_the_port() {
    assert!(TestDns::start(Ipv4Addr::new(10, 0, 0, 1)).is_err());
    let dns = start();
    let addr = dns.addr();
    // A connection left open must not keep the server alive.
    let _open = TcpStream::connect(addr).unwrap();
    drop(dns);
    TcpListener::bind(addr).expect("TCP port free after drop");
    UdpSocket::bind(addr).expect("UDP port free after drop");
}

mod resolver {
    use super::*;
    use hickory_resolver::config::{
        ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
    };
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::{Resolver, TokioResolver};

    /// A hickory-resolver 0.26 Resolver that asks only `ns` (UDP, then TCP on truncation),
    /// with no system config (no /etc/resolv.conf, no /etc/hosts).
    fn resolver(ns: SocketAddr, edns0: bool) -> TokioResolver {
        let mut udp = ConnectionConfig::udp();
        udp.port = ns.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = ns.port();
        let server = NameServerConfig::new(ns.ip(), true, vec![udp, tcp]);
        let config = ResolverConfig::from_name_servers(vec![server]);
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.edns0 = edns0;
        Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .expect("build resolver")
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn hickory_resolver_resolves_mx_and_a_through_the_test_server() {
        let dns = start();
        dns.add_mx("example.test", 10, "mx.example.test");
        dns.add_cname("mx.example.test", "host.example.test");
        dns.add_a("host.example.test", Ipv4Addr::new(127, 0, 0, 25));
        let r = resolver(dns.addr(), true);
        rt().block_on(async {
            let mx = r.mx_lookup("example.test.").await.unwrap();
            let mx: Vec<_> = mx
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect();
            assert_eq!(mx, [(10, "mx.example.test.".to_string())]);
            let a = r.ipv4_lookup("mx.example.test.").await.unwrap();
            let ips: Vec<_> = a
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            assert_eq!(ips, [Ipv4Addr::new(127, 0, 0, 25)]);
        });
        assert_eq!(
            dns.queries(),
            [
                ("example.test".to_string(), "MX".to_string()),
                ("mx.example.test".into(), "A".into()),
            ]
        );
    }

    #[test]
    fn hickory_resolver_sees_nxdomain_nodata_servfail_and_falls_back_to_tcp_on_tc() {
        let dns = start();
        dns.add_a("host.example.test", Ipv4Addr::new(127, 0, 0, 25));
        dns.servfail("broken.test");
        let big = "z".repeat(900);
        dns.add_txt("big.test", &big);
        let r = resolver(dns.addr(), false);
        rt().block_on(async {
            let e = r.mx_lookup("missing.example.test.").await.unwrap_err();
            assert!(e.is_nx_domain(), "{e:?}");
            let e = r.mx_lookup("host.example.test.").await.unwrap_err();
            assert!(e.is_no_records_found() && !e.is_nx_domain(), "{e:?}");
            let e = r.mx_lookup("broken.test.").await.unwrap_err();
            assert!(!e.is_no_records_found(), "{e:?}");
            let txt = r.txt_lookup("big.test.").await.unwrap();
            let got: Vec<u8> = txt
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(t.txt_data.concat()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(got, big.as_bytes());
        });
        // big.test was asked twice: over UDP (truncated), then over TCP.
        let big_queries = dns.queries().iter().filter(|q| q.0 == "big.test").count();
        assert_eq!(big_queries, 2);
    }
}
