//! Work that allocates a lot for a short time, kept off the long-lived threads' heaps.

/// Run `f(arg)` on a short-lived thread of its own and wait for it (inline if no thread can be
/// started). A checkpoint allocates a few MiB that live only while it is built and written;
/// made on the tokio workers, between the run's long-lived allocations, they leave pages behind
/// that the allocator cannot give back, and the tool's RSS rises with every checkpoint
/// (docs/performance.md, "Memory in long runs"). A thread's own allocator heap goes back whole
/// when it ends.
pub fn on_own_thread<A: Sync + ?Sized>(name: &str, f: impl FnOnce(&A) + Send, arg: &A) {
    let mut f = Some(f);
    std::thread::scope(|s| {
        let slot = &mut f;
        // On an error the closure is dropped unrun and `f` is still there for the fallback.
        let _ = std::thread::Builder::new().name(name.into()).spawn_scoped(s, move || {
            if let Some(f) = slot.take() {
                f(arg)
            }
        });
    });
    if let Some(f) = f.take() {
        f(arg);
    }
}
