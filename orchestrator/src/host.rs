//! What the machine the server runs on has.

/// The host's memory, in KiB (1 GiB when /proc/meminfo cannot tell).
pub fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(1024 * 1024)
}

/// How many memory mappings a process may have (`vm.max_map_count`), when
/// the kernel says.
pub fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Mappings one running pod takes: its guests' linear memories (each a
/// reservation, its accessible part and a copy-on-write image of the
/// compiled data), tables and stacks with their guard pages. Measured at
/// 11 for a one-container `toolbox` pod; a margin for pods of more.
pub const MAPPINGS_PER_POD: u64 = 16;

/// Mappings kept for the server itself: threads, heap arenas, the binary
/// and its libraries, compiled code, the store.
const MAPPINGS_FOR_THE_SERVER: u64 = 8192;

/// How many pods the process's mapping limit leaves room for, when it is
/// known: past it, an allocation fails and the process aborts.
pub fn pods_within_mappings(max_map_count: u64) -> u64 {
    max_map_count.saturating_sub(MAPPINGS_FOR_THE_SERVER) / MAPPINGS_PER_POD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_limit_bounds_the_pods() {
        // Linux's default: a few thousand pods, where 10,000 would abort.
        assert_eq!(pods_within_mappings(65_530), 3_583);
        // What the README asks a large node to set.
        assert_eq!(pods_within_mappings(262_144), 15_872);
        assert_eq!(pods_within_mappings(100), 0);
    }
}
