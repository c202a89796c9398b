# The lwm2m-swarm image, built in a Rust container: for machines that can pull from a container
# registry (Docker Hub, gcr.io):
#
#   docker build -t lwm2m-swarm:0.1.0 .        (or podman build)
#   docker run --rm lwm2m-swarm:0.1.0 --version
#
# The project's development machines and CI reach no container registry, so this file is not
# built there; scripts/build-image builds the same layout offline (FROM scratch, from the local
# release build) instead.

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
# The whole source tree (.dockerignore leaves out target/ and .peers/): Cargo.toml names the
# benches, so cargo wants them present even for the binary alone.
COPY . .
RUN cargo build --release --locked --bin lwm2m-swarm \
 && strip target/release/lwm2m-swarm

# Debian 12's glibc and libgcc, as the build stage links against; no shell, user nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/lwm2m-swarm /usr/bin/lwm2m-swarm
COPY object-templates /usr/share/lwm2m-swarm/object-templates
COPY fleets /usr/share/lwm2m-swarm/fleets
# The binary looks for ./object-templates (or --templates DIR).
WORKDIR /usr/share/lwm2m-swarm
USER 65532:65532
ENTRYPOINT ["/usr/bin/lwm2m-swarm"]
