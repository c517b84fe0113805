//! `queue list|show|summary|retry|hold|release|bounce|delete`.
//!
//! The actions take one queue id, `--all`, or the filters of `list`. One id prints one line;
//! a selection is acted on message by message (many at once, so they share the store's
//! commits) under a progress bar on stderr, and ends with one summary line.

use super::{Context, format_time, program};
use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use store::{
    AGE_BUCKET_MINUTES, Destination, DomainSummary, QueuedMessage, QueuedRecipient, RecipientState,
    SharedStore,
};

/// Messages acted on at once in a bulk action: enough for the store's group commit to batch
/// them, few enough to keep the server's writes flowing in between.
const BULK_CONCURRENCY: usize = 64;

#[derive(Subcommand)]
pub enum QueueCmd {
    /// List queued messages: id, arrival time, size, sender, recipients, state. Filters
    /// combine (all must match); addresses and names match case-insensitively.
    List(Filter),
    /// Show one message's envelope, hold and lane, and the state of each recipient with its
    /// last error and next attempt.
    Show { id: String },
    /// Pending recipients per destination domain by age of their message, like Postfix's
    /// qshape (columns: younger than 5, 10, ... 1280 minutes, then older).
    Summary,
    /// Try pending recipients now instead of at their next attempt (a held message stays held).
    Retry(Selection),
    /// Hold messages: they are neither delivered nor bounced until released.
    Hold(Selection),
    /// Release held messages: they are delivered again as scheduled.
    Release(Selection),
    /// Return messages to their senders: pending recipients fail ("returned by the
    /// administrator") and the sender gets a bounce.
    Bounce(Selection),
    /// Delete messages from the queue: they are not delivered and no bounce is sent.
    Delete(Selection),
}

/// Which messages `list` shows and the actions act on.
#[derive(Args, Clone, Default)]
pub struct Filter {
    /// Messages from this sender (`<>` for bounces).
    #[arg(long, value_name = "ADDR")]
    sender: Option<String>,
    /// Messages with this recipient still in the queue (RCPT address or local mailbox).
    #[arg(long, value_name = "ADDR")]
    recipient: Option<String>,
    /// Messages with a recipient in this domain still in the queue.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// Messages in this state: with a queued, deferred or failed recipient (and neither held
    /// nor quarantined), held, or quarantined.
    #[arg(long, value_enum)]
    state: Option<StateFilter>,
    /// Messages in this delivery lane (e.g. transactional).
    #[arg(long, value_name = "LANE")]
    lane: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
enum StateFilter {
    Queued,
    Deferred,
    Failed,
    Held,
    Quarantined,
}

/// One message by id, every message, or the messages a filter selects.
#[derive(Args)]
pub struct Selection {
    /// The queue id of one message (`queue list` shows them).
    #[arg(conflicts_with_all = ["all", "Filter"])]
    id: Option<String>,
    /// Every message in the queue.
    #[arg(long, conflicts_with = "Filter")]
    all: bool,
    #[command(flatten)]
    filter: Filter,
}

#[derive(Clone, Copy)]
enum Action {
    Retry,
    Hold,
    Release,
    Bounce,
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Hold => "hold",
            Action::Release => "release",
            Action::Bounce => "bounce",
            Action::Delete => "delete",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::Retry => "retried",
            Action::Hold => "held",
            Action::Release => "released",
            Action::Bounce => "bounced",
            Action::Delete => "deleted",
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Action::Retry => "retrying",
            Action::Hold => "holding",
            Action::Release => "releasing",
            Action::Bounce => "bouncing",
            Action::Delete => "deleting",
        }
    }

    async fn apply(self, store: &SharedStore, id: &str) -> store::Result<bool> {
        match self {
            Action::Retry => store.queue_retry(id).await,
            Action::Hold => store.queue_hold(id).await,
            Action::Release => store.queue_release(id).await,
            Action::Bounce => store.queue_bounce(id).await,
            Action::Delete => store.queue_delete(id).await,
        }
    }
}

pub async fn run(ctx: Context, cmd: QueueCmd) -> Result<()> {
    let store = ctx.open_store().await?;
    match cmd {
        QueueCmd::List(filter) => list(&store, &filter).await,
        QueueCmd::Show { id } => show(&store, &queue_id(&id)).await,
        QueueCmd::Summary => summary(&store).await,
        QueueCmd::Retry(sel) => act(&store, Action::Retry, sel).await,
        QueueCmd::Hold(sel) => act(&store, Action::Hold, sel).await,
        QueueCmd::Release(sel) => act(&store, Action::Release, sel).await,
        QueueCmd::Bounce(sel) => act(&store, Action::Bounce, sel).await,
        QueueCmd::Delete(sel) => act(&store, Action::Delete, sel).await,
    }
}

/// Queue ids are upper-case; accept them typed in lower case.
fn queue_id(text: &str) -> String {
    text.trim().to_uppercase()
}

fn not_found(id: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no message {id} in the queue; `{} queue list` shows what is queued",
        program()
    )
}

/// An address for comparison: parsed and normalized when it parses, else lower-cased; the
/// null reverse path (`<>` or empty) is "".
fn normalize_address(text: &str) -> String {
    let t = text.trim();
    let t = t
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(t);
    if t.is_empty() {
        return String::new();
    }
    smtp_codec::Address::parse(t)
        .map(|a| a.normalized())
        .unwrap_or_else(|_| t.to_lowercase())
}

/// The filter with its values checked and normalized for matching.
struct Matcher {
    sender: Option<String>,
    recipient: Option<String>,
    domain: Option<String>,
    state: Option<StateFilter>,
    lane: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.sender.is_none()
            && self.recipient.is_none()
            && self.domain.is_none()
            && self.state.is_none()
            && self.lane.is_none()
    }

    fn matcher(&self) -> Result<Matcher> {
        let sender = match self.sender.as_deref().map(str::trim) {
            None => None,
            Some("" | "<>") => Some(String::new()),
            Some(a) => Some(super::parse_address(
                a.trim_start_matches('<').trim_end_matches('>'),
            )?),
        };
        let recipient = self
            .recipient
            .as_deref()
            .map(|a| super::parse_address(a.trim().trim_start_matches('<').trim_end_matches('>')))
            .transpose()?;
        let domain = self
            .domain
            .as_deref()
            .map(super::parse_domain)
            .transpose()?;
        Ok(Matcher {
            sender,
            recipient,
            domain,
            state: self.state,
            lane: self.lane.as_deref().map(|l| l.trim().to_lowercase()),
        })
    }
}

/// Recipients still in the queue's care: not delivered, not yet bounced.
fn open_recipients(m: &QueuedMessage) -> impl Iterator<Item = &QueuedRecipient> {
    m.recipients.iter().filter(|r| {
        matches!(
            r.state,
            RecipientState::Queued | RecipientState::Deferred | RecipientState::Failed
        )
    })
}

fn recipient_domain(r: &QueuedRecipient) -> String {
    match &r.destination {
        Destination::Remote(d) => d.to_lowercase(),
        Destination::Mailbox(_) => r
            .address
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_lowercase())
            .unwrap_or_default(),
    }
}

impl Matcher {
    fn matches(&self, m: &QueuedMessage) -> bool {
        if let Some(s) = &self.sender
            && normalize_address(&m.envelope.sender) != *s
        {
            return false;
        }
        if let Some(want) = &self.recipient {
            let hit = open_recipients(m).any(|r| {
                normalize_address(&r.address) == *want
                    || matches!(&r.destination, Destination::Mailbox(o) if o.to_lowercase() == *want)
            });
            if !hit {
                return false;
            }
        }
        if let Some(d) = &self.domain
            && !open_recipients(m).any(|r| recipient_domain(r) == *d)
        {
            return false;
        }
        if let Some(l) = &self.lane
            && m.lane.to_lowercase() != *l
        {
            return false;
        }
        match self.state {
            None => true,
            Some(StateFilter::Quarantined) => m.quarantined.is_some(),
            Some(StateFilter::Held) => m.quarantined.is_none() && m.held(),
            Some(s) => {
                let want = match s {
                    StateFilter::Queued => RecipientState::Queued,
                    StateFilter::Deferred => RecipientState::Deferred,
                    _ => RecipientState::Failed,
                };
                m.quarantined.is_none() && !m.held() && m.recipients.iter().any(|r| r.state == want)
            }
        }
    }
}

/// The STATE column: "quarantined", "held", or the counts of pending and failed recipients.
fn state_text(m: &QueuedMessage) -> String {
    if m.quarantined.is_some() {
        return "quarantined".into();
    }
    if m.held() {
        return "held".into();
    }
    let open = m.recipients.iter().filter(|r| !r.state.is_final()).count();
    let failed = m
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Failed)
        .count();
    match (open, failed) {
        (o, 0) => format!("{o} pending"),
        (0, f) => format!("{f} failed"),
        (o, f) => format!("{o} pending, {f} failed"),
    }
}

async fn list(store: &SharedStore, filter: &Filter) -> Result<()> {
    let matcher = filter.matcher()?;
    let all = store.queue_list().await?;
    if all.is_empty() {
        println!("queue is empty");
        return Ok(());
    }
    let shown: Vec<&QueuedMessage> = all.iter().filter(|m| matcher.matches(m)).collect();
    if shown.is_empty() {
        println!("no message matches ({} in the queue)", all.len());
        return Ok(());
    }
    println!(
        "{:<13}  {:<19}  {:>9}  {:<30}  {:>5}  STATE",
        "ID", "ARRIVED (UTC)", "SIZE", "FROM", "RCPTS"
    );
    for m in &shown {
        let from = if m.envelope.sender.is_empty() {
            "<>"
        } else {
            &m.envelope.sender
        };
        println!(
            "{:<13}  {:<19}  {:>9}  {:<30}  {:>5}  {}",
            m.id,
            format_time(m.created_at),
            m.size,
            from,
            m.recipients.len(),
            state_text(m)
        );
    }
    if filter.is_empty() {
        println!("{} message(s)", shown.len());
    } else {
        println!("{} message(s) of {} in the queue", shown.len(), all.len());
    }
    Ok(())
}

async fn show(store: &SharedStore, id: &str) -> Result<()> {
    let Some(m) = store.queue_get(id).await? else {
        return Err(not_found(id));
    };
    let e = &m.envelope;
    println!("id:        {}", m.id);
    println!("arrived:   {} UTC", format_time(m.created_at));
    println!("size:      {} octets", m.size);
    println!("from:      <{}>", e.sender);
    println!(
        "client:    {} (HELO {}) on listener {}",
        e.client_ip, e.helo, e.listener
    );
    println!("tls:       {}", e.tls.as_deref().unwrap_or("none"));
    println!("auth:      {}", e.auth.as_deref().unwrap_or("none"));
    println!("lane:      {}", m.lane);
    if let Some(v) = &e.envid {
        println!("envid:     {v}");
    }
    if let Some(v) = &e.ret {
        println!("ret:       {v}");
    }
    if let Some(at) = m.held_at {
        println!(
            "held since {} UTC: neither delivered nor bounced until `{} queue release {}`",
            format_time(at),
            program(),
            m.id
        );
    }
    if let Some(q) = &m.quarantined {
        println!("QUARANTINED: {q}");
    }
    println!("recipients:");
    for r in &m.recipients {
        println!(
            "  {}  → {}  [{}] attempts {}",
            r.address,
            r.destination,
            r.state.as_str(),
            r.attempts
        );
        if !r.dsn.notify.is_empty() || r.dsn.orcpt.is_some() {
            println!(
                "      notify {} orcpt {}",
                r.dsn.notify.join(","),
                r.dsn.orcpt.as_deref().unwrap_or("-")
            );
        }
        if let Some(err) = &r.last_error {
            println!("      last error: {err}");
        }
        if !r.state.is_final() && r.attempts > 0 {
            println!("      next attempt: {} UTC", format_time(r.next_attempt));
        }
    }
    Ok(())
}

async fn summary(store: &SharedStore) -> Result<()> {
    let rows = store.queue_summary().await?;
    let mut total = DomainSummary {
        domain: "TOTAL".into(),
        total: 0,
        by_age: Default::default(),
    };
    for r in &rows {
        total.total += r.total;
        for (t, n) in total.by_age.iter_mut().zip(r.by_age) {
            *t += n;
        }
    }
    let mut headers: Vec<String> = AGE_BUCKET_MINUTES.iter().map(|m| format!("{m}m")).collect();
    headers.push(format!(
        "{}m+",
        AGE_BUCKET_MINUTES[AGE_BUCKET_MINUTES.len() - 1]
    ));
    let all: Vec<&DomainSummary> = std::iter::once(&total).chain(&rows).collect();
    let digits = |n: u64| n.to_string().len();
    let dw = all.iter().map(|r| r.domain.len()).max().unwrap_or(0).max(6);
    let tw = digits(total.total).max(5);
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| h.len().max(digits(total.by_age[i])))
        .collect();
    let line = |name: &str, t: &str, cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        println!("{name:<dw$}  {t:>tw$}  {}", cells.join(" "));
    };
    line("DOMAIN", "TOTAL", headers.clone());
    for r in all {
        line(
            &r.domain,
            &r.total.to_string(),
            r.by_age.iter().map(u64::to_string).collect(),
        );
    }
    Ok(())
}

async fn act(store: &SharedStore, action: Action, sel: Selection) -> Result<()> {
    if let Some(id) = &sel.id {
        let id = queue_id(id);
        let held = store.queue_get(&id).await?.is_some_and(|m| m.held());
        if !action.apply(store, &id).await? {
            return Err(not_found(&id));
        }
        println!("{} {id}", action.done());
        if held && matches!(action, Action::Retry | Action::Bounce) {
            println!(
                "note: {id} is held; this takes effect when it is released (`{} queue release {id}`)",
                program()
            );
        }
        return Ok(());
    }
    if !sel.all && sel.filter.is_empty() {
        bail!(
            "say which messages to {}: a queue id, --all, or a filter (--sender, --recipient, \
             --domain, --state, --lane); `{} queue list` shows what is queued",
            action.name(),
            program()
        );
    }
    let matcher = sel.filter.matcher()?;
    let chosen: Vec<QueuedMessage> = store
        .queue_list()
        .await?
        .into_iter()
        .filter(|m| sel.all || matcher.matches(m))
        .collect();
    let held = chosen.iter().filter(|m| m.held()).count();
    let ids: Vec<String> = chosen.into_iter().map(|m| m.id).collect();
    let (done, gone, errors) = bulk(store, action, ids).await;
    let mut summary = format!("{} {done} message(s)", action.done());
    if gone > 0 {
        summary.push_str(&format!("; {gone} had already left the queue"));
    }
    println!("{summary}");
    if held > 0 && matches!(action, Action::Retry | Action::Bounce) {
        println!(
            "note: {held} of them are held; for those this takes effect when they are released"
        );
    }
    if let Some((id, e)) = errors.first() {
        bail!(
            "{} of the selected message(s) could not be changed (run the command again to \
             retry them); first: {id}: {e}",
            errors.len()
        );
    }
    Ok(())
}

/// Applies `action` to every id, many at once, under a progress bar on stderr (hidden when
/// stderr is not a terminal). Returns (done, no longer in the queue, errors).
async fn bulk(
    store: &SharedStore,
    action: Action,
    ids: Vec<String>,
) -> (usize, usize, Vec<(String, store::StoreError)>) {
    let bar = ProgressBar::new(ids.len() as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} ({eta} left)") {
        bar.set_style(style);
    }
    bar.set_message(action.doing());
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending = ids.into_iter();
    let (mut done, mut gone, mut errors) = (0, 0, Vec::new());
    loop {
        while tasks.len() < BULK_CONCURRENCY {
            let Some(id) = pending.next() else { break };
            let store = store.clone();
            tasks.spawn(async move {
                let r = action.apply(&store, &id).await;
                (id, r)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined {
            Ok((_, Ok(true))) => done += 1,
            Ok((_, Ok(false))) => gone += 1,
            Ok((id, Err(e))) => errors.push((id, e)),
            Err(e) => errors.push((
                "?".into(),
                store::StoreError::Invalid(format!("task failed: {e}")),
            )),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    (done, gone, errors)
}
