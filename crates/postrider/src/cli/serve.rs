//! `postrider serve`: opens the store, recovers the queue, starts delivery and the listeners,
//! prints the banner, and runs until SIGINT or SIGTERM. SIGHUP reloads the TLS certificates
//! (and the `[tls]` section of the config) for new connections.

use super::Context;
use accounts::Directory;
use anyhow::{Context as _, Result};
use listener::ConnectionLimits;
use queue::{DeliverySettings, Intake, Scheduler};
use settings::{Config, LogFormat, Role};
use smtp_server::{Services, SessionConfig};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use store::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

pub async fn run(ctx: Context, log_json: bool) -> Result<()> {
    // Taken first, so a SIGHUP during startup no longer ends the process (its default action).
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let config = ctx.config()?;
    init_logging(&config, log_json);
    let hostname = if config.server.hostname.is_empty() {
        hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    } else {
        config.server.hostname.clone()
    };
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let first_start = !data_dir.join("postrider.db").exists();
    let sqlite = SqliteStore::open(data_dir)
        .await
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let spool_dir = sqlite.spool_dir();
    let store: store::SharedStore = Arc::new(sqlite);
    if first_start {
        store.add_domain("localhost", None).await?;
        tracing::info!("first start: created the local domain localhost");
    }
    let recovery = store.recover().await.context("recovering the queue")?;
    for (id, reason) in &recovery.quarantined {
        tracing::error!(queue_id = %id, reason, "queue entry quarantined: it cannot be delivered; inspect it with `postrider queue show {id}`");
    }
    tracing::info!(
        pending = recovery.pending,
        quarantined = recovery.quarantined.len(),
        orphans_removed = recovery.orphan_files_removed,
        "queue recovered"
    );

    let certs = listener::Certificates::load(&super::tls::sources(&config, &hostname)?)
        .context("loading the TLS certificates ([tls] in the config)")?;
    let acceptor = listener::tls_acceptor(certs.server_config()?);
    let directory = Directory::new(store.clone(), config.server.recipient_delimiter)?;
    let wake = Arc::new(Notify::new());
    let intake = Intake::new(
        store.clone(),
        &hostname,
        config.smtp.max_received_headers,
        wake.clone(),
        queue::LanePolicy {
            bulk_accounts: config.lanes.bulk_accounts.clone(),
            bulk_listeners: config.lanes.bulk_listeners.clone(),
            bulk_credentials: config.lanes.bulk_credentials.clone(),
        },
    );
    let services = Arc::new(Services {
        directory: directory.clone(),
        senders: accounts::SenderPolicy::new(config.senders.clone()),
        limiter: accounts::Limiter::default(),
        activity: accounts::Activity::new(
            store.clone(),
            accounts::ActivitySettings {
                enabled: config.anomaly.enabled,
                spike_factor: config.anomaly.spike_factor,
                min_volume: config.anomaly.min_volume,
                min_domains: config.anomaly.min_domains,
                min_bounces: config.anomaly.min_bounces,
                bounce_rate: config.anomaly.bounce_rate,
                baseline_days: config.anomaly.baseline_days,
                new_network: config.anomaly.new_network,
                ipv4_prefix: config.anomaly.ipv4_prefix,
                ipv6_prefix: config.anomaly.ipv6_prefix,
                action: match config.anomaly.action {
                    settings::AnomalyAction::Alert => accounts::Action::Alert,
                    settings::AnomalyAction::Throttle => accounts::Action::Throttle,
                    settings::AnomalyAction::Hold => accounts::Action::Hold,
                },
            },
        ),
        guard: accounts::Guard::new(
            store.clone(),
            accounts::GuardSettings {
                failure_delay: config.auth.failure_delay,
                max_failure_delay: config.auth.max_failure_delay,
                ban_ip_after: config.auth.ban_ip_after,
                lock_account_after: config.auth.lock_account_after,
                window: config.auth.failure_window,
                ban_time: config.auth.ban_time,
            },
        ),
        intake: intake.clone(),
        tls: Some(acceptor),
        spool_dir,
    });
    let limits = ConnectionLimits::new(
        config.smtp.max_connections,
        config.smtp.max_connections_per_ip,
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    match hangup {
        Ok(hangup) => {
            let reload_ctx = Context {
                config_path: ctx.config_path.clone(),
                data_dir: ctx.data_dir.clone(),
            };
            tokio::spawn(reload_on_hangup(
                hangup,
                certs.clone(),
                reload_ctx,
                hostname.clone(),
                shutdown_rx.clone(),
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch SIGHUP; certificates reload only when their files change")
        }
    }
    if !config.tls.reload_interval.is_zero() {
        tokio::spawn(listener::watch_certificates(
            certs.clone(),
            config.tls.reload_interval,
            shutdown_rx.clone(),
        ));
    }

    let mut bound = Vec::new();
    for l in &config.listeners {
        let socket = TcpListener::bind(l.address).await.with_context(|| {
            format!(
                "cannot listen on {} (listener \"{}\"); another program may use that port, or ports below 1024 need root: \
                 change listener.address in the config",
                l.address, l.name
            )
        })?;
        bound.push((l.clone(), socket));
    }
    let mut tasks = Vec::new();
    for (l, socket) in bound {
        let cfg = Arc::new(session_config(&config, &hostname, &l));
        let svc = services.clone();
        let shutdown = shutdown_rx.clone();
        let handler_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(listener::serve(
            socket,
            limits.clone(),
            shutdown,
            move |stream, peer, slot| {
                smtp_server::run_session(
                    stream,
                    peer,
                    slot,
                    cfg.clone(),
                    svc.clone(),
                    handler_shutdown.clone(),
                )
            },
        )));
    }
    let dns = outbound::Dns::new(&config.outbound.nameservers, Duration::from_secs(5))
        .map_err(|e| anyhow::anyhow!("{e}; set outbound.nameservers in the config"))?;
    let outbound = outbound::Outbound::new(
        dns,
        outbound::OutboundSettings {
            helo_name: if config.outbound.helo_name.is_empty() {
                hostname.clone()
            } else {
                config.outbound.helo_name.clone()
            },
            mx_port: config.outbound.mx_port,
            connect_timeout: config.outbound.connect_timeout,
            command_timeout: config.outbound.command_timeout,
            data_end_timeout: config.outbound.data_end_timeout,
            max_connections: config.outbound.max_connections_per_domain,
            max_messages_per_connection: config.outbound.max_messages_per_connection,
            idle_time: config.outbound.connection_idle_time,
            unreachable_hold: config.delivery.retry_initial,
            routes: config
                .transports
                .iter()
                .map(|t| outbound::Route {
                    domain: t.domain.clone(),
                    smarthost: t.smarthost.clone(),
                    tls_required: t.tls_required,
                    auth: t.auth.clone(),
                    max_connections: t.max_connections,
                    max_messages_per_connection: t.max_messages_per_connection,
                })
                .collect(),
        },
        outbound::Pools::new(
            config
                .ip_pools
                .iter()
                .map(|p| outbound::Pool {
                    name: p.name.clone(),
                    addresses: p
                        .addresses
                        .iter()
                        .map(|a| {
                            (
                                outbound::Source {
                                    ip: a.ip,
                                    helo: a.helo.clone(),
                                },
                                a.weight,
                            )
                        })
                        .collect(),
                    accounts: p.accounts.clone(),
                    sender_domains: p.sender_domains.clone(),
                    lanes: p.lanes.clone(),
                    default: p.default,
                })
                .collect(),
        ),
    );
    let delivery = Scheduler::new(
        store.clone(),
        wake,
        DeliverySettings {
            poll_interval: config.delivery.poll_interval,
            retry_initial: config.delivery.retry_initial,
            retry_max: config.delivery.retry_max,
            max_queue_time: config.delivery.max_queue_time,
            delay_warning: config.delivery.delay_warning,
            failed_bounce_copy_to: config.delivery.failed_bounce_copy_to.clone(),
            destination_messages_per_minute: config.limits.destination_messages_per_minute,
            max_deliveries: config.lanes.max_deliveries,
            reserved_transactional: config.lanes.reserved_transactional,
        },
        outbound,
        intake,
        directory,
        &hostname,
    );
    let delivery_task = if config.delivery.paused {
        tracing::warn!(
            "delivery is paused (delivery.paused = true): accepted mail stays in the queue"
        );
        tokio::spawn(async {})
    } else {
        tokio::spawn(delivery.run(shutdown_rx.clone()))
    };
    print_banner(
        &config,
        &hostname,
        &certs.served(),
        &store.list_domains().await?,
        &ctx,
    );

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections; idle sessions get 421");
    let _ = shutdown_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = delivery_task.await;
    // Sessions in the middle of a message get a moment to finish; anything not yet answered
    // with 250 is the client's to retry, and everything answered is already durable.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while limits.open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn session_config(c: &Config, hostname: &str, l: &settings::Listener) -> SessionConfig {
    SessionConfig {
        hostname: hostname.to_string(),
        listener: l.name.clone(),
        role: match l.role {
            Role::Mx => smtp_server::Role::Mx,
            Role::Submission => smtp_server::Role::Submission,
            Role::Submissions => smtp_server::Role::Submissions,
        },
        max_message_size: c.smtp.max_message_size,
        max_recipients: c.smtp.max_recipients,
        max_command_line: c.smtp.max_command_line,
        max_text_line: c.smtp.max_text_line,
        max_errors: c.smtp.max_errors,
        command_timeout: c.smtp.command_timeout,
        data_timeout: c.smtp.data_timeout,
        spool_memory_limit: c.smtp.spool_memory_limit,
        relay_networks: c.relay.networks.clone(),
        max_auth_failures: c.auth.max_failures_per_session,
        plaintext_auth_networks: c.auth.dangerous_plaintext_auth_networks.clone(),
        limits: {
            let r = |r: &settings::Rate| accounts::RateLimit {
                per_minute: r.per_minute,
                per_hour: r.per_hour,
                per_day: r.per_day,
            };
            smtp_server::SessionLimits {
                account_messages: r(&c.limits.account_messages),
                account_recipients: r(&c.limits.account_recipients),
                credential_messages: r(&c.limits.credential_messages),
                credential_recipients: r(&c.limits.credential_recipients),
                ip_connections_per_minute: c.limits.ip_connections_per_minute,
            }
        },
    }
}

fn init_logging(config: &Config, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json || config.log.format == LogFormat::Json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
}

fn print_banner(
    c: &Config,
    hostname: &str,
    certs: &[listener::Served],
    domains: &[store::DomainRecord],
    ctx: &Context,
) {
    let data =
        std::fs::canonicalize(&c.server.data_dir).unwrap_or_else(|_| c.server.data_dir.clone());
    println!(
        "Postrider {} is running as {hostname}",
        env!("CARGO_PKG_VERSION")
    );
    println!("  data directory: {}", data.display());
    for c in certs {
        let names = match &c.hostnames {
            None => "default".to_string(),
            Some(names) => format!("SNI {}", names.join(", ")),
        };
        println!(
            "  TLS certificate ({names}): {} (valid until {})",
            c.files.certificate.display(),
            listener::format_time(c.info.not_after)
        );
    }
    println!();
    println!(
        "  {:<16} {:<22} {:<12} TLS / AUTH",
        "LISTENER", "ADDRESS", "ROLE"
    );
    for l in &c.listeners {
        let mode = match l.role {
            Role::Mx => "STARTTLS offered, no AUTH, local domains only",
            Role::Submission => "STARTTLS, AUTH required (after TLS)",
            Role::Submissions => "implicit TLS, AUTH required",
        };
        println!(
            "  {:<16} {:<22} {:<12} {}",
            l.name,
            l.address.to_string(),
            l.role.as_str(),
            mode
        );
    }
    println!();
    let names: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
    println!(
        "  local domains: {}",
        if names.is_empty() {
            "(none: add one with `postrider domain add example.com`)".to_string()
        } else {
            names.join(", ")
        }
    );
    let mut flags = String::new();
    if let Some(p) = &ctx.config_path {
        flags.push_str(&format!(" --config {}", p.display()));
    }
    if let Some(d) = &ctx.data_dir {
        flags.push_str(&format!(" --data-dir {}", d.display()));
    }
    let domain = names.first().copied().unwrap_or("example.com");
    println!(
        "  add an account:  {}{flags} account add you@{domain}   (prints its password once)",
        super::program()
    );
    println!("  stop with Ctrl-C");
    println!();
}

/// On each SIGHUP: re-reads the config for its `[tls]` section (kept as it was when the file no
/// longer loads) and reloads every certificate. Bad files keep the old certificate (logged by
/// the listener crate); open connections are not touched.
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    certs: Arc<listener::Certificates>,
    ctx: Context,
    hostname: String,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = hangup.recv() => if r.is_none() { return },
            _ = shutdown.changed() => return,
        }
        tracing::info!("SIGHUP: reloading the TLS certificates");
        let sources = match ctx.config() {
            Ok(config) => match super::tls::sources(&config, &hostname) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(
                        "SIGHUP: {e:#}; the certificates configured before are reloaded instead"
                    );
                    None
                }
            },
            Err(e) => {
                tracing::error!(
                    "SIGHUP: the config no longer loads, so [tls] stays as it was (fix the file and send SIGHUP again): {e:#}"
                );
                None
            }
        };
        let c = certs.clone();
        match tokio::task::spawn_blocking(move || c.reload(sources.as_ref())).await {
            Ok(report) => tracing::info!(
                reloaded = report.reloaded.len(),
                failed = report.failed.len(),
                "SIGHUP: TLS certificates reloaded"
            ),
            Err(e) => tracing::error!(error = %e, "SIGHUP: the certificate reload failed"),
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
