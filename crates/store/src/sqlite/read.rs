//! Reads, through the connection pool (never blocked by the writer in WAL mode).

use crate::Result;
use crate::types::*;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use std::collections::HashSet;
use std::path::Path;

pub(super) async fn domain(pool: &SqlitePool, name: &str) -> Result<Option<DomainRecord>> {
    let row = sqlx::query("SELECT name, catch_all, created_at FROM domains WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    row.map(|r| domain_row(&r)).transpose()
}

fn domain_row(r: &SqliteRow) -> Result<DomainRecord> {
    Ok(DomainRecord {
        name: r.try_get(0)?,
        catch_all: r.try_get(1)?,
        created_at: r.try_get(2)?,
    })
}

pub(super) async fn domains(pool: &SqlitePool) -> Result<Vec<DomainRecord>> {
    let rows = sqlx::query("SELECT name, catch_all, created_at FROM domains ORDER BY name")
        .fetch_all(pool)
        .await?;
    rows.iter().map(domain_row).collect()
}

fn account_row(r: &SqliteRow) -> Result<AccountRecord> {
    Ok(AccountRecord {
        address: r.try_get(0)?,
        password_hash: r.try_get(1)?,
        created_at: r.try_get(2)?,
    })
}

pub(super) async fn activity(
    pool: &SqlitePool,
    id: i64,
    from_hour: i64,
    to_hour: i64,
) -> Result<Vec<(i64, u32, u32, u32)>> {
    let rows = sqlx::query(
        "SELECT hour, messages, domains, bounces FROM credential_activity \
         WHERE credential_id = ? AND hour >= ? AND hour < ? ORDER BY hour",
    )
    .bind(id)
    .bind(from_hour)
    .bind(to_hour)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let n: i64 = r.try_get(1)?;
            let d: i64 = r.try_get(2)?;
            let b: i64 = r.try_get(3)?;
            Ok((
                r.try_get(0)?,
                n.clamp(0, u32::MAX as i64) as u32,
                d.clamp(0, u32::MAX as i64) as u32,
                b.clamp(0, u32::MAX as i64) as u32,
            ))
        })
        .collect()
}

pub(super) async fn network_count(pool: &SqlitePool, id: i64) -> Result<u64> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM credential_networks WHERE credential_id = ?")
            .bind(id)
            .fetch_one(pool)
            .await?;
    Ok(n.max(0) as u64)
}

pub(super) async fn dkim_keys(
    pool: &SqlitePool,
    domain: Option<&str>,
) -> Result<Vec<DkimKeyRecord>> {
    let rows = sqlx::query(
        "SELECT domain, selector, algorithm, private_key, public_key, created_at FROM dkim_keys \
         WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain, created_at, selector",
    )
    .bind(domain)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DkimKeyRecord {
                domain: r.try_get(0)?,
                selector: r.try_get(1)?,
                algorithm: r.try_get(2)?,
                private_key: r.try_get(3)?,
                public_key: r.try_get(4)?,
                created_at: r.try_get(5)?,
            })
        })
        .collect()
}

pub(super) async fn bans(pool: &SqlitePool, now_ms: i64) -> Result<Vec<BanRecord>> {
    let rows = sqlx::query(
        "SELECT kind, value, until, reason, created_at FROM bans WHERE until > ? ORDER BY until",
    )
    .bind(now_ms)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(BanRecord {
                kind: r.try_get(0)?,
                value: r.try_get(1)?,
                until: r.try_get(2)?,
                reason: r.try_get(3)?,
                created_at: r.try_get(4)?,
            })
        })
        .collect()
}

pub(super) async fn credentials(pool: &SqlitePool, account: &str) -> Result<Vec<CredentialRecord>> {
    let rows = sqlx::query(
        "SELECT id, account, label, secret_hash, created_at, expires_at, revoked_at, \
         last_used_at, last_used_ip, suspended_at, suspended_reason FROM credentials \
         WHERE account = ? ORDER BY id",
    )
    .bind(account)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CredentialRecord {
                id: r.try_get(0)?,
                account: r.try_get(1)?,
                label: r.try_get(2)?,
                secret_hash: r.try_get(3)?,
                created_at: r.try_get(4)?,
                expires_at: r.try_get(5)?,
                revoked_at: r.try_get(6)?,
                last_used_at: r.try_get(7)?,
                last_used_ip: r.try_get(8)?,
                suspended_at: r.try_get(9)?,
                suspended_reason: r.try_get(10)?,
            })
        })
        .collect()
}

pub(super) async fn account(pool: &SqlitePool, address: &str) -> Result<Option<AccountRecord>> {
    let row =
        sqlx::query("SELECT address, password_hash, created_at FROM accounts WHERE address = ?")
            .bind(address)
            .fetch_optional(pool)
            .await?;
    row.map(|r| account_row(&r)).transpose()
}

pub(super) async fn accounts(pool: &SqlitePool) -> Result<Vec<AccountRecord>> {
    let rows = sqlx::query(
        "SELECT address, password_hash, created_at FROM accounts ORDER BY domain, address",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(account_row).collect()
}

pub(super) async fn aliases(pool: &SqlitePool) -> Result<Vec<AliasRecord>> {
    let rows = sqlx::query("SELECT alias, target FROM aliases ORDER BY alias, target")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AliasRecord {
                alias: r.try_get(0)?,
                target: r.try_get(1)?,
            })
        })
        .collect()
}

pub(super) async fn alias_targets(pool: &SqlitePool, alias: &str) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT target FROM aliases WHERE alias = ? ORDER BY target")
        .bind(alias)
        .fetch_all(pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

const QUEUE_SELECT: &str = "SELECT q.id, q.envelope, q.body_id, COALESCE(b.size, 0), q.created_at, q.quarantined, \
     r.idx, r.address, r.dsn, r.destination, r.state, r.attempts, r.next_attempt, r.last_error, \
     q.held_at, q.lane, COALESCE(r.delay_notified, 0) \
     FROM queue q LEFT JOIN bodies b ON b.id = q.body_id \
     LEFT JOIN queue_recipients r ON r.queue_id = q.id";

/// Groups joined rows (ordered by queue id, then idx) into messages. A row that cannot be
/// read makes its message quarantined-with-reason instead of failing the whole read.
fn group(rows: Vec<SqliteRow>) -> Result<Vec<QueuedMessage>> {
    let mut out: Vec<QueuedMessage> = Vec::new();
    for row in rows {
        let id: String = row.try_get(0)?;
        if out.last().is_none_or(|m| m.id != id) {
            let envelope_json: String = row.try_get(1)?;
            let mut quarantined: Option<String> = row.try_get(5)?;
            let envelope = match serde_json::from_str::<Envelope>(&envelope_json) {
                Ok(e) => e,
                Err(e) => {
                    quarantined.get_or_insert(format!("unreadable envelope: {e}"));
                    Envelope::default()
                }
            };
            out.push(QueuedMessage {
                id,
                envelope,
                body_id: row.try_get(2)?,
                size: row.try_get::<i64, _>(3)? as u64,
                created_at: row.try_get(4)?,
                recipients: Vec::new(),
                quarantined,
                held_at: row.try_get(14)?,
                lane: row.try_get(15)?,
            });
        }
        let Some(msg) = out.last_mut() else { continue };
        let idx: Option<i64> = row.try_get(6)?;
        let Some(idx) = idx else { continue };
        let dsn: String = row.try_get(8)?;
        let dest: String = row.try_get(9)?;
        let state: String = row.try_get(10)?;
        let parsed = (
            serde_json::from_str::<RecipientDsn>(&dsn),
            serde_json::from_str::<Destination>(&dest),
            RecipientState::parse(&state),
        );
        match parsed {
            (Ok(dsn), Ok(destination), Some(state)) => msg.recipients.push(QueuedRecipient {
                idx: idx as u32,
                address: row.try_get(7)?,
                dsn,
                destination,
                state,
                attempts: row.try_get::<i64, _>(11)? as u32,
                next_attempt: row.try_get(12)?,
                last_error: row.try_get(13)?,
                delay_notified: row.try_get::<i64, _>(16)? != 0,
            }),
            _ => {
                msg.quarantined
                    .get_or_insert(format!("unreadable recipient {idx}"));
            }
        }
    }
    for m in &mut out {
        if m.recipients.is_empty() && m.quarantined.is_none() {
            m.quarantined = Some("no recipients".into());
        }
    }
    Ok(out)
}

pub(super) async fn due(
    pool: &SqlitePool,
    now_ms: i64,
    limit: usize,
    exclude: &[String],
) -> Result<Vec<QueuedMessage>> {
    // The ids to skip go in as one JSON array (queue ids are base32: nothing to escape), so a
    // long list is one bound parameter; SQLite builds a temporary index for the NOT IN.
    let skip = if exclude.is_empty() {
        String::new()
    } else {
        "AND r2.queue_id NOT IN (SELECT value FROM json_each(?)) ".to_string()
    };
    let sql = format!(
        "{QUEUE_SELECT} WHERE q.id IN (SELECT DISTINCT r2.queue_id FROM queue_recipients r2 \
         JOIN queue q2 ON q2.id = r2.queue_id \
         WHERE r2.state IN ('queued', 'deferred') AND r2.next_attempt <= ? AND q2.quarantined IS NULL \
         AND q2.held_at IS NULL {skip}\
         ORDER BY q2.lane = 'bulk', r2.queue_id LIMIT ?) ORDER BY q.lane = 'bulk', q.id, r.idx"
    );
    // Transactional mail first (the bulk lane sorts last), oldest first within a lane.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms);
    if !exclude.is_empty() {
        let mut json = String::with_capacity(exclude.len() * 16 + 2);
        json.push('[');
        for (i, id) in exclude.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push('"');
            json.extend(id.chars().filter(|c| c.is_ascii_alphanumeric()));
            json.push('"');
        }
        json.push(']');
        query = query.bind(json);
    }
    let rows = query.bind(limit as i64).fetch_all(pool).await?;
    Ok(group(rows)?
        .into_iter()
        .filter(|m| m.quarantined.is_none())
        .collect())
}

/// Messages with recipients in state `failed` (their bounce is still to be sent).
pub(super) async fn failed(pool: &SqlitePool, limit: usize) -> Result<Vec<QueuedMessage>> {
    let sql = format!(
        "{QUEUE_SELECT} WHERE q.id IN (SELECT DISTINCT r2.queue_id FROM queue_recipients r2 \
         JOIN queue q2 ON q2.id = r2.queue_id WHERE r2.state = 'failed' AND q2.quarantined IS NULL \
         AND q2.held_at IS NULL \
         ORDER BY r2.queue_id LIMIT ?) ORDER BY q.id, r.idx"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(limit as i64)
        .fetch_all(pool)
        .await?;
    Ok(group(rows)?
        .into_iter()
        .filter(|m| m.quarantined.is_none())
        .collect())
}

pub(super) async fn queue_all(pool: &SqlitePool) -> Result<Vec<QueuedMessage>> {
    let sql = format!("{QUEUE_SELECT} ORDER BY q.id, r.idx");
    group(
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?,
    )
}

pub(super) async fn queue_one(pool: &SqlitePool, id: &str) -> Result<Option<QueuedMessage>> {
    let sql = format!("{QUEUE_SELECT} WHERE q.id = ? ORDER BY r.idx");
    Ok(group(
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(pool)
            .await?,
    )?
    .into_iter()
    .next())
}

/// Pending recipients per destination and age bucket at `now_ms`; see `Store::queue_summary`.
pub(super) async fn summary(pool: &SqlitePool, now_ms: i64) -> Result<Vec<DomainSummary>> {
    let rows = sqlx::query(
        "SELECT r.destination, q.created_at, COUNT(*) FROM queue_recipients r \
         JOIN queue q ON q.id = r.queue_id WHERE r.state IN ('queued', 'deferred') \
         GROUP BY r.destination, q.created_at",
    )
    .fetch_all(pool)
    .await?;
    let mut by_domain: std::collections::HashMap<String, DomainSummary> = Default::default();
    for row in rows {
        let dest: String = row.try_get(0)?;
        let created_at: i64 = row.try_get(1)?;
        let count = row.try_get::<i64, _>(2)?.max(0) as u64;
        let domain = match serde_json::from_str::<Destination>(&dest) {
            Ok(Destination::Remote(d)) => d,
            Ok(Destination::Mailbox(_)) => LOCAL_DESTINATION.to_string(),
            // An unreadable row belongs to a quarantined entry; it is still in the queue.
            Err(_) => "(unreadable)".to_string(),
        };
        let entry = by_domain
            .entry(domain.clone())
            .or_insert_with(|| DomainSummary {
                domain,
                total: 0,
                by_age: Default::default(),
            });
        entry.total += count;
        entry.by_age[DomainSummary::bucket(now_ms.saturating_sub(created_at))] += count;
    }
    let mut out: Vec<DomainSummary> = by_domain.into_values().collect();
    out.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.domain.cmp(&b.domain)));
    Ok(out)
}

/// Why a queue entry cannot be delivered, if it cannot: body missing, file missing or short.
pub(super) async fn check_entry(
    pool: &SqlitePool,
    data_dir: &Path,
    m: &QueuedMessage,
) -> Result<Option<String>> {
    let row =
        sqlx::query("SELECT length(prefix), length(data), path, size FROM bodies WHERE id = ?")
            .bind(&m.body_id)
            .fetch_optional(pool)
            .await?;
    let Some(row) = row else {
        return Ok(Some("message body missing".into()));
    };
    let prefix_len: i64 = row.try_get(0)?;
    let data_len: Option<i64> = row.try_get(1)?;
    let path: Option<String> = row.try_get(2)?;
    let size: i64 = row.try_get(3)?;
    let actual = match (data_len, path) {
        (Some(n), _) => n,
        (None, Some(p)) => match std::fs::metadata(data_dir.join(&p)) {
            Ok(meta) => meta.len() as i64,
            Err(e) => return Ok(Some(format!("body file {p}: {e}"))),
        },
        (None, None) => return Ok(Some("message body empty".into())),
    };
    if prefix_len + actual != size {
        return Ok(Some(format!(
            "body has {} octets, expected {size}",
            prefix_len + actual
        )));
    }
    Ok(None)
}

pub(super) async fn body_paths(pool: &SqlitePool) -> Result<HashSet<String>> {
    let rows = sqlx::query("SELECT path FROM bodies WHERE path IS NOT NULL")
        .fetch_all(pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub(super) async fn body(
    pool: &SqlitePool,
    data_dir: &Path,
    body_id: &str,
    limit: Option<usize>,
) -> Result<Vec<u8>> {
    let row = sqlx::query("SELECT prefix, data, path FROM bodies WHERE id = ?")
        .bind(body_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| crate::StoreError::NotFound(format!("body {body_id}")))?;
    let mut out: Vec<u8> = row.try_get(0)?;
    let data: Option<Vec<u8>> = row.try_get(1)?;
    let path: Option<String> = row.try_get(2)?;
    match (data, path) {
        (Some(d), _) => out.extend_from_slice(&d),
        (None, Some(p)) => {
            let path = data_dir.join(p);
            let want = limit.map(|l| l.saturating_sub(out.len()));
            let bytes = tokio::task::spawn_blocking(move || read_file(&path, want))
                .await
                .map_err(|e| crate::StoreError::Invalid(format!("read task failed: {e}")))??;
            out.extend_from_slice(&bytes);
        }
        (None, None) => {
            return Err(crate::StoreError::Corrupt(format!(
                "body {body_id} has no content"
            )));
        }
    }
    if let Some(l) = limit {
        out.truncate(l);
    }
    Ok(out)
}

fn read_file(path: &Path, limit: Option<usize>) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    match limit {
        Some(n) => {
            file.take(n as u64).read_to_end(&mut out)?;
        }
        None => {
            let mut file = file;
            file.read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

pub(super) async fn mailbox_messages(
    pool: &SqlitePool,
    owner: &str,
) -> Result<Vec<MailboxMessage>> {
    let rows = sqlx::query(
        "SELECT m.id, mb.name, m.uid, m.size, m.received_at, m.queue_id FROM mailbox_messages m \
         JOIN mailboxes mb ON mb.id = m.mailbox_id WHERE mb.owner = ? ORDER BY m.id",
    )
    .bind(owner)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MailboxMessage {
                id: r.try_get(0)?,
                folder: r.try_get(1)?,
                uid: r.try_get(2)?,
                size: r.try_get::<i64, _>(3)? as u64,
                received_at: r.try_get(4)?,
                queue_id: r.try_get(5)?,
            })
        })
        .collect()
}

pub(super) async fn mailbox_read(
    pool: &SqlitePool,
    data_dir: &Path,
    owner: &str,
    id: i64,
    limit: Option<usize>,
) -> Result<Option<Vec<u8>>> {
    let row = sqlx::query(
        "SELECT m.prefix, m.body_id FROM mailbox_messages m JOIN mailboxes mb ON mb.id = m.mailbox_id \
         WHERE mb.owner = ? AND m.id = ?",
    )
    .bind(owner)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut out: Vec<u8> = row.try_get(0)?;
    let body_id: String = row.try_get(1)?;
    let rest = body(
        pool,
        data_dir,
        &body_id,
        limit.map(|l| l.saturating_sub(out.len())),
    )
    .await?;
    out.extend_from_slice(&rest);
    Ok(Some(out))
}
