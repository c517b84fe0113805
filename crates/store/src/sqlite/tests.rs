use super::*;
use crate::new_queue_id;
use std::sync::Arc;

fn message(body: NewBody, owners: &[&str]) -> NewMessage {
    NewMessage {
        id: new_queue_id(),
        envelope: Envelope {
            sender: "a@remote.test".into(),
            received_at: 1,
            ..Default::default()
        },
        prefix: b"Received: test\r\n".to_vec(),
        body,
        recipients: owners
            .iter()
            .map(|o| NewRecipient {
                address: o.to_string(),
                dsn: RecipientDsn {
                    notify: vec!["FAILURE".into()],
                    orcpt: Some(format!("rfc822;{o}")),
                },
                destination: Destination::Mailbox(o.to_string()),
            })
            .collect(),
    }
}

fn delivered(m: &QueuedMessage, idx: u32, owner: &str) -> DeliveryReport {
    DeliveryReport {
        queue_id: m.id.clone(),
        idx,
        outcome: Outcome::Delivered {
            owner: owner.into(),
            prefix: b"Return-Path: <a@remote.test>\r\n".to_vec(),
        },
    }
}

#[tokio::test]
async fn enqueued_message_is_due_and_delivery_stores_it_once_with_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store
        .enqueue(message(
            NewBody::Memory(b"Subject: hi\r\n\r\nbody\r\n".to_vec()),
            &["u@x.test", "v@x.test"],
        ))
        .await
        .unwrap();
    let due = store.due_messages(i64::MAX, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let m = &due[0];
    assert_eq!(m.recipients.len(), 2);
    assert_eq!(
        m.recipients[0].dsn.orcpt.as_deref(),
        Some("rfc822;u@x.test")
    );
    store
        .record_deliveries(vec![
            delivered(m, 0, "u@x.test"),
            delivered(m, 1, "v@x.test"),
        ])
        .await
        .unwrap();
    assert!(
        store.queue_list().await.unwrap().is_empty(),
        "all final: the entry is gone"
    );
    let list = store.mailbox_messages("u@x.test").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].uid, 1);
    let raw = store
        .mailbox_read("u@x.test", list[0].id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        raw,
        b"Return-Path: <a@remote.test>\r\nReceived: test\r\nSubject: hi\r\n\r\nbody\r\n"
    );
    assert_eq!(list[0].size as usize, raw.len());
    // Another owner cannot read it by id.
    assert!(
        store
            .mailbox_read("v@x.test", list[0].id, None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_deferred_recipient_stays_queued_until_its_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store
        .enqueue(message(NewBody::Memory(b"x\r\n".to_vec()), &["u@x.test"]))
        .await
        .unwrap();
    let m = store.due_messages(i64::MAX, 10).await.unwrap().remove(0);
    let report = DeliveryReport {
        queue_id: m.id.clone(),
        idx: 0,
        outcome: Outcome::Deferred {
            error: "busy".into(),
            next_attempt: 5_000,
        },
    };
    store.record_deliveries(vec![report]).await.unwrap();
    assert!(store.due_messages(4_999, 10).await.unwrap().is_empty());
    let again = store.due_messages(5_000, 10).await.unwrap();
    assert_eq!(again[0].recipients[0].state, RecipientState::Deferred);
    assert_eq!(again[0].recipients[0].attempts, 1);
    assert_eq!(again[0].recipients[0].last_error.as_deref(), Some("busy"));
}

#[tokio::test]
async fn the_queue_survives_closing_and_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let m = message(NewBody::Memory(b"x\r\n".to_vec()), &["u@x.test"]);
        let id = m.id.clone();
        store.enqueue(m).await.unwrap();
        id
    };
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let report = store.recover().await.unwrap();
    assert_eq!(report.pending, 1);
    assert!(store.queue_get(&id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_file_body_is_moved_into_the_store_and_removed_with_its_last_reference() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let spooled = store.spool_dir().join("incoming");
    let content = b"Subject: big\r\n\r\n".repeat(1000);
    std::fs::write(&spooled, &content).unwrap();
    let m = message(
        NewBody::File {
            path: spooled.clone(),
            size: content.len() as u64,
        },
        &["u@x.test"],
    );
    let id = m.id.clone();
    store.enqueue(m).await.unwrap();
    assert!(!spooled.exists());
    let q = store.queue_get(&id).await.unwrap().unwrap();
    let body = store.read_body(&q.body_id, None).await.unwrap();
    assert_eq!(&body[..16], b"Received: test\r\n");
    assert_eq!(&body[16..], &content[..]);
    assert_eq!(
        store.read_body(&q.body_id, Some(20)).await.unwrap(),
        &body[..20]
    );
    assert!(store.queue_delete(&id).await.unwrap());
    assert!(
        !dir.path().join("bodies").join(&id).exists(),
        "the body file goes with its last reference"
    );
    assert!(!store.queue_delete(&id).await.unwrap());
}

#[tokio::test]
async fn recovery_quarantines_an_unreadable_entry_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let good = message(NewBody::Memory(b"x\r\n".to_vec()), &["u@x.test"]);
    let bad = message(NewBody::Memory(b"y\r\n".to_vec()), &["u@x.test"]);
    let (good_id, bad_id) = (good.id.clone(), bad.id.clone());
    store.enqueue(good).await.unwrap();
    store.enqueue(bad).await.unwrap();
    sqlx::query("UPDATE queue SET envelope = '{broken' WHERE id = ?")
        .bind(&bad_id)
        .execute(&store.pool)
        .await
        .unwrap();
    std::fs::write(dir.path().join("spool").join("leftover"), b"partial").unwrap();
    std::fs::write(dir.path().join("bodies").join("ORPHAN"), b"never committed").unwrap();
    let report = store.recover().await.unwrap();
    assert_eq!(report.pending, 1);
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(report.quarantined[0].0, bad_id);
    assert_eq!(report.orphan_files_removed, 2);
    let due: Vec<String> = store
        .due_messages(i64::MAX, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(due, vec![good_id]);
    let listed = store.queue_get(&bad_id).await.unwrap().unwrap();
    assert!(listed.quarantined.is_some());
}

#[tokio::test]
async fn many_concurrent_enqueues_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move {
                s.enqueue(message(NewBody::Memory(vec![b'x'; 5000]), &["u@x.test"]))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.queue_list().await.unwrap().len(), 200);
    // Group commit: the 200 writes shared commits instead of paying one fsync each.
    let (commits, jobs) = store.write_stats();
    assert_eq!(jobs, 200);
    assert!(
        commits < 50,
        "200 concurrent enqueues took {commits} commits"
    );
}

#[tokio::test]
async fn directory_records_report_duplicates_and_missing_domains() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store.add_domain("x.test", None).await.unwrap();
    assert!(matches!(
        store.add_domain("x.test", None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.add_account("a@nope.test", "h").await,
        Err(StoreError::NotFound(_))
    ));
    store.add_account("a@x.test", "h1").await.unwrap();
    assert!(matches!(
        store.add_account("a@x.test", "h").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(store.set_password("a@x.test", "h2").await.unwrap());
    assert_eq!(
        store
            .get_account("a@x.test")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "h2"
    );
    store.add_alias("sales@x.test", "a@x.test").await.unwrap();
    assert_eq!(
        store.alias_targets("sales@x.test").await.unwrap(),
        vec!["a@x.test"]
    );
    store
        .set_catch_all("x.test", Some("a@x.test"))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_domain("x.test")
            .await
            .unwrap()
            .unwrap()
            .catch_all
            .as_deref(),
        Some("a@x.test")
    );
    assert!(store.remove_domain("x.test").await.unwrap());
    assert!(
        store.get_account("a@x.test").await.unwrap().is_none(),
        "accounts go with their domain"
    );
}

#[tokio::test]
async fn a_failing_enqueue_does_not_fail_the_others_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let first = message(NewBody::Memory(b"x\r\n".to_vec()), &["u@x.test"]);
    let dup_id = first.id.clone();
    store.enqueue(first).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = store.clone();
        let mut m = message(NewBody::Memory(b"y\r\n".to_vec()), &["u@x.test"]);
        if i == 10 {
            m.id = dup_id.clone();
        }
        tasks.push(tokio::spawn(async move { s.enqueue(m).await }));
    }
    let mut failed = 0;
    for t in tasks {
        if t.await.unwrap().is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 1, "only the duplicate id fails");
    assert_eq!(store.queue_list().await.unwrap().len(), 20);
}

#[tokio::test]
async fn a_report_for_a_deleted_entry_or_a_final_recipient_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store
        .enqueue(message(NewBody::Memory(b"x\r\n".to_vec()), &["u@x.test"]))
        .await
        .unwrap();
    let m = store.due_messages(i64::MAX, 10).await.unwrap().remove(0);
    store
        .record_deliveries(vec![delivered(&m, 0, "u@x.test")])
        .await
        .unwrap();
    // The same report again (a retried round) stores no second copy.
    store
        .record_deliveries(vec![delivered(&m, 0, "u@x.test")])
        .await
        .unwrap();
    assert_eq!(store.mailbox_messages("u@x.test").await.unwrap().len(), 1);
    store
        .enqueue(message(NewBody::Memory(b"y\r\n".to_vec()), &["u@x.test"]))
        .await
        .unwrap();
    let m2 = store.due_messages(i64::MAX, 10).await.unwrap().remove(0);
    assert!(store.queue_delete(&m2.id).await.unwrap());
    store
        .record_deliveries(vec![delivered(&m2, 0, "u@x.test")])
        .await
        .unwrap();
    assert_eq!(store.mailbox_messages("u@x.test").await.unwrap().len(), 1);
    // The delivered body stays while its mailbox copy exists; the deleted one is gone.
    let bodies: i64 = sqlx::query_scalar("SELECT count(*) FROM bodies")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(bodies, 1);
}
