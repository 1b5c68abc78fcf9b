//! The process heap: handing its free pages back, and how many arenas
//! glibc's allocator may spread over.
//!
//! `wasmkube serve` allocates through mimalloc (its global allocator);
//! an embedder picks its own, and glibc's malloc still serves C code. So
//! both are told to hand back what is free.
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
/// freed in that thread's arena otherwise, and mimalloc purges what it
/// holds free after a delay.
pub fn release_free() {
    // SAFETY: mi_collect only frees and purges memory mimalloc holds free;
    // it is safe to call whether or not mimalloc serves the process.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
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

/// What mimalloc has committed for its heap, in KiB: the live objects,
/// and the free room of its pages not yet handed back. Against
/// [`resident_kib`] it tells the heap from everything else (guests'
/// memories, stacks, mapped files). Only mimalloc's own memory is
/// counted: where another allocator serves the process, this says little.
pub fn committed_kib() -> u64 {
    let mut committed = 0usize;
    let mut ignored = [0usize; 7];
    let [elapsed, user, system, rss, peak_rss, peak_commit, faults] = &mut ignored;
    // SAFETY: every pointer is to a live usize that mi_process_info fills.
    unsafe {
        libmimalloc_sys::mi_process_info(
            elapsed,
            user,
            system,
            rss,
            peak_rss,
            &mut committed,
            peak_commit,
            faults,
        );
    }
    committed as u64 / 1024
}
