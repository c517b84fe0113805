use super::*;
use crate::new_queue_id;
use std::sync::Arc;

fn message(body: NewBody, owners: &[&str]) -> NewMessage {
    NewMessage {
        id: new_queue_id(),
        lane: "transactional".into(),
        envelope: Envelope {
            sender: "a@remote.test".into(),
            received_at: 1,
            ..Default::default()
        },
        prefix: b"Received: test\r\n".to_vec(),
        held: false,
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
    let due = store.due_messages(i64::MAX, 10, &[]).await.unwrap();
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
async fn due_messages_skips_the_ones_the_caller_is_working_on_and_reads_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    for _ in 0..5 {
        store
            .enqueue(message(NewBody::Memory(b"x\r\n".to_vec()), &["u@x.test"]))
            .await
            .unwrap();
    }
    let all: Vec<String> = store
        .due_messages(i64::MAX, 10, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(all.len(), 5);
    // With the two oldest excluded, a window of two gives the next two.
    let next: Vec<String> = store
        .due_messages(i64::MAX, 2, &all[..2])
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(next, all[2..4].to_vec());
    assert!(
        store
            .due_messages(i64::MAX, 10, &all)
            .await
            .unwrap()
            .is_empty()
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
    let m = store
        .due_messages(i64::MAX, 10, &[])
        .await
        .unwrap()
        .remove(0);
    let report = DeliveryReport {
        queue_id: m.id.clone(),
        idx: 0,
        outcome: Outcome::Deferred {
            error: "busy".into(),
            next_attempt: 5_000,
            delay_notified: false,
        },
    };
    store.record_deliveries(vec![report]).await.unwrap();
    assert!(store.due_messages(4_999, 10, &[]).await.unwrap().is_empty());
    let again = store.due_messages(5_000, 10, &[]).await.unwrap();
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
        .due_messages(i64::MAX, 10, &[])
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
    let m = store
        .due_messages(i64::MAX, 10, &[])
        .await
        .unwrap()
        .remove(0);
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
    let m2 = store
        .due_messages(i64::MAX, 10, &[])
        .await
        .unwrap()
        .remove(0);
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

/// One remote recipient per message, for the queue administration tests.
fn remote_message(domain: &str) -> NewMessage {
    let mut m = message(NewBody::Memory(b"x\r\n".to_vec()), &[]);
    m.recipients.push(NewRecipient {
        address: format!("r@{domain}"),
        dsn: RecipientDsn::default(),
        destination: Destination::Remote(domain.into()),
    });
    m
}

fn deferred(id: &str, idx: u32, next_attempt: i64) -> DeliveryReport {
    DeliveryReport {
        queue_id: id.into(),
        idx,
        outcome: Outcome::Deferred {
            error: "4.4.1 connection refused".into(),
            next_attempt,
            delay_notified: false,
        },
    }
}

#[tokio::test]
async fn a_held_entry_is_neither_due_nor_bounced_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let m = message(
        NewBody::Memory(b"x\r\n".to_vec()),
        &["u@x.test", "v@x.test"],
    );
    let id = m.id.clone();
    store.enqueue(m).await.unwrap();
    let fresh = store.queue_get(&id).await.unwrap().unwrap();
    assert!(!fresh.held() && fresh.lane == "transactional");

    assert!(store.queue_hold(&id).await.unwrap());
    let held = store.queue_get(&id).await.unwrap().unwrap();
    let since = held.held_at.expect("held");
    assert!(
        store
            .due_messages(i64::MAX, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    // Holding again keeps the first time.
    assert!(store.queue_hold(&id).await.unwrap());
    assert_eq!(
        store.queue_get(&id).await.unwrap().unwrap().held_at,
        Some(since)
    );
    // A failed recipient of a held entry waits for the release before its bounce.
    store
        .record_deliveries(vec![DeliveryReport {
            queue_id: id.clone(),
            idx: 1,
            outcome: Outcome::Failed {
                error: "5.1.1 no such user".into(),
            },
        }])
        .await
        .unwrap();
    assert!(store.failed_messages(10).await.unwrap().is_empty());

    assert!(store.queue_release(&id).await.unwrap());
    assert!(
        store.queue_release(&id).await.unwrap(),
        "releasing twice is fine"
    );
    assert!(!store.queue_get(&id).await.unwrap().unwrap().held());
    assert_eq!(
        store.due_messages(i64::MAX, 10, &[]).await.unwrap().len(),
        1
    );
    assert_eq!(store.failed_messages(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn retry_makes_pending_recipients_due_now_and_keeps_a_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let m = remote_message("slow.test");
    let id = m.id.clone();
    store.enqueue(m).await.unwrap();
    let far = ops::now_ms() + 3_600_000;
    store
        .record_deliveries(vec![deferred(&id, 0, far)])
        .await
        .unwrap();
    let now = ops::now_ms();
    assert!(store.due_messages(now, 10, &[]).await.unwrap().is_empty());
    assert!(store.queue_retry(&id).await.unwrap());
    let due = store.due_messages(ops::now_ms(), 10, &[]).await.unwrap();
    assert_eq!(due.len(), 1);
    let r = &due[0].recipients[0];
    assert!(r.next_attempt >= now && r.next_attempt < far, "{r:?}");
    assert_eq!(
        (r.state, r.attempts),
        (RecipientState::Deferred, 1),
        "attempts and state are kept"
    );

    store.queue_hold(&id).await.unwrap();
    assert!(store.queue_retry(&id).await.unwrap());
    assert!(store.queue_get(&id).await.unwrap().unwrap().held());
    assert!(
        store
            .due_messages(i64::MAX, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn bounce_fails_every_pending_recipient_and_leaves_delivered_ones_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let mut m = remote_message("slow.test");
    m.recipients.push(NewRecipient {
        address: "u@x.test".into(),
        dsn: RecipientDsn::default(),
        destination: Destination::Mailbox("u@x.test".into()),
    });
    let id = m.id.clone();
    store.enqueue(m).await.unwrap();
    let queued = store.queue_get(&id).await.unwrap().unwrap();
    store
        .record_deliveries(vec![
            deferred(&id, 0, i64::MAX / 2),
            delivered(&queued, 1, "u@x.test"),
        ])
        .await
        .unwrap();
    assert!(store.queue_bounce(&id).await.unwrap());
    let after = store.queue_get(&id).await.unwrap().unwrap();
    assert_eq!(after.recipients[0].state, RecipientState::Failed);
    assert_eq!(
        after.recipients[0].last_error.as_deref(),
        Some(ADMIN_BOUNCE_ERROR)
    );
    assert_eq!(after.recipients[1].state, RecipientState::Delivered);
    let failed = store.failed_messages(10).await.unwrap();
    assert_eq!(failed.len(), 1);
    // Once the bounce is sent, the entry is complete and leaves the queue.
    store
        .record_deliveries(vec![DeliveryReport {
            queue_id: id.clone(),
            idx: 0,
            outcome: Outcome::Bounced,
        }])
        .await
        .unwrap();
    assert!(store.queue_get(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn admin_actions_on_an_absent_entry_return_false() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let id = new_queue_id();
    assert!(!store.queue_hold(&id).await.unwrap());
    assert!(!store.queue_release(&id).await.unwrap());
    assert!(!store.queue_retry(&id).await.unwrap());
    assert!(!store.queue_bounce(&id).await.unwrap());
}

#[tokio::test]
async fn the_summary_counts_pending_recipients_per_destination_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let mut ids = Vec::new();
    for domain in ["a.test", "b.test", "b.test", "b.test"] {
        let m = remote_message(domain);
        ids.push(m.id.clone());
        store.enqueue(m).await.unwrap();
    }
    store
        .enqueue(message(
            NewBody::Memory(b"x\r\n".to_vec()),
            &["u@x.test", "v@x.test"],
        ))
        .await
        .unwrap();
    // One b.test message arrived 30 minutes ago, another 2 days ago; a failed one is not pending.
    let minutes_ago = |m: i64| ops::now_ms() - m * 60_000;
    for (id, at) in [(&ids[1], minutes_ago(30)), (&ids[2], minutes_ago(2 * 1440))] {
        sqlx::query("UPDATE queue SET created_at = ? WHERE id = ?")
            .bind(at)
            .bind(id)
            .execute(&store.pool)
            .await
            .unwrap();
    }
    store
        .record_deliveries(vec![DeliveryReport {
            queue_id: ids[0].clone(),
            idx: 0,
            outcome: Outcome::Failed {
                error: "5.1.1 no".into(),
            },
        }])
        .await
        .unwrap();
    let summary = store.queue_summary().await.unwrap();
    let names: Vec<&str> = summary.iter().map(|d| d.domain.as_str()).collect();
    assert_eq!(names, ["b.test", LOCAL_DESTINATION]);
    assert_eq!(summary[0].total, 3);
    assert_eq!(summary[0].by_age, [1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    assert_eq!(summary[1].total, 2);
    assert_eq!(summary[1].by_age[0], 2);
}

#[test]
fn ages_fall_into_the_buckets_of_qshape() {
    let min = 60_000;
    assert_eq!(DomainSummary::bucket(-5), 0);
    assert_eq!(DomainSummary::bucket(5 * min - 1), 0);
    assert_eq!(DomainSummary::bucket(5 * min), 1);
    assert_eq!(DomainSummary::bucket(39 * min), 3);
    assert_eq!(DomainSummary::bucket(1279 * min), 8);
    assert_eq!(DomainSummary::bucket(1280 * min), 9);
    assert_eq!(DomainSummary::bucket(i64::MAX), 9);
}

#[tokio::test]
async fn a_version_1_database_is_migrated_with_its_queue_entries_kept_and_not_held() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/0001_initial.sql"),
        v1.path().join("0001_initial.sql"),
    )
    .unwrap();
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("postrider.db"))
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(v1.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO bodies (id, prefix, data, size) VALUES ('B', x'', x'0d0a', 2);\
             INSERT INTO queue (id, body_id, envelope, created_at) VALUES ('OLD', 'B', '{\"sender\":\"a@b.test\",\"received_at\":1,\"client_ip\":\"\",\"helo\":\"\",\"listener\":\"mx\"}', 1);\
             INSERT INTO queue_recipients (queue_id, idx, address, dsn, destination, state, next_attempt) \
             VALUES ('OLD', 0, 'u@x.test', '{}', '{\"mailbox\":\"u@x.test\"}', 'queued', 0);",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let m = store.queue_get("OLD").await.unwrap().unwrap();
    assert_eq!((m.held_at, m.lane.as_str()), (None, "transactional"));
    assert_eq!(
        store.due_messages(i64::MAX, 10, &[]).await.unwrap().len(),
        1
    );
}
