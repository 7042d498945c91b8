//! How the process gives freed memory back to the OS.
//!
//! The binary allocates with mimalloc (`src/main.rs`). mimalloc purges freed pages after a
//! delay of 1 s, and only when the thread that owns them allocates or frees again; the
//! encoding threads of a KPI build then sit idle with their pages. Measured at scale 10:
//! with the delay, a KPI build peaked at 2.1 GB and left the server at 1.8 GB; purging at
//! once, 0.74 GB and 0.20 GB (once tokio's idle blocking threads exit). Purging at once
//! makes every query slower, though (the ad-hoc set's geometric mean went from 1.07 to 1.28
//! of DuckDB's), so it is on only while a KPI build or a refresh's write runs:
//! [`while_building`]. For the write: `demo --scale 10` (generating and writing together)
//! peaked at 985–1,057 MiB with the delay and 797 MiB without (14.5–15 s against 16.6 s);
//! with glibc's allocator, 688 MiB.
//!
//! The blocking threads that read files and encode snapshot columns keep what other
//! threads freed of their allocations until they run again or exit. With tokio's default
//! keep-alive of 10 s they stayed through a whole KPI build, so memory a finished table had
//! freed was still resident while the next tables were built. They now exit after
//! [`BLOCKING_THREAD_KEEP_ALIVE`] idle: measured at scale 10, three KPI builds peaked at
//! 679–859 MiB and left 207–210 MiB 20 s later, against 739–1,263 MiB and 235–250 MiB with
//! 10 s (`BENCHMARKS.md`).
//!
//! Where mimalloc is not the allocator (the tests), setting its option changes nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `mi_option_purge_delay`: its place in `mi_option_e` of mimalloc v3's `mimalloc.h` (the
/// version libmimalloc-sys builds; its default is in `src/options.c`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc v3's default purge delay, in milliseconds (`options.c`; `mimalloc.h` still says
/// 10).
const DEFAULT_PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// How long an idle blocking thread of the runtime lives (see the module docs).
pub const BLOCKING_THREAD_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// Builds (KPI tables, refreshes) running now; freed memory is purged at once while there is
/// one.
static BUILDS: AtomicUsize = AtomicUsize::new(0);

/// Purges freed memory at once until the returned guard is dropped (and no other build
/// holds one).
pub fn while_building() -> BuildGuard {
    if BUILDS.fetch_add(1, Ordering::SeqCst) == 0 {
        set_purge_delay(0);
    }
    BuildGuard(())
}

/// See [`while_building`].
#[derive(Debug)]
pub struct BuildGuard(());

impl Drop for BuildGuard {
    fn drop(&mut self) {
        if BUILDS.fetch_sub(1, Ordering::SeqCst) == 1 {
            set_purge_delay(DEFAULT_PURGE_DELAY_MS);
            // What the build freed last waits for a purge that an idle server never
            // triggers: purge it now.
            // SAFETY: asks the allocator to return free memory; no live allocation is touched.
            unsafe { libmimalloc_sys::mi_collect(true) }
        }
    }
}

fn set_purge_delay(milliseconds: std::ffi::c_long) {
    // SAFETY: sets an integer option of the allocator; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, milliseconds) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge_delay() -> std::ffi::c_long {
        // SAFETY: reads an integer option of the allocator.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    #[test]
    fn builds_purge_at_once_and_the_last_one_restores_the_default() {
        assert_eq!(purge_delay(), DEFAULT_PURGE_DELAY_MS, "mimalloc v3's purge_delay defaults to 1000 ms; another option is read");
        let first = while_building();
        let second = while_building();
        assert_eq!(purge_delay(), 0);
        drop(first);
        assert_eq!(purge_delay(), 0, "another build still runs");
        drop(second);
        assert_eq!(purge_delay(), DEFAULT_PURGE_DELAY_MS);
    }
}
