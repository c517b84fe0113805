//! Group commit: one task owns the only writing connection; every write is a job sent to it.
//! The task takes all jobs waiting at the moment it becomes free and applies them in one
//! transaction, commits once (SQLite in WAL mode with `synchronous=FULL` fsyncs the WAL at
//! commit), and only then answers every job. While one commit's fsync runs, the next batch
//! gathers, so N concurrent sessions share one fsync instead of paying N.
//!
//! Within the transaction, enqueues and delivery reports are applied in bulk (a few multi-row
//! statements for the whole batch), each group in a savepoint; should a group fail, it is
//! retried one job at a time so one bad job cannot fail its neighbours. Other jobs run one by
//! one, each in its own savepoint.

use super::ops::{self, WriteOp, WriteOut};
use crate::types::{DeliveryReport, NewMessage};
use crate::{Result, StoreError};
use sqlx::{Connection, SqliteConnection};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

/// Most jobs in one transaction; bounds the latency a job can add to its batch-mates.
const MAX_BATCH: usize = 512;

pub(crate) struct Job {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<WriteOut>>,
}

/// Runs until every sender is dropped.
pub(crate) async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    data_dir: PathBuf,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let results = run_batch(&mut conn, &mut batch, &data_dir).await;
        for (job, result) in batch.drain(..).zip(results) {
            // A caller that went away (session dropped) no longer needs the answer.
            let _ = job.reply.send(result);
        }
    }
    let _ = conn.close().await;
}

async fn run_batch(
    conn: &mut SqliteConnection,
    batch: &mut [Job],
    data_dir: &Path,
) -> Vec<Result<WriteOut>> {
    let mut results: Vec<Option<Result<WriteOut>>> = (0..batch.len()).map(|_| None).collect();
    let mut unlink = Vec::new();
    let outcome: Result<()> = async {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let mut enqueues: Vec<(usize, (NewMessage, Option<String>))> = Vec::new();
        let mut reports: Vec<(usize, DeliveryReport)> = Vec::new();
        for (i, job) in batch.iter_mut().enumerate() {
            match std::mem::replace(&mut job.op, WriteOp::Taken) {
                WriteOp::Enqueue { message, file } => enqueues.push((i, (*message, file))),
                WriteOp::Report(r) => reports.push((i, r)),
                op => {
                    let mut sp = tx.begin().await?;
                    let mut files = Vec::new();
                    let r = ops::apply(&mut sp, op, &mut files).await;
                    finish_savepoint(sp, r.is_ok()).await?;
                    if r.is_ok() {
                        unlink.extend(files);
                    }
                    results[i] = Some(r);
                }
            }
        }
        if !enqueues.is_empty() {
            let (idx, items): (Vec<usize>, Vec<_>) = enqueues.into_iter().unzip();
            let mut sp = tx.begin().await?;
            let bulk = ops::bulk_enqueue(&mut sp, &items).await;
            finish_savepoint(sp, bulk.is_ok()).await?;
            if bulk.is_ok() {
                for i in &idx {
                    results[*i] = Some(Ok(WriteOut::Unit));
                }
            } else {
                for (i, item) in idx.into_iter().zip(items) {
                    let mut sp = tx.begin().await?;
                    let r = ops::bulk_enqueue(&mut sp, std::slice::from_ref(&item)).await;
                    finish_savepoint(sp, r.is_ok()).await?;
                    results[i] = Some(r.map(|_| WriteOut::Unit));
                }
            }
        }
        if !reports.is_empty() {
            let (idx, items): (Vec<usize>, Vec<_>) = reports.into_iter().unzip();
            let mut sp = tx.begin().await?;
            let mut files = Vec::new();
            let bulk = ops::bulk_report(&mut sp, &items, &mut files).await;
            finish_savepoint(sp, bulk.is_ok()).await?;
            if bulk.is_ok() {
                unlink.extend(files);
                for i in &idx {
                    results[*i] = Some(Ok(WriteOut::Unit));
                }
            } else {
                for (i, item) in idx.into_iter().zip(items) {
                    let mut sp = tx.begin().await?;
                    let mut files = Vec::new();
                    let r =
                        ops::bulk_report(&mut sp, std::slice::from_ref(&item), &mut files).await;
                    finish_savepoint(sp, r.is_ok()).await?;
                    if r.is_ok() {
                        unlink.extend(files);
                    }
                    results[i] = Some(r.map(|_| WriteOut::Unit));
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            for rel in unlink {
                let path = data_dir.join(rel);
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove a body file no longer referenced");
                }
            }
            results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| {
                        Err(StoreError::Invalid("internal: job not applied".into()))
                    })
                })
                .collect()
        }
        Err(e) => {
            tracing::error!(error = %e, jobs = batch.len(), "group commit failed; the batch is rolled back");
            let msg = e.to_string();
            batch
                .iter()
                .map(|_| Err(StoreError::Invalid(format!("commit failed: {msg}"))))
                .collect()
        }
    }
}

async fn finish_savepoint(sp: sqlx::Transaction<'_, sqlx::Sqlite>, ok: bool) -> Result<()> {
    if ok {
        sp.commit().await?
    } else {
        sp.rollback().await?
    }
    Ok(())
}
