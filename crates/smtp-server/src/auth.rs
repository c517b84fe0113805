//! SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms, initial responses
//! included. Offered only on submission listeners and only over TLS.

use crate::session::{Mode, Next, Session};
use smtp_codec::reply;
use smtp_codec::sasl::{self, Response};

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

/// Decodes a client response with the codec (`smtp_codec::sasl`): `*` cancels (RFC 4954 §4),
/// `=` is an empty initial response, anything else must be canonical base64.
fn decode(line: &[u8]) -> Decoded {
    match sasl::decode_response(line) {
        Ok(Response::Data(v)) => Decoded::Bytes(v),
        Ok(Response::Cancel) => Decoded::Cancelled,
        Err(e) => {
            tracing::debug!(error = %e, "AUTH response refused");
            Decoded::Malformed
        }
    }
}

impl Session {
    pub(crate) async fn auth_start(&mut self, mechanism: &str, initial: Option<String>) -> Next {
        if !self.cfg.role.requires_auth() {
            return self.reply(reply::NOT_IMPLEMENTED.with_text("AUTH not available on this port"));
        }
        if self.tls.is_none() && !self.plaintext_auth_allowed() {
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
                Decoded::Bytes(user) => match sasl::parse_login_field(&user) {
                    Ok(user) => self.challenge(AuthExchange::LoginPassword(user), "UGFzc3dvcmQ6"),
                    Err(_) => self.reply(reply::AUTH_MALFORMED),
                },
                Decoded::Cancelled => self.reply(reply::AUTH_CANCELLED),
                Decoded::Malformed => self.reply(reply::AUTH_MALFORMED),
            },
            _ => self.reply(reply::AUTH_MECHANISM_UNSUPPORTED),
        }
    }

    /// Whether this client may AUTH without TLS (`auth.dangerous_plaintext_auth_networks`).
    pub(crate) fn plaintext_auth_allowed(&self) -> bool {
        let ip = self.peer.ip();
        self.cfg
            .plaintext_auth_networks
            .iter()
            .any(|n| n.contains(&ip))
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
                Decoded::Bytes(user) => match sasl::parse_login_field(&user) {
                    Ok(user) => self.challenge(AuthExchange::LoginPassword(user), "UGFzc3dvcmQ6"),
                    Err(_) => self.reply(reply::AUTH_MALFORMED),
                },
                Decoded::Cancelled => self.reply(reply::AUTH_CANCELLED),
                Decoded::Malformed => self.reply(reply::AUTH_MALFORMED),
            },
            AuthExchange::LoginPassword(user) => match decode(line) {
                Decoded::Bytes(pw) => match sasl::parse_login_field(&pw) {
                    Ok(pw) => self.verify(&user, &pw).await,
                    Err(_) => self.reply(reply::AUTH_MALFORMED),
                },
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
        // RFC 4616 §2: three UTF-8 fields within the limits, authcid and passwd not empty.
        let creds = match sasl::parse_plain(&bytes) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "AUTH PLAIN message refused");
                return self.reply(reply::AUTH_MALFORMED);
            }
        };
        let (authz, user) = (creds.authzid.as_str(), creds.authcid.as_str());
        if !authz.is_empty() && !authz.eq_ignore_ascii_case(user) {
            tracing::info!(user, authz, "AUTH refused: authorization identity differs");
            let name = user.trim().to_lowercase();
            return self.login_failed(&name).await;
        }
        self.verify(&creds.authcid, &creds.password).await
    }

    /// A failed login of `name`: unknown user, wrong password, expired, revoked or suspended
    /// credential, locked name, foreign authorization identity — one reply, at one time after
    /// the AUTH command (growing with repeated failures), whatever the work behind it; the
    /// session ends after too many.
    async fn login_failed(&mut self, name: &str) -> Next {
        let verdict = self.svc.guard.failure(self.peer.ip(), name).await;
        let started = self
            .auth_started
            .take()
            .unwrap_or_else(tokio::time::Instant::now);
        tokio::time::sleep_until(started + verdict.delay).await;
        self.auth_failures += 1;
        let next = self.reply(reply::AUTH_INVALID);
        if verdict.banned || self.auth_failures >= self.cfg.max_auth_failures {
            tracing::info!(
                failures = self.auth_failures,
                banned = verdict.banned,
                "too many failed logins; closing"
            );
            reply::TOO_MANY_AUTH_FAILURES.encode(&mut self.out);
            return Next::Close;
        }
        next
    }

    async fn verify(&mut self, user: &str, password: &str) -> Next {
        let ip = self.peer.ip();
        let name = user.trim().to_lowercase();
        // A locked name fails like a wrong password, without trying the password.
        let locked = self.svc.guard.account_locked(&name).await;
        let result = if locked {
            tracing::info!(user, "login to a locked account name refused");
            Ok(None)
        } else {
            self.svc
                .directory
                .authenticate(user, password, &ip.to_string())
                .await
        };
        match result {
            Ok(Some(login)) => {
                tracing::info!(user = %login.account, credential = %login.credential, "authenticated");
                self.svc.guard.success(ip);
                self.credential = Some(login.credential.clone());
                self.auth = Some(login.account.clone());
                // A credential held for unusual activity logs in again only after an admin resumed
                // it: its flag for this hour goes too.
                if self.svc.activity.action() == accounts::Action::Hold {
                    self.svc.activity.clear(login.credential_id);
                }
                if let Some(event) = self.svc.activity.login(&login, ip).await {
                    self.unusual(&login, event).await;
                }
                self.login = Some(login);
                self.reply(reply::AUTH_OK)
            }
            Ok(None) => {
                tracing::info!(user, "authentication failed");
                self.login_failed(&name).await
            }
            Err(e) => {
                tracing::error!(error = %e, "authentication lookup failed");
                self.reply(reply::AUTH_TEMP_FAILURE)
            }
        }
    }
}
