//! Group commit: one task owns the only writing connection; every write is a job sent to it.
//! The task takes all jobs waiting at the moment it becomes free, runs each inside its own
//! savepoint of one transaction, commits once (SQLite in WAL mode with `synchronous=FULL`
//! fsyncs the WAL at commit), and only then answers every job. While one commit's fsync runs,
//! the next batch gathers, so N concurrent sessions share one fsync instead of paying N.

use super::ops::{self, WriteOp, WriteOut};
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
    let mut results = Vec::with_capacity(batch.len());
    let mut unlink = Vec::new();
    let outcome: Result<()> = async {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        for job in batch.iter_mut() {
            let op = std::mem::replace(&mut job.op, WriteOp::Taken);
            let mut sp = tx.begin().await?;
            let mut files = Vec::new();
            match ops::apply(&mut sp, op, &mut files).await {
                Ok(out) => {
                    sp.commit().await?;
                    unlink.extend(files);
                    results.push(Ok(out));
                }
                Err(e) => {
                    sp.rollback().await?;
                    results.push(Err(e));
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
