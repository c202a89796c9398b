//! The help as a user reads it: headings on every option, examples that work, real defaults,
//! each command with only its options; `--version`, completions and the man page.

use clap::CommandFactory;
use clap::error::ErrorKind;

use super::super::args::TimingArgs;
use super::super::setup::load;
use super::super::{Cli, Command};
use super::{ManArgs, VERSION, completion_script, man_page};

/// The headings options go under (issue 14): one list, so a new option cannot invent another.
const HEADINGS: [&str; 7] = [
    "Fleet",
    "Load",
    "Server",
    "Security",
    "Engine",
    "Output",
    "Embedded server load",
];

/// Every command below the program, by name (clap's own `help` left out).
fn commands() -> Vec<clap::Command> {
    let mut root = Cli::command();
    root.build();
    root.get_subcommands()
        .filter(|c| c.get_name() != "help")
        .cloned()
        .collect()
}

/// The long help as an 80-column terminal shows it.
fn long_help(command: &mut clap::Command) -> String {
    let mut command = command.clone().term_width(80);
    command.render_long_help().to_string()
}

#[test]
fn every_option_of_every_command_has_a_heading() {
    let mut seen = Vec::new();
    for command in commands() {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_positional() || id == "help" || id == "version" {
                continue;
            }
            let heading = arg.get_help_heading();
            assert!(
                heading.is_some_and(|h| HEADINGS.contains(&h)),
                "{} --{id}: heading {heading:?}",
                command.get_name()
            );
            seen.push(id.to_string());
        }
    }
    // The walk saw the options (a command list gone empty would pass the loop above).
    assert!(seen.len() > 50, "{seen:?}");
}

/// The example command lines of `help`, each split as a shell would, up to a redirection or a
/// pipe. Every line of the section is a `#` comment or a command line: a line wrapped on an
/// 80-column terminal would be neither.
fn example_lines(help: &str) -> Vec<Vec<String>> {
    let (_, section) = help
        .split_once("\nExamples:\n")
        .unwrap_or_else(|| panic!("no Examples section in\n{help}"));
    let mut lines = Vec::new();
    for line in section.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("# ") {
            continue;
        }
        assert!(
            line.starts_with("lwm2m-swarm "),
            "not an example: {line}\n{help}"
        );
        let words = shlex::split(line).unwrap_or_else(|| panic!("quoting: {line}"));
        lines.push(
            words
                .into_iter()
                .take_while(|w| !matches!(w.as_str(), ">" | ">>" | "|"))
                .collect(),
        );
    }
    lines
}

#[test]
fn every_example_parses_and_its_fleet_loads() {
    let mut root = Cli::command();
    let mut helps = vec![("lwm2m-swarm".to_string(), long_help(&mut root))];
    for mut command in commands() {
        helps.push((command.get_name().to_string(), long_help(&mut command)));
    }
    let mut loaded = 0;
    for (name, help) in helps {
        let examples = example_lines(&help);
        assert!(!examples.is_empty(), "{name}: no examples in\n{help}");
        for words in examples {
            let line = words.join(" ");
            let cli = match Cli::parse_args(&words) {
                Ok(cli) => cli,
                // `run --help` shows the help: it parses, as clap's own exit.
                Err(e) if e.kind() == ErrorKind::DisplayHelp => continue,
                Err(e) => panic!("{name}: {line}: {e}"),
            };
            let (fleet, timing) = match &cli.command {
                Command::Run(a) => (&a.fleet, &a.timing),
                Command::Check(a) => (&a.fleet, &a.timing),
                Command::Credentials(a) => (&a.fleet, &TimingArgs::default()),
                _ => continue,
            };
            // The shipped fleet, with the example's options, loads and plans.
            let fleet_loaded = load(fleet, timing).unwrap_or_else(|e| panic!("{line}: {e:?}"));
            fleet_loaded
                .fleet
                .plan()
                .with_slice(fleet.shard)
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            loaded += 1;
        }
    }
    assert!(loaded >= 6, "{loaded} fleets loaded");
}

#[test]
fn short_flags_of_the_common_options() {
    let cli = Cli::parse_args([
        "lwm2m-swarm",
        "run",
        "fleets/demo.toml",
        "-c",
        "10",
        "-r",
        "2.5",
        "-d",
        "30s",
        "-s",
        "coap://127.0.0.1:5683",
    ])
    .unwrap();
    let Command::Run(a) = cli.command else {
        panic!("{cli:?}")
    };
    assert_eq!(a.fleet.clients, Some(10));
    assert_eq!(a.timing.rate, Some(2.5));
    assert_eq!(a.timing.duration, Some(std::time::Duration::from_secs(30)));
    assert_eq!(a.fleet.server.unwrap().to_string(), "coap://127.0.0.1:5683");
}

#[test]
fn credentials_takes_no_rate_duration_or_seed() {
    // Its keys and certificates are the same whatever they say.
    for option in ["--rate", "-r", "--duration", "-d", "--seed"] {
        let args = [
            "lwm2m-swarm",
            "credentials",
            "fleets/dtls-psk.toml",
            option,
            "5",
        ];
        let e = Cli::parse_args(args).expect_err(option);
        assert_eq!(e.kind(), ErrorKind::UnknownArgument, "{option}: {e}");
    }
}

#[test]
fn each_command_takes_only_its_options() {
    let options = |name: &str| -> Vec<String> {
        let command = commands()
            .into_iter()
            .find(|c| c.get_name() == name)
            .unwrap();
        command
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect()
    };
    let has = |name: &str, option: &str| options(name).iter().any(|o| o == option);
    // The load the embedded server puts on clients: `run` and `serve` start one; `check` shows
    // it; `credentials` and `report` have none.
    for name in ["run", "serve"] {
        assert!(has(name, "read"), "{name}");
    }
    assert!(has("check", "read"));
    for name in ["credentials", "report"] {
        assert!(!has(name, "read"), "{name}");
        assert!(!has(name, "observe"), "{name}");
    }
    // Sockets are for what sends: `run` and `check` (which plans them).
    for name in ["credentials", "report", "serve"] {
        assert!(!has(name, "shards"), "{name}");
        assert!(!has(name, "transport"), "{name}");
    }
    assert!(has("check", "rate") && has("check", "shards"));
}

#[test]
fn help_states_the_real_defaults() {
    let mut run = commands()
        .into_iter()
        .find(|c| c.get_name() == "run")
        .unwrap();
    let help = long_help(&mut run);
    assert!(help.contains("[default: one per core]"), "{help}");
    assert!(!help.contains("[default: 0]"), "{help}");
    // The embedded server's load when no option asks for one, as `run` applies it.
    let load = super::LoadArgs::default().or_demo().describe();
    assert!(load.contains("observe /3/0/13"), "{load}");
    assert!(
        help.replace('\n', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(&load),
        "{help}"
    );
    let mut serve = commands()
        .into_iter()
        .find(|c| c.get_name() == "serve")
        .unwrap();
    assert!(long_help(&mut serve).contains("asks nothing"));
}

/// A short commit hash, maybe `-dirty`, or `unknown`.
fn is_commit(token: &str) -> bool {
    let hash = token.strip_suffix("-dirty").unwrap_or(token);
    token == "unknown" || (hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn version_names_the_commit_and_the_features() {
    let e = Cli::parse_args(["lwm2m-swarm", "--version"]).expect_err("--version exits");
    assert_eq!(e.kind(), ErrorKind::DisplayVersion);
    let text = e.to_string();
    assert!(text.starts_with(&format!("lwm2m-swarm {}", env!("CARGO_PKG_VERSION"))));
    assert!(text.contains(VERSION), "{text}");
    let commit = text
        .split("commit ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default();
    assert!(is_commit(commit), "{text}");
    let features = text.split("features: ").nth(1).unwrap_or_default();
    assert_eq!(
        features.contains("openssl"),
        cfg!(feature = "openssl"),
        "{text}"
    );
    assert!(
        features.starts_with("none") || features.starts_with("openssl"),
        "{text}"
    );
}

#[test]
fn commit_tokens() {
    assert!(is_commit("fd450523f2"));
    assert!(is_commit("fd450523f2-dirty"));
    assert!(is_commit("unknown"));
    assert!(!is_commit("fd45"));
    assert!(!is_commit("main"));
}

/// What bash offers for the last word of `lwm2m-swarm LINE` with `script` loaded, as a user's
/// Tab would ask it.
fn complete_in_bash(script: &str, line: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lwm2m-swarm.bash");
    std::fs::write(&path, script).unwrap();
    let words: Vec<&str> = std::iter::once("lwm2m-swarm")
        .chain(line.split_whitespace())
        .collect();
    let (current, previous) = (words[words.len() - 1], words[words.len() - 2]);
    let program = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; _lwm2m__swarm lwm2m-swarm {current} \
         {previous}; echo \"${{COMPREPLY[@]}}\"",
        path.display(),
        words.join(" "),
        words.len() - 1,
    );
    let output = std::process::Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn bash_completions_know_every_command_and_option() {
    let script = String::from_utf8(completion_script(clap_complete::Shell::Bash)).unwrap();
    for command in commands() {
        assert!(
            script.contains(&format!("lwm2m__swarm__subcmd__{}", command.get_name())),
            "{}",
            command.get_name()
        );
    }
    assert!(script.contains("--clients"));
    assert!(script.contains("--observe-composite"));
    assert!(complete_in_bash(&script, "run fleets/demo.toml --cl").contains("--clients"));
    assert!(complete_in_bash(&script, "man --d").contains("--dir"));
    assert!(complete_in_bash(&script, "cre").contains("credentials"));
    for shell in [
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
        clap_complete::Shell::Elvish,
        clap_complete::Shell::PowerShell,
    ] {
        let script = String::from_utf8(completion_script(shell)).unwrap();
        assert!(script.contains("credentials"), "{shell}");
    }
}

#[test]
fn the_man_page_lists_the_commands_and_each_has_its_own() {
    let page = String::from_utf8(man_page(None).unwrap()).unwrap();
    assert!(page.contains(".TH lwm2m-swarm 1"), "{page}");
    for command in commands() {
        assert!(
            page.contains(&format!("lwm2m\\-swarm\\-{}(1)", command.get_name())),
            "{}: {page}",
            command.get_name()
        );
    }
    let run = String::from_utf8(man_page(Some("run")).unwrap()).unwrap();
    assert!(run.contains(".TH lwm2m-swarm-run 1"), "{run}");
    assert!(run.contains("\\-\\-clients"), "{run}");
    assert!(run.contains("Examples"), "{run}");
    let e = man_page(Some("nope")).unwrap_err();
    assert!(e.message.contains("one of run, serve"), "{}", e.message);
}

#[test]
fn man_dir_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let args = ManArgs {
        command: None,
        dir: Some(dir.path().to_path_buf()),
    };
    super::man(&args).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.contains(&"lwm2m-swarm.1".to_string()), "{names:?}");
    for command in commands() {
        let page = format!("lwm2m-swarm-{}.1", command.get_name());
        assert!(names.contains(&page), "{page}: {names:?}");
    }
}
