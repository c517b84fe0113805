//! The write operations the writer task applies, each inside its own savepoint.

use crate::types::*;
use crate::{Result, StoreError};
use sqlx::{Row, SqliteConnection};
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
    /// Placeholder left when the writer has taken an op out of its job.
    Taken,
}

pub(crate) enum WriteOut {
    Unit,
    Bool(bool),
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

/// Applies one operation. Files (relative to the data dir) to remove after the commit are
/// pushed to `unlink`.
pub(crate) async fn apply(
    c: &mut SqliteConnection,
    op: WriteOp,
    unlink: &mut Vec<PathBuf>,
) -> Result<WriteOut> {
    match op {
        WriteOp::AddDomain { name, catch_all } => {
            sqlx::query("INSERT INTO domains (name, catch_all, created_at) VALUES (?, ?, ?)")
                .bind(&name)
                .bind(catch_all)
                .bind(now_ms())
                .execute(&mut *c)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::AlreadyExists(format!("domain {name}"))
                    } else {
                        e.into()
                    }
                })?;
            Ok(WriteOut::Unit)
        }
        WriteOp::SetCatchAll { name, target } => {
            let r = sqlx::query("UPDATE domains SET catch_all = ? WHERE name = ?")
                .bind(target)
                .bind(&name)
                .execute(&mut *c)
                .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("domain {name}")));
            }
            Ok(WriteOut::Unit)
        }
        WriteOp::RemoveDomain { name } => {
            let r = sqlx::query("DELETE FROM domains WHERE name = ?")
                .bind(&name)
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
                .bind(&address)
                .bind(&domain)
                .bind(&hash)
                .bind(now_ms())
                .execute(&mut *c)
                .await
                .map_err(|e| if is_unique_violation(&e) { StoreError::AlreadyExists(format!("account {address}")) } else { e.into() })?;
            Ok(WriteOut::Unit)
        }
        WriteOp::SetPassword { address, hash } => {
            let r = sqlx::query("UPDATE accounts SET password_hash = ? WHERE address = ?")
                .bind(&hash)
                .bind(&address)
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::RemoveAccount { address } => {
            let r = sqlx::query("DELETE FROM accounts WHERE address = ?")
                .bind(&address)
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::AddAlias { alias, target } => {
            sqlx::query("INSERT INTO aliases (alias, target) VALUES (?, ?)")
                .bind(&alias)
                .bind(&target)
                .execute(&mut *c)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::AlreadyExists(format!("alias {alias} → {target}"))
                    } else {
                        e.into()
                    }
                })?;
            Ok(WriteOut::Unit)
        }
        WriteOp::RemoveAlias { alias, target } => {
            let r = sqlx::query("DELETE FROM aliases WHERE alias = ? AND target = ?")
                .bind(&alias)
                .bind(&target)
                .execute(&mut *c)
                .await?;
            Ok(WriteOut::Bool(r.rows_affected() > 0))
        }
        WriteOp::Enqueue { message, file } => {
            enqueue(c, *message, file).await.map(|_| WriteOut::Unit)
        }
        WriteOp::Report(report) => record(c, report, unlink).await.map(|_| WriteOut::Unit),
        WriteOp::QueueDelete { id } => {
            let row = sqlx::query("SELECT body_id FROM queue WHERE id = ?")
                .bind(&id)
                .fetch_optional(&mut *c)
                .await?;
            let Some(row) = row else {
                return Ok(WriteOut::Bool(false));
            };
            let body_id: i64 = row.try_get(0)?;
            sqlx::query("DELETE FROM queue WHERE id = ?")
                .bind(&id)
                .execute(&mut *c)
                .await?;
            release_body(c, body_id, unlink).await?;
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
        WriteOp::Taken => Err(StoreError::Invalid(
            "internal: operation already taken".into(),
        )),
    }
}

async fn enqueue(c: &mut SqliteConnection, m: NewMessage, file: Option<String>) -> Result<()> {
    let size = m.prefix.len() as u64 + m.body.len();
    let data = match m.body {
        NewBody::Memory(v) => Some(v),
        NewBody::File { .. } => None,
    };
    let body_id: i64 = sqlx::query(
        "INSERT INTO bodies (prefix, data, path, size, refs) VALUES (?, ?, ?, ?, 1) RETURNING id",
    )
    .bind(&m.prefix)
    .bind(data)
    .bind(file)
    .bind(size as i64)
    .fetch_one(&mut *c)
    .await?
    .try_get(0)?;
    let envelope =
        serde_json::to_string(&m.envelope).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let now = now_ms();
    sqlx::query("INSERT INTO queue (id, body_id, envelope, created_at) VALUES (?, ?, ?, ?)")
        .bind(&m.id)
        .bind(body_id)
        .bind(envelope)
        .bind(now)
        .execute(&mut *c)
        .await?;
    for (idx, r) in m.recipients.iter().enumerate() {
        let dsn = serde_json::to_string(&r.dsn).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let dest = serde_json::to_string(&r.destination)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO queue_recipients (queue_id, idx, address, dsn, destination, state, next_attempt) \
             VALUES (?, ?, ?, ?, ?, 'queued', ?)",
        )
        .bind(&m.id)
        .bind(idx as i64)
        .bind(&r.address)
        .bind(dsn)
        .bind(dest)
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

async fn record(
    c: &mut SqliteConnection,
    r: DeliveryReport,
    unlink: &mut Vec<PathBuf>,
) -> Result<()> {
    let row = sqlx::query(
        "SELECT q.body_id, b.size, r.state FROM queue q JOIN bodies b ON b.id = q.body_id \
         JOIN queue_recipients r ON r.queue_id = q.id WHERE q.id = ? AND r.idx = ?",
    )
    .bind(&r.queue_id)
    .bind(r.idx as i64)
    .fetch_optional(&mut *c)
    .await?;
    // Deleted by an admin meanwhile, or already final: nothing to do.
    let Some(row) = row else { return Ok(()) };
    let body_id: i64 = row.try_get(0)?;
    let body_size: i64 = row.try_get(1)?;
    let state: String = row.try_get(2)?;
    if RecipientState::parse(&state).is_none_or(|s| s.is_final()) {
        return Ok(());
    }
    match r.outcome {
        Outcome::Delivered { owner, prefix } => {
            let now = now_ms();
            sqlx::query(
                "INSERT OR IGNORE INTO mailboxes (owner, name, uidvalidity, uidnext) VALUES (?, 'INBOX', ?, 1)",
            )
            .bind(&owner)
            .bind(now / 1000)
            .execute(&mut *c)
            .await?;
            let mb = sqlx::query(
                "UPDATE mailboxes SET uidnext = uidnext + 1 WHERE owner = ? AND name = 'INBOX' RETURNING id, uidnext - 1",
            )
            .bind(&owner)
            .fetch_one(&mut *c)
            .await?;
            let mailbox_id: i64 = mb.try_get(0)?;
            let uid: i64 = mb.try_get(1)?;
            sqlx::query(
                "INSERT INTO mailbox_messages (mailbox_id, uid, body_id, prefix, size, received_at, queue_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(mailbox_id)
            .bind(uid)
            .bind(body_id)
            .bind(&prefix)
            .bind(body_size + prefix.len() as i64)
            .bind(now)
            .bind(&r.queue_id)
            .execute(&mut *c)
            .await?;
            sqlx::query("UPDATE bodies SET refs = refs + 1 WHERE id = ?")
                .bind(body_id)
                .execute(&mut *c)
                .await?;
            set_state(c, &r.queue_id, r.idx, "delivered", None, None).await?;
        }
        Outcome::Deferred {
            error,
            next_attempt,
        } => {
            set_state(
                c,
                &r.queue_id,
                r.idx,
                "deferred",
                Some(error),
                Some(next_attempt),
            )
            .await?;
        }
        Outcome::Failed { error } => {
            set_state(c, &r.queue_id, r.idx, "failed", Some(error), None).await?;
        }
    }
    let open = sqlx::query("SELECT 1 FROM queue_recipients WHERE queue_id = ? AND state IN ('queued', 'deferred') LIMIT 1")
        .bind(&r.queue_id)
        .fetch_optional(&mut *c)
        .await?;
    if open.is_none() {
        sqlx::query("DELETE FROM queue WHERE id = ?")
            .bind(&r.queue_id)
            .execute(&mut *c)
            .await?;
        release_body(c, body_id, unlink).await?;
    }
    Ok(())
}

async fn set_state(
    c: &mut SqliteConnection,
    id: &str,
    idx: u32,
    state: &str,
    error: Option<String>,
    next: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE queue_recipients SET state = ?, attempts = attempts + 1, last_error = ?, \
         next_attempt = COALESCE(?, next_attempt) WHERE queue_id = ? AND idx = ?",
    )
    .bind(state)
    .bind(error)
    .bind(next)
    .bind(id)
    .bind(idx as i64)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Drops one reference to a body; the last one removes it (and its file, after the commit).
async fn release_body(
    c: &mut SqliteConnection,
    body_id: i64,
    unlink: &mut Vec<PathBuf>,
) -> Result<()> {
    let row = sqlx::query("UPDATE bodies SET refs = refs - 1 WHERE id = ? RETURNING refs, path")
        .bind(body_id)
        .fetch_optional(&mut *c)
        .await?;
    if let Some(row) = row {
        let refs: i64 = row.try_get(0)?;
        let path: Option<String> = row.try_get(1)?;
        if refs <= 0 {
            sqlx::query("DELETE FROM bodies WHERE id = ?")
                .bind(body_id)
                .execute(&mut *c)
                .await?;
            if let Some(p) = path {
                unlink.push(PathBuf::from(p));
            }
        }
    }
    Ok(())
}
