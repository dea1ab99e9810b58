//! The `ssfd` binary: parses the command line and hands over to the library.

// Many small short-lived allocations per SET across worker threads: mimalloc handles that
// pattern markedly better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ssfd::cli::main()
}
