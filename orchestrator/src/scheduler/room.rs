//! What pods ask of a node and what a node has left: cpu (millicores),
//! memory (bytes) and pod slots, counted as the scheduler's NodeResourcesFit
//! filter counts them.

use serde_json::Value;

use crate::quantity::Quantity;
use crate::registry::metadata::At;

/// Amounts of the resources the scheduler fits: what a pod requests (one
/// slot), or what a node has (left).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Room {
    pub cpu: i128,
    pub memory: i128,
    pub pods: i128,
}

impl Room {
    /// What a pod requests: the sum of its containers' requests (init
    /// containers: the largest, as they run one at a time), and a slot.
    pub fn requested_by(pod: &Value) -> Room {
        let total = |resource: &str| {
            let read = |c: &Value| {
                let requested = c.get("resources").and_then(|r| r.get("requests"));
                requested.map_or(0, |r| amount(r, resource))
            };
            let containers: i128 = pod
                .at("/spec/containers")
                .and_then(Value::as_array)
                .map(|cs| cs.iter().map(read).sum())
                .unwrap_or(0);
            let init: i128 = pod
                .at("/spec/initContainers")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().map(read).max())
                .unwrap_or(0);
            containers.max(init)
        };
        Room {
            cpu: total("cpu"),
            memory: total("memory"),
            pods: 1,
        }
    }

    /// What a node offers pods in all.
    pub fn allocatable(node: &Value) -> Room {
        let allocatable = node.at("/status/allocatable").unwrap_or(&Value::Null);
        let read = |r: &str| amount(allocatable, r);
        Room {
            cpu: read("cpu"),
            memory: read("memory"),
            pods: read("pods"),
        }
    }

    pub fn take(&mut self, other: Room) {
        self.cpu -= other.cpu;
        self.memory -= other.memory;
        self.pods -= other.pods;
    }

    pub fn give(&mut self, other: Room) {
        self.cpu += other.cpu;
        self.memory += other.memory;
        self.pods += other.pods;
    }

    /// What keeps `wanted` from fitting in what is left, as the
    /// scheduler names it (`Too many pods`, `Insufficient cpu`, …); a
    /// resource not requested always fits.
    pub fn shortfalls(&self, wanted: Room) -> Vec<&'static str> {
        let mut short = Vec::new();
        if self.pods < wanted.pods {
            short.push("Too many pods");
        }
        if wanted.cpu > 0 && self.cpu < wanted.cpu {
            short.push("Insufficient cpu");
        }
        if wanted.memory > 0 && self.memory < wanted.memory {
            short.push("Insufficient memory");
        }
        short
    }

    pub fn fits(&self, wanted: Room) -> bool {
        self.shortfalls(wanted).is_empty()
    }
}

/// The quantity of `resource` in `amounts` (a `requests` or
/// `allocatable` map), in millicores for cpu and units (bytes, pods)
/// otherwise; 0 when absent or malformed.
fn amount(amounts: &Value, resource: &str) -> i128 {
    amounts
        .get(resource)
        .and_then(Value::as_str)
        .and_then(|q| Quantity::parse(q).ok())
        .map(|q| {
            if resource == "cpu" {
                q.ceil_millis()
            } else {
                q.ceil_units()
            }
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_sum_containers_and_take_the_largest_init_container() {
        let pod = json!({"spec": {
            "containers": [{"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                           {"resources": {"requests": {"cpu": "250m"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}]}});
        assert_eq!(
            Room::requested_by(&pod),
            Room {
                cpu: 1000,
                memory: 64 << 20,
                pods: 1
            }
        );
        let left = Room {
            cpu: 500,
            memory: 1 << 30,
            pods: 0,
        };
        assert_eq!(
            left.shortfalls(Room::requested_by(&pod)),
            ["Too many pods", "Insufficient cpu"]
        );
        assert!(
            left.shortfalls(Room {
                pods: 0,
                ..Room::default()
            })
            .is_empty()
        );
    }
}
