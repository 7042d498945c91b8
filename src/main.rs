//! The `salespulse` command: parse arguments, set up logging, run the command, and turn
//! an error into one message and a non-zero exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's allocator: glibc keeps what a KPI build or a large query freed
/// (a server that built the KPI tables at scale 10 stayed at 2.3 GB; BENCHMARKS.md, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: its place in `mi_option_e` of mimalloc v3's `mimalloc.h` (the
/// version libmimalloc-sys builds), whose default is 10 ms.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS at once. With mimalloc's 10 ms delay the pages freed by
/// threads that then sit idle (the encoders of a KPI build) are purged only when those
/// threads exit, and other threads cannot reuse them: measured at scale 10, the build peaked
/// at 2.1 GB and the server stayed at 1.8 GB, against 0.9 GB and 0.2 GB without the delay.
fn return_freed_memory_at_once() {
    // SAFETY: sets an integer option of the allocator; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(cli::progress::LogWriter)
        // Colours on a terminal only: cron mail, journald and files get plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(8 << 20).build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", one_message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes as one line, each text once: our errors name their cause in
/// their own message and keep it as their `source()` too, so `{:#}` would say it twice.
fn one_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_the_one_mimalloc_documents() {
        // SAFETY: reads an integer option of the allocator.
        let default = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(default, 10, "mimalloc's purge_delay defaults to 10 ms; another index is read");
    }
}
