//! Which namespaces exist and which are terminating, kept from a watch.
//!
//! Every namespaced create asks whether its namespace exists; reading the
//! namespace from the store each time costs a read transaction and a parse.
//! This view is filled by one list and then a watch, drained (without
//! waiting) on each question. The store tells watchers before it answers a
//! writer, so a namespace whose create or deletion has been acknowledged is
//! always seen: the view is never behind an acknowledged write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::{EventType, Store, Watch};

const PREFIX: &str = "/core/namespaces/";

/// The namespaces every cluster has; none of them may be deleted.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// A namespace's state as the create path needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Namespace {
    Missing,
    Active,
    Terminating,
}

#[derive(Default)]
pub(super) struct Namespaces {
    view: Mutex<Option<View>>,
}

struct View {
    watch: Watch,
    terminating: HashMap<String, bool>,
}

impl Namespaces {
    /// The state of `name`, or `None` when the store cannot be read (the
    /// caller then reads the namespace itself).
    pub(super) fn state(&self, store: &Arc<dyn Store>, name: &str) -> Option<Namespace> {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        if view.is_none() {
            *view = View::load(store);
        }
        let current = view.as_mut()?;
        if !current.catch_up() {
            // The watch fell past the compacted log or the store closed:
            // start again from a fresh list.
            *view = View::load(store);
        }
        let current = view.as_ref()?;
        Some(match current.terminating.get(name) {
            None => Namespace::Missing,
            Some(false) => Namespace::Active,
            Some(true) => Namespace::Terminating,
        })
    }
}

impl View {
    fn load(store: &Arc<dyn Store>) -> Option<View> {
        let page = store.list(PREFIX, None, 0).ok()?;
        let watch = store.watch(PREFIX, page.revision).ok()?;
        let terminating = page
            .items
            .iter()
            .filter_map(|ns| Some((name_of(ns)?, is_terminating(ns))))
            .collect();
        Some(View { watch, terminating })
    }

    /// Applies every change committed so far; false if the watch failed.
    fn catch_up(&mut self) -> bool {
        while let Some(event) = self.watch.try_next() {
            let Ok(event) = event else {
                return false;
            };
            let Some(name) = name_of(&event.object) else {
                continue;
            };
            if event.event_type == EventType::Deleted {
                self.terminating.remove(&name);
            } else {
                self.terminating.insert(name, is_terminating(&event.object));
            }
        }
        true
    }
}

fn name_of(namespace: &serde_json::Value) -> Option<String> {
    Some(namespace.pointer("/metadata/name")?.as_str()?.to_string())
}

fn is_terminating(namespace: &serde_json::Value) -> bool {
    namespace.pointer("/metadata/deletionTimestamp").is_some()
}
