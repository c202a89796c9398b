//! The command line: `run`, `serve`, `check`, `credentials`, `report`, `completions`, `man`. Thin:
//! it parses, wires the fleet, the engine and the embedded server together, prints, and picks the
//! exit code.
//!
//! This file holds the `Cli` definition, the dispatch to each command and the exit codes. The
//! rest, under `cli/`:
//!
//! - `run.rs`, `serve.rs`, `check.rs`, `credentials.rs`, `report.rs`, `capacity.rs`: one
//!   command each, with its own options.
//! - `args.rs`: the option groups commands share (`FleetArgs`, `TimingArgs`, `EngineArgs`,
//!   `LoadArgs`, `LimitArgs`), each under its help heading.
//! - `help.rs`: `--version`, the Examples sections, and `completions` and `man`.
//! - `parse.rs`: the value parsers for options clap cannot type by itself (`--rate`, `--ports`,
//!   `--read PATH@PERIOD`, ...).
//! - `preflight.rs`: what a run would find wrong only once started, refused or warned about
//!   before (`check` and `run`), and the traffic a plan makes.
//! - `setup.rs`: from options to a loaded fleet, a resolved server and the engine's settings.
//! - `progress.rs`: the progress lines of `run --no-tui` and the status lines of `serve`.
//! - `logging.rs`: logs through `tracing` on stderr (`RUST_LOG`, `run --quiet`).
//! - `interrupts.rs`: SIGINT, SIGTERM and SIGHUP, counted and told apart (the exit code).
//! - `run/reports.rs`: `run`'s reports (JSON, interval log, plot, thresholds, Prometheus).
//! - `embedded.rs`, `bootstrap.rs`: the servers `run` starts itself when the fleet names none,
//!   and `serve --bootstrap`'s pair.
//! - `output.rs`: stdout, where a reader that closes early ends the output quietly.
//! - `tests.rs`: whole command lines parsed in-process (tests/cli.rs runs the binary).

// Every `print!`/`println!` of the commands goes through `output`: std's panics when the reader
// closes the pipe (`check | head -1`). Defined before the modules so they all use these.
macro_rules! print {
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*), false) };
}
macro_rules! println {
    () => { $crate::cli::output::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*), true) };
}

mod args;
mod bootstrap;
mod campaign;
mod capacity;
mod check;
mod credentials;
mod embedded;
mod help;
mod interrupts;
mod logging;
mod misplaced;
mod output;
mod parse;
mod preflight;
mod progress;
mod report;
mod run;
mod serve;
mod setup;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, for scripts and CI.
pub mod exit {
    /// Bad input: command line, fleet file, templates.
    pub const BAD_INPUT: u8 = 2;
    /// The run could not go on (sockets, threads).
    pub const FAILED: u8 = 1;
    /// The server never answered anything.
    pub const UNREACHABLE: u8 = 3;
    /// Stopped by Ctrl-C (SIGINT) or the dashboard: not a completed run.
    pub const INTERRUPTED: u8 = 130;
    /// Stopped by SIGTERM: not a completed run.
    pub const TERMINATED: u8 = 143;
    /// Stopped by SIGHUP (the terminal went away): not a completed run.
    pub const HANGUP: u8 = 129;
    /// The run completed but a `--threshold` (or the fleet's `thresholds`) failed.
    pub const THRESHOLD_FAILED: u8 = 4;
}

#[derive(Parser, Debug)]
#[command(
    name = "lwm2m-swarm",
    version = help::VERSION,
    about = "Simulate fleets of LWM2M devices against a server and measure how it copes",
    after_help = help::top_examples()
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run a fleet: start its clients, hold, de-register them, print a summary.
    #[command(after_help = help::run_help())]
    Run(run::RunArgs),
    /// Run the embedded LWM2M server alone (with --bootstrap, behind a bootstrap server).
    #[command(after_help = help::serve_help())]
    Serve(serve::ServeArgs),
    /// Validate a fleet file and print the expanded plan; sends nothing.
    #[command(after_help = help::check_examples())]
    Check(check::CheckArgs),
    /// Print every client's endpoint, PSK identity and key, for provisioning the server.
    #[command(after_help = help::credentials_examples())]
    Credentials(credentials::CredentialsArgs),
    /// Print the summary of `run --json` results, merged (shards or machines of one test).
    #[command(after_help = help::report_examples())]
    Report(crate::report::MergeArgs),
    /// Print the shell completion script for SHELL.
    #[command(after_help = help::completions_examples())]
    Completions(help::CompletionsArgs),
    /// Print the manual page (roff); --dir writes one per command.
    #[command(after_help = help::man_examples())]
    Man(help::ManArgs),
    /// Find the highest load the server holds: step the registration rate (or the clients held)
    /// up until a threshold fails, then narrow down between the last step that held and it.
    #[command(after_help = help::capacity_examples())]
    Capacity(capacity::CapacityArgs),
}

impl Cli {
    /// Parses `args` (program name first) without running anything.
    pub(crate) fn parse_args(
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    ) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(args)
    }
}

/// Parses `args` (program name first) and runs the command.
pub fn main_with(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match Cli::parse_args(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let command = args.get(1).and_then(|a| a.to_str()).unwrap_or_default();
            if let Some(message) = misplaced::misplaced_option(&e, command) {
                eprintln!("lwm2m-swarm: {message}");
                return ExitCode::from(exit::BAD_INPUT);
            }
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::BAD_INPUT } else { 0 });
        }
    };
    logging::init(matches!(&cli.command, Command::Run(args) if args.output.quiet));
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::Check(args) => check::check(&args),
        Command::Credentials(args) => credentials::credentials(&args),
        Command::Report(args) => report::report(&args),
        Command::Completions(args) => help::completions(&args),
        Command::Man(args) => help::man(&args),
        Command::Capacity(args) => capacity::capacity(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            eprintln!("lwm2m-swarm: {message}");
            ExitCode::from(code)
        }
    }
}

/// Why a command failed, and its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

fn bad_input(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: exit::BAD_INPUT,
        message: message.to_string(),
    }
}

fn failed(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: exit::FAILED,
        message: message.to_string(),
    }
}
