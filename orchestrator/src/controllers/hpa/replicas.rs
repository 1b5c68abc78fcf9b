//! How many replicas one resource metric asks for, as the HPA
//! controller's replica calculator works it out: pods are sorted into
//! ready, unready, missing (no metric yet) and ignored (deleting or
//! failed); the usage of the ready ones against the target gives a ratio,
//! within a 10% tolerance nothing changes; missing pods count as at the
//! target (scaling down) or idle (scaling up), unready ones as idle when
//! scaling up, and a change that these turn around is not made.

use std::time::Duration;

use jiff::Timestamp;

/// What the calculator knows of one pod of the target.
#[derive(Debug, Clone)]
pub struct PodFacts {
    pub name: String,
    /// Deleting, or Failed: left out.
    pub ignored: bool,
    /// Pending.
    pub pending: bool,
    /// When it started, once it did.
    pub started: Option<Timestamp>,
    /// Its Ready condition: status, and when it last changed.
    pub ready: Option<(bool, Timestamp)>,
    /// Its usage (in thousandths: millicores, millibytes) and the sample's
    /// end and window, once measured.
    pub usage: Option<(i128, Timestamp, Duration)>,
    /// Its containers' requests summed, in thousandths; `Err` names the
    /// container without one.
    pub request: Result<i128, String>,
}

/// What the metric aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A percentage of the pods' requests.
    Utilization(i64),
    /// An average usage per pod, in thousandths.
    AverageValue(i128),
}

/// The calculator's settings, as the controller manager's flags.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub initial_readiness_delay: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            tolerance: 0.1,
            cpu_initialization: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
        }
    }
}

/// A proposal: the replicas, the current utilization (for a utilization
/// target) and the average usage in thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub replicas: i64,
    pub utilization: Option<i64>,
    pub average: i128,
}

/// `duration` after `at`.
fn after(at: Timestamp, duration: Duration) -> Timestamp {
    Timestamp::from_nanosecond(at.as_nanosecond() + duration.as_nanos() as i128)
        .unwrap_or(Timestamp::MAX)
}

/// Whether a measured, running pod counts as not ready for `cpu`: not
/// Ready, or within its initialization period and not measured for a
/// whole window since it became Ready.
fn unready_for_cpu(
    pod: &PodFacts,
    sampled: Timestamp,
    window: Duration,
    tuning: &Tuning,
    now: Timestamp,
) -> bool {
    let (Some((ready, since)), Some(started)) = (pod.ready, pod.started) else {
        return true;
    };
    if after(started, tuning.cpu_initialization) > now {
        !ready || sampled < after(since, window)
    } else {
        !ready && after(started, tuning.initial_readiness_delay) > since
    }
}

/// The replicas `target` asks for of `resource` (`cpu` is the one whose
/// readiness matters), the target being at `current` replicas.
pub fn propose(
    resource: &str,
    target: Target,
    current: i64,
    pods: &[PodFacts],
    tuning: &Tuning,
    now: Timestamp,
) -> Result<Proposal, String> {
    if pods.iter().all(|p| p.usage.is_none()) {
        return Err(format!(
            "unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
        ));
    }
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let mut metrics: Vec<(&PodFacts, i128)> = Vec::new();
    let (mut unready, mut missing) = (Vec::new(), Vec::new());
    for pod in pods {
        if pod.ignored {
            continue;
        }
        if pod.pending {
            unready.push(pod);
            continue;
        }
        let Some((usage, sampled, window)) = pod.usage else {
            missing.push(pod);
            continue;
        };
        if resource == "cpu" && unready_for_cpu(pod, sampled, window, tuning, now) {
            unready.push(pod);
            continue;
        }
        metrics.push((pod, usage));
    }
    let ready = metrics.len() as i64;
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let requests = |pod: &PodFacts| pod.request.clone();
    if let Target::Utilization(_) = target {
        for pod in pods {
            requests(pod)?;
        }
    }
    let (ratio, utilization, average) = usage_ratio(target, &metrics)?;
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    let unchanged = Proposal {
        replicas: current,
        utilization,
        average,
    };
    if !scale_up_with_unready && missing.is_empty() {
        if (1.0 - ratio).abs() <= tuning.tolerance {
            return Ok(unchanged);
        }
        return Ok(Proposal {
            replicas: (ratio * ready as f64).ceil() as i64,
            ..unchanged
        });
    }
    if ratio < 1.0 {
        // Scaling down: a pod not yet measured counts as at the target
        // (100% of its request at least).
        for pod in &missing {
            let assumed = match target {
                Target::Utilization(percent) => {
                    requests(pod).unwrap_or(0) * i128::from(percent.max(100)) / 100
                }
                Target::AverageValue(value) => value,
            };
            metrics.push((pod, assumed));
        }
    } else if ratio > 1.0 {
        metrics.extend(missing.iter().map(|pod| (*pod, 0)));
    }
    if scale_up_with_unready {
        metrics.extend(unready.iter().map(|pod| (*pod, 0)));
    }
    let (new_ratio, _, _) = usage_ratio(target, &metrics)?;
    if (1.0 - new_ratio).abs() <= tuning.tolerance
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(unchanged);
    }
    let replicas = (new_ratio * metrics.len() as f64).ceil() as i64;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(unchanged);
    }
    Ok(Proposal {
        replicas,
        ..unchanged
    })
}

/// Usage against the target: the ratio, the utilization (a whole
/// percentage, as the controller computes it) and the average usage.
fn usage_ratio(
    target: Target,
    metrics: &[(&PodFacts, i128)],
) -> Result<(f64, Option<i64>, i128), String> {
    let total: i128 = metrics.iter().map(|(_, usage)| usage).sum();
    let average = total / metrics.len().max(1) as i128;
    match target {
        Target::Utilization(percent) => {
            let requested: i128 = metrics
                .iter()
                .map(|(pod, _)| pod.request.clone().unwrap_or(0))
                .sum();
            if requested == 0 {
                return Err("no metrics returned matched known pods".into());
            }
            let utilization = (total * 100 / requested) as i64;
            Ok((
                utilization as f64 / percent as f64,
                Some(utilization),
                average,
            ))
        }
        Target::AverageValue(value) => Ok((average as f64 / value.max(1) as f64, None, average)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    /// A pod started long ago, Ready, using `usage` millicores of its
    /// 100m request.
    fn pod(name: &str, usage: Option<i128>) -> PodFacts {
        PodFacts {
            name: name.into(),
            ignored: false,
            pending: false,
            started: Some(at(0)),
            ready: Some((true, at(10))),
            usage: usage.map(|u| (u, at(1000), Duration::from_secs(15))),
            request: Ok(100),
        }
    }

    fn propose_cpu(percent: i64, current: i64, pods: &[PodFacts]) -> Result<Proposal, String> {
        propose(
            "cpu",
            Target::Utilization(percent),
            current,
            pods,
            &Tuning::default(),
            at(1000),
        )
    }

    #[test]
    fn usage_over_the_target_scales_by_the_ratio() {
        // 150% against 50%: three times as many.
        let pods = [pod("a", Some(150)), pod("b", Some(150))];
        let proposal = propose_cpu(50, 2, &pods).unwrap();
        assert_eq!(
            proposal,
            Proposal {
                replicas: 6,
                utilization: Some(150),
                average: 150
            }
        );
    }

    #[test]
    fn within_the_tolerance_nothing_changes() {
        let pods = [pod("a", Some(54)), pod("b", Some(54))];
        assert_eq!(propose_cpu(50, 2, &pods).unwrap().replicas, 2);
        let pods = [pod("a", Some(56)), pod("b", Some(56))];
        assert_eq!(propose_cpu(50, 2, &pods).unwrap().replicas, 3);
    }

    #[test]
    fn a_missing_pod_counts_as_at_its_request_when_scaling_down() {
        // The measured one is idle; the missing one is assumed to use its
        // whole request: (0 + 100) / 200 = 50% against 50%: stay.
        let pods = [pod("a", Some(0)), pod("b", None)];
        assert_eq!(propose_cpu(50, 2, &pods).unwrap().replicas, 2);
        // Against 80%: 50/80 = 0.625 of 2 pods: 2 still (ceil 1.25).
        assert_eq!(propose_cpu(80, 2, &pods).unwrap().replicas, 2);
    }

    #[test]
    fn unready_pods_count_as_idle_when_scaling_up() {
        // Started 100 s ago, not Ready yet: within its initialization.
        let mut starting = pod("b", Some(500));
        starting.started = Some(at(900));
        starting.ready = Some((false, at(990)));
        // Only "a" is measured ready: 200% against 50%, but with "b" at
        // zero: 100% of 2 → 4.
        let pods = [pod("a", Some(200)), starting];
        assert_eq!(propose_cpu(50, 2, &pods).unwrap().replicas, 4);
        // Long past its start a pod that was Ready once counts with its
        // usage though not Ready now.
        let mut lapsed = pod("b", Some(500));
        lapsed.ready = Some((false, at(990)));
        let pods = [pod("a", Some(200)), lapsed];
        assert_eq!(propose_cpu(50, 2, &pods).unwrap().replicas, 14);
    }

    #[test]
    fn no_metrics_at_all_is_an_error_as_the_controller_words_it() {
        let pods = [pod("a", None)];
        assert_eq!(
            propose_cpu(50, 1, &pods).unwrap_err(),
            "unable to get metrics for resource cpu: no metrics returned from resource metrics API"
        );
        let mut no_request = pod("a", Some(10));
        no_request.request = Err("missing request for cpu in container c of Pod a".into());
        assert_eq!(
            propose_cpu(50, 1, &[no_request]).unwrap_err(),
            "missing request for cpu in container c of Pod a"
        );
    }

    #[test]
    fn an_average_value_target_divides_the_average() {
        let pods = [pod("a", Some(300_000)), pod("b", Some(100_000))];
        let proposal = propose(
            "memory",
            Target::AverageValue(100_000),
            2,
            &pods,
            &Tuning::default(),
            at(1000),
        )
        .unwrap();
        assert_eq!(
            proposal,
            Proposal {
                replicas: 4,
                utilization: None,
                average: 200_000
            }
        );
    }
}
