//! Group commit: one task owns the only writing connection; every write is a job sent to it.
//! The task takes all jobs waiting at the moment it becomes free and applies them in one
//! transaction, commits once (SQLite in WAL mode with `synchronous=FULL` fsyncs the WAL at
//! commit), and only then answers every job. While one commit's fsync runs, the next batch
//! gathers, so N concurrent sessions share one fsync instead of paying N.
//!
//! Within the transaction, enqueues and delivery reports are applied in bulk (a few multi-row
//! statements for the whole batch) and other jobs one by one, all without savepoints (each
//! statement is a round trip to SQLite's thread). Should anything fail, the transaction is
//! rolled back and the batch redone job by job, each in its own savepoint, so one bad job
//! cannot fail its neighbours.

use super::ops::{self, WriteOp, WriteOut};
use crate::types::{DeliveryReport, NewMessage};
use crate::{Result, StoreError};
use sqlx::{Connection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Most jobs in one transaction; bounds the latency a job can add to its batch-mates.
const MAX_BATCH: usize = 512;

pub(crate) struct Job {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<WriteOut>>,
}

/// Counts of the writer's work, for observability and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub commits: AtomicU64,
    pub jobs: AtomicU64,
}

/// Runs until every sender is dropped.
pub(crate) async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    data_dir: PathBuf,
    counters: Arc<Counters>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let results = run_batch(&mut conn, &mut batch, &data_dir).await;
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters
            .jobs
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for (job, result) in batch.drain(..).zip(results) {
            // A caller that went away (session dropped) no longer needs the answer.
            let _ = job.reply.send(result);
        }
    }
    let _ = conn.close().await;
}

/// The operations of one batch, grouped: bulk groups keep their jobs' positions.
struct Grouped {
    singles: Vec<(usize, WriteOp)>,
    enqueue_idx: Vec<usize>,
    enqueues: Vec<(NewMessage, Option<String>)>,
    report_idx: Vec<usize>,
    reports: Vec<DeliveryReport>,
}

fn group(batch: &mut [Job]) -> Grouped {
    let mut g = Grouped {
        singles: Vec::new(),
        enqueue_idx: Vec::new(),
        enqueues: Vec::new(),
        report_idx: Vec::new(),
        reports: Vec::new(),
    };
    for (i, job) in batch.iter_mut().enumerate() {
        match std::mem::replace(&mut job.op, WriteOp::Taken) {
            WriteOp::Enqueue { message, file } => {
                g.enqueue_idx.push(i);
                g.enqueues.push((*message, file));
            }
            WriteOp::Report(r) => {
                g.report_idx.push(i);
                g.reports.push(r);
            }
            op => g.singles.push((i, op)),
        }
    }
    g
}

type Results = Vec<Option<Result<WriteOut>>>;

async fn run_batch(
    conn: &mut SqliteConnection,
    batch: &mut [Job],
    data_dir: &Path,
) -> Vec<Result<WriteOut>> {
    let g = group(batch);
    let mut unlink = Vec::new();
    // Fast path: everything in one transaction without savepoints. Any error rolls it back and
    // the batch is redone job by job, each in a savepoint.
    let mut results = match fast(conn, &g, &mut unlink).await {
        Ok(results) => Ok(results),
        Err(e) => {
            tracing::debug!(error = %e, "batch failed as a whole; applying its jobs one by one");
            unlink.clear();
            careful(conn, &g, &mut unlink).await
        }
    };
    if let Ok(r) = &mut results {
        for rel in unlink {
            let path = data_dir.join(rel);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a body file no longer referenced");
            }
        }
        return std::mem::take(r)
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(StoreError::Invalid("internal: job not applied".into())))
            })
            .collect();
    }
    let msg = results.err().map(|e| e.to_string()).unwrap_or_default();
    tracing::error!(error = %msg, jobs = batch.len(), "group commit failed; the batch is rolled back");
    batch
        .iter()
        .map(|_| Err(StoreError::Invalid(format!("commit failed: {msg}"))))
        .collect()
}

async fn fast(
    conn: &mut SqliteConnection,
    g: &Grouped,
    unlink: &mut Vec<PathBuf>,
) -> Result<Results> {
    let n = g.singles.len() + g.enqueues.len() + g.reports.len();
    let mut results: Results = (0..n).map(|_| None).collect();
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for (i, op) in &g.singles {
        results[*i] = Some(Ok(ops::apply(&mut tx, op, unlink).await?));
    }
    if !g.enqueues.is_empty() {
        ops::bulk_enqueue(&mut tx, &g.enqueues).await?;
    }
    if !g.reports.is_empty() {
        ops::bulk_report(&mut tx, &g.reports, unlink).await?;
    }
    tx.commit().await?;
    for i in g.enqueue_idx.iter().chain(&g.report_idx) {
        results[*i] = Some(Ok(WriteOut::Unit));
    }
    Ok(results)
}

async fn careful(
    conn: &mut SqliteConnection,
    g: &Grouped,
    unlink: &mut Vec<PathBuf>,
) -> Result<Results> {
    let n = g.singles.len() + g.enqueues.len() + g.reports.len();
    let mut results: Results = (0..n).map(|_| None).collect();
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for (i, op) in &g.singles {
        let mut sp = tx.begin().await?;
        let mut files = Vec::new();
        let r = ops::apply(&mut sp, op, &mut files).await;
        finish_savepoint(sp, r.is_ok()).await?;
        if r.is_ok() {
            unlink.extend(files);
        }
        results[*i] = Some(r);
    }
    for (i, item) in g.enqueue_idx.iter().zip(&g.enqueues) {
        let mut sp = tx.begin().await?;
        let r = ops::bulk_enqueue(&mut sp, std::slice::from_ref(item)).await;
        finish_savepoint(sp, r.is_ok()).await?;
        results[*i] = Some(r.map(|_| WriteOut::Unit));
    }
    for (i, item) in g.report_idx.iter().zip(&g.reports) {
        let mut sp = tx.begin().await?;
        let mut files = Vec::new();
        let r = ops::bulk_report(&mut sp, std::slice::from_ref(item), &mut files).await;
        finish_savepoint(sp, r.is_ok()).await?;
        if r.is_ok() {
            unlink.extend(files);
        }
        results[*i] = Some(r.map(|_| WriteOut::Unit));
    }
    tx.commit().await?;
    Ok(results)
}

async fn finish_savepoint(sp: sqlx::Transaction<'_, sqlx::Sqlite>, ok: bool) -> Result<()> {
    if ok {
        sp.commit().await?
    } else {
        sp.rollback().await?
    }
    Ok(())
}
