//! The `salespulse` command: parse arguments, set up logging, run the command, and turn
//! an error into one message and a non-zero exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's allocator: glibc keeps what a KPI build or a large query freed
/// (a server that built the KPI tables at scale 10 stayed at 2.3 GB; `salespulse::memory`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(cli::progress::LogWriter)
        // Colours on a terminal only: cron mail, journald and files get plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Idle blocking threads (file reads, snapshot encoding) exit after 1 s instead of tokio's
    // 10 s: what they hold is freed then (`src/memory.rs`).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .thread_keep_alive(salespulse::memory::BLOCKING_THREAD_KEEP_ALIVE)
        .build()
    {
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

