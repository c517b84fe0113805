//! The admin CLI, run against a live server's data directory.

use std::process::Command;
use testkit::{TestServer, b64};

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_postrider"))
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn config_defaults_prints_a_commented_config_that_check_config_accepts() {
    let out = Command::new(bin())
        .args(["config", "defaults"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for key in [
        "max_message_size",
        "max_recipients",
        "command_timeout",
        "[[listener]]",
        "role = \"submissions\"",
    ] {
        assert!(text.contains(key), "{key} missing");
    }
    // Every key line is preceded by a comment explaining it.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.contains(" = ")
            && !l.starts_with('#')
            && !l.starts_with("name")
            && !l.starts_with("address")
            && !l.starts_with("role")
        {
            assert!(lines[i - 1].starts_with('#'), "key without a comment: {l}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("defaults.toml");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn check_config_lists_every_problem_with_its_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[smtp]\nmax_recipients = \"many\"\nmax_mesage_size = 1\n[[listener]]\nname = \"x\"\naddress = \"0.0.0.0\"\nrole = \"relay\"\n").unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for want in [
        "smtp.max_recipients",
        "smtp.max_mesage_size: unknown key",
        "listener[0].address",
        "listener[0].role",
        "postrider config defaults",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    let missing = Command::new(bin())
        .args(["check-config", "--config", "/nonexistent/postrider.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("cannot read the file"));
}

#[test]
fn a_wrong_argument_exits_2_with_usage() {
    let out = Command::new(bin())
        .args(["account", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage"));
}

#[test]
fn admin_commands_without_a_data_directory_say_how_to_fix_it() {
    let out = Command::new(bin())
        .args(["--data-dir", "/nonexistent/dir", "queue", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("postrider serve"), "{}", stderr(&out));
}

#[test]
fn domains_accounts_and_aliases_are_managed_while_the_server_runs() {
    let s = TestServer::start(bin(), "").unwrap();
    assert_eq!(
        s.admin_ok(&["domain", "list"]).trim(),
        "localhost",
        "first start creates localhost"
    );
    s.admin_ok(&["domain", "add", "Example.TEST"]);
    let dup = s.admin(&["domain", "add", "example.test"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(stderr(&dup).contains("already exists"));
    let bad = s.admin(&["account", "add", "x@unknown.test"]);
    assert!(stderr(&bad).contains("postrider domain add unknown.test"));

    // A generated password is printed once and works for SMTP AUTH.
    let out = s.admin_ok(&["account", "add", "carol@example.test"]);
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("password printed")
        .to_string();
    assert!(password.len() >= 16);
    assert!(
        s.admin_ok(&["account", "list"])
            .contains("carol@example.test")
    );
    let login = |pw: &str| {
        let mut c = s.connect(s.ports.submission);
        c.expect("EHLO t", "250");
        c.starttls();
        c.expect("EHLO t", "250");
        c.cmd("AUTH LOGIN");
        c.cmd(&b64("carol@example.test"));
        c.cmd(&b64(pw)).code
    };
    assert_eq!(login(&password), 235);
    let out = s.admin_with_stdin(
        &[
            "account",
            "passwd",
            "carol@example.test",
            "--password-stdin",
        ],
        Some("new secret\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(login(&password), 535);
    assert_eq!(login("new secret"), 235);
    let empty = s.admin_with_stdin(
        &[
            "account",
            "passwd",
            "carol@example.test",
            "--password-stdin",
        ],
        Some(""),
    );
    assert_eq!(empty.status.code(), Some(1));

    s.admin_ok(&["alias", "add", "info@example.test", "carol@example.test"]);
    assert!(
        s.admin_ok(&["alias", "list"])
            .contains("info@example.test\tcarol@example.test")
    );
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO t", "250");
    c.expect("MAIL FROM:<x@remote.test>", "250");
    c.expect("RCPT TO:<info@example.test>", "250");
    s.admin_ok(&["alias", "remove", "info@example.test", "carol@example.test"]);
    c.expect("RCPT TO:<info@example.test>", "550 5.1.1");
    s.admin_ok(&["account", "remove", "carol@example.test"]);
    assert!(!s.admin_ok(&["account", "list"]).contains("carol@"));
    s.admin_ok(&["domain", "remove", "example.test"]);
    c.expect("RCPT TO:<carol@example.test>", "550 5.7.1");
}

#[test]
fn queue_and_mailbox_commands_show_and_remove_messages() {
    let s = TestServer::start(bin(), "[delivery]\npaused = true\n").unwrap();
    s.add_account("dave@localhost", "pw");
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO t", "250");
    let r = c.send_mail(
        "eve@remote.test",
        &["dave@localhost"],
        "From: Eve <eve@remote.test>\r\nSubject: queued one\r\n\r\nx\r\n",
    );
    let id1 = r.text.rsplit(' ').next().unwrap().to_string();
    let r = c.send_mail(
        "eve@remote.test",
        &["dave@localhost"],
        "From: Eve <eve@remote.test>\r\nSubject: queued two\r\n\r\ny\r\n",
    );
    let id2 = r.text.rsplit(' ').next().unwrap().to_string();
    let list = s.admin_ok(&["queue", "list"]);
    assert!(
        list.contains(&id1) && list.contains(&id2) && list.contains("2 message(s)"),
        "{list}"
    );
    let show = s.admin_ok(&["queue", "show", &id1]);
    assert!(
        show.contains("from:      <eve@remote.test>")
            && show.contains("dave@localhost")
            && show.contains("[queued]"),
        "{show}"
    );
    s.admin_ok(&["queue", "delete", &id1]);
    assert!(!s.admin_ok(&["queue", "list"]).contains(&id1));
    let gone = s.admin(&["queue", "delete", &id1]);
    assert_eq!(gone.status.code(), Some(1));

    // Resume delivery: restart without the pause. The remaining message is delivered.
    let mut s = s;
    s.stop();
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("paused = true", "paused = false");
    std::fs::write(&s.config, text).unwrap();
    s.spawn().unwrap();
    let ids = s.wait_for_mail("dave@localhost", 1);
    assert_eq!(s.admin_ok(&["queue", "list"]).trim(), "queue is empty");
    let listing = s.admin_ok(&["mailbox", "list", "dave@localhost"]);
    let row = listing.lines().nth(1).unwrap();
    assert!(
        row.contains("eve@remote.test") && row.contains("queued two"),
        "{listing}"
    );
    assert!(
        row.split_whitespace()
            .next()
            .unwrap()
            .parse::<i64>()
            .is_ok(),
        "first column is the id: {row}"
    );
    let raw = s.mailbox_show("dave@localhost", ids[0]);
    assert!(raw.ends_with(b"Subject: queued two\r\n\r\ny\r\n"));
    let missing = s.admin(&["mailbox", "show", "dave@localhost", "999"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn the_production_example_config_is_valid_apart_from_its_certificate_paths() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/postrider.toml");
    let out = Command::new(bin())
        .args(["check-config", "--config", example])
        .output()
        .unwrap();
    let err = stderr(&out);
    // Only the certificate files (absent on a test machine) may be reported.
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .collect();
    assert!(
        problems
            .iter()
            .all(|p| p.contains("tls.certificate") || p.contains("tls.private_key")),
        "{err}"
    );
}

#[test]
fn the_readme_config_reference_is_the_built_in_defaults() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    assert!(
        readme.contains(settings::DEFAULTS_TOML),
        "README's configuration reference must be `postrider config defaults` verbatim"
    );
}

#[test]
fn a_corrupt_queue_entry_is_quarantined_at_start_and_the_rest_is_delivered() {
    let mut s = TestServer::start(bin(), "[delivery]\npaused = true\n").unwrap();
    let mut c = s.connect(s.ports.mx);
    c.expect("EHLO t", "250");
    let good = c.send_mail(
        "a@remote.test",
        &["postmaster@localhost"],
        "Subject: good\r\n\r\nx\r\n",
    );
    let bad = c.send_mail(
        "a@remote.test",
        &["postmaster@localhost"],
        "Subject: bad\r\n\r\ny\r\n",
    );
    let (good, bad) = (
        good.text.rsplit(' ').next().unwrap().to_string(),
        bad.text.rsplit(' ').next().unwrap().to_string(),
    );
    drop(c);
    s.kill();
    // Damage one entry behind the server's back, as a disk fault or a bad manual edit would.
    let db = s.data_dir().join("postrider.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(format!(
            "UPDATE queue SET envelope = '{{truncated' WHERE id = '{bad}';"
        ))
        .output()
        .expect("sqlite3 (scripts/install-test-deps installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("paused = true", "paused = false");
    std::fs::write(&s.config, text).unwrap();
    s.spawn().unwrap();
    let ids = s.wait_for_mail("postmaster@localhost", 1);
    assert_eq!(ids.len(), 1);
    let list = s.admin_ok(&["queue", "list"]);
    assert!(
        list.contains(&bad) && list.contains("quarantined") && !list.contains(&good),
        "{list}"
    );
    assert!(
        s.admin_ok(&["queue", "show", &bad])
            .contains("QUARANTINED: unreadable envelope")
    );
    assert!(
        s.log().contains("queue entry quarantined") && s.log().contains(&bad),
        "reported in the log"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_with_the_sigpipe_status() {
    // Like `postrider config defaults | true`: the reader is gone before anything is printed.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_postrider"))
        .args(["config", "defaults"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
