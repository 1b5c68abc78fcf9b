//! The process heap: handing its free pages back, and how many arenas
//! glibc's allocator may spread over.
//!
//! `wasmkube serve` allocates through mimalloc ([`ServerHeap`], its
//! global allocator); an embedder picks its own, and glibc's malloc still
//! serves C code. So both are told to hand back what is free.
//!
//! glibc gives threads arenas of their own, up to eight per core. A
//! server whose tokio, blocking and guest threads all allocate ends up
//! with memory freed in one arena that no other can reuse: measured under
//! churn, half the heap was free and still resident.
//!
//! What a pod holds for as long as it runs (its instances, their stores,
//! its supervisors, the objects cached of it) is allocated while the
//! server's requests, watches and events make and free far more around
//! it. Sharing pages with that passing traffic, it kept them from being
//! handed back once the traffic had gone: at 10,000 idle pods half of the
//! main heap's pages of 640-byte blocks (JSON objects' maps) was free.
//! [`ServerHeap`] keeps what is allocated under [`long_lived`] and
//! [`long_lived_now`] in pages of its own.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::task::{Context, Poll};

use libmimalloc_sys as mi;

/// The global allocator of `wasmkube serve`: mimalloc, with what is
/// allocated under [`long_lived`] in a heap of its own (on any thread:
/// mimalloc's heaps are shared), so it fills pages the server's passing
/// allocations do not share.
pub struct ServerHeap;

thread_local! {
    /// Set while this thread runs [`long_lived`] work.
    static LONG_LIVED: Cell<bool> = const { Cell::new(false) };
}

/// The heap for long-lived allocations, made on first use.
static LONG_LIVED_HEAP: AtomicPtr<mi::mi_heap_t> = AtomicPtr::new(std::ptr::null_mut());

/// The heap long-lived work allocates from now, if this thread runs such
/// work.
fn long_lived_heap() -> Option<*mut mi::mi_heap_t> {
    if !LONG_LIVED.try_with(Cell::get).unwrap_or(false) {
        return None;
    }
    let heap = LONG_LIVED_HEAP.load(Ordering::Acquire);
    if !heap.is_null() {
        return Some(heap);
    }
    // SAFETY: mi_heap_new only makes a heap (allocating through mimalloc
    // itself, not through this allocator).
    let made = unsafe { mi::mi_heap_new() };
    if made.is_null() {
        return None;
    }
    match LONG_LIVED_HEAP.compare_exchange(
        std::ptr::null_mut(),
        made,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Some(made),
        // Another thread made one first: this one, still empty, goes.
        Err(theirs) => {
            // SAFETY: `made` is ours alone and holds no block.
            unsafe { mi::mi_heap_delete(made) };
            Some(theirs)
        }
    }
}

// SAFETY: every block comes from mimalloc with the layout's size and
// alignment; mi_free and mi_realloc_aligned take a block of any heap.
unsafe impl GlobalAlloc for ServerHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc returns a block of at least `size` bytes at
        // `align`, or null.
        unsafe {
            match long_lived_heap() {
                Some(heap) => {
                    mi::mi_heap_malloc_aligned(heap, layout.size(), layout.align()).cast()
                }
                None => mi::mi_malloc_aligned(layout.size(), layout.align()).cast(),
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`, zeroed.
        unsafe {
            match long_lived_heap() {
                Some(heap) => {
                    mi::mi_heap_zalloc_aligned(heap, layout.size(), layout.align()).cast()
                }
                None => mi::mi_zalloc_aligned(layout.size(), layout.align()).cast(),
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` is a live block of this allocator's.
        unsafe { mi::mi_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is a live block of this allocator's at
        // `layout.align()`.
        unsafe {
            match long_lived_heap() {
                Some(heap) => {
                    mi::mi_heap_realloc_aligned(heap, ptr.cast(), new_size, layout.align()).cast()
                }
                None => mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast(),
            }
        }
    }
}

/// Runs `work` with what it allocates kept apart as long-lived (see
/// [`ServerHeap`]; under another allocator, it only runs `work`).
pub fn long_lived_now<T>(work: impl FnOnce() -> T) -> T {
    let _set = LongLivedFlag::set();
    work()
}

/// `future`, with what each of its polls allocates kept apart as
/// long-lived (see [`ServerHeap`]): for a pod's supervisors, which run as
/// long as the pod does.
pub fn long_lived<F: Future>(future: F) -> LongLived<F> {
    LongLived(future)
}

/// See [`long_lived`].
pub struct LongLived<F>(F);

impl<F: Future> Future for LongLived<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _set = LongLivedFlag::set();
        // SAFETY: the future is pinned with its wrapper, never moved out.
        unsafe { self.map_unchecked_mut(|l| &mut l.0) }.poll(cx)
    }
}

/// Marks this thread's work long-lived until dropped, then as it was.
struct LongLivedFlag(bool);

impl LongLivedFlag {
    fn set() -> LongLivedFlag {
        LongLivedFlag(LONG_LIVED.with(|flag| flag.replace(true)))
    }
}

impl Drop for LongLivedFlag {
    fn drop(&mut self) {
        LONG_LIVED.with(|flag| flag.set(self.0));
    }
}

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
        mi::mi_collect(true);
        let long_lived = LONG_LIVED_HEAP.load(Ordering::Acquire);
        if !long_lived.is_null() {
            mi::mi_heap_collect(long_lived, true);
        }
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

/// This process's resident memory by kind, in KiB (`RssAnon`, `RssFile`
/// and `RssShmem` of /proc/self/status); none where it does not tell.
///
/// Anonymous pages are the heap, stacks and guests' memories: they are
/// held until freed. File pages (the binary's code, compiled images,
/// guests' initial memories mapped from their files) and shared memory
/// are the kernel's to drop and read back.
pub fn resident_parts() -> Option<ResidentParts> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(ResidentParts {
        anonymous: kib_line(&status, "RssAnon:")?,
        file: kib_line(&status, "RssFile:")?,
        shared: kib_line(&status, "RssShmem:")?,
    })
}

/// Resident memory by kind, in KiB: see [`resident_parts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResidentParts {
    pub anonymous: u64,
    pub file: u64,
    pub shared: u64,
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
    kib_line(&std::fs::read_to_string(path).ok()?, name)
}

/// The `name  123 kB` line of a /proc file's text, in KiB.
fn kib_line(text: &str, name: &str) -> Option<u64> {
    text.lines()
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
        mi::mi_process_info(
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

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" {
        /// Whether `block` is in `heap` (mimalloc's, not in the bindings).
        fn mi_heap_contains(heap: *const mi::mi_heap_t, block: *const std::ffi::c_void) -> bool;
    }

    /// Whether `block` is in the long-lived heap.
    fn long_lived_block(block: *mut u8) -> bool {
        let heap = LONG_LIVED_HEAP.load(Ordering::Acquire);
        // SAFETY: mi_heap_contains only looks the block up.
        !heap.is_null() && unsafe { mi_heap_contains(heap, block.cast()) }
    }

    #[test]
    fn long_lived_work_allocates_in_a_heap_of_its_own() {
        let layout = Layout::from_size_align(640, 8).unwrap();
        // SAFETY: each block is freed once, with its layout.
        unsafe {
            let kept = long_lived_now(|| ServerHeap.alloc(layout));
            let passing = ServerHeap.alloc(layout);
            assert!(long_lived_block(kept));
            assert!(!long_lived_block(passing));
            // A long-lived future's polls, and only they.
            let polled = Cell::new(std::ptr::null_mut());
            let mut future = std::pin::pin!(long_lived(async {
                polled.set(ServerHeap.alloc(layout));
                std::future::pending::<()>().await;
            }));
            let waker = std::task::Waker::noop();
            assert!(
                future
                    .as_mut()
                    .poll(&mut Context::from_waker(waker))
                    .is_pending()
            );
            assert!(long_lived_block(polled.get()));
            let after = ServerHeap.alloc(layout);
            assert!(!long_lived_block(after));
            // Blocks of either heap are freed and grown alike.
            let grown = ServerHeap.realloc(kept, layout, 4096);
            assert!(!grown.is_null());
            for (block, layout) in [
                (grown, Layout::from_size_align(4096, 8).unwrap()),
                (passing, layout),
                (polled.get(), layout),
                (after, layout),
            ] {
                ServerHeap.dealloc(block, layout);
            }
        }
    }
}
