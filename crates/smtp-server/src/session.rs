//! One SMTP connection: the input loop, modes (command, data, bdat, auth, discard), reply
//! flushing, TLS upgrade, timeouts and the error budget.
//!
//! Pipelining (RFC 2920): all complete commands in the input buffer are answered in order and
//! the replies are sent together before the session waits for more input.

use crate::auth::AuthExchange;
use crate::body::BodySink;
use crate::{Services, SessionConfig};
use bytes::{Buf, BytesMut};
use listener::{ConnectionGuard, MaybeTls, Refusal};
use queue::AcceptedRecipient;
use smtp_codec::{
    BdatDecoder, DataDecoder, DataStatus, LineFrame, MailParams, Reply, ReversePath, reply,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// Longest line in an AUTH exchange (RFC 4954 §4: at least 12288 octets must be accepted).
pub(crate) const MAX_AUTH_LINE: usize = smtp_codec::sasl::MAX_RESPONSE_LINE;

/// How much of one over-long command or AUTH line is read and discarded, past its limit, before
/// the session ends: a client that sends this much without a line end is not speaking SMTP
/// (RFC 5321 §4.5.3.1.4: command lines are at most 512 octets).
const MAX_DISCARD: usize = 64 * 1024;

/// What the mail transaction holds (RFC 5321 §3.3); dropped by RSET, HELO/EHLO and the end of
/// a message.
pub(crate) struct Transaction {
    pub sender: ReversePath,
    pub params: MailParams,
    pub recipients: Vec<AcceptedRecipient>,
    /// BDAT chunks received so far (RFC 3030), with the decoder that checks them.
    pub bdat: Option<(BodySink, BdatDecoder)>,
    /// A BDAT chunk was refused; the rest of this message is read and discarded.
    pub bdat_failed: bool,
}

pub(crate) enum Mode {
    Command,
    /// Discarding the rest of an over-long command line; `discarded` octets so far.
    DiscardLine {
        discarded: usize,
    },
    Data {
        decoder: DataDecoder,
        sink: BodySink,
    },
    /// Reading `remaining` octets of a BDAT chunk; `discard` drops them (refused chunk).
    Bdat {
        remaining: u64,
        last: bool,
        discard: Option<Reply>,
    },
    Auth(AuthExchange),
}

/// A line taken off the input, or why none was.
enum Framed {
    NeedMore,
    Line(Vec<u8>),
    TooLong { terminated: bool },
}

/// How long, and how much, a closing session keeps reading (and dropping) what the client
/// still sends, so that its final replies are not lost to a connection reset.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 4 << 20;

/// What the session does after answering.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Continue,
    Close,
    StartTls,
}

pub(crate) struct Session {
    pub cfg: Arc<SessionConfig>,
    pub svc: Arc<Services>,
    pub peer: SocketAddr,
    pub inbuf: BytesMut,
    pub out: Vec<u8>,
    /// EHLO/HELO name and whether it was EHLO.
    pub helo: Option<(String, bool)>,
    pub auth: Option<String>,
    /// When the AUTH exchange under way began (failures are answered at a fixed time after).
    pub auth_started: Option<tokio::time::Instant>,
    /// Failed AUTH attempts in this session.
    pub auth_failures: u32,
    /// The label of the credential the session authenticated with.
    pub credential: Option<String>,
    /// The whole login (account, credential and its id).
    pub login: Option<accounts::Login>,
    pub tls: Option<String>,
    pub errors: u32,
    pub tx: Option<Transaction>,
    pub mode: Mode,
}

/// Runs one connection to the end. `slot` is the connection cap's verdict.
pub async fn run_session(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Result<ConnectionGuard, Refusal>,
    cfg: Arc<SessionConfig>,
    svc: Arc<Services>,
    shutdown: watch::Receiver<bool>,
) {
    let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("smtp", session = format_args!("{id:x}"), peer = %peer.ip(), listener = %cfg.listener);
    async move {
        let _guard = match slot {
            Ok(g) => g,
            Err(refusal) => {
                tracing::warn!(?refusal, "connection refused by the connection caps");
                if cfg.role != crate::Role::Submissions {
                    let r = match refusal {
                        Refusal::TooManyConnections => reply::TOO_MANY_CONNECTIONS,
                        Refusal::TooManyFromIp => reply::TOO_MANY_CONNECTIONS_FROM_IP,
                    };
                    let mut s = stream;
                    let _ = s.write_all(r.to_wire().as_bytes()).await;
                    let _ = s.shutdown().await;
                }
                return;
            }
        };
        tracing::debug!("connected");
        let per_minute = accounts::RateLimit {
            per_minute: cfg.limits.ip_connections_per_minute,
            ..Default::default()
        };
        if let Err(over) = svc
            .limiter
            .take(&format!("ip:{}", peer.ip()), 1, &per_minute)
        {
            tracing::info!(limit = %over, "connection refused: connection rate limit of the address");
            let mut s = stream;
            if cfg.role != crate::Role::Submissions {
                let _ = s
                    .write_all(reply::TOO_MANY_CONNECTIONS_PER_MINUTE.to_wire().as_bytes())
                    .await;
            }
            let _ = s.shutdown().await;
            return;
        }
        if svc.guard.ip_banned(peer.ip()).await {
            tracing::info!("connection refused: the address is banned after failed logins");
            let mut s = stream;
            if cfg.role != crate::Role::Submissions {
                let _ = s.write_all(reply::CLIENT_BANNED.to_wire().as_bytes()).await;
            }
            let _ = s.shutdown().await;
            return;
        }
        let mut session = Session {
            cfg,
            svc,
            peer,
            inbuf: BytesMut::with_capacity(8192),
            out: Vec::with_capacity(1024),
            helo: None,
            auth: None,
            auth_started: None,
            auth_failures: 0,
            credential: None,
            login: None,
            tls: None,
            errors: 0,
            tx: None,
            mode: Mode::Command,
        };
        match session.serve(stream, shutdown).await {
            Ok(()) => tracing::debug!("closed"),
            Err(e) => tracing::info!(error = %e, "connection ended"),
        }
    }
    .instrument(span)
    .await
}

impl Session {
    async fn serve(
        &mut self,
        tcp: TcpStream,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let mut stream = if self.cfg.role == crate::Role::Submissions {
            // RFC 8314 §3.3: implicit TLS, the handshake comes before the greeting.
            let Some(acceptor) = self.svc.tls.clone() else {
                tracing::error!("implicit-TLS listener without a TLS configuration");
                return Ok(());
            };
            self.handshake(&acceptor, tcp).await?
        } else {
            MaybeTls::Plain(tcp)
        };
        reply::greeting(&self.cfg.hostname).encode(&mut self.out);
        // When the command being waited for must be complete. RFC 5321 §4.5.3.2.7 bounds the
        // wait for the next command, so partial input does not extend it: a client trickling a
        // byte at a time cannot hold its connection open (slowloris). Message data keeps a
        // timeout per read (§4.5.3.2.5, "data block").
        let mut command_deadline: Option<tokio::time::Instant> = None;
        loop {
            let pending = self.inbuf.len();
            let next = self.process().await;
            let discarding = matches!(self.mode, Mode::DiscardLine { .. });
            if (self.inbuf.len() < pending || self.inbuf.is_empty()) && !discarding {
                // A line was taken: the next command gets the whole timeout. Discarding an
                // over-long line is no progress: that line must end within the timeout too.
                command_deadline = None;
            }
            if !self.out.is_empty() {
                stream.write_all(&self.out).await?;
                stream.flush().await?;
                self.out.clear();
            }
            match next {
                Next::Continue => {}
                Next::Close => {
                    let _ = stream.shutdown().await;
                    // Lingering close: a client still sending (a flood, an over-long line) would
                    // otherwise get a reset when we close with its data unread, and a reset
                    // throws away the replies it has not read yet — the 421 that says why.
                    // Read and drop what comes for a moment (bounded in time and bytes).
                    let linger = tokio::time::Instant::now() + LINGER;
                    let mut drained = 0usize;
                    let mut sink = [0u8; 8192];
                    while drained < LINGER_BYTES {
                        match tokio::time::timeout_at(linger, stream.read(&mut sink)).await {
                            Ok(Ok(n)) if n > 0 => drained += n,
                            _ => break,
                        }
                    }
                    return Ok(());
                }
                Next::StartTls => {
                    stream = self.start_tls(stream).await?;
                    continue;
                }
            }
            let in_data = matches!(self.mode, Mode::Data { .. } | Mode::Bdat { .. });
            let deadline = if in_data {
                tokio::time::Instant::now() + self.cfg.data_timeout
            } else {
                *command_deadline
                    .get_or_insert_with(|| tokio::time::Instant::now() + self.cfg.command_timeout)
            };
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, stream.read_buf(&mut self.inbuf)) => r,
                _ = shutdown.changed(), if !in_data => {
                    reply::SHUTTING_DOWN.encode(&mut self.out);
                    stream.write_all(&self.out).await?;
                    let _ = stream.shutdown().await;
                    return Ok(());
                }
            };
            match read {
                Err(_) => {
                    tracing::info!("timeout; closing");
                    stream
                        .write_all(reply::TIMEOUT.to_wire().as_bytes())
                        .await?;
                    let _ = stream.shutdown().await;
                    return Ok(());
                }
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// RFC 3207 §4.2: after the handshake the session starts over (no HELO, no AUTH, no
    /// transaction), and anything the client pipelined after STARTTLS is discarded.
    async fn start_tls(&mut self, stream: MaybeTls) -> std::io::Result<MaybeTls> {
        self.inbuf.clear();
        let (MaybeTls::Plain(tcp), Some(acceptor)) = (stream, self.svc.tls.clone()) else {
            return Err(std::io::Error::other(
                "STARTTLS on a stream that cannot upgrade",
            ));
        };
        let s = self.handshake(&acceptor, tcp).await?;
        tracing::debug!(tls = ?self.tls, "TLS started");
        self.helo = None;
        self.auth = None;
        self.tx = None;
        self.mode = Mode::Command;
        Ok(s)
    }

    /// The TLS handshake, bounded by the command timeout; records what was negotiated.
    async fn handshake(
        &mut self,
        acceptor: &tokio_rustls::TlsAcceptor,
        tcp: TcpStream,
    ) -> std::io::Result<MaybeTls> {
        let tls = tokio::time::timeout(self.cfg.command_timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        let s = MaybeTls::Tls(Box::new(tls));
        self.tls = s.tls_description();
        Ok(s)
    }

    /// Answers everything complete in the input buffer.
    async fn process(&mut self) -> Next {
        loop {
            let step = match &mut self.mode {
                Mode::Command => match self.take_line(self.cfg.max_command_line) {
                    Framed::NeedMore => return Next::Continue,
                    Framed::Line(line) => self.command(&line).await,
                    Framed::TooLong { terminated } => {
                        if !terminated {
                            self.mode = Mode::DiscardLine { discarded: 0 };
                        }
                        self.reply(reply::LINE_TOO_LONG)
                    }
                },
                Mode::DiscardLine { discarded } => match smtp_codec::skip_line(&self.inbuf) {
                    Some(n) => {
                        self.inbuf.advance(n);
                        self.mode = Mode::Command;
                        Next::Continue
                    }
                    None => {
                        *discarded = discarded.saturating_add(self.inbuf.len());
                        self.inbuf.clear();
                        if *discarded > MAX_DISCARD {
                            tracing::info!(
                                discarded = *discarded,
                                "over-long line without an end; closing"
                            );
                            reply::LINE_TOO_LONG_CLOSING.encode(&mut self.out);
                            return Next::Close;
                        }
                        return Next::Continue;
                    }
                },
                Mode::Data { decoder, sink } => {
                    let (consumed, status) = decoder.decode(&self.inbuf, &mut sink.buf);
                    if decoder.flaws().any() {
                        // Refused at its end (554 5.6.0) whatever follows: keep none of it.
                        sink.discard();
                    }
                    sink.settle();
                    self.inbuf.advance(consumed);
                    match status {
                        DataStatus::NeedMore => return Next::Continue,
                        DataStatus::Done => {
                            let Mode::Data { decoder, sink } =
                                std::mem::replace(&mut self.mode, Mode::Command)
                            else {
                                unreachable!("matched Mode::Data above")
                            };
                            self.finish_message(sink, decoder.flaws()).await
                        }
                    }
                }
                Mode::Bdat { remaining, .. } => {
                    if self.inbuf.is_empty() && *remaining > 0 {
                        return Next::Continue;
                    }
                    let take = (*remaining).min(self.inbuf.len() as u64) as usize;
                    *remaining -= take as u64;
                    let done = *remaining == 0;
                    let chunk = self.inbuf.split_to(take);
                    self.bdat_bytes(&chunk);
                    if !done {
                        return Next::Continue;
                    }
                    self.bdat_chunk_end().await
                }
                Mode::Auth(_) => match self.take_line(MAX_AUTH_LINE) {
                    Framed::NeedMore => return Next::Continue,
                    Framed::Line(line) => self.auth_response(&line).await,
                    Framed::TooLong { terminated } => {
                        self.mode = if terminated {
                            Mode::Command
                        } else {
                            Mode::DiscardLine { discarded: 0 }
                        };
                        self.reply(reply::AUTH_LINE_TOO_LONG)
                    }
                },
            };
            if step != Next::Continue {
                return step;
            }
        }
    }

    /// Takes one line (at most `max` octets with its end) off the input buffer.
    fn take_line(&mut self, max: usize) -> Framed {
        match smtp_codec::frame_line(&self.inbuf, max) {
            LineFrame::NeedMore => Framed::NeedMore,
            LineFrame::Line { len, consumed } => {
                let line = self.inbuf[..len].to_vec();
                self.inbuf.advance(consumed);
                Framed::Line(line)
            }
            LineFrame::TooLong {
                consumed,
                terminated,
            } => {
                self.inbuf.advance(consumed);
                Framed::TooLong { terminated }
            }
        }
    }

    /// Queues a reply. Negative replies count against the error budget; past it the session
    /// ends with 421 (RFC 5321 §4.2.1 allows closing after repeated errors).
    pub(crate) fn reply(&mut self, r: Reply) -> Next {
        let negative = r.code >= 400 && r.code != 421;
        r.encode(&mut self.out);
        if negative {
            self.errors += 1;
            if self.errors >= self.cfg.max_errors {
                tracing::info!(errors = self.errors, "too many errors; closing");
                reply::TOO_MANY_ERRORS.encode(&mut self.out);
                return Next::Close;
            }
        }
        if r.code == 421 {
            Next::Close
        } else {
            Next::Continue
        }
    }

    fn bdat_bytes(&mut self, chunk: &[u8]) {
        let Mode::Bdat { discard: None, .. } = &self.mode else {
            return;
        };
        if let Some(Transaction {
            bdat: Some((sink, decoder)),
            ..
        }) = &mut self.tx
        {
            decoder.decode(chunk, &mut sink.buf);
            if decoder.flaws().any() {
                // Refused after the LAST chunk (554 5.6.0): keep none of it.
                sink.discard();
            }
            sink.settle();
        }
    }
}

/// Splits a pipelined session's view for tests.
#[cfg(test)]
mod tests {}
