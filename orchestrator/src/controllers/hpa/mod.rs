//! The HorizontalPodAutoscaler controller, as kube-controller-manager's:
//! every sync period (and when an autoscaler changes) each autoscaler
//! reads its target's scale, the resource metrics of the target's pods
//! (from the metrics pipeline, in process), proposes a count per metric
//! ([`replicas`]), takes the highest, normalizes it ([`behavior`]),
//! writes the scale when it changes, and reports its status, conditions
//! (AbleToScale, ScalingActive, ScalingLimited) and events
//! (`SuccessfulRescale`, `FailedGetResourceMetric`, ...) as Kubernetes'
//! does.

pub mod behavior;
pub mod replicas;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use self::behavior::{Bounds, History, Normalized, Rules};
use self::replicas::{PodFacts, Target, Tuning};
use crate::events::{EventType, Recorder};
use crate::metrics::ResourceMetrics;
use crate::patch::PatchKind;
use crate::quantity::{Format, Quantity};
use crate::registry::metadata::{now, text};
use crate::registry::scale;
use crate::registry::selectors::LabelSelector;
use crate::registry::{Error, ListOptions, Registry, Resource, WriteOptions};
use crate::scheduler::set_condition;
use crate::store::EventType as Change;

const MANAGER: &str = "horizontal-pod-autoscaler";

/// The controller's settings, as kube-controller-manager's flags.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `--horizontal-pod-autoscaler-sync-period`.
    pub sync_period: Duration,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`: the window
    /// of autoscalers without a `behavior`.
    pub downscale_stabilization: Duration,
    pub tuning: Tuning,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(300),
            tuning: Tuning::default(),
        }
    }
}

struct Controller {
    registry: Registry,
    metrics: Arc<ResourceMetrics>,
    settings: Settings,
    hpas: Resource,
    pods: Resource,
    events: Recorder,
    /// Each autoscaler's recent recommendations and changes, by uid.
    history: HashMap<String, History>,
}

/// Runs until `stop` turns true.
pub async fn run(
    registry: Registry,
    metrics: Arc<ResourceMetrics>,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) {
    let mut controller = Controller {
        hpas: registry.resource("autoscaling", "HorizontalPodAutoscaler"),
        pods: registry.resource("", "Pod"),
        events: Recorder::new(registry.clone(), MANAGER, None),
        registry,
        metrics,
        settings,
        history: HashMap::new(),
    };
    let mut tick = tokio::time::interval(settings.sync_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch = None;
    loop {
        if watch.is_none() {
            watch = controller
                .registry
                .watch(
                    &controller.hpas,
                    None,
                    controller.registry.store().revision(),
                )
                .ok();
        }
        let changed = async {
            match watch.as_mut() {
                Some(w) => w.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => controller.pass().await,
            event = changed => match event {
                // A new or changed autoscaler acts at once; its status
                // writes come back here and change nothing.
                Some(Ok(event)) if event.event_type == Change::Added => {
                    controller.reconcile(&event.object).await;
                }
                Some(Ok(_)) => {}
                _ => watch = None,
            },
            _ = stop.changed() => return,
        }
    }
}

impl Controller {
    /// Every autoscaler, once.
    async fn pass(&mut self) {
        let listed = match self
            .registry
            .list(&self.hpas, None, &ListOptions::default())
        {
            Ok(listed) => listed.items,
            Err(e) => {
                tracing::warn!("the HPA controller cannot list autoscalers: {e}");
                return;
            }
        };
        let live: std::collections::HashSet<&str> =
            listed.iter().map(|h| text(h, "/metadata/uid")).collect();
        self.history.retain(|uid, _| live.contains(uid.as_str()));
        for hpa in &listed {
            self.reconcile(hpa).await;
        }
    }

    async fn reconcile(&mut self, hpa: &Value) {
        if hpa.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let mut status = hpa.get("status").cloned().unwrap_or(json!({}));
        match self.scale_of(hpa).await {
            Err(why) => {
                self.events
                    .record(hpa, EventType::Warning, "FailedGetScale", &why, None)
                    .await;
                condition(
                    &mut status,
                    "AbleToScale",
                    false,
                    "FailedGetScale",
                    &format!(
                        "the HPA controller was unable to get the target's current scale: {why}"
                    ),
                );
            }
            Ok((resource, scale)) => self.autoscale(hpa, &resource, &scale, &mut status).await,
        }
        let status = clean(status);
        if let Err(e) = super::merge_status(&self.registry, &self.hpas, hpa, MANAGER, &status).await
            && !matches!(e, Error::NotFound { .. })
        {
            tracing::warn!(
                "writing the status of HPA {}: {e}",
                text(hpa, "/metadata/name")
            );
        }
    }

    /// The target's resource and Scale.
    async fn scale_of(&self, hpa: &Value) -> Result<(Resource, Value), String> {
        let reference = hpa
            .pointer("/spec/scaleTargetRef")
            .cloned()
            .unwrap_or(json!({}));
        let api_version = text(&reference, "/apiVersion");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = text(&reference, "/kind");
        let resources = self.registry.resources();
        let resource = resources
            .by_kind(group, kind)
            .filter(|r| r.subresource("scale").is_some())
            .cloned()
            .ok_or_else(|| format!("no matches for kind \"{kind}\" in group \"{group}\""))?;
        let namespace = text(hpa, "/metadata/namespace");
        let object = self
            .registry
            .get(&resource, Some(namespace), text(&reference, "/name"))
            .map_err(|e| e.to_string())?;
        let scale = scale::of(&resource, &object);
        Ok((resource, scale))
    }

    async fn autoscale(
        &mut self,
        hpa: &Value,
        resource: &Resource,
        scale: &Value,
        status: &mut Value,
    ) {
        let current = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let bounds = Bounds {
            min: hpa
                .pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            max: hpa
                .pointer("/spec/maxReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
        };
        let mut reason = String::new();
        let mut desired = current;
        let mut metric_statuses = status.get("currentMetrics").cloned().unwrap_or(json!([]));
        if current == 0 && bounds.min != 0 {
            condition(
                status,
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            );
        } else if current > bounds.max {
            reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = bounds.max;
        } else if current < bounds.min {
            reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = bounds.min;
        } else {
            let Some((proposed, metric, statuses)) =
                self.propose(hpa, scale, current, status).await
            else {
                status["currentReplicas"] = scale
                    .pointer("/status/replicas")
                    .cloned()
                    .unwrap_or(json!(0));
                return;
            };
            metric_statuses = statuses;
            if proposed > current {
                reason = format!("{metric} above target");
            } else if proposed < current {
                reason = "All metrics below target".into();
            }
            let uid = text(hpa, "/metadata/uid").to_string();
            let history = self.history.entry(uid).or_default();
            let normalized = match hpa.pointer("/spec/behavior") {
                Some(rules) if rules.is_object() => history.normalize_with(
                    current,
                    proposed,
                    bounds,
                    (
                        &Rules::of(rules.get("scaleUp").unwrap_or(&Value::Null)),
                        &Rules::of(rules.get("scaleDown").unwrap_or(&Value::Null)),
                    ),
                    Instant::now(),
                ),
                _ => history.normalize(
                    current,
                    proposed,
                    bounds,
                    self.settings.downscale_stabilization,
                    Instant::now(),
                ),
            };
            let Normalized {
                replicas,
                stabilization,
                limited,
                limit,
            } = normalized;
            condition(
                status,
                "AbleToScale",
                true,
                stabilization.0,
                stabilization.1,
            );
            condition(status, "ScalingLimited", limited, limit.0, limit.1);
            desired = replicas;
        }
        if desired != current {
            let patch = json!({"spec": {"replicas": desired}}).to_string();
            let namespace = text(hpa, "/metadata/namespace");
            let name = text(scale, "/metadata/name");
            let written = scale::write(
                &self.registry,
                resource,
                Some(namespace),
                name,
                scale::Change::Patch(PatchKind::Merge, patch.as_bytes()),
                &WriteOptions::manager(MANAGER),
            )
            .await;
            match written {
                Ok(_) => {
                    condition(
                        status,
                        "AbleToScale",
                        true,
                        "SucceededRescale",
                        &format!(
                            "the HPA controller was able to update the target scale to {desired}"
                        ),
                    );
                    let message = format!("New size: {desired}; reason: {reason}");
                    self.events
                        .record(hpa, EventType::Normal, "SuccessfulRescale", &message, None)
                        .await;
                    if hpa.pointer("/spec/behavior").is_some_and(Value::is_object) {
                        let uid = text(hpa, "/metadata/uid").to_string();
                        self.history.entry(uid).or_default().changed(
                            current,
                            desired,
                            Instant::now(),
                        );
                    }
                    status["lastScaleTime"] = json!(now());
                }
                Err(e) => {
                    let message = format!("New size: {desired}; reason: {reason}; error: {e}");
                    self.events
                        .record(hpa, EventType::Warning, "FailedRescale", &message, None)
                        .await;
                    condition(
                        status,
                        "AbleToScale",
                        false,
                        "FailedUpdateScale",
                        &format!("the HPA controller was unable to update the target scale: {e}"),
                    );
                    desired = current;
                }
            }
        }
        status["currentReplicas"] = scale
            .pointer("/status/replicas")
            .cloned()
            .unwrap_or(json!(0));
        status["desiredReplicas"] = json!(desired);
        status["currentMetrics"] = metric_statuses;
    }

    /// The highest count the metrics ask for, the metric asking it, and
    /// each metric's current value; `None` (the conditions and events
    /// saying why) when no metric could be read, or only some and the
    /// others would scale down.
    async fn propose(
        &self,
        hpa: &Value,
        scale: &Value,
        current: i64,
        status: &mut Value,
    ) -> Option<(i64, String, Value)> {
        let selector = text(scale, "/status/selector");
        if selector.is_empty() {
            self.events
                .record(
                    hpa,
                    EventType::Warning,
                    "SelectorRequired",
                    "selector is required",
                    None,
                )
                .await;
            condition(
                status,
                "ScalingActive",
                false,
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            );
            return None;
        }
        let labels = LabelSelector::parse(selector).ok()?;
        let options = ListOptions {
            labels,
            ..ListOptions::default()
        };
        let namespace = text(hpa, "/metadata/namespace");
        let pods = self
            .registry
            .list(&self.pods, Some(namespace), &options)
            .map(|l| l.items)
            .unwrap_or_default();
        let specs = hpa
            .pointer("/spec/metrics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut best: Option<(i64, String)> = None;
        let mut statuses = Vec::with_capacity(specs.len());
        let mut invalid: Vec<(String, String)> = Vec::new();
        for spec in &specs {
            match self.propose_one(spec, &pods, current) {
                Ok((replicas, name, metric_status)) => {
                    statuses.push(metric_status);
                    if best.as_ref().is_none_or(|(r, _)| replicas > *r) {
                        best = Some((replicas, name));
                    }
                }
                Err((reason, why)) => {
                    // An empty status keeps the others in step with their
                    // specs, as the controller's are.
                    statuses.push(json!({"type": ""}));
                    invalid.push((reason, why));
                }
            }
        }
        let proposed = best.as_ref().map(|(r, _)| *r);
        if let Some((reason, why)) = invalid.first() {
            self.events
                .record(hpa, EventType::Warning, reason, why, None)
                .await;
            if invalid.len() >= specs.len() || proposed.is_some_and(|r| r < current) {
                condition(
                    status,
                    "ScalingActive",
                    false,
                    reason,
                    &format!("the HPA was unable to compute the replica count: {why}"),
                );
                let message = format!(
                    "invalid metrics ({} invalid out of {}), first error is: {why}",
                    invalid.len(),
                    specs.len()
                );
                self.events
                    .record(
                        hpa,
                        EventType::Warning,
                        "FailedComputeMetricsReplicas",
                        &message,
                        None,
                    )
                    .await;
                return None;
            }
        }
        let (replicas, metric) = best?;
        condition(
            status,
            "ScalingActive",
            true,
            "ValidMetricFound",
            &format!("the HPA was able to successfully calculate a replica count from {metric}"),
        );
        Some((replicas, metric, Value::Array(statuses)))
    }

    /// One metric's proposal, its name and its status; or why not (a
    /// condition's reason and the error).
    fn propose_one(
        &self,
        spec: &Value,
        pods: &[Value],
        current: i64,
    ) -> Result<(i64, String, Value), (String, String)> {
        let kind = text(spec, "/type");
        let (source_field, container) = match kind {
            "Resource" => ("resource", None),
            "ContainerResource" => (
                "containerResource",
                Some(text(spec, "/containerResource/container")),
            ),
            other => {
                return Err((
                    "FailedGetExternalMetric".into(),
                    format!("unsupported metric source type {other:?}"),
                ));
            }
        };
        let source = spec.get(source_field).cloned().unwrap_or(json!({}));
        let resource = text(&source, "/name").to_string();
        let target = match text(&source, "/target/type") {
            "Utilization" => Target::Utilization(
                source
                    .pointer("/target/averageUtilization")
                    .and_then(Value::as_i64)
                    .unwrap_or(100),
            ),
            _ => Target::AverageValue(
                Quantity::parse(text(&source, "/target/averageValue"))
                    .map(|q| q.ceil_millis())
                    .unwrap_or(0),
            ),
        };
        let facts: Vec<PodFacts> = pods
            .iter()
            .map(|pod| self.facts(pod, &resource, container))
            .collect();
        let failed_reason = match kind {
            "Resource" => "FailedGetResourceMetric",
            _ => "FailedGetContainerResourceMetric",
        };
        let proposal = replicas::propose(
            &resource,
            target,
            current,
            &facts,
            &self.settings.tuning,
            jiff::Timestamp::now(),
        )
        .map_err(|e| {
            let what = match target {
                Target::Utilization(_) => "utilization",
                Target::AverageValue(_) => "usage",
            };
            (
                failed_reason.to_string(),
                format!("failed to get {resource} {what}: {e}"),
            )
        })?;
        let scope = if container.is_some() {
            "container resource"
        } else {
            "resource"
        };
        let name = match target {
            Target::Utilization(_) => {
                format!("{resource} {scope} utilization (percentage of request)")
            }
            Target::AverageValue(_) => format!("{resource} {scope}"),
        };
        let mut current_value = json!({
            "averageValue": Quantity::from_millis(proposal.average).canonical(Format::DecimalSi),
        });
        if let Some(utilization) = proposal.utilization {
            current_value["averageUtilization"] = json!(utilization);
        }
        let mut metric_status = json!({"name": resource, "current": current_value});
        if let Some(container) = container {
            metric_status["container"] = json!(container);
        }
        Ok((
            proposal.replicas,
            name,
            json!({"type": kind, source_field: metric_status}),
        ))
    }

    /// What the replica calculator needs of `pod` for `resource` (of one
    /// container, or of all).
    fn facts(&self, pod: &Value, resource: &str, container: Option<&str>) -> PodFacts {
        let name = text(pod, "/metadata/name").to_string();
        let phase = text(pod, "/status/phase");
        let time = |t: &str| t.parse::<jiff::Timestamp>().ok();
        let ready = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| text(c, "/type") == "Ready"))
            .and_then(|c| {
                Some((
                    text(c, "/status") == "True",
                    time(text(c, "/lastTransitionTime"))?,
                ))
            });
        let usage = self.metrics.pod(text(pod, "/metadata/uid")).map(|sample| {
            let used: i128 = sample
                .containers
                .iter()
                .filter(|c| container.is_none_or(|name| c.name == name))
                .map(|c| match resource {
                    // Each container's usage in millicores, rounded up, as
                    // a Quantity's MilliValue is.
                    "cpu" => i128::from(c.cpu_nanocores.div_ceil(1_000_000)),
                    _ => i128::from(c.memory_bytes) * 1000,
                })
                .sum();
            (used, sample.timestamp, sample.window)
        });
        let containers = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let request = containers
            .iter()
            .filter(|c| container.is_none_or(|name| text(c, "/name") == name))
            .try_fold(0i128, |sum, c| {
                let requested = c
                    .pointer(&format!("/resources/requests/{resource}"))
                    .and_then(Value::as_str)
                    .and_then(|q| Quantity::parse(q).ok())
                    .ok_or_else(|| {
                        format!(
                            "missing request for {resource} in container {} of Pod {name}",
                            text(c, "/name")
                        )
                    })?;
                Ok(sum + requested.ceil_millis())
            });
        PodFacts {
            ignored: pod.pointer("/metadata/deletionTimestamp").is_some() || phase == "Failed",
            pending: phase == "Pending",
            started: time(text(pod, "/status/startTime")),
            ready,
            usage,
            request,
            name,
        }
    }
}

/// Sets an autoscaler condition, its transition time kept while its
/// status holds.
fn condition(status: &mut Value, kind: &str, holds: bool, reason: &str, message: &str) {
    let mut holder = json!({"status": status.take()});
    set_condition(
        &mut holder,
        json!({"type": kind, "status": if holds { "True" } else { "False" },
            "lastTransitionTime": now(), "reason": reason, "message": message}),
    );
    *status = holder["status"].take();
}

/// The status with its conditions in Kubernetes' order.
fn clean(mut status: Value) -> Value {
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        let rank = |c: &Value| match text(c, "/type") {
            "AbleToScale" => 0,
            "ScalingActive" => 1,
            _ => 2,
        };
        conditions.sort_by_key(rank);
    }
    status
}
