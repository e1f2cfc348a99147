//! The heap: how many glibc malloc arenas the process uses, and giving
//! freed pages back to the operating system. Both are no-ops on other
//! platforms and allocators.
//!
//! Most of this server's allocations cross threads: the room registry
//! allocates each delivery's envelope on its thread and the connection's
//! worker thread frees it. With glibc's default of one arena per thread,
//! those frees land in the other thread's arena and the registry's own
//! allocations keep missing its caches (`_int_malloc` was a quarter of the
//! fan-out's CPU). One shared arena makes them reuse each other's chunks.

/// Caps glibc's malloc arenas at `n` (0 leaves glibc's default). Call it
/// before any thread starts.
pub fn limit_arenas(n: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if n > 0 {
        extern "C" {
            fn mallopt(
                param: std::os::raw::c_int,
                value: std::os::raw::c_int,
            ) -> std::os::raw::c_int;
        }
        const M_ARENA_MAX: std::os::raw::c_int = -8;
        let n = n.min(std::os::raw::c_int::MAX as usize) as std::os::raw::c_int;
        // SAFETY: mallopt takes no pointers; called before other threads.
        if unsafe { mallopt(M_ARENA_MAX, n) } == 0 {
            log::warn!("could not limit malloc arenas to {n}");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = n;
}

/// Returns the heap's free pages to the operating system. glibc keeps
/// memory freed by the program (connection buffers after a burst) mapped,
/// spread over its arenas, so without this RSS stays at its peak.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim takes no pointers and may be called any time.
        unsafe {
            malloc_trim(0);
        }
    }
}
