//! From the metrics' proposal to the replicas set, as the HPA controller
//! normalizes it: recommendations are stabilized over a window (the
//! highest of the last five minutes when scaling down, without a
//! `behavior`; each direction's window with one), then bounded by the
//! minimum and maximum and by how fast the target may grow or shrink
//! (twice its size or four pods without a `behavior`; its policies over
//! their periods with one). Each step says why it held the count back,
//! as the AbleToScale and ScalingLimited conditions do.

use std::time::{Duration, Instant};

use serde_json::Value;

/// A direction's rules (`spec.behavior.scaleUp` or `scaleDown`), as the
/// API server defaulted them.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub window: Duration,
    pub select: Select,
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Pods { value: i64, period: Duration },
    Percent { value: i64, period: Duration },
}

impl Policy {
    fn period(&self) -> Duration {
        match self {
            Policy::Pods { period, .. } | Policy::Percent { period, .. } => *period,
        }
    }
}

impl Rules {
    /// The rules of `spec.behavior.<direction>` (defaulted by the API
    /// server, so every field is there).
    pub fn of(rules: &Value) -> Rules {
        let seconds =
            |v: Option<&Value>| Duration::from_secs(v.and_then(Value::as_u64).unwrap_or(0));
        Rules {
            window: seconds(rules.get("stabilizationWindowSeconds")),
            select: match rules.get("selectPolicy").and_then(Value::as_str) {
                Some("Min") => Select::Min,
                Some("Disabled") => Select::Disabled,
                _ => Select::Max,
            },
            policies: rules
                .get("policies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    let value = p.get("value").and_then(Value::as_i64).unwrap_or(0);
                    let period = seconds(p.get("periodSeconds"));
                    match p.get("type").and_then(Value::as_str) {
                        Some("Pods") => Policy::Pods { value, period },
                        _ => Policy::Percent { value, period },
                    }
                })
                .collect(),
        }
    }
}

/// Why the count was (or was not) held back: a condition's reason and
/// message.
pub type Why = (&'static str, &'static str);

pub const READY_FOR_NEW_SCALE: Why = ("ReadyForNewScale", "recommended size matches current size");
const SCALE_DOWN_STABILIZED: Why = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const SCALE_UP_STABILIZED: Why = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const WITHIN_RANGE: Why = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const SCALE_UP_LIMIT: Why = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const SCALE_DOWN_LIMIT: Why = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
const TOO_MANY: Why = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: Why = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);

/// What one autoscaler remembers between passes: its recent
/// recommendations and scale changes.
#[derive(Debug, Default)]
pub struct History {
    recommendations: Vec<(Instant, i64)>,
    /// Replicas added (positive) or removed (negative), when.
    changes: Vec<(Instant, i64)>,
}

/// The outcome of normalizing: the replicas, and what the AbleToScale
/// (stabilization) and ScalingLimited (bounds) conditions say, the latter
/// with whether it limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalized {
    pub replicas: i64,
    pub stabilization: Why,
    pub limited: bool,
    pub limit: Why,
}

/// The bounds of the target's size.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub min: i64,
    pub max: i64,
}

impl Normalized {
    fn of(replicas: i64, stabilized: i64, stabilization: Why, limit: Why) -> Normalized {
        Normalized {
            replicas,
            stabilization,
            limited: replicas != stabilized,
            limit,
        }
    }
}

/// The most replicas allowed: the growth rate's limit or the maximum,
/// whichever is lower, and the condition's reason when it binds.
fn ceiling(rate: i64, max: i64) -> (i64, Why) {
    if max > rate {
        (rate, SCALE_UP_LIMIT)
    } else {
        (max, TOO_MANY)
    }
}

/// The fewest replicas allowed: the shrinking rate's limit or the
/// minimum, whichever is higher, and the reason when it binds.
fn floor(rate: i64, min: i64) -> (i64, Why) {
    if min < rate {
        (rate, SCALE_DOWN_LIMIT)
    } else {
        (min, TOO_FEW)
    }
}

impl History {
    /// Records a scale change the controller made.
    pub fn changed(&mut self, from: i64, to: i64, now: Instant) {
        self.changes.push((now, to - from));
        // Nothing older than the longest period (30 minutes) is read.
        self.changes
            .retain(|(at, _)| now.saturating_duration_since(*at) <= Duration::from_secs(1800));
    }

    /// The replicas `proposed` becomes without a `behavior`.
    pub fn normalize(
        &mut self,
        current: i64,
        proposed: i64,
        bounds: Bounds,
        downscale_window: Duration,
        now: Instant,
    ) -> Normalized {
        let cutoff = now.checked_sub(downscale_window);
        let mut stabilized = proposed;
        for (at, recommended) in &self.recommendations {
            if cutoff.is_none_or(|c| *at > c) {
                stabilized = stabilized.max(*recommended);
            }
        }
        self.remember(proposed, now, downscale_window);
        let stabilization = if stabilized != proposed {
            SCALE_DOWN_STABILIZED
        } else {
            READY_FOR_NEW_SCALE
        };
        // Twice the size, or four, at most at once.
        let (max, over) = ceiling((2 * current).max(4), bounds.max);
        let (replicas, limit) = if stabilized < bounds.min {
            (bounds.min, TOO_FEW)
        } else if stabilized > max {
            (max, over)
        } else {
            (stabilized, WITHIN_RANGE)
        };
        Normalized::of(replicas, stabilized, stabilization, limit)
    }

    /// The replicas `proposed` becomes under `up` and `down` rules.
    pub fn normalize_with(
        &mut self,
        current: i64,
        proposed: i64,
        bounds: Bounds,
        (up, down): (&Rules, &Rules),
        now: Instant,
    ) -> Normalized {
        let up_cutoff = now.checked_sub(up.window);
        let down_cutoff = now.checked_sub(down.window);
        let (mut up_recommendation, mut down_recommendation) = (proposed, proposed);
        for (at, recommended) in &self.recommendations {
            if up_cutoff.is_none_or(|c| *at > c) {
                up_recommendation = up_recommendation.min(*recommended);
            }
            if down_cutoff.is_none_or(|c| *at > c) {
                down_recommendation = down_recommendation.max(*recommended);
            }
        }
        let stabilized = current.max(up_recommendation).min(down_recommendation);
        self.remember(proposed, now, up.window.max(down.window));
        let stabilization = match (stabilized == proposed, proposed >= current) {
            (true, _) => READY_FOR_NEW_SCALE,
            (false, true) => SCALE_UP_STABILIZED,
            (false, false) => SCALE_DOWN_STABILIZED,
        };
        let (replicas, limit) = if stabilized > current {
            let rate = self.rate_limit(current, up, now, true).max(current);
            match ceiling(rate, bounds.max) {
                (max, over) if stabilized > max => (max, over),
                _ => (stabilized, WITHIN_RANGE),
            }
        } else if stabilized < current {
            let rate = self.rate_limit(current, down, now, false).min(current);
            match floor(rate, bounds.min) {
                (min, under) if stabilized < min => (min, under),
                _ => (stabilized, WITHIN_RANGE),
            }
        } else {
            (stabilized, WITHIN_RANGE)
        };
        Normalized::of(replicas, stabilized, stabilization, limit)
    }

    /// Keeps `recommended`, dropping what no window reads any more.
    fn remember(&mut self, recommended: i64, now: Instant, longest: Duration) {
        self.recommendations
            .retain(|(at, _)| now.saturating_duration_since(*at) <= longest);
        self.recommendations.push((now, recommended));
    }

    /// Replicas added and removed within `period`.
    fn changed_within(&self, period: Duration, now: Instant) -> (i64, i64) {
        self.changes
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) < period)
            .fold((0, 0), |(added, removed), (_, change)| {
                if *change > 0 {
                    (added + change, removed)
                } else {
                    (added, removed - change)
                }
            })
    }

    /// How far each policy lets the target grow (`up`) or shrink from the
    /// size it had when the policy's period began, and the policy chosen:
    /// `Max` the biggest change, `Min` the smallest, `Disabled` none.
    fn rate_limit(&self, current: i64, rules: &Rules, now: Instant, up: bool) -> i64 {
        let biggest_change = match rules.select {
            Select::Disabled => return current,
            Select::Max => true,
            Select::Min => false,
        };
        let pick: fn(i64, i64) -> i64 = if biggest_change == up {
            i64::max
        } else {
            i64::min
        };
        let sign = if up { 1 } else { -1 };
        let proposals = rules.policies.iter().map(|policy| {
            let (added, removed) = self.changed_within(policy.period(), now);
            let start = current - added + removed;
            match *policy {
                Policy::Pods { value, .. } => start + sign * value,
                Policy::Percent { value, .. } => {
                    let scaled = start as f64 * (1.0 + (sign * value) as f64 / 100.0);
                    // Up rounds up (a change too small to add a pod would
                    // never scale); down truncates, as the controller does.
                    if up {
                        scaled.ceil() as i64
                    } else {
                        scaled as i64
                    }
                }
            }
        });
        proposals.reduce(pick).unwrap_or(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOUNDS: Bounds = Bounds { min: 1, max: 10 };

    fn defaults() -> (Rules, Rules) {
        let up = Rules::of(
            &json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                         {"type": "Percent", "value": 100, "periodSeconds": 15}]}),
        );
        let down = Rules::of(
            &json!({"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}),
        );
        (up, down)
    }

    #[test]
    fn without_a_behavior_scale_down_waits_for_the_highest_recent_recommendation() {
        let mut history = History::default();
        let start = Instant::now();
        let window = Duration::from_secs(300);
        assert_eq!(history.normalize(4, 4, BOUNDS, window, start).replicas, 4);
        let later = start + Duration::from_secs(60);
        let held = history.normalize(4, 1, BOUNDS, window, later);
        assert_eq!(held.replicas, 4);
        assert_eq!(held.stabilization.0, "ScaleDownStabilized");
        let after = start + Duration::from_secs(301);
        assert_eq!(history.normalize(4, 1, BOUNDS, window, after).replicas, 1);
    }

    #[test]
    fn without_a_behavior_growth_is_twice_or_four_at_most() {
        let mut history = History::default();
        let grown = history.normalize(1, 9, BOUNDS, Duration::ZERO, Instant::now());
        assert_eq!(grown.replicas, 4);
        assert!(grown.limited);
        assert_eq!(grown.limit.0, "ScaleUpLimit");
        let capped = history.normalize(8, 20, BOUNDS, Duration::ZERO, Instant::now());
        assert_eq!((capped.replicas, capped.limit.0), (10, "TooManyReplicas"));
    }

    #[test]
    fn the_default_policies_add_four_pods_or_double_per_fifteen_seconds() {
        let (up, down) = defaults();
        let mut history = History::default();
        let now = Instant::now();
        let first = history.normalize_with(2, 30, Bounds { min: 1, max: 30 }, (&up, &down), now);
        // max(2 + 4, 2 × 2) = 6.
        assert_eq!((first.replicas, first.limit.0), (6, "ScaleUpLimit"));
        history.changed(2, 6, now);
        // Within the same period the start was 2: no more yet.
        let soon = now + Duration::from_secs(5);
        assert_eq!(
            history
                .normalize_with(6, 30, Bounds { min: 1, max: 30 }, (&up, &down), soon)
                .replicas,
            6
        );
        let next = now + Duration::from_secs(16);
        assert_eq!(
            history
                .normalize_with(6, 30, Bounds { min: 1, max: 30 }, (&up, &down), next)
                .replicas,
            12
        );
    }

    #[test]
    fn policies_limit_shrinking_and_min_picks_the_smallest_change() {
        let up = Rules::of(
            &json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                         {"type": "Percent", "value": 100, "periodSeconds": 15}]}),
        );
        let down = Rules::of(
            &json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60},
                         {"type": "Percent", "value": 10, "periodSeconds": 60}]}),
        );
        let mut history = History::default();
        let now = Instant::now();
        // Growing from 2: min(2 + 4, 2 × 2) = 4.
        let grown = history.normalize_with(2, 10, BOUNDS, (&up, &down), now);
        assert_eq!((grown.replicas, grown.limit.0), (4, "ScaleUpLimit"));
        // Shrinking from 10: the bigger change of one pod and 10% (9 either way).
        let shrunk = history.normalize_with(10, 1, BOUNDS, (&up, &down), now);
        assert_eq!((shrunk.replicas, shrunk.limit.0), (9, "ScaleDownLimit"));
        history.changed(10, 9, now);
        // Within the minute the period began at 10: still 9.
        let held =
            history.normalize_with(9, 1, BOUNDS, (&up, &down), now + Duration::from_secs(30));
        assert_eq!(held.replicas, 9);
    }

    #[test]
    fn a_short_scale_down_window_lets_the_count_fall_once_it_passed() {
        let (up, mut down) = defaults();
        down.window = Duration::from_secs(10);
        let mut history = History::default();
        let now = Instant::now();
        assert_eq!(
            history
                .normalize_with(4, 4, BOUNDS, (&up, &down), now)
                .replicas,
            4
        );
        let held = history.normalize_with(4, 1, BOUNDS, (&up, &down), now + Duration::from_secs(5));
        assert_eq!(
            (held.replicas, held.stabilization.0),
            (4, "ScaleDownStabilized")
        );
        let fell =
            history.normalize_with(4, 1, BOUNDS, (&up, &down), now + Duration::from_secs(11));
        assert_eq!((fell.replicas, fell.limited), (1, false));
    }
}
