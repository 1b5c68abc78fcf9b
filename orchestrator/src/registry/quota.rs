//! The ResourceQuota admission step of every write that can use quota: the
//! namespace's quotas that concern the object are charged with what it
//! adds (their `status.used` written before the object is, so a burst of
//! creates cannot overrun them), or the write is refused with the API
//! server's words (`exceeded quota: …`, `failed quota: …: must specify
//! …`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::metadata::text;
use super::{Error, ListOptions, Registry, Resource, Result, WriteOptions};
use crate::quota::{self, Amounts, amounts_of, to_value};

/// Held while a namespace's quota usage is charged or recounted.
pub type QuotaGuard = tokio::sync::OwnedMutexGuard<()>;

/// Who writes a quota's usage, in its managed fields.
pub const MANAGER: &str = "resourcequota-controller";

/// How often a charge is tried again when another writer changed a quota
/// between its read and its write.
const ATTEMPTS: usize = 10;

impl Registry {
    /// Charges the quotas of `object`'s namespace with what creating it
    /// (`old` is `None`) or changing it from `old` adds to their usage.
    /// What it returns holds the namespace's quotas until the caller has
    /// written the object (so a recount never misses a charged object).
    pub(super) async fn charge_quotas(
        &self,
        resource: &Resource,
        object: &Value,
        old: Option<&Value>,
        options: &WriteOptions,
    ) -> Result<Option<QuotaGuard>> {
        let namespace = text(object, "/metadata/namespace");
        if !resource.namespaced || namespace.is_empty() {
            return Ok(None);
        }
        let quotas = self.resource("", "ResourceQuota");
        let (plural, group) = (resource.plural, resource.group);
        let concerned = |items: &[Value]| {
            items
                .iter()
                .any(|q| quota::matches(q, plural, group, object))
        };
        if !concerned(
            &self
                .list(&quotas, Some(namespace), &ListOptions::default())?
                .items,
        ) {
            return Ok(None);
        }
        let guard = self.lock_quotas(namespace).await;
        let mut added = quota::usage(plural, group, object);
        if let Some(old) = old {
            // An update is charged only what it adds; a pod's is nothing.
            if plural == "pods" && group.is_empty() {
                return Ok(None);
            }
            let before = quota::usage(plural, group, old);
            added.retain(|name, amount| {
                let was = before.get(name).map(|a| a.value).unwrap_or_default();
                if amount.value <= was {
                    return false;
                }
                amount.value = amount.value.minus(was);
                true
            });
        }
        added.retain(|_, amount| !amount.value.is_zero());
        for _ in 0..ATTEMPTS {
            let listed = self.list(&quotas, Some(namespace), &ListOptions::default())?;
            let mut charged = Vec::new();
            for current in &listed.items {
                if !quota::matches(current, plural, group, object) {
                    continue;
                }
                let name = text(current, "/metadata/name");
                let hard = amounts_of(current.pointer("/spec/hard"));
                let new_pod = old.is_none() && plural == "pods" && group.is_empty();
                if let Some(missing) = new_pod
                    .then(|| quota::missing_compute(object, &hard))
                    .flatten()
                {
                    return Err(refused(
                        resource,
                        object,
                        format!("failed quota: {name}: {missing}"),
                    ));
                }
                let requested: Amounts = added
                    .iter()
                    .filter(|(resource, _)| hard.contains_key(*resource))
                    .map(|(resource, amount)| (resource.clone(), *amount))
                    .collect();
                if requested.is_empty() {
                    continue;
                }
                let mut used = amounts_of(current.pointer("/status/used"));
                if hard.keys().any(|resource| !used.contains_key(resource)) {
                    // Not yet counted by the controller: counted now.
                    used = self.quota_usage(current)?;
                }
                let mut after = used.clone();
                quota::add(&mut after, &requested);
                let exceeded: Vec<&String> = requested
                    .keys()
                    .filter(|resource| after[*resource].value > hard[*resource].value)
                    .collect();
                if !exceeded.is_empty() {
                    let only = |amounts: &Amounts| -> Amounts {
                        exceeded
                            .iter()
                            .filter_map(|r| Some(((*r).clone(), *amounts.get(*r)?)))
                            .collect()
                    };
                    return Err(refused(
                        resource,
                        object,
                        format!(
                            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                            quota::pretty(&only(&requested)),
                            quota::pretty(&only(&used)),
                            quota::pretty(&only(&hard)),
                        ),
                    ));
                }
                let mut next = current.clone();
                next["status"] = json!({"hard": to_value(&hard), "used": to_value(&after)});
                charged.push(next);
            }
            // A create that will fail for a name taken charges nothing.
            let taken = || -> Result<bool> {
                Ok(old.is_none()
                    && self
                        .find(resource, Some(namespace), text(object, "/metadata/name"))?
                        .is_some())
            };
            if options.dry_run || charged.is_empty() || taken()? {
                return Ok(None);
            }
            let mut raced = false;
            let writer = WriteOptions::manager(MANAGER);
            for next in charged {
                let name = text(&next, "/metadata/name").to_string();
                // Boxed: an update may itself be charged (never a status one).
                let write = Box::pin(self.update(
                    &quotas,
                    Some(namespace),
                    &name,
                    next,
                    Some("status"),
                    &writer,
                ));
                match write.await {
                    Ok(_) => {}
                    // Changed since read (another charge, the controller):
                    // counted again on what it is now.
                    Err(Error::Conflict { .. }) => {
                        raced = true;
                        break;
                    }
                    // Deleted meanwhile: it constrains nothing.
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if !raced {
                return Ok(Some(guard));
            }
        }
        Err(Error::Conflict {
            resource: resource.plural.into(),
            group: resource.group.into(),
            name: text(object, "/metadata/name").into(),
            why: "too many concurrent changes to the namespace's resource quotas; try again".into(),
        })
    }

    /// Holds the quotas of `namespace`: charges and recounts there wait
    /// until it is dropped.
    pub async fn lock_quotas(&self, namespace: &str) -> QuotaGuard {
        let lock = {
            let mut locks = self.quota_locks.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(locks.entry(namespace.to_string()).or_default())
        };
        lock.lock_owned().await
    }

    /// What the objects of a quota's namespace use of each resource it
    /// constrains (0 where nothing does).
    pub fn quota_usage(&self, current: &Value) -> Result<Amounts> {
        let namespace = text(current, "/metadata/namespace");
        let hard = amounts_of(current.pointer("/spec/hard"));
        let mut used: Amounts = hard
            .keys()
            .map(|resource| (resource.clone(), quota::Amount::count(0)))
            .collect();
        let resources = self.resources();
        let mut seen = std::collections::HashSet::new();
        for resource in resources.all() {
            if !seen.insert((resource.group, resource.plural)) {
                continue;
            }
            if !resource.namespaced
                || !hard
                    .keys()
                    .any(|name| quota::tracks(resource.plural, resource.group, name))
            {
                continue;
            }
            let listed = self.list(resource, Some(namespace), &ListOptions::default())?;
            for object in &listed.items {
                if !quota::matches(current, resource.plural, resource.group, object) {
                    continue;
                }
                let usage = quota::usage(resource.plural, resource.group, object);
                let counted: Amounts = usage
                    .into_iter()
                    .filter(|(name, _)| hard.contains_key(name))
                    .collect();
                quota::add(&mut used, &counted);
            }
        }
        Ok(used)
    }
}

fn refused(resource: &Resource, object: &Value, why: String) -> Error {
    Error::Refused {
        resource: resource.plural.into(),
        group: resource.group.into(),
        name: text(object, "/metadata/name").into(),
        why,
    }
}
