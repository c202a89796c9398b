fn main() -> std::process::ExitCode {
    lwm2m_swarm::cli::main_with(std::env::args_os())
}
