//! Preemption, as the scheduler's DefaultPreemption does it: a pod that
//! fits no node may evict pods of lower priority from one. On each node
//! it fits on by labels and taints, all lower-priority pods are set aside;
//! if the pod then fits, as many as can stay are given back, most
//! important first (those whose PodDisruptionBudget allows no disruption
//! before the others), and the rest are the victims. The node chosen is
//! the one whose victims break the fewest budgets, then whose most
//! important victim matters least, then with the smallest sum of victim
//! priorities, then with the fewest victims.

use std::collections::HashMap;

use serde_json::Value;

use super::placement;
use super::room::Room;
use crate::controllers::disruption::selects;
use crate::registry::metadata::text;

/// A pod's priority (admission sets it from its PriorityClass).
pub fn priority(pod: &Value) -> i64 {
    pod.pointer("/spec/priority")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Why a pod may not preempt others, as the scheduler says it.
pub fn ineligible(pod: &Value) -> Option<&'static str> {
    (text(pod, "/spec/preemptionPolicy") == "Never")
        .then_some("not eligible due to preemptionPolicy=Never.")
}

/// A node as preemption sees it: what is left on it for the preemptor,
/// and the pods running there.
pub struct Node<'a> {
    pub object: &'a Value,
    pub left: Room,
    pub pods: Vec<&'a Value>,
}

/// The node a preemptor is nominated to, and the pods to evict there.
#[derive(Debug)]
pub struct Choice<'a> {
    pub node: usize,
    pub victims: Vec<&'a Value>,
}

/// The best node to preempt on, if evicting lower-priority pods from any
/// makes room for `pod`.
pub fn choose<'a>(pod: &Value, nodes: &[Node<'a>], budgets: &[&Value]) -> Option<Choice<'a>> {
    let wanted = Room::requested_by(pod);
    let mine = priority(pod);
    let mut best: Option<((usize, i64, i128, usize), Choice<'a>)> = None;
    for (index, node) in nodes.iter().enumerate() {
        if placement::check(pod, node.object).is_err() {
            continue;
        }
        let mut lower: Vec<&'a Value> = node
            .pods
            .iter()
            .copied()
            .filter(|p| priority(p) < mine && p.pointer("/metadata/deletionTimestamp").is_none())
            .collect();
        if lower.is_empty() {
            continue;
        }
        let mut left = node.left;
        for victim in &lower {
            left.give(Room::requested_by(victim));
        }
        if !left.fits(wanted) {
            continue;
        }
        // Most important first: higher priority, then started earlier.
        lower.sort_by(|a, b| {
            priority(b)
                .cmp(&priority(a))
                .then_with(|| started(a).cmp(started(b)))
        });
        let violating = violations(&lower, budgets);
        let mut victims = Vec::new();
        let mut broken = 0;
        for breaks in [true, false] {
            for (pod, _) in lower.iter().zip(&violating).filter(|(_, v)| **v == breaks) {
                let mut without = left;
                without.take(Room::requested_by(pod));
                if without.fits(wanted) {
                    left = without;
                } else {
                    victims.push(*pod);
                    broken += usize::from(breaks);
                }
            }
        }
        let highest = victims
            .iter()
            .map(|v| priority(v))
            .max()
            .unwrap_or(i64::MIN);
        let sum: i128 = victims
            .iter()
            .map(|v| i128::from(priority(v)) + i128::from(i32::MAX) + 1)
            .sum();
        let score = (broken, highest, sum, victims.len());
        if best.as_ref().is_none_or(|(s, _)| score < *s) {
            best = Some((
                score,
                Choice {
                    node: index,
                    victims,
                },
            ));
        }
    }
    best.map(|(_, choice)| choice)
}

fn started(pod: &Value) -> &str {
    match text(pod, "/status/startTime") {
        "" => text(pod, "/metadata/creationTimestamp"),
        at => at,
    }
}

/// For each pod, whether evicting it (with those before it) would break
/// a PodDisruptionBudget of its namespace.
fn violations(pods: &[&Value], budgets: &[&Value]) -> Vec<bool> {
    let mut allowed: HashMap<usize, i64> = HashMap::new();
    pods.iter()
        .map(|pod| {
            let namespace = text(pod, "/metadata/namespace");
            let name = text(pod, "/metadata/name");
            let mut breaks = false;
            for (i, budget) in budgets.iter().enumerate() {
                if text(budget, "/metadata/namespace") != namespace || !selects(budget, pod) {
                    continue;
                }
                // Already disrupted, already counted by the budget.
                if budget
                    .pointer("/status/disruptedPods")
                    .and_then(|d| d.get(name))
                    .is_some()
                {
                    continue;
                }
                let left = allowed.entry(i).or_insert_with(|| {
                    budget
                        .pointer("/status/disruptionsAllowed")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                });
                *left -= 1;
                breaks |= *left < 0;
            }
            breaks
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, priority: i64, cpu: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "labels": {"app": name},
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"priority": priority,
                "containers": [{"resources": {"requests": {"cpu": cpu}}}]}})
    }

    fn node() -> Value {
        json!({"metadata": {"name": "n"}})
    }

    #[test]
    fn the_fewest_least_important_pods_go() {
        let node_object = node();
        let pods = [
            pod("low", 1, "500m"),
            pod("lowest", 0, "500m"),
            pod("peer", 10, "500m"),
        ];
        let nodes = [Node {
            object: &node_object,
            left: Room {
                cpu: 500,
                memory: 1 << 30,
                pods: 10,
            },
            pods: pods.iter().collect(),
        }];
        // 1 cpu wanted, 500m free: one victim is enough, the least important.
        let choice = choose(&pod("high", 10, "1"), &nodes, &[]).unwrap();
        let names: Vec<&str> = choice
            .victims
            .iter()
            .map(|v| text(v, "/metadata/name"))
            .collect();
        assert_eq!(names, ["lowest"]);
        // Equal priority is never preempted: 2 cpu cannot be freed.
        assert!(choose(&pod("high", 10, "2"), &nodes, &[]).is_none());
        // A budget that allows no disruption protects its pod when another
        // victim will do.
        let budget = json!({"metadata": {"namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "lowest"}}},
            "status": {"disruptionsAllowed": 0}});
        let choice = choose(&pod("high", 10, "1"), &nodes, &[&budget]).unwrap();
        let names: Vec<&str> = choice
            .victims
            .iter()
            .map(|v| text(v, "/metadata/name"))
            .collect();
        assert_eq!(names, ["low"]);
        let never = {
            let mut p = pod("polite", 10, "1");
            p["spec"]["preemptionPolicy"] = json!("Never");
            p
        };
        assert_eq!(
            ineligible(&never),
            Some("not eligible due to preemptionPolicy=Never.")
        );
    }
}
