//! Resource limits and accounting for one container: a memory limiter that
//! sums every linear memory of the instance, CPU time measured around each
//! poll of the guest's future, and a CPU quota enforced per period from the
//! epoch callback.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Limits a container runs under; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Upper bound on the sum of all linear memories of the container, in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU quota in millicores: 1000 is one full core.
    pub cpu_millis: Option<u64>,
}

/// Live usage counters of one guest instance or of a whole container,
/// shared with whoever wants to read them (`ps`, the kubelet's metrics,
/// tests).
///
/// Counters nest as cgroups do: what an instance is charged is charged to
/// its parent too (the container its instance or exec'd command runs in),
/// so a container's counters cover everything that ran in it.
#[derive(Debug, Default)]
pub struct Usage {
    cpu_ns: AtomicU64,
    memory_bytes: AtomicU64,
    table_bytes: AtomicU64,
    throttled_ns: AtomicU64,
    /// Set when a memory growth was refused: an instance that then dies was
    /// killed by its memory limit, not by a bug of its own.
    oom: AtomicBool,
    parent: Option<Arc<Usage>>,
}

/// A point-in-time copy of [`Usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageSnapshot {
    /// CPU time the guest has consumed.
    pub cpu: Duration,
    /// Bytes of linear memory the guest holds (all memories summed).
    pub memory_bytes: u64,
    /// Bytes the host holds for the guest's tables.
    pub table_bytes: u64,
    /// Wall time the guest spent waiting because its CPU quota was used up.
    pub throttled: Duration,
}

impl UsageSnapshot {
    /// The memory the guest keeps in use: its linear memories and what the
    /// host holds for its tables (cAdvisor's working set, in guest terms).
    pub fn working_set_bytes(&self) -> u64 {
        self.memory_bytes + self.table_bytes
    }
}

impl Usage {
    /// Counters whose charges also go to `parent`.
    pub(crate) fn within(parent: &Arc<Usage>) -> Usage {
        Usage {
            parent: Some(Arc::clone(parent)),
            ..Usage::default()
        }
    }

    /// Reads the counters.
    pub fn snapshot(&self) -> UsageSnapshot {
        UsageSnapshot {
            cpu: Duration::from_nanos(self.cpu_ns.load(Ordering::Relaxed)),
            memory_bytes: self.memory_bytes.load(Ordering::Relaxed),
            table_bytes: self.table_bytes.load(Ordering::Relaxed),
            throttled: Duration::from_nanos(self.throttled_ns.load(Ordering::Relaxed)),
        }
    }

    fn charge_cpu(&self, ns: u64) {
        self.cpu_ns.fetch_add(ns, Ordering::Relaxed);
        if let Some(parent) = &self.parent {
            parent.charge_cpu(ns);
        }
    }

    fn charge_throttled(&self, ns: u64) {
        self.throttled_ns.fetch_add(ns, Ordering::Relaxed);
        if let Some(parent) = &self.parent {
            parent.charge_throttled(ns);
        }
    }

    /// Moves a byte counter by `grown` minus `shrunk`, here and above.
    fn resize(&self, field: fn(&Usage) -> &AtomicU64, grown: u64, shrunk: u64) {
        let counter = field(self);
        counter.fetch_add(grown, Ordering::Relaxed);
        counter.fetch_sub(shrunk, Ordering::Relaxed);
        if let Some(parent) = &self.parent {
            parent.resize(field, grown, shrunk);
        }
    }

    pub(crate) fn hit_memory_limit(&self) -> bool {
        self.oom.load(Ordering::Relaxed)
    }
}

/// `wasmtime::ResourceLimiter` that caps the *sum* of all memories of a
/// store, so a component cannot escape its limit by spreading over several
/// memories (a p1 module brought in by the adapter has two). It charges the
/// store's memories and tables to its usage, and takes them back when the
/// store goes (several stores may share one usage: a server's handlers).
pub(crate) struct MemoryLimiter {
    limit: Option<u64>,
    usage: Arc<Usage>,
    total: u64,
    tables: u64,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: Option<u64>, usage: Arc<Usage>) -> Self {
        MemoryLimiter {
            limit,
            usage,
            total: 0,
            tables: 0,
        }
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.usage.resize(|u| &u.memory_bytes, 0, self.total);
        self.usage.resize(|u| &u.table_bytes, 0, self.tables);
    }
}

/// Tables are bounded only to stop a runaway guest from exhausting the host.
const MAX_TABLE_ELEMENTS: usize = 10_000_000;

/// What the host holds per table element (a function reference).
const TABLE_ELEMENT_BYTES: u64 = std::mem::size_of::<usize>() as u64;

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.total - current as u64 + desired as u64;
        if let Some(limit) = self.limit
            && next > limit
        {
            self.usage.oom.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        self.usage
            .resize(|u| &u.memory_bytes, desired as u64, current as u64);
        self.total = next;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        let (grown, shrunk) = (
            desired as u64 * TABLE_ELEMENT_BYTES,
            current as u64 * TABLE_ELEMENT_BYTES,
        );
        self.usage.resize(|u| &u.table_bytes, grown, shrunk);
        self.tables = self.tables + grown - shrunk;
        Ok(true)
    }
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is
    // supported on every Linux and macOS this runs on.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The CPU side of a container: accounting plus the quota's state.
/// Shared between the poll wrapper ([`CpuMetered`]) and the epoch callback.
///
/// The quota works like the kernel's CFS bandwidth control: a guest may use
/// `limit × period` of CPU per period, and what it overshoots between two
/// checks (a late epoch tick on a loaded machine) is a debt paid by
/// sleeping longer. In token-bucket terms: tokens accrue at the limit's
/// rate up to one period's quota; running spends them; below zero the
/// guest sleeps until the balance is back at zero.
pub(crate) struct CpuAccount {
    usage: Arc<Usage>,
    /// CPU nanoseconds granted per wall nanosecond (0.2 for 200m).
    rate: Option<f64>,
    /// Most tokens the bucket holds: one period's quota.
    burst_ns: f64,
    state: Mutex<QuotaState>,
}

struct QuotaState {
    /// Thread CPU clock when the current poll began, if the guest is being
    /// polled right now.
    poll_start: Option<u64>,
    /// CPU nanoseconds the guest may still use; negative is a debt.
    tokens: f64,
    /// When tokens were last added.
    refilled_at: Instant,
    /// Total CPU already charged against the tokens.
    charged_ns: u64,
}

/// What the epoch callback should do after a tick.
pub(crate) enum TickAction {
    /// Keep running (yielding to the scheduler for fairness).
    Continue,
    /// The quota is spent: sleep this future, then run on.
    Throttle(Pin<Box<dyn Future<Output = ()> + Send>>),
}

impl CpuAccount {
    pub(crate) fn new(usage: Arc<Usage>, cpu_millis: Option<u64>, period: Duration) -> Arc<Self> {
        let rate = cpu_millis.map(|m| m as f64 / 1000.0);
        let burst_ns = rate.map(|r| period.as_nanos() as f64 * r).unwrap_or(0.0);
        Arc::new(CpuAccount {
            usage,
            rate,
            burst_ns,
            state: Mutex::new(QuotaState {
                poll_start: None,
                tokens: burst_ns,
                refilled_at: Instant::now(),
                charged_ns: 0,
            }),
        })
    }

    fn total_ns(&self, state: &QuotaState) -> u64 {
        let running = state
            .poll_start
            .map(|s| thread_cpu_ns().saturating_sub(s))
            .unwrap_or(0);
        self.usage.cpu_ns.load(Ordering::Relaxed) + running
    }

    /// Called from the epoch callback, on the guest's own thread, mid-poll.
    pub(crate) fn on_tick(self: &Arc<Self>) -> TickAction {
        let Some(rate) = self.rate else {
            return TickAction::Continue;
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let total = self.total_ns(&state);
        let accrued = now.duration_since(state.refilled_at).as_nanos() as f64 * rate;
        state.tokens = (state.tokens + accrued).min(self.burst_ns);
        state.tokens -= total.saturating_sub(state.charged_ns) as f64;
        state.refilled_at = now;
        state.charged_ns = total;
        if state.tokens >= 0.0 {
            return TickAction::Continue;
        }
        let wake = now + Duration::from_nanos((-state.tokens / rate) as u64);
        let account = Arc::clone(self);
        TickAction::Throttle(Box::pin(async move {
            let began = Instant::now();
            tokio::time::sleep_until(wake.into()).await;
            account
                .usage
                .charge_throttled(began.elapsed().as_nanos() as u64);
        }))
    }
}

/// Wraps a guest's future and charges the thread CPU time of every poll to
/// the container. Polls are where guest code runs, so this measures exactly
/// the guest (plus the host calls it makes), whatever thread it lands on.
pub(crate) struct CpuMetered<F> {
    inner: Pin<Box<F>>,
    account: Arc<CpuAccount>,
}

impl<F> CpuMetered<F> {
    pub(crate) fn new(inner: F, account: Arc<CpuAccount>) -> Self {
        CpuMetered {
            inner: Box::pin(inner),
            account,
        }
    }
}

impl<F: Future> Future for CpuMetered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = thread_cpu_ns();
        self.account
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .poll_start = Some(start);
        let result = self.inner.as_mut().poll(cx);
        let spent = thread_cpu_ns().saturating_sub(start);
        self.account
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .poll_start = None;
        self.account.usage.charge_cpu(spent);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_limit_counts_all_memories_together() {
        let usage = Arc::new(Usage::default());
        let mut limiter = MemoryLimiter::new(Some(10 << 20), usage.clone());
        assert!(limiter.memory_growing(0, 6 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 3 << 20, None).unwrap());
        assert_eq!(usage.snapshot().memory_bytes, 9 << 20);
        // A second memory growing past the sum is refused though alone it would fit.
        assert!(!limiter.memory_growing(3 << 20, 5 << 20, None).unwrap());
        assert!(usage.hit_memory_limit());
        assert_eq!(usage.snapshot().memory_bytes, 9 << 20);
    }

    #[test]
    fn stores_sharing_one_usage_add_up() {
        // A server's handlers: one usage, a store (and limiter) each.
        let usage = Arc::new(Usage::default());
        let mut first = MemoryLimiter::new(None, usage.clone());
        let mut second = MemoryLimiter::new(None, usage.clone());
        assert!(first.memory_growing(0, 4 << 20, None).unwrap());
        assert!(second.memory_growing(0, 2 << 20, None).unwrap());
        assert_eq!(usage.snapshot().memory_bytes, 6 << 20);
        drop(first);
        assert_eq!(usage.snapshot().memory_bytes, 2 << 20);
    }

    #[test]
    fn a_container_counts_what_its_guests_use_while_they_hold_it() {
        let container = Arc::new(Usage::default());
        let first = Arc::new(Usage::within(&container));
        let second = Arc::new(Usage::within(&container));
        let mut a = MemoryLimiter::new(Some(8 << 20), first.clone());
        let mut b = MemoryLimiter::new(Some(8 << 20), second.clone());
        assert!(a.memory_growing(0, 4 << 20, None).unwrap());
        assert!(b.memory_growing(0, 2 << 20, None).unwrap());
        assert!(b.table_growing(0, 100, None).unwrap());
        first.charge_cpu(1_000);
        second.charge_cpu(500);
        let both = container.snapshot();
        assert_eq!(both.memory_bytes, 6 << 20);
        assert_eq!(both.table_bytes, 100 * TABLE_ELEMENT_BYTES);
        assert_eq!(
            both.working_set_bytes(),
            (6 << 20) + 100 * TABLE_ELEMENT_BYTES
        );
        assert_eq!(both.cpu, Duration::from_nanos(1_500));
        // A guest that ends gives its memory back; its CPU stays counted.
        drop(b);
        let after = container.snapshot();
        assert_eq!((after.memory_bytes, after.table_bytes), (4 << 20, 0));
        assert_eq!(after.cpu, Duration::from_nanos(1_500));
        assert_eq!(second.snapshot().memory_bytes, 0);
        drop(a);
        assert_eq!(container.snapshot().working_set_bytes(), 0);
    }

    #[test]
    fn unlimited_memory_only_counts() {
        let usage = Arc::new(Usage::default());
        let mut limiter = MemoryLimiter::new(None, usage.clone());
        assert!(limiter.memory_growing(0, 1 << 30, None).unwrap());
        assert!(!usage.hit_memory_limit());
        assert_eq!(usage.snapshot().memory_bytes, 1 << 30);
    }
}
