use std::time::Duration;

use serde_json::json;

use super::*;

fn open(dir: &std::path::Path) -> RedbStore {
    RedbStore::open(&dir.join("store.redb"), StoreOptions::default()).unwrap()
}

/// A store whose watches keep only 64 changes in memory, so a watch falls
/// behind within a test.
fn open_with_small_window(dir: &std::path::Path) -> RedbStore {
    let options = StoreOptions {
        watch_window: super::WatchWindow::last(64),
        ..StoreOptions::default()
    };
    RedbStore::open(&dir.join("store.redb"), options).unwrap()
}

fn create(key: &str, name: &str) -> Write {
    Write::Create {
        key: key.into(),
        object: json!({"metadata": {"name": name}}),
    }
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn writes_bump_one_global_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store.write(create("/pods/default/a", "a")).await.unwrap();
    let b = store.write(create("/pods/default/b", "b")).await.unwrap();
    assert_eq!((rv(&a), rv(&b)), (1, 2));
    assert_eq!(store.revision(), 2);
    assert_eq!(store.get("/pods/default/a").unwrap().unwrap(), a);
    let err = store
        .write(create("/pods/default/a", "a"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
}

#[tokio::test]
async fn stale_resource_version_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store.write(create("/ns/a", "a")).await.unwrap();
    let update = |rev| Write::Update {
        key: "/ns/a".into(),
        object: json!({"metadata": {"name": "a"}, "spec": rev}),
        preconditions: Preconditions {
            revision: Some(rev),
            uid: None,
        },
    };
    let updated = store.write(update(rv(&a))).await.unwrap();
    assert_eq!(rv(&updated), 2);
    let err = store.write(update(rv(&a))).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let err = store
        .write(Write::Delete {
            key: "/ns/a".into(),
            preconditions: Preconditions {
                revision: None,
                uid: Some("other".into()),
            },
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
}

#[tokio::test]
async fn list_pages_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for name in ["a", "b", "c"] {
        store
            .write(create(&format!("/pods/default/{name}"), name))
            .await
            .unwrap();
    }
    store.write(create("/pods/other/d", "d")).await.unwrap();
    let page = store.list("/pods/default/", None, 2).unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.continue_after.as_deref(), Some("/pods/default/b"));
    let rest = store
        .list("/pods/default/", page.continue_after.as_deref(), 2)
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0]["metadata"]["name"], "c");
    assert_eq!(rest.continue_after, None);
    assert_eq!(store.list("/pods/", None, 0).unwrap().items.len(), 4);
}

#[tokio::test]
async fn a_page_cut_short_holds_its_snapshot_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for name in ["a", "b"] {
        store
            .write(create(&format!("/pods/default/{name}"), name))
            .await
            .unwrap();
    }
    let first = store.list_at("/pods/default/", None, 1, None).unwrap();
    store.write(create("/pods/default/c", "c")).await.unwrap();
    let rest = store
        .list_at(
            "/pods/default/",
            first.continue_after.as_deref(),
            0,
            Some(first.revision),
        )
        .unwrap();
    assert_eq!(rest.revision, first.revision);
    assert_eq!(rest.items.len(), 1, "c came after the snapshot");
    // A revision no page was cut at (and not the latest) is not held.
    assert!(matches!(
        store.list_at("/pods/default/", None, 0, Some(first.revision - 1)),
        Err(Error::Released { .. })
    ));
    // The latest needs no snapshot.
    let latest = store.revision();
    assert_eq!(
        store
            .list_at("/pods/default/", None, 0, Some(latest))
            .unwrap()
            .items
            .len(),
        3
    );
}

#[tokio::test]
async fn watch_replays_the_log_then_streams_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write(create("/pods/default/a", "a")).await.unwrap();
    store.write(create("/nodes/n", "n")).await.unwrap();
    store.write(create("/pods/default/b", "b")).await.unwrap();
    let mut watch = store.watch("/pods/", 1).unwrap();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!((first.revision, first.key.as_str()), (3, "/pods/default/b"));
    store
        .write(Write::Delete {
            key: "/pods/default/a".into(),
            preconditions: Preconditions::default(),
        })
        .await
        .unwrap();
    let deleted = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(deleted.event_type, EventType::Deleted);
    assert_eq!(rv(&deleted.object), 4);
}

#[test]
fn the_page_cache_is_sized_to_the_host() {
    assert_eq!(super::redb::cache_bytes_for(256 << 10), 4 << 20);
    assert_eq!(super::redb::cache_bytes_for(512 << 10), 8 << 20);
    assert_eq!(super::redb::cache_bytes_for(24 << 20), 16 << 20);
}

#[tokio::test]
async fn compacted_history_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        retained_revisions: 2,
        ..StoreOptions::default()
    };
    let store = RedbStore::open(&dir.path().join("s.redb"), options).unwrap();
    for i in 0..5 {
        store
            .write(create(&format!("/x/{i}"), &i.to_string()))
            .await
            .unwrap();
    }
    store.compact().await.unwrap();
    assert_eq!(store.compacted(), 3);
    let err = store.watch("/x/", 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Gone {
                requested: 1,
                oldest: 4
            }
        ),
        "{err}"
    );
    let mut watch = store.watch("/x/", 3).unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap().revision, 4);
}

#[tokio::test]
async fn a_watch_behind_the_window_and_the_log_reports_gone_once_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        retained_revisions: 2,
        watch_window: super::WatchWindow::last(2),
        ..StoreOptions::default()
    };
    let store = RedbStore::open(&dir.path().join("s.redb"), options).unwrap();
    let mut watch = store.watch("/x/", 0).unwrap();
    for i in 0..10 {
        store
            .write(create(&format!("/x/{i}"), &i.to_string()))
            .await
            .unwrap();
    }
    store.compact().await.unwrap();
    // Drained as the scheduler drains it: the error once, then nothing.
    let steps: Vec<_> = std::iter::from_fn(|| watch.try_next()).take(100).collect();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(
        matches!(steps[0], Err(Error::Gone { requested: 0, .. })),
        "{steps:?}"
    );
    assert!(watch.next().await.is_none());
}

#[tokio::test]
async fn reopening_restores_objects_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.write(create("/ns/a", "a")).await.unwrap();
        store.write(create("/ns/b", "b")).await.unwrap();
        store.close();
        let err = store.write(create("/ns/c", "c")).await.unwrap_err();
        assert!(matches!(err, Error::Closed), "{err}");
    }
    let store = open(dir.path());
    assert_eq!(store.revision(), 2);
    assert_eq!(store.list("/ns/", None, 0).unwrap().items.len(), 2);
    let c = store.write(create("/ns/c", "c")).await.unwrap();
    assert_eq!(rv(&c), 3);
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_each_gets_its_own_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let writes = (0..200).map(|i| store.write(create(&format!("/c/{i:03}"), &i.to_string())));
    let results = futures::future::join_all(writes).await;
    let mut revisions: Vec<u64> = results.iter().map(|r| rv(r.as_ref().unwrap())).collect();
    revisions.sort();
    assert_eq!(revisions, (1..=200).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_lagging_watch_recovers_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_small_window(dir.path());
    let mut watch = store.watch("/l/", 0).unwrap();
    // More than the window holds, so the watch falls behind and must replay.
    for chunk in 0..10 {
        let writes = (0..500).map(|i| store.write(create(&format!("/l/{chunk}-{i}"), "x")));
        for result in futures::future::join_all(writes).await {
            result.unwrap();
        }
    }
    let mut seen = 0;
    while seen < 5000 {
        let event = watch.next().await.unwrap().unwrap();
        seen += 1;
        assert_eq!(event.revision, seen);
    }
}

#[tokio::test]
async fn a_watch_reports_progress_past_other_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write(create("/other/before", "x")).await.unwrap();
    store.write(create("/mine/before", "x")).await.unwrap();
    store.write(create("/other/between", "x")).await.unwrap();
    // From the log: the one event under the prefix, then how far it read.
    let mut watch = store.watch("/mine/", 0).unwrap();
    let Some(Ok(Step::Event(event))) = watch.try_step() else {
        panic!("the replayed event first");
    };
    assert_eq!(event.revision, 2);
    assert!(matches!(watch.try_step(), Some(Ok(Step::Passed(3)))));
    assert!(watch.try_step().is_none());
    // Live: a write elsewhere is progress, a write under the prefix an event.
    store.write(create("/other/after", "x")).await.unwrap();
    assert!(matches!(watch.step().await, Some(Ok(Step::Passed(4)))));
    store.write(create("/mine/after", "x")).await.unwrap();
    let Some(Ok(Step::Event(event))) = watch.step().await else {
        panic!("the live event");
    };
    assert_eq!((event.revision, event.key.as_str()), (5, "/mine/after"));
    assert!(watch.try_step().is_none());
    // Changes elsewhere before one under the prefix: the change (its
    // revision says how far the store got).
    store.write(create("/other/later", "x")).await.unwrap();
    store.write(create("/mine/later", "x")).await.unwrap();
    let Some(Ok(Step::Event(event))) = watch.step().await else {
        panic!("the live event");
    };
    assert_eq!(event.revision, 7);
    assert!(watch.try_step().is_none());
}

#[tokio::test]
async fn a_lagging_watch_reports_how_far_its_replay_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_small_window(dir.path());
    let mut watch = store.watch("/mine/", 0).unwrap();
    store.write(create("/mine/first", "x")).await.unwrap();
    // More than the window holds, none of them under the prefix.
    for chunk in 0..10 {
        let writes = (0..500).map(|i| store.write(create(&format!("/other/{chunk}-{i}"), "x")));
        for result in futures::future::join_all(writes).await {
            result.unwrap();
        }
    }
    let mut steps = Vec::new();
    while let Some(step) = watch.try_step() {
        steps.push(step.unwrap());
    }
    assert!(
        matches!(steps.first(), Some(Step::Event(e)) if e.revision == 1),
        "{steps:?}"
    );
    assert!(
        matches!(steps.last(), Some(Step::Passed(5001))),
        "the watch knows the store is at 5001: {steps:?}"
    );
}
