//! The process heap (glibc's allocator on Linux): how many arenas it may
//! spread over, and handing its free pages back.
//!
//! glibc gives threads arenas of their own, up to eight per core. A
//! server whose tokio, blocking and guest threads all allocate ends up
//! with memory freed in one arena that no other can reuse: measured under
//! churn, half the heap was free and still resident.

/// Sets the heap up for a long-running server: one arena per core (at
/// least two) rather than eight. Call first thing in `main`, before any
/// thread allocates.
pub fn set_up_for_server() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    limit_arenas(cores.max(2));
}

/// Caps the arenas at `arenas` (call before threads start allocating).
pub fn limit_arenas(arenas: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's tuning; it is safe to call
    // at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas.clamp(1, i32::MAX as usize) as i32);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
}

/// Returns the heap's free pages to the system: glibc keeps what a thread
/// freed in that thread's arena otherwise.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel; it takes
    // the allocator's own locks and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands free heap pages back every `period`, on a thread of its own: what
/// a burst of work (a thousand pods started, a large list served) freed
/// stops counting against the process.
pub fn release_free_every(period: std::time::Duration) {
    let spawned = std::thread::Builder::new()
        .name("wasmkube-heap".into())
        .spawn(move || {
            loop {
                std::thread::sleep(period);
                release_free();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("free memory will not be handed back: {e}");
    }
}

/// This process's resident memory (`VmRSS`), in KiB; none where
/// /proc/self/status does not tell.
pub fn resident_kib() -> Option<u64> {
    kib_field("/proc/self/status", "VmRSS:")
}

/// This process's proportional set size (`Pss` of
/// /proc/self/smaps_rollup), in KiB: resident memory with a page that
/// several mappings share counted once in all. Every instance of a
/// compiled image maps the image's initial memory from the same file, so
/// the pages they all read count once per instance in [`resident_kib`],
/// but once here, as they are held once.
pub fn proportional_kib() -> Option<u64> {
    kib_field("/proc/self/smaps_rollup", "Pss:")
}

/// The `name  123 kB` line of a /proc file, in KiB.
fn kib_field(path: &str, name: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// What the heap has handed out and not had back, in KiB (glibc's
/// `mallinfo2`, every arena and large mapping); none elsewhere. Against
/// [`resident_kib`] it tells live objects from fragmentation.
pub fn in_use_kib() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters, under its
        // own locks.
        let info = unsafe { libc::mallinfo2() };
        Some(((info.uordblks + info.hblkhd) / 1024) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}
