//! The embedded backend: SQLite in WAL mode with `synchronous=FULL`, through sqlx.
//!
//! Layout under the data directory: `postrider.db` (+ `-wal`, `-shm`), `bodies/` for message
//! bodies too large to keep inline, `spool/` for messages still arriving.
//!
//! Reads use a small pool of connections; all writes go through one writer task (see
//! `writer`) so concurrent sessions share commits.

mod ops;
mod read;
mod writer;

use crate::types::*;
use crate::{Result, Store, StoreError};
use async_trait::async_trait;
use ops::{WriteOp, WriteOut};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    pool: SqlitePool,
    writer: mpsc::Sender<writer::Job>,
    data_dir: PathBuf,
    counters: Arc<writer::Counters>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store under `data_dir` and applies schema migrations.
    /// Must be called inside a tokio runtime.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore> {
        for sub in ["bodies", "spool"] {
            std::fs::create_dir_all(data_dir.join(sub))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("postrider.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is fsync'd at every commit, so a committed transaction survives
            // power loss. This is what makes "250 after enqueue" a durable promise.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let conn = options.connect().await?;
        let (tx, rx) = mpsc::channel(4096);
        let counters = Arc::new(writer::Counters::default());
        tokio::spawn(writer::run(
            conn,
            rx,
            data_dir.to_path_buf(),
            counters.clone(),
        ));
        Ok(SqliteStore {
            pool,
            writer: tx,
            data_dir: data_dir.to_path_buf(),
            counters,
        })
    }

    /// Transactions committed and write jobs applied since the store was opened. Jobs per
    /// commit above 1 is group commit at work.
    pub fn write_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.counters.commits.load(Ordering::Relaxed),
            self.counters.jobs.load(Ordering::Relaxed),
        )
    }

    /// The directory where sessions spool large incoming messages.
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOut> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Job { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn write_unit(&self, op: WriteOp) -> Result<()> {
        self.write(op).await.map(|_| ())
    }

    async fn write_bool(&self, op: WriteOp) -> Result<bool> {
        match self.write(op).await? {
            WriteOut::Bool(b) => Ok(b),
            WriteOut::Unit | WriteOut::Id(_) => Ok(true),
        }
    }

    async fn write_id(&self, op: WriteOp) -> Result<i64> {
        match self.write(op).await? {
            WriteOut::Id(id) => Ok(id),
            _ => Err(StoreError::Invalid("the write returned no id".into())),
        }
    }

    /// Moves a spooled body file into `bodies/`, fsyncing the file and the directory first so
    /// the rename is durable before the database row that points at it is committed.
    async fn settle_file(&self, id: &str, spooled: &Path) -> Result<String> {
        let rel = format!("bodies/{id}");
        let dest = self.data_dir.join(&rel);
        let src = spooled.to_path_buf();
        let dir = self.data_dir.join("bodies");
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&src)?.sync_all()?;
            std::fs::rename(&src, &dest)?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("file task failed: {e}")))??;
        Ok(rel)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_domain(&self, name: &str, catch_all: Option<&str>) -> Result<()> {
        self.write_unit(WriteOp::AddDomain {
            name: name.into(),
            catch_all: catch_all.map(Into::into),
        })
        .await
    }

    async fn set_catch_all(&self, name: &str, target: Option<&str>) -> Result<()> {
        self.write_unit(WriteOp::SetCatchAll {
            name: name.into(),
            target: target.map(Into::into),
        })
        .await
    }

    async fn remove_domain(&self, name: &str) -> Result<bool> {
        self.write_bool(WriteOp::RemoveDomain { name: name.into() })
            .await
    }

    async fn get_domain(&self, name: &str) -> Result<Option<DomainRecord>> {
        read::domain(&self.pool, name).await
    }

    async fn list_domains(&self) -> Result<Vec<DomainRecord>> {
        read::domains(&self.pool).await
    }

    async fn add_account(&self, address: &str, password_hash: &str) -> Result<()> {
        self.write_unit(WriteOp::AddAccount {
            address: address.into(),
            hash: password_hash.into(),
        })
        .await
    }

    async fn set_password(&self, address: &str, password_hash: &str) -> Result<bool> {
        self.write_bool(WriteOp::SetPassword {
            address: address.into(),
            hash: password_hash.into(),
        })
        .await
    }

    async fn remove_account(&self, address: &str) -> Result<bool> {
        self.write_bool(WriteOp::RemoveAccount {
            address: address.into(),
        })
        .await
    }

    async fn add_credential(
        &self,
        account: &str,
        label: &str,
        secret_hash: &str,
        expires_at: Option<i64>,
    ) -> Result<i64> {
        self.write_id(WriteOp::AddCredential {
            account: account.into(),
            label: label.into(),
            hash: secret_hash.into(),
            expires_at,
        })
        .await
    }

    async fn credentials(&self, account: &str) -> Result<Vec<CredentialRecord>> {
        read::credentials(&self.pool, account).await
    }

    async fn revoke_credential(&self, account: &str, label: &str) -> Result<bool> {
        self.write_bool(WriteOp::RevokeCredential {
            account: account.into(),
            label: label.into(),
        })
        .await
    }

    async fn rotate_credential(
        &self,
        account: &str,
        label: &str,
        secret_hash: &str,
        old_expire_at: i64,
    ) -> Result<i64> {
        self.write_id(WriteOp::RotateCredential {
            account: account.into(),
            label: label.into(),
            hash: secret_hash.into(),
            old_expire_at,
        })
        .await
    }

    async fn credential_used(&self, id: i64, at_ms: i64, ip: &str) -> Result<()> {
        self.write_unit(WriteOp::CredentialUsed {
            id,
            at: at_ms,
            ip: ip.into(),
        })
        .await
    }

    async fn suspend_credential(
        &self,
        account: &str,
        label: &str,
        reason: Option<&str>,
    ) -> Result<bool> {
        self.write_bool(WriteOp::SuspendCredential {
            account: account.into(),
            label: label.into(),
            reason: reason.map(str::to_string),
        })
        .await
    }

    async fn count_activity(&self, id: i64, hour: i64, n: u32, domains: u32) -> Result<()> {
        self.write_unit(WriteOp::CountActivity {
            id,
            hour,
            n,
            domains,
        })
        .await
    }

    async fn activity(
        &self,
        id: i64,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<(i64, u32, u32, u32)>> {
        read::activity(&self.pool, id, from_hour, to_hour).await
    }

    async fn count_bounces(&self, account: &str, label: &str, hour: i64, n: u32) -> Result<()> {
        self.write_unit(WriteOp::CountBounces {
            account: account.into(),
            label: label.into(),
            hour,
            n,
        })
        .await
    }

    async fn note_network(&self, id: i64, network: &str) -> Result<bool> {
        self.write_bool(WriteOp::NoteNetwork {
            id,
            network: network.into(),
        })
        .await
    }

    async fn network_count(&self, id: i64) -> Result<u64> {
        read::network_count(&self.pool, id).await
    }

    async fn add_dkim_key(&self, key: DkimKeyRecord) -> Result<()> {
        self.write_unit(WriteOp::AddDkimKey(key)).await
    }

    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKeyRecord>> {
        read::dkim_keys(&self.pool, domain).await
    }

    async fn add_ban(&self, kind: &str, value: &str, until_ms: i64, reason: &str) -> Result<()> {
        self.write_unit(WriteOp::AddBan {
            kind: kind.into(),
            value: value.into(),
            until: until_ms,
            reason: reason.into(),
        })
        .await
    }

    async fn remove_ban(&self, kind: &str, value: &str) -> Result<bool> {
        self.write_bool(WriteOp::RemoveBan {
            kind: kind.into(),
            value: value.into(),
        })
        .await
    }

    async fn bans(&self, now_ms: i64) -> Result<Vec<BanRecord>> {
        read::bans(&self.pool, now_ms).await
    }

    async fn get_account(&self, address: &str) -> Result<Option<AccountRecord>> {
        read::account(&self.pool, address).await
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>> {
        read::accounts(&self.pool).await
    }

    async fn add_alias(&self, alias: &str, target: &str) -> Result<()> {
        self.write_unit(WriteOp::AddAlias {
            alias: alias.into(),
            target: target.into(),
        })
        .await
    }

    async fn remove_alias(&self, alias: &str, target: &str) -> Result<bool> {
        self.write_bool(WriteOp::RemoveAlias {
            alias: alias.into(),
            target: target.into(),
        })
        .await
    }

    async fn list_aliases(&self) -> Result<Vec<AliasRecord>> {
        read::aliases(&self.pool).await
    }

    async fn alias_targets(&self, alias: &str) -> Result<Vec<String>> {
        read::alias_targets(&self.pool, alias).await
    }

    async fn enqueue(&self, message: NewMessage) -> Result<()> {
        let file = match &message.body {
            NewBody::File { path, .. } => Some(self.settle_file(&message.id, path).await?),
            NewBody::Memory(_) => None,
        };
        let settled = file.clone();
        let result = self
            .write_unit(WriteOp::Enqueue {
                message: Box::new(message),
                file,
            })
            .await;
        if let (Err(_), Some(rel)) = (&result, settled) {
            let _ = std::fs::remove_file(self.data_dir.join(rel));
        }
        result
    }

    async fn due_messages(
        &self,
        now_ms: i64,
        limit: usize,
        exclude: &[String],
    ) -> Result<Vec<QueuedMessage>> {
        read::due(&self.pool, now_ms, limit, exclude).await
    }

    async fn record_deliveries(&self, reports: Vec<DeliveryReport>) -> Result<()> {
        // One job per report: each is atomic on its own, and all share the commit.
        let mut waiting = Vec::with_capacity(reports.len());
        for report in reports {
            let (reply, rx) = oneshot::channel();
            self.writer
                .send(writer::Job {
                    op: WriteOp::Report(report),
                    reply,
                })
                .await
                .map_err(|_| StoreError::Closed)?;
            waiting.push(rx);
        }
        let mut first_err = None;
        for rx in waiting {
            if let Err(e) = rx.await.map_err(|_| StoreError::Closed).and_then(|r| r) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn failed_messages(&self, limit: usize) -> Result<Vec<QueuedMessage>> {
        read::failed(&self.pool, limit).await
    }

    async fn queue_list(&self) -> Result<Vec<QueuedMessage>> {
        read::queue_all(&self.pool).await
    }

    async fn queue_get(&self, id: &str) -> Result<Option<QueuedMessage>> {
        read::queue_one(&self.pool, id).await
    }

    async fn queue_delete(&self, id: &str) -> Result<bool> {
        self.write_bool(WriteOp::QueueDelete { id: id.into() })
            .await
    }

    async fn queue_hold(&self, id: &str) -> Result<bool> {
        self.write_bool(WriteOp::QueueHold { id: id.into() }).await
    }

    async fn queue_release(&self, id: &str) -> Result<bool> {
        self.write_bool(WriteOp::QueueRelease { id: id.into() })
            .await
    }

    async fn queue_retry(&self, id: &str) -> Result<bool> {
        self.write_bool(WriteOp::QueueRetry { id: id.into() }).await
    }

    async fn queue_bounce(&self, id: &str) -> Result<bool> {
        self.write_bool(WriteOp::QueueBounce { id: id.into() })
            .await
    }

    async fn queue_summary(&self) -> Result<Vec<DomainSummary>> {
        read::summary(&self.pool, ops::now_ms()).await
    }

    async fn read_body(&self, body_id: &str, limit: Option<usize>) -> Result<Vec<u8>> {
        read::body(&self.pool, &self.data_dir, body_id, limit).await
    }

    async fn mailbox_messages(&self, owner: &str) -> Result<Vec<MailboxMessage>> {
        read::mailbox_messages(&self.pool, owner).await
    }

    async fn mailbox_read(
        &self,
        owner: &str,
        id: i64,
        limit: Option<usize>,
    ) -> Result<Option<Vec<u8>>> {
        read::mailbox_read(&self.pool, &self.data_dir, owner, id, limit).await
    }

    async fn recover(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        // Spool files belong to sessions that ended with the last process: never acknowledged.
        report.orphan_files_removed += remove_all_files(&self.data_dir.join("spool"));
        // Body files whose enqueue never committed.
        let referenced = read::body_paths(&self.pool).await?;
        if let Ok(entries) = std::fs::read_dir(self.data_dir.join("bodies")) {
            for entry in entries.flatten() {
                let rel = format!("bodies/{}", entry.file_name().to_string_lossy());
                if !referenced.contains(&rel) && std::fs::remove_file(entry.path()).is_ok() {
                    report.orphan_files_removed += 1;
                }
            }
        }
        for m in read::queue_all(&self.pool).await? {
            let reason = match &m.quarantined {
                Some(r) => Some(r.clone()),
                None => read::check_entry(&self.pool, &self.data_dir, &m).await?,
            };
            match reason {
                Some(reason) => {
                    if m.quarantined.is_none() {
                        self.write_unit(WriteOp::Quarantine {
                            id: m.id.clone(),
                            reason: reason.clone(),
                        })
                        .await?;
                    }
                    report.quarantined.push((m.id, reason));
                }
                None => {
                    if m.recipients.iter().any(|r| !r.state.is_final()) {
                        report.pending += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}

fn remove_all_files(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().is_file() && std::fs::remove_file(entry.path()).is_ok() {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests;
