//! Each command in three steps: check (state, syntax), policy (role, authentication,
//! recipients), apply. Every answer comes from the codec's reply table.

use crate::Role;
use crate::body::BodySink;
use crate::session::{Mode, Next, Session, Transaction};
use accounts::Resolution;
use queue::{AcceptedRecipient, IntakeError, Origin, Submission};
use smtp_codec::{
    BdatDecoder, BodyFlaws, Capabilities, Command, DataDecoder, ForwardPath, MailParams,
    RcptParams, ReversePath, reply,
};
use smtp_codec::{Body, Ret};
use store::{Destination, RecipientDsn};

impl Session {
    pub(crate) async fn command(&mut self, line: &[u8]) -> Next {
        let cmd = match smtp_codec::parse_command(line) {
            Ok(c) => c,
            Err(e) => {
                if is_http_request(line) {
                    // Cross-protocol attacks: a web page can make a browser POST to port 25
                    // with SMTP commands in the body. Close at once so no line of the request
                    // is read as a command (Postfix does the same: smtpd_forbidden_commands).
                    tracing::info!("HTTP request on an SMTP port; closing");
                    return self.reply(reply::HTTP_REQUEST);
                }
                let is_rcpt = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"RCPT");
                tracing::debug!(error = ?e, "command refused");
                return self.reply(reply::for_command_error(&e, is_rcpt));
            }
        };
        match cmd {
            Command::Ehlo { domain } => self.hello(domain, true),
            Command::Helo { domain } => self.hello(domain, false),
            Command::StartTls => self.starttls(),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth_start(&mechanism, initial_response).await,
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params).await,
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.tx = None;
                self.reply(reply::RESET_OK)
            }
            Command::Noop => self.reply(reply::OK),
            Command::Quit => {
                reply::CLOSING.encode(&mut self.out);
                Next::Close
            }
            // RFC 5321 §3.5.3: 252 when we will not verify but will attempt delivery.
            Command::Vrfy { .. } => self.reply(reply::VRFY_CANNOT),
            Command::Expn { .. } => self.reply(reply::EXPN_DISABLED),
            Command::Help { .. } => self.reply(reply::HELP),
        }
    }

    fn capabilities(&self) -> Capabilities {
        let tls_available = self.svc.tls.is_some();
        // AUTH is offered on submission listeners once the session is encrypted (RFC 8314
        // §3.3, our policy: no plain-text passwords) — before that only to the networks of the
        // dangerous setting — and never on mx listeners.
        let auth = if self.cfg.role.requires_auth()
            && (self.tls.is_some() || self.plaintext_auth_allowed())
            && self.auth.is_none()
        {
            vec!["PLAIN", "LOGIN"]
        } else {
            vec![]
        };
        Capabilities {
            size: Some(self.cfg.max_message_size),
            pipelining: true,
            eight_bit_mime: true,
            smtputf8: true,
            enhanced_status_codes: true,
            starttls: tls_available && self.tls.is_none(),
            auth,
            chunking: true,
            dsn: true,
        }
    }

    fn hello(&mut self, domain: String, esmtp: bool) -> Next {
        // RFC 5321 §4.1.4: EHLO/HELO resets any transaction.
        self.tx = None;
        let r = if esmtp {
            self.capabilities().reply(&self.cfg.hostname, &domain)
        } else {
            reply::helo(&self.cfg.hostname)
        };
        self.helo = Some((domain, esmtp));
        self.reply(r)
    }

    fn starttls(&mut self) -> Next {
        if self.tls.is_some() {
            return self.reply(reply::bad_sequence("TLS already active"));
        }
        if self.svc.tls.is_none() {
            return self.reply(reply::TLS_NOT_AVAILABLE);
        }
        reply::READY_TLS.encode(&mut self.out);
        Next::StartTls
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) -> Next {
        if self.helo.is_none() {
            return self.reply(reply::bad_sequence("Send EHLO or HELO first"));
        }
        if self.tx.is_some() {
            return self.reply(reply::bad_sequence("Nested MAIL command"));
        }
        if self.cfg.role.requires_auth() && self.auth.is_none() {
            // RFC 6409 §4.3 / RFC 4954 §6: submission requires authentication first.
            return self.reply(if self.tls.is_none() {
                reply::STARTTLS_REQUIRED
            } else {
                reply::AUTH_REQUIRED
            });
        }
        if params.size.is_some_and(|s| s > self.cfg.max_message_size) {
            return self.reply(reply::MESSAGE_TOO_BIG);
        }
        if params.body == Some(Body::BinaryMime) {
            // BINARYMIME (RFC 3030 §3) is not advertised.
            return self
                .reply(reply::PARAMETER_UNSUPPORTED.with_text("BODY=BINARYMIME is not supported"));
        }
        if let ReversePath::Address(a) = &from
            && !a.is_ascii()
            && !params.smtputf8
        {
            return self.reply(reply::UTF8_ADDRESS_NEEDS_SMTPUTF8);
        }
        if let (Some(account), ReversePath::Address(a)) = (&self.auth, &from)
            && !self.svc.senders.allows(account, &a.normalized())
        {
            tracing::info!(user = %account, from = %a, "MAIL FROM refused: not an allowed sender for this account");
            return self.reply(reply::SENDER_NOT_ALLOWED);
        }
        if let Some(login) = &self.login
            && self.svc.activity.action() != accounts::Action::Alert
            && self.svc.activity.flagged(login.credential_id)
        {
            tracing::info!(user = %login.account, credential = %login.credential, "MAIL refused: unusual activity on this credential");
            return self.reply(reply::RATE_LIMITED_MESSAGE.with_text(
                "Unusual activity on this credential: sending is paused, try again later",
            ));
        }
        if let Err(over) = self.take_rate("messages", 1) {
            return self.reply(reply::RATE_LIMITED_MESSAGE.with_text(format!(
                "Sending rate limit reached ({over}), try again later"
            )));
        }
        self.tx = Some(Transaction {
            sender: from,
            params,
            recipients: Vec::new(),
            bdat: None,
            bdat_failed: false,
        });
        self.reply(reply::SENDER_OK)
    }

    /// Counts `n` messages or recipients ("messages" / "recipients") against the limits of the
    /// authenticated account and of its credential; the limit crossed, if any (then nothing
    /// more is counted). Unauthenticated sessions have no such limits.
    fn take_rate(&self, what: &str, n: u32) -> Result<(), String> {
        let Some(account) = &self.auth else {
            return Ok(());
        };
        let l = &self.cfg.limits;
        let (account_limit, credential_limit) = if what == "messages" {
            (&l.account_messages, &l.credential_messages)
        } else {
            (&l.account_recipients, &l.credential_recipients)
        };
        let limiter = &self.svc.limiter;
        if let Some(label) = &self.credential {
            limiter
                .take(&format!("credential:{account}/{label}:{what}"), n, credential_limit)
                .map_err(|e| {
                    tracing::info!(user = %account, credential = %label, limit = %e, "{what} rate limit of the credential reached");
                    format!("{what}: {e} for this credential")
                })?;
        }
        limiter
            .take(&format!("account:{account}:{what}"), n, account_limit)
            .map_err(|e| {
                tracing::info!(user = %account, limit = %e, "{what} rate limit of the account reached");
                format!("{what}: {e} for this account")
            })
    }

    async fn rcpt(&mut self, to: ForwardPath, params: RcptParams) -> Next {
        let Some(tx) = &self.tx else {
            return self.reply(reply::bad_sequence("Send MAIL first"));
        };
        if tx.recipients.len() >= self.cfg.max_recipients {
            return self.reply(reply::TOO_MANY_RECIPIENTS);
        }
        let smtputf8 = tx.params.smtputf8;
        let address = match &to {
            ForwardPath::Address(a) => {
                if !a.is_ascii() && !smtputf8 {
                    return self.reply(reply::UTF8_ADDRESS_NEEDS_SMTPUTF8);
                }
                a.normalized()
            }
            // RFC 5321 §4.1.1.3: <Postmaster> without a domain is the postmaster of this host.
            ForwardPath::Postmaster => format!("postmaster@{}", self.postmaster_domain().await),
        };
        let resolution = match self.svc.directory.resolve(&address).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "recipient lookup failed");
                return self.reply(reply::LOCAL_ERROR);
            }
        };
        let destinations = match resolution {
            Resolution::Local(owners) => owners.into_iter().map(Destination::Mailbox).collect(),
            Resolution::UnknownUser => {
                tracing::info!(to = %address, "recipient refused: unknown user");
                return self.reply(reply::USER_UNKNOWN);
            }
            Resolution::NotLocal => match (&to, self.may_relay()) {
                // Relaying needs authentication or a trusted network, and a plain domain name:
                // never to address literals (no relaying by IP).
                (ForwardPath::Address(a), true) if !a.domain.starts_with('[') => {
                    vec![Destination::Remote(a.domain_lower())]
                }
                _ => {
                    tracing::info!(to = %address, "recipient refused: relaying denied");
                    return self.reply(reply::RELAY_DENIED);
                }
            },
        };
        let display = match &to {
            ForwardPath::Address(a) => a.to_string(),
            ForwardPath::Postmaster => address.clone(),
        };
        let dsn = RecipientDsn {
            notify: params
                .notify
                .map(|n| {
                    let mut v = Vec::new();
                    if n.never {
                        v.push("NEVER".to_string());
                    }
                    if n.success {
                        v.push("SUCCESS".to_string());
                    }
                    if n.failure {
                        v.push("FAILURE".to_string());
                    }
                    if n.delay {
                        v.push("DELAY".to_string());
                    }
                    v
                })
                .unwrap_or_default(),
            orcpt: params
                .orcpt
                .map(|o| format!("{};{}", o.addr_type, o.address)),
        };
        if let Err(over) = self.take_rate("recipients", 1) {
            return self.reply(reply::RATE_LIMITED_RECIPIENT.with_text(format!(
                "Recipient rate limit reached ({over}), try again later"
            )));
        }
        if let Some(tx) = &mut self.tx {
            tx.recipients.push(AcceptedRecipient {
                address: display,
                dsn,
                destinations,
            });
        }
        self.reply(reply::RECIPIENT_OK)
    }

    /// Relaying to other domains is allowed for authenticated clients and for clients in a
    /// configured trusted network (`relay.networks`); never for anyone else (no open relay).
    fn may_relay(&self) -> bool {
        // A dual-stack socket reports IPv4 clients as IPv4-mapped IPv6 addresses.
        let ip = match self.peer.ip() {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(std::net::IpAddr::V4)
                .unwrap_or(self.peer.ip()),
            v4 => v4,
        };
        self.auth.is_some() || self.cfg.relay_networks.iter().any(|n| n.contains(&ip))
    }

    /// The domain for a bare `<Postmaster>`: the hostname if it is local, else the first local
    /// domain.
    async fn postmaster_domain(&self) -> String {
        let host = self.cfg.hostname.to_lowercase();
        if self
            .svc
            .directory
            .is_local_domain(&host)
            .await
            .unwrap_or(false)
        {
            return host;
        }
        match self.svc.directory.store().list_domains().await {
            Ok(d) if !d.is_empty() => d[0].name.clone(),
            _ => host,
        }
    }

    fn data(&mut self) -> Next {
        let Some(tx) = &self.tx else {
            return self.reply(reply::bad_sequence("Send MAIL first"));
        };
        if tx.bdat.is_some() {
            return self.reply(reply::bad_sequence("DATA not allowed after BDAT"));
        }
        if tx.recipients.is_empty() {
            // RFC 2920 §3.1: no valid recipients → 554 to DATA.
            return self.reply(reply::NO_VALID_RECIPIENTS);
        }
        let sink = self.new_sink();
        self.mode = Mode::Data {
            decoder: DataDecoder::new(self.cfg.max_text_line),
            sink,
        };
        reply::START_DATA.encode(&mut self.out);
        Next::Continue
    }

    fn new_sink(&self) -> BodySink {
        BodySink::new(
            self.cfg.max_message_size,
            self.cfg.spool_memory_limit,
            self.svc.spool_dir.clone(),
        )
    }

    /// BDAT (RFC 3030 §2): the chunk follows the command at once, so even a refused chunk is
    /// read (and discarded) before the reply.
    fn bdat(&mut self, size: u64, last: bool) -> Next {
        let refusal = match &self.tx {
            None => Some(reply::bad_sequence("Send MAIL first")),
            Some(tx) if tx.recipients.is_empty() => Some(reply::NO_VALID_RECIPIENTS),
            Some(tx) if tx.bdat_failed => {
                Some(reply::bad_sequence("Earlier chunk refused; send RSET"))
            }
            Some(_) => None,
        };
        if refusal.is_none() {
            let sink = self.new_sink();
            let decoder = BdatDecoder::new(self.cfg.max_text_line);
            if let Some(tx) = &mut self.tx {
                tx.bdat.get_or_insert((sink, decoder));
            }
        }
        self.mode = Mode::Bdat {
            remaining: size,
            last,
            discard: refusal,
        };
        Next::Continue
    }

    pub(crate) async fn bdat_chunk_end(&mut self) -> Next {
        let Mode::Bdat { last, discard, .. } = std::mem::replace(&mut self.mode, Mode::Command)
        else {
            return Next::Continue;
        };
        if let Some(r) = discard {
            return self.reply(r);
        }
        let oversized =
            matches!(&self.tx, Some(Transaction { bdat: Some((sink, _)), .. }) if sink.oversized);
        if oversized {
            if let Some(tx) = &mut self.tx {
                tx.bdat = None;
                tx.bdat_failed = true;
            }
            return self.reply(reply::MESSAGE_TOO_BIG);
        }
        if !last {
            let size = match &self.tx {
                Some(Transaction {
                    bdat: Some((sink, _)),
                    ..
                }) => sink.size(),
                _ => 0,
            };
            return self.reply(reply::chunk_received(size));
        }
        let Some((sink, mut decoder)) = self.tx.as_mut().and_then(|t| t.bdat.take()) else {
            return self.reply(reply::LOCAL_ERROR);
        };
        decoder.finish();
        self.finish_message(sink, decoder.flaws()).await
    }

    /// End of a message (DATA's final dot or BDAT LAST): refuse it if flawed or too big,
    /// otherwise hand it to intake and answer 250 only once it is durable.
    pub(crate) async fn finish_message(&mut self, sink: BodySink, flaws: BodyFlaws) -> Next {
        let Some(tx) = self.tx.take() else {
            return self.reply(reply::bad_sequence("Send MAIL first"));
        };
        if flaws.any() {
            tracing::info!(?flaws, "message refused: malformed content");
            let detail = if flaws.bare_cr || flaws.bare_lf {
                "Message rejected: bare CR or LF; lines must end with CRLF"
            } else if flaws.nul {
                "Message rejected: NUL characters are not allowed"
            } else {
                "Message rejected: a line is longer than the limit"
            };
            return self.reply(reply::BODY_MALFORMED.with_text(detail));
        }
        if sink.oversized {
            return self.reply(reply::MESSAGE_TOO_BIG);
        }
        let (head, body) = match sink.finish() {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "spooling the message failed");
                return self.reply(reply::LOCAL_ERROR);
            }
        };
        if let Some(account) = &self.auth
            && let Some(bad) = disallowed_from(&self.svc.senders, account, &head)
        {
            tracing::info!(user = %account, from = %bad, "message refused: From: not allowed for this account");
            if let store::NewBody::File { path, .. } = &body {
                let _ = std::fs::remove_file(path);
            }
            return self.reply(reply::FROM_NOT_ALLOWED);
        }
        // Unusual activity: the message that shows a burst is reported, and with the action
        // "hold" it is kept on hold rather than delivered.
        let mut hold = false;
        let domains: Vec<String> = tx
            .recipients
            .iter()
            .filter_map(|r| r.address.rsplit_once('@').map(|(_, d)| d.to_string()))
            .collect();
        if let Some(login) = self.login.clone()
            && let Some(event) = self.svc.activity.message(&login, &domains).await
        {
            hold = self.svc.activity.action() == accounts::Action::Hold;
            self.unusual(&login, event).await;
        }
        let (helo, esmtp) = self.helo.clone().unwrap_or_default();
        let submission = Submission {
            sender: tx.sender.to_string(),
            ret: tx.params.ret.map(|r| match r {
                Ret::Full => "FULL".to_string(),
                Ret::Hdrs => "HDRS".to_string(),
            }),
            envid: tx.params.envid.clone(),
            body_type: tx.params.body.map(|b| match b {
                Body::SevenBit => "7BIT".to_string(),
                Body::EightBitMime => "8BITMIME".to_string(),
                Body::BinaryMime => "BINARYMIME".to_string(),
            }),
            smtputf8: tx.params.smtputf8,
            recipients: tx.recipients,
            origin: Origin {
                client_ip: self.peer.ip(),
                helo,
                esmtp,
                listener: self.cfg.listener.clone(),
                tls: self.tls.clone(),
                auth: self.auth.clone(),
                submission: self.cfg.role != Role::Mx,
                credential: self.credential.clone(),
            },
            head,
            body,
            hold,
        };
        match self.svc.intake.submit(submission).await {
            Ok(id) => self.reply(reply::queued(&id)),
            Err(IntakeError::Loop(n)) => {
                tracing::info!(received = n, "message refused: mail loop");
                self.reply(reply::MAIL_LOOP)
            }
            Err(IntakeError::Store(e)) => {
                tracing::error!(error = %e, "queueing the message failed; client told to retry");
                self.reply(reply::LOCAL_ERROR)
            }
        }
    }
}

/// An HTTP/1.x request line (RFC 9112 §3: `method SP request-target SP HTTP-version`, the
/// method case-sensitive), which no SMTP command line can be.
fn is_http_request(line: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
    ];
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    METHODS.contains(&method) && !target.is_empty() && version.starts_with(b"HTTP/")
}

/// The first From: address of the header section that `account` may not use, if any.
fn disallowed_from(policy: &accounts::SenderPolicy, account: &str, head: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse_headers(head)?;
    let from = parsed.from()?;
    from.iter()
        .filter_map(|a| a.address())
        .find(|addr| !policy.allows(account, addr))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::is_http_request;

    #[test]
    fn http_request_lines_are_recognised_and_smtp_lines_are_not() {
        for line in [
            &b"GET / HTTP/1.1"[..],
            b"POST /submit HTTP/1.0",
            b"CONNECT mx.example:25 HTTP/1.1",
            b"OPTIONS * HTTP/1.1",
            b"HEAD /x?y=z HTTP/1.1",
            b"GET / HTTP/2",
        ] {
            assert!(
                is_http_request(line),
                "{:?}",
                line.escape_ascii().to_string()
            );
        }
        for line in [
            &b"GET / HTTP"[..],
            b"GET /",
            b"GET",
            b"get / HTTP/1.1",
            b"GET  / HTTP/1.1",
            b"GET / HTTP/1.1 x",
            b"HELP GET / HTTP/1.1",
            b"NOOP / HTTP/1.1",
            b"Host: example",
            b"MAIL FROM:<a@b>",
        ] {
            assert!(
                !is_http_request(line),
                "{:?}",
                line.escape_ascii().to_string()
            );
        }
    }
}
