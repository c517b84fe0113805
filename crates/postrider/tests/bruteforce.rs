//! Brute-force protection over real sockets: growing delays, 421 after too many failures in one
//! session, IP bans and account locks, and `postrider ban list|remove`.

use std::time::{Duration, Instant};
use testkit::{Conn, TestServer, b64};

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_postrider"))
}

fn server(auth: &str) -> TestServer {
    let s = TestServer::start(bin(), &format!("[auth]\n{auth}")).unwrap();
    s.admin_ok(&["domain", "add", "example.test"]);
    s.add_account("alice@example.test", "alice-pw");
    s
}

/// A session after STARTTLS and EHLO, ready for AUTH.
fn session(s: &TestServer) -> Conn {
    let mut c = s.connect(s.ports.submission);
    c.expect("EHLO client.test", "250");
    c.starttls();
    c.expect("EHLO client.test", "250");
    c
}

fn plain(user: &str, pw: &str) -> String {
    format!("AUTH PLAIN {}", b64(&format!("\0{user}\0{pw}")))
}

#[test]
fn too_many_failures_in_one_session_end_it_with_421() {
    let s = server(
        "failure_delay = \"20ms\"\nmax_failures_per_session = 3\nban_ip_after = 0\nlock_account_after = 0\n",
    );
    let mut c = session(&s);
    for _ in 0..2 {
        c.expect(&plain("alice@example.test", "wrong"), "535 5.7.8");
    }
    c.send(&plain("alice@example.test", "wrong"));
    assert_eq!(c.reply().code, 535);
    let r = c.reply();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(r.text.starts_with("4.7.0"), "{r:?}");
    assert!(c.is_closed());
    // A new connection may log in.
    let mut c = session(&s);
    c.expect(&plain("alice@example.test", "alice-pw"), "235");
}

#[test]
fn each_further_failure_waits_twice_as_long_up_to_the_cap() {
    let s = server(
        "failure_delay = \"100ms\"\nmax_failure_delay = \"400ms\"\nmax_failures_per_session = 10\nban_ip_after = 0\nlock_account_after = 0\n",
    );
    let mut c = session(&s);
    let mut took = Vec::new();
    for _ in 0..4 {
        let t = Instant::now();
        c.expect(&plain("nobody@example.test", "x"), "535");
        took.push(t.elapsed());
    }
    let want = [100, 200, 400, 400];
    for (d, w) in took.iter().zip(want) {
        assert!(
            *d >= Duration::from_millis(w) && *d < Duration::from_millis(w * 2),
            "delays {took:?}, wanted about {want:?} ms"
        );
    }
}

#[test]
fn an_address_with_too_many_failures_is_banned_until_an_admin_lifts_it() {
    let s = server(
        "failure_delay = \"10ms\"\nmax_failure_delay = \"10ms\"\nmax_failures_per_session = 100\nban_ip_after = 4\nlock_account_after = 0\n",
    );
    let mut c = session(&s);
    for _ in 0..3 {
        c.expect(&plain("alice@example.test", "guess"), "535");
    }
    // The fourth failure bans the address: 535, then 421 and the connection ends.
    c.send(&plain("bob@example.test", "guess"));
    assert_eq!(c.reply().code, 535);
    assert_eq!(c.reply().code, 421);
    assert!(c.is_closed());
    // New connections from it are refused at once, even with the right password.
    let c = s.connect(s.ports.submission);
    let r = c.greeting.clone().unwrap();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(r.text.contains("failed logins"), "{r:?}");
    let list = s.admin_ok(&["ban", "list"]);
    assert!(
        list.lines().any(|l| l.starts_with("ip")
            && l.contains("127.0.0.1")
            && l.contains("4 failed logins")),
        "{list}"
    );
    let out = s.admin_ok(&["ban", "remove", "127.0.0.1"]);
    assert!(out.contains("lifted"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = s.connect(s.ports.submission);
        if c.greeting.as_ref().is_some_and(|g| g.code == 220) {
            break;
        }
        assert!(Instant::now() < deadline, "the ban was not lifted");
        std::thread::sleep(Duration::from_millis(250));
    }
    s.login("alice@example.test", "alice-pw");
    assert!(s.admin_ok(&["ban", "list"]).contains("no bans in force"));
    let o = s.admin(&["ban", "remove", "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ban list"),
        "{o:?}"
    );
}

#[test]
fn an_account_name_with_too_many_failures_is_locked_and_fails_like_a_wrong_password() {
    let s = server(
        "failure_delay = \"10ms\"\nmax_failure_delay = \"10ms\"\nmax_failures_per_session = 100\nban_ip_after = 0\nlock_account_after = 3\n",
    );
    for user in ["alice@example.test", "nobody@example.test"] {
        let mut c = session(&s);
        for _ in 0..3 {
            c.expect(&plain(user, "guess"), "535");
        }
    }
    // Now even the right password fails, the same way as for a name that does not exist.
    let mut c = session(&s);
    let locked = c.cmd(&plain("alice@example.test", "alice-pw"));
    let unknown = c.cmd(&plain("nobody@example.test", "whatever"));
    assert_eq!((locked.code, &locked.text), (unknown.code, &unknown.text));
    assert_eq!(locked.code, 535);
    let list = s.admin_ok(&["ban", "list"]);
    for name in ["alice@example.test", "nobody@example.test"] {
        assert!(
            list.lines()
                .any(|l| l.starts_with("account") && l.contains(name)),
            "{list}"
        );
    }
    s.admin_ok(&["ban", "remove", "Alice@example.test"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = session(&s);
        if c.cmd(&plain("alice@example.test", "alice-pw")).code == 235 {
            break;
        }
        assert!(Instant::now() < deadline, "the lock was not lifted");
        std::thread::sleep(Duration::from_millis(250));
    }
}
