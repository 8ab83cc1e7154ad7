//! The kernels' parallel loop, [`par_map`], on rayon's pool, and the pool thread that lingers
//! after it ([`linger`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// `f(i)` for every `i` in `0..n`, in parallel, results in index order. The calling thread
/// takes part: it claims indices from a shared counter alongside `current_num_threads() − 1`
/// pool tasks, so work starts at once instead of after a sleeping worker wakes up. Which
/// thread runs an index changes nothing in its result, so results are the same run after run.
///
/// The calling thread then waits only for the indices other threads have claimed and not yet
/// finished, spinning: it does not wait for the pool tasks themselves, which may not even have
/// started, and does not block (blocked in a `rayon` scope, it went to sleep whenever it
/// finished first, and its wake-up cost more than the wait: `docs/kernels.md`). A pool task
/// that starts after every index is claimed finds nothing to do and touches nothing of the
/// caller's.
pub(crate) fn par_map<R: Send + 'static>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let helpers = rayon::current_num_threads()
        .saturating_sub(1)
        .min(n.saturating_sub(1));
    if helpers == 0 {
        return (0..n).map(f).collect();
    }
    let f: &(dyn Fn(usize) -> R + Sync) = &f;
    // SAFETY: only the lifetime is changed. `f` is called only for a claimed index, and this
    // function returns (or unwinds) only once every claimed index is finished, so no call of
    // `f` outlives it; a pool task that claims nothing never dereferences `f`.
    let f: *const (dyn Fn(usize) -> R + Sync + 'static) = unsafe { std::mem::transmute(f) };
    let shared = Arc::new(ParMap {
        n,
        f,
        next: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
        results: Mutex::new(Vec::with_capacity(n)),
        panic: Mutex::new(None),
    });
    linger::starting();
    for _ in 0..helpers {
        let shared = Arc::clone(&shared);
        rayon::spawn(move || shared.participate());
    }
    shared.participate();
    let mut spins = 0u32;
    while shared.finished.load(Ordering::Acquire) < n {
        // Spin while the other threads finish their last index; yield the CPU if that takes
        // long (the other thread may have been descheduled).
        if spins < 1 << 14 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    linger::after();
    if let Some(payload) = lock(&shared.panic).take() {
        std::panic::resume_unwind(payload);
    }
    let mut done = std::mem::take(&mut *lock(&shared.results));
    done.sort_unstable_by_key(|&(i, _)| i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The state of one [`par_map`], shared with its pool tasks (which may outlive the call).
struct ParMap<R> {
    n: usize,
    /// The caller's function: called only for a claimed index (see [`par_map`]).
    f: *const (dyn Fn(usize) -> R + Sync + 'static),
    /// The next index to claim.
    next: AtomicUsize,
    /// Indices finished (their results stored, or their panic recorded).
    finished: AtomicUsize,
    results: Mutex<Vec<(usize, R)>>,
    /// The first panic of `f`, re-raised on the calling thread.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

// SAFETY: `f` is `Sync` and only called while the caller of `par_map` waits (see there); the
// rest is atomics and mutexes over `Send` data.
unsafe impl<R: Send> Send for ParMap<R> {}
unsafe impl<R: Send> Sync for ParMap<R> {}

impl<R: Send> ParMap<R> {
    /// Claims and runs indices until none is left.
    fn participate(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            // SAFETY: index `i` is claimed and not yet finished, so the caller of `par_map` is
            // still waiting and `f` (with what it borrows) is alive.
            let f = unsafe { &*self.f };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i))) {
                Ok(r) => lock(&self.results).push((i, r)),
                Err(payload) => {
                    lock(&self.panic).get_or_insert(payload);
                }
            }
            self.finished.fetch_add(1, Ordering::Release);
        }
    }
}

/// Locks `m`, ignoring poisoning (the data is only pushed to and taken).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a pool thread awake for a while after each [`par_map`], so that the next one (the
/// backward pass after the forward, the next layer's kernel) finds its helper running instead
/// of waiting for a sleeping thread to wake up, as OpenMP runtimes do (they spin for a while
/// before they block). The lingering job runs any other pending pool work meanwhile
/// (`rayon::yield_now`), so it never holds up another parallel operation, and it ends as soon
/// as the next `par_map` starts, or after `AFU_LINGER_US` microseconds (environment; default
/// [`DEFAULT_US`](linger::DEFAULT_US), 0 turns it off).
mod linger {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// How long a pool thread stays awake after a `par_map` unless `AFU_LINGER_US` says: long
    /// enough to span the single-threaded tensor operations between an AFU's forward and
    /// backward kernels on the benchmark's tensor, also in busy spells (the gaps measured:
    /// `docs/kernels.md`).
    pub(super) const DEFAULT_US: u64 = 1000;
    /// Bumped by every `par_map` at its start: the lingering job then stops.
    static EPOCH: AtomicU64 = AtomicU64::new(0);
    /// Whether a lingering job is running (at most one at a time).
    static LINGERING: AtomicBool = AtomicBool::new(false);

    /// The lingering time: `AFU_LINGER_US` when set to a number, else [`DEFAULT_US`].
    fn duration() -> Duration {
        static US: OnceLock<u64> = OnceLock::new();
        Duration::from_micros(*US.get_or_init(|| {
            std::env::var("AFU_LINGER_US")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_US)
        }))
    }

    /// Called by `par_map` before it spawns its helpers: a lingering job gives its thread up.
    pub(super) fn starting() {
        EPOCH.fetch_add(1, Ordering::Relaxed);
    }

    /// Called by `par_map` when it is done: keeps one pool thread awake.
    pub(super) fn after() {
        let linger = duration();
        if linger.is_zero() || LINGERING.swap(true, Ordering::AcqRel) {
            return;
        }
        let epoch = EPOCH.load(Ordering::Relaxed);
        rayon::spawn(move || {
            let start = Instant::now();
            while EPOCH.load(Ordering::Relaxed) == epoch && start.elapsed() < linger {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::hint::spin_loop();
                }
            }
            LINGERING.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::par_map;

    #[test]
    fn par_map_runs_every_index_once_and_returns_results_in_order() {
        for n in [0, 1, 2, 3, 17, 1000] {
            let calls = std::sync::atomic::AtomicUsize::new(0);
            let out = par_map(n, |i| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i * i
            });
            assert_eq!(out, (0..n).map(|i| i * i).collect::<Vec<_>>());
            assert_eq!(calls.into_inner(), n);
        }
        // From inside a pool worker too (nested parallelism).
        let nested = rayon::join(|| par_map(50, |i| i + 1), || par_map(7, |i| i));
        assert_eq!(nested.0, (1..=50).collect::<Vec<_>>());
        assert_eq!(nested.1, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn par_map_reraises_a_panic_after_every_claimed_index_is_done() {
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            par_map(64, |i| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                assert!(i != 13, "index 13 fails");
                finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
        }));
        let payload = result.expect_err("the panic reaches the caller");
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        assert_eq!(message, Some("index 13 fails"));
        // Every other index ran to its end before par_map returned.
        assert_eq!(finished.into_inner(), 63);
    }
}
