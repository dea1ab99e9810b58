//! The `ssfd` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

// Many small short-lived allocations per SET across worker threads: mimalloc handles that
// pattern better than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc commits its first arena eagerly, which costs an idle daemon about 10 MiB of
/// resident memory for no measurable gain. The option is read before `main` runs, so it can
/// only come from the environment.
const LAZY_ARENAS: &str = "MIMALLOC_ARENA_EAGER_COMMIT";

fn main() -> ExitCode {
    if std::env::var_os(LAZY_ARENAS).is_none() {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            // Replaces this process (same pid, so systemd's notify and watchdog are unaffected);
            // returns only if the exec failed, and then the daemon simply runs with eager arenas.
            let _ = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env(LAZY_ARENAS, "0")
                .exec();
        }
    }
    ssfd::cli::main()
}
