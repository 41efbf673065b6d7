use clap::Parser;
use mesher_stress::cli::{Cli, Command};
use mesher_stress::exit;
use std::process::ExitCode;

/// mimalloc: generation, the driver and the built-in target allocate many small, short-lived
/// objects, for which glibc malloc is the largest single cost in their profiles.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's option enum (the same value in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Give freed pages back to the OS at once instead of after mimalloc's default delay (1 s in
    // mimalloc 3): RSS then follows what the process holds, not the pages of transient multi-MiB
    // buffers (mutated bodies, checkpoints) — soak verdicts and the tool's own memory check read
    // RSS. The built-in target is this binary too, so its RSS is affected the same way.
    // Figures: docs/performance.md, "Memory in long runs".
    // `MIMALLOC_PURGE_DELAY` in the environment (mimalloc's own variable, in ms) still wins.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide option, no pointers.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::SUCCESS };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The built-in target on one thread gets a single-threaded runtime (see `target --threads`).
    let threads = match &cli.command {
        Command::Target(a) => {
            a.threads.map(usize::from).or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        }
        _ => None,
    };
    let built = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::TOOL_ERROR);
        }
    };
    let g = cli.global.clone();
    let result = rt.block_on(async move { mesher_stress::cli::dispatch(cli.command, &g).await });
    // Do not wait for stray blocking tasks (e.g. a stdin reader) at shutdown.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::TOOL_ERROR)
        }
    }
}
