//! What the help says beyond each option: the version line, the Examples sections, and the
//! `completions` and `man` commands generated from the clap definitions.

use std::io::Write;
use std::path::PathBuf;

use clap::builder::StyledStr;
use clap::builder::styling::Style;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::args::LoadArgs;
use super::{Cli, Failure, bad_input, failed};

/// `--version`.
pub(super) const VERSION: &str = crate::VERSION;

/// A help section: `title` styled as clap styles its own headings, then `body`.
fn section(title: &str, body: &str) -> String {
    let heading = Style::new().bold().underline();
    format!("{heading}{title}:{heading:#}\n{body}")
}

/// An Examples section: each example a comment saying what it does, then the command line.
fn examples(list: &[(&str, &str)]) -> String {
    let body: Vec<String> = list
        .iter()
        .map(|(what, line)| format!("  # {what}\n  {line}"))
        .collect();
    section("Examples", &body.join("\n"))
}

pub(super) fn top_examples() -> StyledStr {
    examples(&[
        (
            "Validate a fleet and see its plan",
            "lwm2m-swarm check fleets/demo.toml",
        ),
        (
            "Run it against the embedded server, with the live dashboard",
            "lwm2m-swarm run fleets/demo.toml",
        ),
        (
            "Each command's options and examples",
            "lwm2m-swarm run --help",
        ),
    ])
    .into()
}

pub(super) fn run_help() -> StyledStr {
    let default_load = format!(
        "  When the fleet names no server, `run` starts the embedded one. Without any option \
         under \"Embedded server load\", that server asks every client to: {}.",
        LoadArgs::default().or_demo().describe()
    );
    let examples = examples(&[
        (
            "100 clients, 10 a second, for one minute, against the embedded server",
            "lwm2m-swarm run fleets/demo.toml -c 100 -r 10 -d 1m",
        ),
        (
            "Against your server, with progress lines instead of the dashboard",
            "lwm2m-swarm run fleets/demo.toml -s coap://192.0.2.10:5683 --no-tui",
        ),
        (
            "Exit 4 when the 99th percentile of Register latency passes 500 ms",
            "lwm2m-swarm run fleets/demo.toml -d 5m --threshold 'register.p99<500ms'",
        ),
        (
            "The embedded server reads every client's temperature every 30 s instead",
            "lwm2m-swarm run fleets/demo.toml -d 5m --read /3303/0/5700@30s",
        ),
        (
            "Shard 0 of 2 of one test (another machine runs 1/2; `report` merges them)",
            "lwm2m-swarm run fleets/demo.toml --shard 0/2 --json shard-0.json",
        ),
    ]);
    format!(
        "{}\n\n{examples}",
        section("Default embedded server load", &default_load)
    )
    .into()
}

pub(super) fn serve_help() -> StyledStr {
    let default_load = "  Without any option under \"Embedded server load\", the server asks nothing \
                        of clients: it takes their registrations and Updates.";
    let examples = examples(&[
        (
            "On 127.0.0.1:5683; run fleets against it with -s coap://127.0.0.1:5683",
            "lwm2m-swarm serve",
        ),
        (
            "Over DTLS on 127.0.0.1:5684, with one key for every client",
            "lwm2m-swarm serve --psk-key 000102030405060708090a0b0c0d0e0f",
        ),
        (
            "Observing every client's temperature, for ten minutes",
            "lwm2m-swarm serve --observe /3303/0/5700 --pmin 10 -d 10m",
        ),
        (
            "Behind a bootstrap server (run fleets/bootstrap-demo.toml with -s)",
            "lwm2m-swarm serve --bootstrap 127.0.0.1:5783",
        ),
    ]);
    format!("{}\n\n{examples}", section("Default load", default_load)).into()
}

pub(super) fn check_examples() -> StyledStr {
    examples(&[
        (
            "The expanded plan, security and engine layout of a fleet",
            "lwm2m-swarm check fleets/demo.toml",
        ),
        (
            "100,000 clients on 2 threads, for a host with a higher open-files limit",
            "lwm2m-swarm check fleets/demo.toml -c 100000 --shards 2 --open-files 1048576",
        ),
    ])
    .into()
}

pub(super) fn capacity_examples() -> StyledStr {
    examples(&[
        (
            "The registrations per second held with register p99 under 500 ms",
            "lwm2m-swarm capacity fleets/demo.toml --threshold 'register.p99<500ms'",
        ),
        (
            "From 100/s up by x2, against the thresholds in the fleet file",
            "lwm2m-swarm capacity fleets/send-demo.toml --start 100 --factor 2",
        ),
        (
            "Steps of 20 s, every step written as JSON",
            "lwm2m-swarm capacity fleets/send-demo.toml --step 20s --json steps.json",
        ),
        (
            "Registered clients held at once, with the fleet's Updates and notifications",
            "lwm2m-swarm capacity fleets/send-demo.toml --by clients --max 50000",
        ),
    ])
    .into()
}

pub(super) fn credentials_examples() -> StyledStr {
    examples(&[
        (
            "Every client's endpoint, PSK identity and key, as CSV",
            "lwm2m-swarm credentials fleets/dtls-psk.toml",
        ),
        (
            "As JSON, into a file only its owner can read",
            "lwm2m-swarm credentials fleets/dtls-psk.toml --format json -o keys.json",
        ),
        (
            "ENDPOINT.pem per device into a directory (--private-keys: keys too)",
            "lwm2m-swarm credentials fleets/dtls-x509-demo.toml --output-dir pki",
        ),
    ])
    .into()
}

pub(super) fn report_examples() -> StyledStr {
    examples(&[
        (
            "The shards of one test as one, with a criterion checked on the whole",
            "lwm2m-swarm report shard-*.json --threshold 'register.p99<500ms'",
        ),
        (
            "Merged into one JSON file (it merges again) and a chart",
            "lwm2m-swarm report shard-*.json --json merged.json --plot merged.svg",
        ),
    ])
    .into()
}

/// `completions SHELL`.
#[derive(Args, Debug)]
pub(super) struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub(super) fn completions_examples() -> StyledStr {
    examples(&[
        (
            "bash, for this user (bash-completion reads ~/.bash_completion)",
            "lwm2m-swarm completions bash >> ~/.bash_completion",
        ),
        (
            "zsh: into a directory of fpath (~/.zshrc: fpath+=~/.zfunc; compinit)",
            "lwm2m-swarm completions zsh > ~/.zfunc/_lwm2m-swarm",
        ),
        (
            "fish",
            "lwm2m-swarm completions fish > ~/.config/fish/completions/lwm2m-swarm.fish",
        ),
    ])
    .into()
}

pub(super) fn completions(args: &CompletionsArgs) -> Result<(), Failure> {
    write_stdout(&completion_script(args.shell))
}

fn completion_script(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "lwm2m-swarm", &mut script);
    if shell != Shell::Bash {
        return script;
    }
    // clap_complete's bash script spells a command's state `lwm2m__swarm__subcmd__run` where
    // it sets it and `lwm2m__subcmd__swarm__subcmd__run` where it matches it (the hyphen of the
    // program's name, clap-rs/clap#6421): no option after a command would complete. One
    // spelling for both; a no-op once clap_complete agrees with itself.
    String::from_utf8_lossy(&script)
        .replace("lwm2m__subcmd__swarm", "lwm2m__swarm")
        .into_bytes()
}

/// `man [COMMAND]`.
#[derive(Args, Debug)]
pub(super) struct ManArgs {
    /// The page of this command (lwm2m-swarm-COMMAND(1)) instead of lwm2m-swarm(1).
    #[arg(value_name = "COMMAND", conflicts_with = "dir")]
    pub command: Option<String>,
    /// Write every page (lwm2m-swarm.1, lwm2m-swarm-run.1, ...) into this directory instead.
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub dir: Option<PathBuf>,
}

pub(super) fn man_examples() -> StyledStr {
    examples(&[
        (
            "Read the page without installing it",
            "lwm2m-swarm man | man -l -",
        ),
        (
            "Install every page for this user; then `man lwm2m-swarm-run`",
            "lwm2m-swarm man --dir ~/.local/share/man/man1",
        ),
    ])
    .into()
}

pub(super) fn man(args: &ManArgs) -> Result<(), Failure> {
    let Some(dir) = &args.dir else {
        return write_stdout(&man_page(args.command.as_deref())?);
    };
    let root = man_root();
    let pages = std::iter::once(&root).chain(root.get_subcommands());
    for command in pages {
        let page = render_page(command.clone())?;
        let path = dir.join(format!("{}.1", page_name(command)));
        std::fs::write(&path, page)
            .map_err(|e| failed(format!("{}: cannot write: {e}", path.display())))?;
    }
    Ok(())
}

/// The command tree the pages describe: built, so each command knows its full name.
fn man_root() -> clap::Command {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    root
}

/// `lwm2m-swarm`, or `lwm2m-swarm-run` for a command.
fn page_name(command: &clap::Command) -> &str {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
}

/// lwm2m-swarm(1), or lwm2m-swarm-COMMAND(1), in roff.
fn man_page(command: Option<&str>) -> Result<Vec<u8>, Failure> {
    let root = man_root();
    let command = match command {
        None => root,
        Some(name) => root.find_subcommand(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = root
                .get_subcommands()
                .map(clap::Command::get_name)
                .collect();
            bad_input(format!(
                "man {name}: no such command (one of {})",
                names.join(", ")
            ))
        })?,
    };
    render_page(command)
}

fn render_page(command: clap::Command) -> Result<Vec<u8>, Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| failed(format!("cannot render the page: {e}")))?;
    // The help's sections after the options (default load, examples) keep their lines: each
    // starts with a space, which breaks the line in roff; `.ad l` spares them the justified
    // spacing that would pull an example's words apart, `.nh` the hyphens.
    let page = String::from_utf8_lossy(&page).replace(".SH EXTRA\n", ".SH EXTRA\n.ad l\n.nh\n");
    Ok(page.into_bytes())
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is no failure.
fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(failed(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
