//! One SMTP client session to one address: greeting, EHLO (HELO fallback), opportunistic
//! STARTTLS, MAIL/RCPT/DATA with PIPELINING when offered (RFC 2920), and the outcome per
//! recipient. `Err` means "this host could not take the message, try the next one" and is
//! returned only before MAIL was sent; after that every recipient gets an outcome.

use crate::{JobRecipient, OutboundSettings, RemoteJob, RemoteOutcome, Route, Source};
use smtp_codec::client::{
    self as c, DotStuffer, MailFrom, RcptTo, ServerCapabilities, ServerReply,
};
use smtp_codec::{Body, Notify, Ret};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Conn {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        tokio::time::timeout(self.timeout, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| "timeout while sending".to_string())?
        .map_err(|e| format!("connection lost while sending: {e}"))
    }

    async fn reply_within(&mut self, timeout: Duration) -> Result<ServerReply, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match c::parse_reply(&self.buf) {
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(format!("malformed reply from server ({e:?})")),
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .map_err(|_| "timeout waiting for a reply".to_string())?
                .map_err(|e| format!("connection lost: {e}"))?;
            if n == 0 {
                return Err("connection closed by the server".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes a message body in blocks, each within the timeout (RFC 5321 §4.5.3.2.5: the
    /// data-block timeout applies to each send, so a large message on a slow link is not cut
    /// off while it is still moving).
    async fn send_body(&mut self, bytes: &[u8]) -> Result<(), String> {
        for block in bytes.chunks(64 * 1024) {
            tokio::time::timeout(self.timeout, self.stream.write_all(block))
                .await
                .map_err(|_| "timeout while sending the message".to_string())?
                .map_err(|e| format!("connection lost while sending the message: {e}"))?;
        }
        tokio::time::timeout(self.timeout, self.stream.flush())
            .await
            .map_err(|_| "timeout while sending the message".to_string())?
            .map_err(|e| format!("connection lost while sending the message: {e}"))
    }

    /// Whether the server closed the connection or sent something unasked (typically a 421
    /// before closing an idle client), seen without waiting. Used before reusing a connection.
    fn closed_while_idle(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        // One poll with a no-op waker: what the socket holds now, without waiting (a timer,
        // even of zero, would cost a tick of the runtime's clock: a millisecond).
        let mut chunk = [0u8; 512];
        let mut read = ReadBuf::new(&mut chunk);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut self.stream).poll_read(&mut cx, &mut read) {
            Poll::Pending => false,
            // Data (a 421, typically) or end of stream (nothing read).
            Poll::Ready(Ok(())) => {
                self.buf.extend_from_slice(read.filled());
                true
            }
            Poll::Ready(Err(_)) => true,
        }
    }

    async fn reply(&mut self) -> Result<ServerReply, String> {
        self.reply_within(self.timeout).await
    }

    async fn command(&mut self, bytes: &[u8]) -> Result<ServerReply, String> {
        self.send(bytes).await?;
        self.reply().await
    }
}

/// An open, greeted and (where possible) encrypted connection to one server, ready for a mail
/// transaction. It may carry several messages (connection reuse).
pub(crate) struct Session {
    conn: Conn,
    caps: ServerCapabilities,
    pub(crate) host: String,
    pub(crate) addr: SocketAddr,
    /// The source address it was opened from (a pool address), if one was chosen.
    pub(crate) source: Option<std::net::IpAddr>,
    /// Messages sent over it so far.
    pub(crate) messages: u32,
    pub(crate) opened: tokio::time::Instant,
}

impl Session {
    /// QUIT and wait briefly for the reply (RFC 5321 §4.1.1.10); errors do not matter.
    pub(crate) async fn close(mut self) {
        if self.conn.send(&c::quit()).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.conn.reply()).await;
        }
    }
}

/// Opens a session to one server address. `Err` means "this host cannot be used now, try the
/// next one".
pub(crate) async fn open(
    s: &OutboundSettings,
    tls: &Arc<rustls::ClientConfig>,
    route: &Route,
    source: Option<&Source>,
    host: &str,
    addr: SocketAddr,
) -> Result<Session, String> {
    match connect(s, tls, route, source, host, addr, true).await {
        // A TLS handshake that fails is retried once in plain text (opportunistic TLS must not
        // make a server that works in plain text unreachable) — unless TLS is required.
        Err(Problem::TlsFailed(e)) if !route.tls_required => {
            tracing::info!(host, %addr, error = %e, "STARTTLS failed; retrying without TLS");
            connect(s, tls, route, source, host, addr, false)
                .await
                .map_err(|p| p.to_string())
        }
        other => other.map_err(|p| p.to_string()),
    }
}

#[derive(Debug)]
enum Problem {
    Host(String),
    TlsFailed(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Host(s) | Problem::TlsFailed(s) => f.write_str(s),
        }
    }
}

async fn connect(
    s: &OutboundSettings,
    tls: &Arc<rustls::ClientConfig>,
    route: &Route,
    source: Option<&Source>,
    host: &str,
    addr: SocketAddr,
    try_tls: bool,
) -> Result<Session, Problem> {
    let host_err = |what: String| Problem::Host(format!("4.4.1 {host} [{}]: {what}", addr.ip()));
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| host_err(format!("cannot make a socket: {e}")))?;
    if let Some(src) = source {
        // A dedicated source address: bind before connecting.
        socket
            .bind(SocketAddr::new(src.ip, 0))
            .map_err(|e| host_err(format!("cannot use source address {}: {e}", src.ip)))?;
    }
    let tcp = tokio::time::timeout(s.connect_timeout, socket.connect(addr))
        .await
        .map_err(|_| host_err("connection timed out".into()))?
        .map_err(|e| host_err(format!("cannot connect: {e}")))?;
    let helo_name = source.map(|s| s.helo.as_str()).unwrap_or(&s.helo_name);
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn {
        stream: Stream::Plain(tcp),
        buf: Vec::new(),
        timeout: s.command_timeout,
    };
    // RFC 5321 §3.1 / §5.1: a 4xx or 5xx greeting means try the next host.
    let greeting = conn.reply().await.map_err(host_err)?;
    if !greeting.is_positive() {
        return Err(host_err(format!("greeted with {greeting}")));
    }
    let mut caps = hello(&mut conn, helo_name).await.map_err(host_err)?;
    if try_tls && caps.starttls {
        let r = conn.command(&c::starttls()).await.map_err(host_err)?;
        if r.code == 220 {
            let Stream::Plain(tcp) = conn.stream else {
                return Err(host_err("STARTTLS on an encrypted stream".into()));
            };
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .unwrap_or_else(|_| rustls::pki_types::ServerName::IpAddress(addr.ip().into()));
            let connector = tokio_rustls::TlsConnector::from(tls.clone());
            let stream = tokio::time::timeout(s.command_timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| Problem::TlsFailed("TLS handshake timed out".into()))?
                .map_err(|e| Problem::TlsFailed(format!("TLS handshake failed: {e}")))?;
            // RFC 3207 §4.2: forget everything learned before TLS and say EHLO again.
            conn = Conn {
                stream: Stream::Tls(Box::new(stream)),
                buf: Vec::new(),
                timeout: s.command_timeout,
            };
            caps = hello(&mut conn, helo_name).await.map_err(host_err)?;
        }
    }
    let encrypted = matches!(conn.stream, Stream::Tls(_));
    if route.tls_required && !encrypted {
        let _ = conn.send(&c::quit()).await;
        return Err(host_err(
            "4.7.10 TLS is required for this destination but was not available".into(),
        ));
    }
    if let Some((user, password)) = &route.auth {
        if !encrypted {
            return Err(host_err("4.7.10 credentials are only sent over TLS".into()));
        }
        authenticate(&mut conn, &caps, user, password)
            .await
            .map_err(host_err)?;
    }
    Ok(Session {
        conn,
        caps,
        host: host.to_string(),
        addr,
        source: source.map(|s| s.ip),
        messages: 0,
        opened: tokio::time::Instant::now(),
    })
}

/// AUTH PLAIN (RFC 4616) or LOGIN at a smarthost (RFC 4954). A refusal is reported as a host
/// problem, so the mail is deferred while the credentials are fixed, not bounced.
async fn authenticate(
    conn: &mut Conn,
    caps: &ServerCapabilities,
    user: &str,
    password: &str,
) -> Result<(), String> {
    let reply = if caps.auth.iter().any(|m| m == "PLAIN") {
        conn.command(&c::auth(
            "PLAIN",
            Some(&c::auth_plain_response(user, password)),
        ))
        .await?
    } else if caps.auth.iter().any(|m| m == "LOGIN") {
        let r = conn
            .command(&c::auth("LOGIN", Some(&c::base64_encode(user.as_bytes()))))
            .await?;
        if r.code != 334 {
            return Err(format!("AUTH LOGIN refused: {r}"));
        }
        conn.command(format!("{}\r\n", c::base64_encode(password.as_bytes())).as_bytes())
            .await?
    } else {
        return Err("4.7.0 the smarthost offers neither AUTH PLAIN nor LOGIN".into());
    };
    if reply.code == 235 {
        Ok(())
    } else {
        Err(format!(
            "4.7.0 authentication at the smarthost failed: {reply}"
        ))
    }
}

/// EHLO, or HELO when EHLO is refused (RFC 5321 §4.1.4).
async fn hello(conn: &mut Conn, name: &str) -> Result<ServerCapabilities, String> {
    let r = conn.command(&c::ehlo(name)).await?;
    if r.is_positive() {
        return Ok(c::parse_ehlo(&r));
    }
    let r = conn.command(&c::helo(name)).await?;
    if r.is_positive() {
        return Ok(ServerCapabilities::default());
    }
    Err(format!("refused HELO: {r}"))
}

fn notify(dsn: &store::RecipientDsn) -> Option<Notify> {
    if dsn.notify.is_empty() {
        return None;
    }
    let has = |k: &str| dsn.notify.iter().any(|n| n == k);
    Some(Notify {
        never: has("NEVER"),
        success: has("SUCCESS"),
        failure: has("FAILURE"),
        delay: has("DELAY"),
    })
}

/// What a session is fit for after a transaction.
#[derive(Debug)]
pub(crate) enum After {
    /// The transaction is over and the server is ready for the next one.
    Ready,
    /// Close it: the connection was lost, the server said 421, or its state is unknown.
    Close,
    /// The connection failed before the server answered anything of this transaction, so
    /// nothing was decided (no outcomes): the recipients may go over another connection. This
    /// is what a reused connection looks like when the server closed it while it was idle.
    Stale(String),
}

/// The result of one mail transaction.
pub(crate) struct Tx {
    /// One outcome per recipient, except after `After::Stale` (none).
    pub(crate) outcomes: Vec<(u32, RemoteOutcome)>,
    /// Recipients refused with 452 "too many recipients" (RFC 5321 §4.5.3.1.10) while others
    /// were taken: they also have a `Deferred` outcome, and may be sent at once in another
    /// transaction.
    pub(crate) too_many: Vec<u32>,
    pub(crate) after: After,
}

/// One mail transaction on `sess`: MAIL, the RCPTs of `recipients`, DATA and the body.
pub(crate) async fn send_message(
    s: &OutboundSettings,
    sess: &mut Session,
    job: &RemoteJob,
    recipients: &[JobRecipient],
) -> Tx {
    let caps = &sess.caps;
    let conn = &mut sess.conn;
    let all = |o: RemoteOutcome| {
        recipients
            .iter()
            .map(|r| (r.idx, o.clone()))
            .collect::<Vec<_>>()
    };
    let tx = |outcomes: Vec<(u32, RemoteOutcome)>, after: After| Tx {
        outcomes,
        too_many: Vec::new(),
        after,
    };
    let e = &job.envelope;
    let size = job.message.len() as u64;
    // RFC 1870 §6: do not send what the server said it will not take.
    if let Some(limit) = caps.size.filter(|l| *l > 0)
        && size > limit
    {
        return tx(
            all(RemoteOutcome::Failed(format!(
                "5.3.4 message of {size} octets is larger than the remote limit of {limit}"
            ))),
            After::Ready,
        );
    }
    let needs_utf8 =
        e.smtputf8 || !e.sender.is_ascii() || recipients.iter().any(|r| !r.address.is_ascii());
    if needs_utf8 && !caps.smtputf8 {
        // RFC 6531 §3.2: without SMTPUTF8 at the server the message cannot be sent as it is.
        return tx(
            all(RemoteOutcome::Failed(
                "5.6.7 the remote server does not support SMTPUTF8, which this message needs"
                    .into(),
            )),
            After::Ready,
        );
    }
    let eight_bit = c::has_8bit(&job.message);
    if eight_bit && !caps.eight_bit_mime {
        // RFC 6152 §3: 8-bit data must not go to a server without 8BITMIME. Postrider does not
        // convert messages (that would break DKIM signatures): it returns them instead.
        return tx(
            all(RemoteOutcome::Failed(
                "5.6.3 the message has 8-bit content and the remote server does not accept 8BITMIME"
                    .into(),
            )),
            After::Ready,
        );
    }
    let mail = c::mail_from(&MailFrom {
        address: &e.sender,
        size: caps.size.map(|_| size),
        body: if caps.eight_bit_mime && eight_bit {
            Some(Body::EightBitMime)
        } else {
            None
        },
        smtputf8: needs_utf8,
        ret: if caps.dsn {
            match e.ret.as_deref() {
                Some("FULL") => Some(Ret::Full),
                Some("HDRS") => Some(Ret::Hdrs),
                _ => None,
            }
        } else {
            None
        },
        envid: if caps.dsn { e.envid.as_deref() } else { None },
        auth: None,
    });
    let rcpts: Vec<Vec<u8>> = recipients
        .iter()
        .map(|r| {
            let orcpt = r.dsn.orcpt.as_deref().and_then(|o| o.split_once(';'));
            c::rcpt_to(&RcptTo {
                address: &r.address,
                notify: if caps.dsn { notify(&r.dsn) } else { None },
                orcpt: if caps.dsn { orcpt } else { None },
            })
        })
        .collect();
    let mut outcomes: Vec<(u32, RemoteOutcome)> = Vec::new();
    let mut accepted: Vec<u32> = Vec::new();
    let mut too_many: Vec<u32> = Vec::new();
    let lost = |why: String, pending: &[u32]| -> Vec<(u32, RemoteOutcome)> {
        pending
            .iter()
            .map(|i| (*i, RemoteOutcome::Deferred(format!("4.4.2 {why}"))))
            .collect()
    };
    let stale = |why: String| Tx {
        outcomes: Vec::new(),
        too_many: Vec::new(),
        after: After::Stale(why),
    };
    let pending_all: Vec<u32> = recipients.iter().map(|r| r.idx).collect();
    let reused = sess.messages > 0;
    if reused && conn.closed_while_idle() {
        return stale("the server closed the connection while it was idle".into());
    }
    // A 421 to MAIL on a reused connection is the server ending it, not a verdict on this
    // message: another connection may take it.
    let closing = |r: &ServerReply| reused && r.code == 421;
    let mut rcpt_reply = |mail: &ServerReply, reply: ServerReply, idx: u32| {
        if mail.is_positive() && is_too_many_recipients(&reply) {
            too_many.push(idx);
        }
        classify_rcpt(mail, reply, idx, &mut outcomes, &mut accepted);
    };
    // RFC 2920 §3.1: with PIPELINING, MAIL, every RCPT and DATA go in one write.
    let data_reply = if caps.pipelining {
        let mut group = mail.clone();
        for r in &rcpts {
            group.extend_from_slice(r);
        }
        group.extend_from_slice(&c::data());
        if let Err(why) = conn.send(&group).await {
            return stale(why);
        }
        let mail_reply = match conn.reply().await {
            Ok(r) if closing(&r) => return stale(r.to_string()),
            Ok(r) => r,
            Err(why) => return stale(why),
        };
        for r in recipients {
            match conn.reply().await {
                Ok(reply) => rcpt_reply(&mail_reply, reply, r.idx),
                Err(why) => {
                    let undecided = undecided(&accepted, &pending_all, r.idx);
                    return tx([outcomes, lost(why, &undecided)].concat(), After::Close);
                }
            }
        }
        match conn.reply().await {
            Ok(r) => r,
            Err(why) => return tx([outcomes, lost(why, &accepted)].concat(), After::Close),
        }
    } else {
        let mail_reply = match conn.command(&mail).await {
            Ok(r) if closing(&r) => return stale(r.to_string()),
            Ok(r) => r,
            Err(why) => return stale(why),
        };
        if !mail_reply.is_positive() {
            let after = reset(conn, &mail_reply).await;
            return tx(all(fail_or_defer(&mail_reply, "MAIL FROM")), after);
        }
        for (r, cmd) in recipients.iter().zip(&rcpts) {
            match conn.command(cmd).await {
                Ok(reply) => rcpt_reply(&mail_reply, reply, r.idx),
                Err(why) => {
                    let undecided = undecided(&accepted, &pending_all, r.idx);
                    return tx([outcomes, lost(why, &undecided)].concat(), After::Close);
                }
            }
        }
        if accepted.is_empty() {
            let after = reset(conn, &mail_reply).await;
            return tx(outcomes, after);
        }
        match conn.command(&c::data()).await {
            Ok(r) => r,
            Err(why) => return tx([outcomes, lost(why, &accepted)].concat(), After::Close),
        }
    };
    sess.messages += 1;
    if data_reply.code != 354 {
        outcomes.extend(
            accepted
                .iter()
                .map(|i| (*i, fail_or_defer(&data_reply, "DATA"))),
        );
        let after = reset(conn, &data_reply).await;
        return Tx {
            outcomes,
            too_many: Vec::new(),
            after,
        };
    }
    if accepted.is_empty() {
        // The server said 354 although it took no recipient: end the empty message.
        let after = match conn.command(b".\r\n").await {
            Ok(r) if r.code != 421 => After::Ready,
            _ => After::Close,
        };
        return tx(outcomes, after);
    }
    let mut stuffed = Vec::with_capacity(job.message.len() + job.message.len() / 64 + 8);
    let mut stuffer = DotStuffer::new();
    stuffer.encode(&job.message, &mut stuffed);
    stuffer.finish(&mut stuffed);
    if let Err(why) = conn.send_body(&stuffed).await {
        return tx([outcomes, lost(why, &accepted)].concat(), After::Close);
    }
    let after = match conn.reply_within(s.data_end_timeout).await {
        Ok(r) if r.is_positive() => {
            let text = r.to_string();
            outcomes.extend(accepted.iter().map(|i| {
                (
                    *i,
                    RemoteOutcome::Sent {
                        reply: text.clone(),
                        peer_dsn: caps.dsn,
                        conn_use: sess.messages,
                    },
                )
            }));
            After::Ready
        }
        Ok(r) => {
            outcomes.extend(
                accepted
                    .iter()
                    .map(|i| (*i, fail_or_defer(&r, "end of data"))),
            );
            if r.code == 421 {
                After::Close
            } else {
                After::Ready
            }
        }
        // RFC 5321 §6.1 hazard: the message may have arrived. Deferring risks a duplicate,
        // failing risks a loss; a duplicate is the lesser harm.
        Err(why) => return tx([outcomes, lost(why, &accepted)].concat(), After::Close),
    };
    Tx {
        outcomes,
        too_many,
        after,
    }
}

/// After a transaction the server refused part way, RSET makes the session usable again
/// (RFC 5321 §4.1.1.5) — unless the last reply was 421, the server closing.
async fn reset(conn: &mut Conn, last: &ServerReply) -> After {
    if last.code == 421 {
        return After::Close;
    }
    match conn.command(&c::rset()).await {
        Ok(r) if r.is_positive() => After::Ready,
        _ => After::Close,
    }
}

/// 452 with 4.5.3 (or saying so): the server takes no more recipients in this transaction, and
/// the client should send the rest in another (RFC 5321 §4.5.3.1.10).
fn is_too_many_recipients(reply: &ServerReply) -> bool {
    reply.code == 452
        && (reply.enhanced == Some(smtp_codec::Enhanced(4, 5, 3))
            || reply
                .message()
                .to_ascii_lowercase()
                .contains("too many recipients"))
}

/// Recipients without an outcome when the connection is lost at recipient `idx`: those already
/// accepted, plus `idx` and every later one.
fn undecided(accepted: &[u32], pending: &[u32], idx: u32) -> Vec<u32> {
    let from = pending
        .iter()
        .position(|i| *i == idx)
        .unwrap_or(pending.len());
    [accepted, &pending[from..]].concat()
}

fn classify_rcpt(
    mail: &ServerReply,
    reply: ServerReply,
    idx: u32,
    outcomes: &mut Vec<(u32, RemoteOutcome)>,
    accepted: &mut Vec<u32>,
) {
    if !mail.is_positive() {
        // With pipelining the RCPTs were sent after a refused MAIL; MAIL's reply decides.
        outcomes.push((idx, fail_or_defer(mail, "MAIL FROM")));
    } else if reply.is_positive() {
        accepted.push(idx);
    } else {
        outcomes.push((idx, fail_or_defer(&reply, "RCPT TO")));
    }
}

/// The one place a remote reply becomes an outcome: 4xx (and anything unexpected below 500)
/// is temporary, 5xx permanent (RFC 5321 §4.2.1).
fn fail_or_defer(reply: &ServerReply, stage: &str) -> RemoteOutcome {
    let text = format!("remote server refused {stage}: {reply}");
    if reply.is_permanent() {
        RemoteOutcome::Failed(text)
    } else {
        RemoteOutcome::Deferred(text)
    }
}
