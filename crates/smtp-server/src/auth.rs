//! SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms, initial responses
//! included. Offered only on submission listeners and only over TLS.

use crate::session::{Mode, Next, Session};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use smtp_codec::reply;

/// Where an AUTH exchange stands while waiting for the client's next line.
pub(crate) enum AuthExchange {
    /// PLAIN sent 334 with an empty challenge.
    Plain,
    /// LOGIN asked for the user name.
    LoginUser,
    /// LOGIN asked for the password of this user.
    LoginPassword(String),
}

enum Decoded {
    Bytes(Vec<u8>),
    Cancelled,
    Malformed,
}

/// Decodes a client response: `*` cancels (RFC 4954 §4), `=` is an empty initial response.
fn decode(line: &[u8]) -> Decoded {
    let text = line.trim_ascii();
    if text == b"*" {
        return Decoded::Cancelled;
    }
    if text == b"=" {
        return Decoded::Bytes(Vec::new());
    }
    match B64.decode(text) {
        Ok(v) => Decoded::Bytes(v),
        Err(_) => Decoded::Malformed,
    }
}

impl Session {
    pub(crate) async fn auth_start(&mut self, mechanism: &str, initial: Option<String>) -> Next {
        if !self.cfg.role.requires_auth() {
            return self.reply(reply::NOT_IMPLEMENTED.with_text("AUTH not available on this port"));
        }
        if self.tls.is_none() {
            return self.reply(reply::STARTTLS_REQUIRED);
        }
        if !matches!(self.helo, Some((_, true))) {
            return self.reply(reply::bad_sequence("Send EHLO first"));
        }
        if self.auth.is_some() {
            return self.reply(reply::bad_sequence("Already authenticated"));
        }
        if self.tx.is_some() {
            return self.reply(reply::bad_sequence(
                "AUTH not permitted during a mail transaction",
            ));
        }
        self.auth_started = Some(tokio::time::Instant::now());
        match (mechanism, initial) {
            ("PLAIN", None) => self.challenge(AuthExchange::Plain, ""),
            ("PLAIN", Some(ir)) => self.auth_plain(ir.as_bytes()).await,
            ("LOGIN", None) => self.challenge(AuthExchange::LoginUser, "VXNlcm5hbWU6"),
            ("LOGIN", Some(ir)) => match decode(ir.as_bytes()) {
                Decoded::Bytes(user) => {
                    let user = String::from_utf8_lossy(&user).into_owned();
                    self.challenge(AuthExchange::LoginPassword(user), "UGFzc3dvcmQ6")
                }
                Decoded::Cancelled => self.reply(reply::AUTH_CANCELLED),
                Decoded::Malformed => self.reply(reply::AUTH_MALFORMED),
            },
            _ => self.reply(reply::AUTH_MECHANISM_UNSUPPORTED),
        }
    }

    fn challenge(&mut self, state: AuthExchange, text: &str) -> Next {
        self.mode = Mode::Auth(state);
        reply::auth_challenge(text).encode(&mut self.out);
        Next::Continue
    }

    pub(crate) async fn auth_response(&mut self, line: &[u8]) -> Next {
        let Mode::Auth(state) = std::mem::replace(&mut self.mode, Mode::Command) else {
            return Next::Continue;
        };
        match state {
            AuthExchange::Plain => self.auth_plain(line).await,
            AuthExchange::LoginUser => match decode(line) {
                Decoded::Bytes(user) => {
                    let user = String::from_utf8_lossy(&user).into_owned();
                    self.challenge(AuthExchange::LoginPassword(user), "UGFzc3dvcmQ6")
                }
                Decoded::Cancelled => self.reply(reply::AUTH_CANCELLED),
                Decoded::Malformed => self.reply(reply::AUTH_MALFORMED),
            },
            AuthExchange::LoginPassword(user) => match decode(line) {
                Decoded::Bytes(pw) => {
                    let pw = String::from_utf8_lossy(&pw).into_owned();
                    self.verify(&user, &pw).await
                }
                Decoded::Cancelled => self.reply(reply::AUTH_CANCELLED),
                Decoded::Malformed => self.reply(reply::AUTH_MALFORMED),
            },
        }
    }

    /// PLAIN: `authzid NUL authcid NUL password` (RFC 4616 §2). An authorization identity other
    /// than the user's own is refused like a wrong password.
    async fn auth_plain(&mut self, response: &[u8]) -> Next {
        let bytes = match decode(response) {
            Decoded::Bytes(b) => b,
            Decoded::Cancelled => return self.reply(reply::AUTH_CANCELLED),
            Decoded::Malformed => return self.reply(reply::AUTH_MALFORMED),
        };
        let parts: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
        let [authz, user, pw] = parts.as_slice() else {
            return self.reply(reply::AUTH_MALFORMED);
        };
        let (Ok(authz), Ok(user), Ok(pw)) = (
            std::str::from_utf8(authz),
            std::str::from_utf8(user),
            std::str::from_utf8(pw),
        ) else {
            return self.reply(reply::AUTH_MALFORMED);
        };
        if !authz.is_empty() && !authz.eq_ignore_ascii_case(user) {
            tracing::info!(user, authz, "AUTH refused: authorization identity differs");
            return self.reply(reply::AUTH_INVALID);
        }
        let (user, pw) = (user.to_string(), pw.to_string());
        self.verify(&user, &pw).await
    }

    async fn verify(&mut self, user: &str, password: &str) -> Next {
        let ip = self.peer.ip().to_string();
        match self.svc.directory.authenticate(user, password, &ip).await {
            Ok(Some(login)) => {
                tracing::info!(user = %login.account, credential = %login.credential, "authenticated");
                self.auth = Some(login.account);
                self.reply(reply::AUTH_OK)
            }
            Ok(None) => {
                tracing::info!(user, "authentication failed");
                // Unknown user, wrong password, expired or revoked credential: one reply, at
                // one time after the AUTH command, whatever the work behind it.
                let started = self
                    .auth_started
                    .take()
                    .unwrap_or_else(tokio::time::Instant::now);
                tokio::time::sleep_until(started + self.cfg.auth_failure_delay).await;
                self.reply(reply::AUTH_INVALID)
            }
            Err(e) => {
                tracing::error!(error = %e, "authentication lookup failed");
                self.reply(reply::AUTH_TEMP_FAILURE)
            }
        }
    }
}
