fn main() {
    eprintln!("lwm2m-swarm: the fleet engine is not built yet (see the issues)");
    std::process::exit(2);
}
