//! An option given to a command that has no use for it, but that another command takes
//! (`credentials --rate`): clap's guess from spelling (`--private-keys`) misleads there, so
//! the error names the commands that take it instead.

use clap::CommandFactory;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::Cli;

/// `credentials takes no --rate: it is an option of run and check`, when `error` is an
/// unknown option of `command` that other commands take; `None` otherwise (clap's own error
/// stands, its spelling tip included).
pub(super) fn misplaced_option(error: &clap::Error, command: &str) -> Option<String> {
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(given)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = given.strip_prefix("--")?;
    let long = long.split_once('=').map_or(long, |(name, _)| name);
    let cli = Cli::command();
    let takers: Vec<&str> = cli
        .get_subcommands()
        .filter(|c| c.get_name() != command)
        .filter(|c| c.get_arguments().any(|a| a.get_long() == Some(long)))
        .map(clap::Command::get_name)
        .collect();
    (!takers.is_empty()).then(|| {
        let commands = match takers.as_slice() {
            [init @ .., last] if !init.is_empty() => format!("{} and {last}", init.join(", ")),
            _ => takers.join(""),
        };
        format!(
            "{command} takes no --{long}: it is an option of {commands} (`lwm2m-swarm \
             {command} --help` lists the options it takes)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(args: &[&str]) -> clap::Error {
        Cli::parse_args(args).expect_err("refused")
    }

    #[test]
    fn an_option_of_other_commands_is_named_as_theirs() {
        let e = error_of(&[
            "lwm2m-swarm",
            "credentials",
            "fleets/demo.toml",
            "--rate",
            "5",
        ]);
        assert_eq!(
            misplaced_option(&e, "credentials").as_deref(),
            Some(
                "credentials takes no --rate: it is an option of run and check (`lwm2m-swarm \
                 credentials --help` lists the options it takes)"
            )
        );
        let e = error_of(&["lwm2m-swarm", "credentials", "f.toml", "--duration=5m"]);
        let message = misplaced_option(&e, "credentials").expect("a message");
        assert!(
            message.starts_with("credentials takes no --duration:"),
            "{message}"
        );
        // A slip of the keyboard keeps clap's tip: no command takes `--clinets`.
        let e = error_of(&["lwm2m-swarm", "run", "f.toml", "--clinets", "5"]);
        assert_eq!(misplaced_option(&e, "run"), None);
    }
}
