//! The write operations the writer task applies.
//!
//! The two hot operations, enqueue and delivery reports, are applied a whole batch at a time
//! with a few multi-row statements (`bulk_enqueue`, `bulk_report`): with SQLite behind sqlx
//! every statement is a round trip to the connection's thread, so statements per batch, not per
//! message, is what keeps group commit fast. Everything else runs one operation at a time.

use crate::types::*;
use crate::{Result, StoreError};
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Row, SqliteConnection};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

pub(crate) enum WriteOp {
    AddDomain {
        name: String,
        catch_all: Option<String>,
    },
    SetCatchAll {
        name: String,
        target: Option<String>,
    },
    RemoveDomain {
        name: String,
    },
    AddAccount {
        address: String,
        hash: String,
    },
    SetPassword {
        address: String,
        hash: String,
    },
    RemoveAccount {
        address: String,
    },
    AddCredential {
        account: String,
        label: String,
        hash: String,
        expires_at: Option<i64>,
    },
    RevokeCredential {
        account: String,
        label: String,
    },
    RotateCredential {
        account: String,
        label: String,
        hash: String,
        old_expire_at: i64,
    },
    CredentialUsed {
        id: i64,
        at: i64,
        ip: String,
    },
    SuspendCredential {
        account: String,
        label: String,
        reason: Option<String>,
    },
    CountActivity {
        id: i64,
        hour: i64,
        n: u32,
        domains: u32,
    },
    NoteNetwork {
        id: i64,
        network: String,
    },
    CountBounces {
        account: String,
        label: String,
        hour: i64,
        n: u32,
    },
    AddDkimKey(DkimKeyRecord),
    AddBan {
        kind: String,
        value: String,
        until: i64,
        reason: String,
    },
    RemoveBan {
        kind: String,
        value: String,
    },
    AddAlias {
        alias: String,
        target: String,
    },
    RemoveAlias {
        alias: String,
        target: String,
    },
    /// The body is in memory or already moved to `file` (relative to the data dir) and fsync'd.
    Enqueue {
        message: Box<NewMessage>,
        file: Option<String>,
    },
    Report(DeliveryReport),
    QueueDelete {
        id: String,
    },
    Quarantine {
        id: String,
        reason: String,
    },
    QueueHold {
        id: String,
    },
    QueueRelease {
        id: String,
    },
    QueueRetry {
        id: String,
    },
    QueueBounce {
        id: String,
    },
    /// Placeholder left when the writer has taken an op out of its job.
    Taken,
}

pub(crate) enum WriteOut {
    Unit,
    Bool(bool),
    Id(i64),
}

async fn insert_credential(
    c: &mut SqliteConnection,
    account: &str,
    label: &str,
    hash: &str,
    expires_at: Option<i64>,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO credentials (account, label, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(account)
    .bind(label)
    .bind(hash)
    .bind(now_ms())
    .bind(expires_at)
    .execute(&mut *c)
    .await?;
    Ok(r.last_insert_rowid())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn exists_error(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::AlreadyExists(what())
    } else {
        e.into()
    }
}

/// `(?,?,?),(?,?,?)` for `rows` rows of `cols` placeholders.
fn placeholders(rows: usize, cols: usize) -> String {
    let row = format!("({})", vec!["?"; cols].join(","));
    vec![row; rows].join(",")
}

fn args() -> SqliteArguments {
    SqliteArguments::default()
}

fn bind<'q, T>(a: &mut SqliteArguments, v: T) -> Result<()>
where
    T: 'q + sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    a.add(v)
        .map_err(|e| StoreError::Invalid(format!("binding a value: {e}")))
}

/// Rows per multi-row statement, well under SQLite's limit of 32766 bound values.
const ROWS_PER_STATEMENT: usize = 400;

/// Applies one operation. Files (relative to the data dir) to remove after the commit are
/// pushed to `unlink`.
pub(crate) async fn apply(
    c: &mut SqliteConnection,
    op: &WriteOp,
    unlink: &mut Vec<PathBuf>,
) -> Result<WriteOut> {
    match op {
        WriteOp::AddDomain { name, catch_all } => {
            sqlx::query("INSERT INTO domains (name, catch_all, created_at) VALUES (?, ?, ?)")
                .bind(name)
                .bind(catch_all)
                .bind(now_ms())
                .execute(&mut *c)
                .await
                .map_err(|e| exists_error(e, || format!("domain {name}")))?;
            Ok(WriteOut::Unit)
        }
        WriteOp::SetCatchAll { name, target } => {
            let r = sqlx::query("UPDATE domains SET catch_all = ? WHERE name = ?")
                .bind(target)
                .bind(name)
                .execute(&mut *c)
                .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("domain {name}")));
            }
            Ok(WriteOut::Unit)
        }
        WriteOp::RemoveDomain { name } => {
            let r = sqlx::query("DELETE FROM domains WHERE name = ?")
                .bind(name)
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::AddAccount { address, hash } => {
            let domain = address
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            let exists = sqlx::query("SELECT 1 FROM domains WHERE name = ?")
                .bind(&domain)
                .fetch_optional(&mut *c)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("domain {domain}")));
            }
            sqlx::query("INSERT INTO accounts (address, domain, password_hash, created_at) VALUES (?, ?, ?, ?)")
                .bind(address)
                .bind(&domain)
                .bind(hash)
                .bind(now_ms())
                .execute(&mut *c)
                .await
                .map_err(|e| exists_error(e, || format!("account {address}")))?;
            insert_credential(c, address, "default", hash, None).await?;
            Ok(WriteOut::Unit)
        }
        WriteOp::AddCredential {
            account,
            label,
            hash,
            expires_at,
        } => {
            let exists = sqlx::query("SELECT 1 FROM accounts WHERE address = ?")
                .bind(account)
                .fetch_optional(&mut *c)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("account {account}")));
            }
            let id = insert_credential(c, account, label, hash, *expires_at).await?;
            Ok(WriteOut::Id(id))
        }
        WriteOp::RevokeCredential { account, label } => {
            let r = sqlx::query(
                "UPDATE credentials SET revoked_at = ? WHERE account = ? AND label = ? AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(account)
            .bind(label)
            .execute(&mut *c)
            .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::RotateCredential {
            account,
            label,
            hash,
            old_expire_at,
        } => {
            let now = now_ms();
            let r = sqlx::query(
                "UPDATE credentials SET expires_at = MIN(COALESCE(expires_at, ?1), ?1) \
                 WHERE account = ?2 AND label = ?3 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > ?4)",
            )
            .bind(old_expire_at)
            .bind(account)
            .bind(label)
            .bind(now)
            .execute(&mut *c)
            .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "active credential \"{label}\" of {account}"
                )));
            }
            let id = insert_credential(c, account, label, hash, None).await?;
            Ok(WriteOut::Id(id))
        }
        WriteOp::SuspendCredential {
            account,
            label,
            reason,
        } => {
            let r = sqlx::query(
                "UPDATE credentials SET suspended_at = CASE WHEN ?1 IS NULL THEN NULL ELSE ?2 END, \
                 suspended_reason = ?1 WHERE account = ?3 AND label = ?4 AND revoked_at IS NULL",
            )
            .bind(reason.as_deref())
            .bind(now_ms())
            .bind(account)
            .bind(label)
            .execute(&mut *c)
            .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::CountActivity {
            id,
            hour,
            n,
            domains,
        } => {
            sqlx::query(
                "INSERT INTO credential_activity (credential_id, hour, messages, domains) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (credential_id, hour) DO UPDATE SET messages = messages + excluded.messages, \
                 domains = MAX(domains, excluded.domains)",
            )
            .bind(id)
            .bind(hour)
            .bind(*n as i64)
            .bind(*domains as i64)
            .execute(&mut *c)
            .await?;
            Ok(WriteOut::Unit)
        }
        WriteOp::CountBounces {
            account,
            label,
            hour,
            n,
        } => {
            sqlx::query(
                "INSERT INTO credential_activity (credential_id, hour, messages, bounces) \
                 SELECT id, ?, 0, ? FROM credentials WHERE account = ? AND label = ? \
                 ORDER BY id DESC LIMIT 1 \
                 ON CONFLICT (credential_id, hour) DO UPDATE SET bounces = bounces + excluded.bounces",
            )
            .bind(hour)
            .bind(*n as i64)
            .bind(account)
            .bind(label)
            .execute(&mut *c)
            .await?;
            Ok(WriteOut::Unit)
        }
        WriteOp::NoteNetwork { id, network } => {
            let r = sqlx::query(
                "INSERT OR IGNORE INTO credential_networks (credential_id, network, first_seen) VALUES (?, ?, ?)",
            )
            .bind(id)
            .bind(network)
            .bind(now_ms())
            .execute(&mut *c)
            .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::AddDkimKey(k) => {
            sqlx::query(
                "INSERT INTO dkim_keys (domain, selector, algorithm, private_key, public_key, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&k.domain)
            .bind(&k.selector)
            .bind(&k.algorithm)
            .bind(&k.private_key)
            .bind(&k.public_key)
            .bind(now_ms())
            .execute(&mut *c)
            .await
            .map_err(|e| exists_error(e, || format!("DKIM selector {} of {}", k.selector, k.domain)))?;
            Ok(WriteOut::Unit)
        }
        WriteOp::AddBan {
            kind,
            value,
            until,
            reason,
        } => {
            sqlx::query(
                "INSERT INTO bans (kind, value, until, reason, created_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (kind, value) DO UPDATE SET until = excluded.until, \
                 reason = excluded.reason, created_at = excluded.created_at",
            )
            .bind(kind)
            .bind(value)
            .bind(until)
            .bind(reason)
            .bind(now_ms())
            .execute(&mut *c)
            .await?;
            Ok(WriteOut::Unit)
        }
        WriteOp::RemoveBan { kind, value } => {
            let r = sqlx::query("DELETE FROM bans WHERE kind = ? AND value = ? AND until > ?")
                .bind(kind)
                .bind(value)
                .bind(now_ms())
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::CredentialUsed { id, at, ip } => {
            sqlx::query("UPDATE credentials SET last_used_at = ?, last_used_ip = ? WHERE id = ?")
                .bind(at)
                .bind(ip)
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Unit)
        }
        WriteOp::SetPassword { address, hash } => {
            let r = sqlx::query("UPDATE accounts SET password_hash = ? WHERE address = ?")
                .bind(hash)
                .bind(address)
                .execute(&mut *c)
                .await?;
            if r.rows_affected() == 0 {
                return Ok(WriteOut::Bool(false));
            }
            // The password is the credential "default": replace its secret, or add it again
            // if it was revoked.
            let d = sqlx::query(
                "UPDATE credentials SET secret_hash = ?, expires_at = NULL \
                 WHERE account = ? AND label = 'default' AND revoked_at IS NULL",
            )
            .bind(hash)
            .bind(address)
            .execute(&mut *c)
            .await?;
            if d.rows_affected() == 0 {
                insert_credential(c, address, "default", hash, None).await?;
            }
            Ok(WriteOut::Bool(true))
        }
        WriteOp::RemoveAccount { address } => {
            let r = sqlx::query("DELETE FROM accounts WHERE address = ?")
                .bind(address)
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::AddAlias { alias, target } => {
            sqlx::query("INSERT INTO aliases (alias, target) VALUES (?, ?)")
                .bind(alias)
                .bind(target)
                .execute(&mut *c)
                .await
                .map_err(|e| exists_error(e, || format!("alias {alias} → {target}")))?;
            Ok(WriteOut::Unit)
        }
        WriteOp::RemoveAlias { alias, target } => {
            let r = sqlx::query("DELETE FROM aliases WHERE alias = ? AND target = ?")
                .bind(alias)
                .bind(target)
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        // The writer applies these in bulk; see `bulk_enqueue` and `bulk_report`.
        WriteOp::Enqueue { .. } | WriteOp::Report(_) => Err(StoreError::Invalid(
            "internal: bulk operation applied singly".into(),
        )),
        WriteOp::QueueDelete { id } => {
            let gone = sqlx::query("DELETE FROM queue WHERE id = ? RETURNING body_id")
                .bind(id)
                .fetch_optional(&mut *c)
                .await?;
            let Some(row) = gone else {
                return Ok(WriteOut::Bool(false));
            };
            let body: String = row.try_get(0)?;
            release_bodies(c, &[body], unlink).await?;
            Ok(WriteOut::Bool(true))
        }
        WriteOp::Quarantine { id, reason } => {
            sqlx::query("UPDATE queue SET quarantined = ? WHERE id = ?")
                .bind(reason)
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Unit)
        }
        WriteOp::QueueHold { id } => {
            let r = sqlx::query("UPDATE queue SET held_at = COALESCE(held_at, ?) WHERE id = ?")
                .bind(now_ms())
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::QueueRelease { id } => {
            let r = sqlx::query("UPDATE queue SET held_at = NULL WHERE id = ?")
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::QueueRetry { id } => {
            if !queue_entry_exists(c, id).await? {
                return Ok(WriteOut::Bool(false));
            }
            sqlx::query(
                "UPDATE queue_recipients SET next_attempt = ? \
                 WHERE queue_id = ? AND state IN ('queued', 'deferred')",
            )
            .bind(now_ms())
            .bind(id)
            .execute(&mut *c)
            .await?;
            Ok(WriteOut::Bool(true))
        }
        WriteOp::QueueBounce { id } => {
            if !queue_entry_exists(c, id).await? {
                return Ok(WriteOut::Bool(false));
            }
            sqlx::query(
                "UPDATE queue_recipients SET state = 'failed', last_error = ? \
                 WHERE queue_id = ? AND state IN ('queued', 'deferred')",
            )
            .bind(ADMIN_BOUNCE_ERROR)
            .bind(id)
            .execute(&mut *c)
            .await?;
            Ok(WriteOut::Bool(true))
        }
        WriteOp::Taken => Err(StoreError::Invalid(
            "internal: operation already taken".into(),
        )),
    }
}

async fn queue_entry_exists(c: &mut SqliteConnection, id: &str) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM queue WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .is_some())
}

/// Writes many new messages with one multi-row INSERT per table.
pub(crate) async fn bulk_enqueue(
    c: &mut SqliteConnection,
    messages: &[(NewMessage, Option<String>)],
) -> Result<()> {
    let now = now_ms();
    let mut envelopes = Vec::with_capacity(messages.len());
    for (m, _) in messages {
        envelopes.push(
            serde_json::to_string(&m.envelope).map_err(|e| StoreError::Invalid(e.to_string()))?,
        );
    }
    for (chunk, envs) in messages
        .chunks(ROWS_PER_STATEMENT)
        .zip(envelopes.chunks(ROWS_PER_STATEMENT))
    {
        let mut a = args();
        for (m, file) in chunk {
            let size = m.prefix.len() as u64 + m.body.len();
            bind(&mut a, m.id.as_str())?;
            bind(&mut a, m.prefix.as_slice())?;
            match &m.body {
                NewBody::Memory(v) => bind(&mut a, v.as_slice())?,
                NewBody::File { .. } => bind(&mut a, Option::<&[u8]>::None)?,
            }
            bind(&mut a, file.as_deref())?;
            bind(&mut a, size as i64)?;
        }
        let sql = format!(
            "INSERT INTO bodies (id, prefix, data, path, size) VALUES {}",
            placeholders(chunk.len(), 5)
        );
        sqlx::query_with(sqlx::AssertSqlSafe(sql), a)
            .execute(&mut *c)
            .await?;
        let mut a = args();
        for ((m, _), env) in chunk.iter().zip(envs) {
            bind(&mut a, m.id.as_str())?;
            bind(&mut a, m.id.as_str())?;
            bind(&mut a, env.as_str())?;
            bind(&mut a, now)?;
            bind(&mut a, m.lane.as_str())?;
            bind(&mut a, m.held.then_some(now))?;
        }
        let sql = format!(
            "INSERT INTO queue (id, body_id, envelope, created_at, lane, held_at) VALUES {}",
            placeholders(chunk.len(), 6)
        );
        sqlx::query_with(sqlx::AssertSqlSafe(sql), a)
            .execute(&mut *c)
            .await?;
    }
    let mut rows = Vec::new();
    for (m, _) in messages {
        for (idx, r) in m.recipients.iter().enumerate() {
            let dsn =
                serde_json::to_string(&r.dsn).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let dest = serde_json::to_string(&r.destination)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            rows.push((m.id.as_str(), idx as i64, r.address.as_str(), dsn, dest));
        }
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut a = args();
        for (id, idx, address, dsn, dest) in chunk {
            bind(&mut a, *id)?;
            bind(&mut a, *idx)?;
            bind(&mut a, *address)?;
            bind(&mut a, dsn.as_str())?;
            bind(&mut a, dest.as_str())?;
            bind(&mut a, now)?;
        }
        let sql = format!(
            "INSERT INTO queue_recipients (queue_id, idx, address, dsn, destination, next_attempt, state) \
             SELECT column1, column2, column3, column4, column5, column6, 'queued' FROM (VALUES {})",
            placeholders(chunk.len(), 6)
        );
        sqlx::query_with(sqlx::AssertSqlSafe(sql), a)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// Applies many delivery reports with a few statements: moves pending recipients to their new
/// state (reports for recipients already final, or entries deleted meanwhile, change nothing),
/// stores delivered copies in their INBOX, and removes queue entries that are complete.
pub(crate) async fn bulk_report(
    c: &mut SqliteConnection,
    reports: &[DeliveryReport],
    unlink: &mut Vec<PathBuf>,
) -> Result<()> {
    let mut touched: Vec<String> = Vec::new();
    let mut delivered: Vec<Copy<'_>> = Vec::new();
    for r in reports {
        if touched.last() != Some(&r.queue_id) && !touched.contains(&r.queue_id) {
            touched.push(r.queue_id.clone());
        }
        match &r.outcome {
            Outcome::Delivered { owner, prefix } => delivered.push((
                r.queue_id.as_str(),
                r.idx,
                owner.as_str(),
                prefix.as_slice(),
            )),
            Outcome::Bounced => {
                sqlx::query(
                    "UPDATE queue_recipients SET state = 'bounced' WHERE queue_id = ? AND idx = ? AND state = 'failed'",
                )
                .bind(&r.queue_id)
                .bind(r.idx as i64)
                .execute(&mut *c)
                .await?;
            }
            Outcome::Sent { response } => {
                sqlx::query(
                    "UPDATE queue_recipients SET state = 'delivered', attempts = attempts + 1, last_error = ? \
                     WHERE queue_id = ? AND idx = ? AND state IN ('queued', 'deferred')",
                )
                .bind(response)
                .bind(&r.queue_id)
                .bind(r.idx as i64)
                .execute(&mut *c)
                .await?;
            }
            Outcome::Deferred {
                error,
                next_attempt,
                delay_notified,
            } => {
                sqlx::query(
                    "UPDATE queue_recipients SET state = 'deferred', attempts = attempts + 1, last_error = ?, \
                     next_attempt = ?, delay_notified = MAX(delay_notified, ?) \
                     WHERE queue_id = ? AND idx = ? AND state IN ('queued', 'deferred')",
                )
                .bind(error)
                .bind(next_attempt)
                .bind(i64::from(*delay_notified))
                .bind(&r.queue_id)
                .bind(r.idx as i64)
                .execute(&mut *c)
                .await?;
            }
            Outcome::Failed { error } => {
                sqlx::query(
                    "UPDATE queue_recipients SET state = 'failed', attempts = attempts + 1, last_error = ? \
                     WHERE queue_id = ? AND idx = ? AND state IN ('queued', 'deferred')",
                )
                .bind(error)
                .bind(&r.queue_id)
                .bind(r.idx as i64)
                .execute(&mut *c)
                .await?;
            }
        }
    }
    if !delivered.is_empty() {
        store_delivered(c, delivered).await?;
    }
    complete_entries(c, &touched, unlink).await
}

/// A delivered copy: queue id, recipient index, mailbox owner, delivery prefix.
type Copy<'a> = (&'a str, u32, &'a str, &'a [u8]);

async fn store_delivered(c: &mut SqliteConnection, delivered: Vec<Copy<'_>>) -> Result<()> {
    // 1. Which of these recipients were still pending: only those get a copy.
    let mut moved: HashSet<(String, i64)> = HashSet::new();
    for chunk in delivered.chunks(ROWS_PER_STATEMENT) {
        let mut a = args();
        for (id, idx, _, _) in chunk {
            bind(&mut a, *id)?;
            bind(&mut a, *idx as i64)?;
        }
        let sql = format!(
            "UPDATE queue_recipients SET state = 'delivered', attempts = attempts + 1, last_error = NULL \
             WHERE state IN ('queued', 'deferred') AND (queue_id, idx) IN (VALUES {}) RETURNING queue_id, idx",
            placeholders(chunk.len(), 2)
        );
        for row in sqlx::query_with(sqlx::AssertSqlSafe(sql), a)
            .fetch_all(&mut *c)
            .await?
        {
            moved.insert((row.try_get(0)?, row.try_get(1)?));
        }
    }
    let copies: Vec<&Copy<'_>> = delivered
        .iter()
        .filter(|(id, idx, _, _)| moved.contains(&(id.to_string(), *idx as i64)))
        .collect();
    if copies.is_empty() {
        return Ok(());
    }
    // 2. Body sizes.
    let ids: Vec<&str> = {
        let mut v: Vec<&str> = copies.iter().map(|d| d.0).collect();
        v.dedup();
        v
    };
    let mut sizes: HashMap<String, i64> = HashMap::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut a = args();
        for id in chunk {
            bind(&mut a, *id)?;
        }
        let sql = format!(
            "SELECT id, size FROM bodies WHERE id IN ({})",
            vec!["?"; chunk.len()].join(",")
        );
        for row in sqlx::query_with(sqlx::AssertSqlSafe(sql), a)
            .fetch_all(&mut *c)
            .await?
        {
            sizes.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    // 3. UIDs: one range per INBOX (RFC 9051 §2.3.1.1: strictly ascending).
    let mut per_owner: Vec<(&str, i64)> = Vec::new();
    for d in &copies {
        match per_owner.iter_mut().find(|(o, _)| *o == d.2) {
            Some((_, n)) => *n += 1,
            None => per_owner.push((d.2, 1)),
        }
    }
    let now = now_ms();
    let mut next_uid: HashMap<&str, (i64, i64)> = HashMap::new();
    for (owner, n) in &per_owner {
        sqlx::query("INSERT OR IGNORE INTO mailboxes (owner, name, uidvalidity, uidnext) VALUES (?, 'INBOX', ?, 1)")
            .bind(*owner)
            .bind(now / 1000)
            .execute(&mut *c)
            .await?;
        let row = sqlx::query(
            "UPDATE mailboxes SET uidnext = uidnext + ? WHERE owner = ? AND name = 'INBOX' RETURNING id, uidnext - ?",
        )
        .bind(*n)
        .bind(*owner)
        .bind(*n)
        .fetch_one(&mut *c)
        .await?;
        next_uid.insert(owner, (row.try_get(0)?, row.try_get(1)?));
    }
    // 4. The mailbox rows, all referencing the one stored body.
    for chunk in copies.chunks(ROWS_PER_STATEMENT) {
        let mut a = args();
        for &&(id, _, owner, prefix) in chunk {
            let Some((mailbox_id, uid)) = next_uid.get_mut(owner) else {
                return Err(StoreError::Invalid(format!("no INBOX for {owner}")));
            };
            let size = sizes.get(id).copied().unwrap_or(0) + prefix.len() as i64;
            bind(&mut a, *mailbox_id)?;
            bind(&mut a, *uid)?;
            bind(&mut a, id)?;
            bind(&mut a, prefix)?;
            bind(&mut a, size)?;
            bind(&mut a, now)?;
            bind(&mut a, id)?;
            *uid += 1;
        }
        let sql = format!(
            "INSERT INTO mailbox_messages (mailbox_id, uid, body_id, prefix, size, received_at, queue_id) VALUES {}",
            placeholders(chunk.len(), 7)
        );
        sqlx::query_with(sqlx::AssertSqlSafe(sql), a)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// Removes the queue entries among `ids` whose recipients are all delivered or bounced, and their
/// bodies if no mailbox message uses them. An entry with a failed recipient stays until its
/// bounce has been queued (the failure must reach the sender).
async fn complete_entries(
    c: &mut SqliteConnection,
    ids: &[String],
    unlink: &mut Vec<PathBuf>,
) -> Result<()> {
    let mut done = Vec::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut a = args();
        for id in chunk {
            bind(&mut a, id.as_str())?;
        }
        let sql = format!(
            "DELETE FROM queue WHERE id IN ({}) AND NOT EXISTS (SELECT 1 FROM queue_recipients r \
             WHERE r.queue_id = queue.id AND r.state IN ('queued', 'deferred', 'failed')) RETURNING body_id",
            vec!["?"; chunk.len()].join(",")
        );
        for row in sqlx::query_with(sqlx::AssertSqlSafe(sql), a)
            .fetch_all(&mut *c)
            .await?
        {
            done.push(row.try_get::<String, _>(0)?);
        }
    }
    release_bodies(c, &done, unlink).await
}

/// Deletes the bodies among `ids` that no queue entry and no mailbox message refers to; their
/// files are removed after the commit.
async fn release_bodies(
    c: &mut SqliteConnection,
    ids: &[String],
    unlink: &mut Vec<PathBuf>,
) -> Result<()> {
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut a = args();
        for id in chunk {
            bind(&mut a, id.as_str())?;
        }
        let sql = format!(
            "DELETE FROM bodies WHERE id IN ({}) \
             AND NOT EXISTS (SELECT 1 FROM mailbox_messages m WHERE m.body_id = bodies.id) \
             AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.body_id = bodies.id) RETURNING path",
            vec!["?"; chunk.len()].join(",")
        );
        for row in sqlx::query_with(sqlx::AssertSqlSafe(sql), a)
            .fetch_all(&mut *c)
            .await?
        {
            if let Some(p) = row.try_get::<Option<String>, _>(0)? {
                unlink.push(PathBuf::from(p));
            }
        }
    }
    Ok(())
}
