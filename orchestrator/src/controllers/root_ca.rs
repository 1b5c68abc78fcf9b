//! The root CA publisher: while the API is served over HTTPS, every active
//! namespace has a `kube-root-ca.crt` ConfigMap holding the CA (`ca.crt`)
//! that in-cluster clients verify the API with, kept as it should be and
//! made again if deleted, as Kubernetes' publisher does.

use std::time::Duration;

use serde_json::{Value, json};

use super::driver::{self, Reconciler};
use crate::registry::metadata::text;
use crate::registry::{Error, ROOT_CA_CONFIG_MAP, Registry, Resource, Result, WriteOptions};

const NAME: &str = "root-ca-cert-publisher";

const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

struct Publisher {
    registry: Registry,
    namespaces: Resource,
    config_maps: Resource,
}

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, stop: tokio::sync::watch::Receiver<bool>) {
    let reconciler = Publisher {
        namespaces: registry.resource("", "Namespace"),
        config_maps: registry.resource("", "ConfigMap"),
        registry: registry.clone(),
    };
    let watched = vec![
        reconciler.namespaces.clone().into(),
        driver::Watched {
            resource: reconciler.config_maps.clone(),
            relevant: |cm| text(cm, "/metadata/name") == ROOT_CA_CONFIG_MAP,
        },
    ];
    driver::run(
        registry,
        NAME,
        watched,
        driver::Pace::WORKLOADS,
        reconciler,
        stop,
    )
    .await;
}

impl Reconciler for Publisher {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let Some(ca) = self.registry.cluster_ca() else {
            return Ok(None);
        };
        let active = self
            .registry
            .find(&self.namespaces, None, namespace)?
            .is_some_and(|ns| ns.pointer("/metadata/deletionTimestamp").is_none());
        if !active {
            return Ok(None);
        }
        let data = json!({"ca.crt": ca});
        let description = json!({"kubernetes.io/description": DESCRIPTION});
        let options = WriteOptions::manager(NAME);
        match self
            .registry
            .find(&self.config_maps, Some(namespace), ROOT_CA_CONFIG_MAP)?
        {
            Some(current) => {
                let annotated = current.pointer("/metadata/annotations/kubernetes.io~1description")
                    == Some(&description["kubernetes.io/description"]);
                if current.get("data") == Some(&data) && annotated {
                    return Ok(None);
                }
                let mut next: Value = current.clone();
                next["data"] = data;
                let annotations = next["metadata"]
                    .as_object_mut()
                    .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
                if let Some(annotations) = annotations.and_then(Value::as_object_mut) {
                    annotations.insert("kubernetes.io/description".into(), json!(DESCRIPTION));
                }
                self.registry
                    .update(
                        &self.config_maps,
                        Some(namespace),
                        ROOT_CA_CONFIG_MAP,
                        next,
                        None,
                        &options,
                    )
                    .await?;
                Ok(None)
            }
            None => {
                let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIG_MAP, "annotations": description},
                    "data": data});
                match self
                    .registry
                    .create(&self.config_maps, Some(namespace), config_map, &options)
                    .await
                {
                    // Made meanwhile, or the namespace began terminating.
                    Ok(_) | Err(Error::AlreadyExists { .. } | Error::Refused { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }
}
