//! Third-party peers for integration tests, installed into `.peers/` by `scripts/install-peers`
//! (which `.ci/run` calls; [`ensure_installed`] runs it once when something is missing):
//!
//! - npm `lwm2m-node-lib` 1.4.0, a real LWM2M server, run by `tests/peers/lwm2m-node-server.js`
//!   on 127.0.0.1 ([`NodePeer`]). Its facts (registrations, operation results, notifications,
//!   errors) arrive as JSON lines and are collected here.
//! - Debian's `libcoap3-bin` resource directory `coap-rd-openssl`, a CoAP, DTLS (PSK or
//!   certificates), TCP and TLS peer ([`LibcoapRd`]).
//! - `hdrhistogram` from `PyPI` (the Python port of `HdrHistogram`), which reads our interval logs
//!   ([`read_hdr_log`]), and `aiocoap` from `PyPI`, on which `tests/peers/aiocoap_bootstrap.py`
//!   is a bootstrap server (`tests/peer_aiocoap.rs`) and `tests/peers/aiocoap_file_server.py`
//!   a Block2 file server (`tests/peer_aiocoap_firmware.rs`), each run as an [`AiocoapPeer`].
//!
//! Every wait here is bounded, and the node process is killed when the handle is dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// How long node may take to print its `listening` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long node may take to exit once its stdin is closed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `scripts/install-peers` may take (an `npm ci` of ~70 small packages).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// The last this many bytes of node's stderr are kept for failure messages.
const STDERR_KEPT: usize = 16 * 1024;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The Python that has the `hdrhistogram` package installed.
pub fn peer_python() -> PathBuf {
    root().join(".peers/python/bin/python")
}

/// What exists once every peer is installed (the Python marker names every pinned package).
fn installed() -> bool {
    let root = root();
    root.join(".peers/node/node_modules/lwm2m-node-lib/package.json")
        .exists()
        && std::fs::read_to_string(root.join(".peers/python/installed"))
            .is_ok_and(|pins| pins.contains("aiocoap"))
}

/// Installs the peers into `.peers` unless they are there. Panics with the installer's
/// output, or with what to install, when that fails.
pub fn ensure_installed() {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let root = root();
    if installed() {
        return;
    }
    let _guard = lock(&IN_PROCESS);
    if installed() {
        return;
    }
    for tool in ["node", "npm"] {
        if let Err(e) = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            panic!(
                "`{tool} --version` failed ({e}): the lwm2m-node-lib peer tests need Node.js 20 and \
                 npm (apt-get install nodejs npm), then scripts/install-peers"
            );
        }
    }
    // Other test processes (another `cargo test`) may install at the same time.
    let _dir_lock = DirLock::acquire(&root.join(".peers/install.lock"), INSTALL_TIMEOUT);
    if installed() {
        return;
    }
    let script = root.join("scripts/install-peers");
    let (status, out, err) = run_bounded(Command::new(&script).current_dir(&root), INSTALL_TIMEOUT);
    assert!(
        status == Some(true) && installed(),
        "{} failed ({}):\n{out}\n{err}",
        script.display(),
        match status {
            None => format!("no exit within {INSTALL_TIMEOUT:?}, killed"),
            Some(_) => "non-zero exit".to_string(),
        }
    );
}

/// A lock between processes: a directory that exists while the lock is held. A directory older
/// than the longest install is taken to be left over from a killed run.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path, longest: Duration) -> DirLock {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        let deadline = Instant::now() + longest + Duration::from_secs(30);
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return DirLock(path.to_path_buf()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > longest) {
                        let _ = std::fs::remove_dir(path);
                        continue;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{} is still held after {longest:?}: remove it if no install runs",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs a command to its end or `timeout` (then kills it): (success, stdout, stderr); success is
/// `None` on timeout.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> (Option<bool>, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status.success()),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = |h: JoinHandle<String>| h.join().unwrap_or_default();
    (status, text(out), text(err))
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// A loopback UDP port nobody uses right now.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP socket");
    socket.local_addr().expect("local address").port()
}

/// What the reader threads collect.
#[derive(Default)]
struct Collected {
    /// Parsed JSON lines, in order.
    events: Vec<Value>,
    /// Lines of stdout that were not JSON objects.
    other: Vec<String>,
    /// The tail of stderr.
    stderr: String,
}

/// A running lwm2m-node-lib server.
pub struct NodePeer {
    child: Child,
    stdin: Option<ChildStdin>,
    collected: Arc<Mutex<Collected>>,
    readers: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

impl NodePeer {
    /// Installs the package if needed, starts the server on a free loopback port and waits for
    /// it to listen. Panics (with node's stderr) if it does not within [`START_TIMEOUT`].
    pub fn start() -> NodePeer {
        ensure_installed();
        let root = root();
        let script = root.join("tests/peers/lwm2m-node-server.js");
        let port = free_udp_port();
        let mut child = Command::new("node")
            .arg("--no-warnings")
            .arg(&script)
            .arg(port.to_string())
            .current_dir(&root)
            .env("LWM2M_NODE_MODULES", root.join(".peers/node/node_modules"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {}: {e}", script.display()));
        let collected = Arc::new(Mutex::new(Collected::default()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            {
                let collected = Arc::clone(&collected);
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        let mut c = lock(&collected);
                        match serde_json::from_str::<Value>(&line) {
                            Ok(v) if v.is_object() => c.events.push(v),
                            _ => c.other.push(line),
                        }
                    }
                })
            },
            {
                let collected = Arc::clone(&collected);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stderr);
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = reader.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut c = lock(&collected);
                        c.stderr.push_str(&String::from_utf8_lossy(&buf[..n]));
                        if c.stderr.len() > STDERR_KEPT {
                            let mut cut = c.stderr.len() - STDERR_KEPT;
                            while !c.stderr.is_char_boundary(cut) {
                                cut += 1;
                            }
                            c.stderr.drain(..cut);
                        }
                    }
                })
            },
        ];
        let stdin = child.stdin.take();
        let mut peer = NodePeer {
            child,
            stdin,
            collected,
            readers,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let listening = peer.wait_for(START_TIMEOUT, |events| {
            events
                .iter()
                .any(|e| e["ev"] == "listening" && e["port"] == port)
        });
        if !listening {
            let why = match peer.child.try_wait() {
                Ok(Some(status)) => format!("node exited ({status})"),
                _ => format!("no `listening` line within {START_TIMEOUT:?}"),
            };
            panic!(
                "lwm2m-node-lib server did not start: {why}\n{}",
                peer.report()
            );
        }
        peer
    }

    /// Where the server listens (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.collected).events.clone()
    }

    /// Whether node is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until `done` holds for the events so far, node exits, or `timeout` passes; returns
    /// whether `done` held.
    pub fn wait_for(&mut self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&lock(&self.collected).events) {
                return true;
            }
            if !self.is_running() {
                // One last look once the readers have taken node's last lines (bounded).
                let drained = Instant::now() + Duration::from_secs(5);
                while !self.readers.iter().all(JoinHandle::is_finished) && Instant::now() < drained
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return done(&lock(&self.collected).events);
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Node's stderr (its tail), stdout lines that were not JSON, and the exit status if any:
    /// for failure messages.
    pub fn report(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("exited: {status}"),
            Ok(None) => "running".to_string(),
            Err(e) => format!("unknown: {e}"),
        };
        let c = lock(&self.collected);
        format!(
            "node {status}; {} events\n--- other stdout ---\n{}\n--- stderr (tail) ---\n{}",
            c.events.len(),
            c.other.join("\n"),
            c.stderr
        )
    }

    /// Closes node's stdin (it then stops the server and exits), waits up to [`STOP_TIMEOUT`],
    /// kills it otherwise, and returns every event. Panics if node had to be killed or did not
    /// exit cleanly, with its stderr.
    pub fn stop(mut self) -> Vec<Value> {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let report = self.report();
        match status {
            Some(s) if s.success() => {}
            Some(s) => panic!("lwm2m-node-lib server exited with {s}\n{report}"),
            None => panic!(
                "lwm2m-node-lib server did not exit within {STOP_TIMEOUT:?} of its stdin closing; killed\n{report}"
            ),
        }
        std::mem::take(&mut lock(&self.collected).events)
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Writes `events` as JSON lines to `path` (for a look after a failed run).
pub fn save_events(path: &Path, events: &[Value]) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for e in events {
        serde_json::to_writer(&mut file, e)?;
        file.write_all(b"\n")?;
    }
    file.flush()
}

/// Reads an interval log with the Python port of `HdrHistogram`: per tag, the number of
/// values and the largest, as that implementation decodes them.
pub fn read_hdr_log(log: &Path) -> Value {
    ensure_installed();
    let script = root().join("tests/peers/read_hdr_log.py");
    let (status, out, err) = run_bounded(
        Command::new(peer_python()).arg(&script).arg(log),
        Duration::from_secs(60),
    );
    assert_eq!(
        status,
        Some(true),
        "{} failed:\n{out}\n{err}",
        script.display()
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A script of `tests/peers/` on `aiocoap`, run by the peers' Python: its JSON lines (facts)
/// collected as they come. Closing its stdin ends it; dropping the handle does, or kills it.
pub struct AiocoapPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    facts: Arc<Mutex<Vec<Value>>>,
}

impl AiocoapPeer {
    /// Installs the peers if needed, runs `tests/peers/{script}` with `args` and waits (up to
    /// [`START_TIMEOUT`]) for its `{"ev": "listening"}` line.
    pub fn start(script: &str, args: &[String]) -> AiocoapPeer {
        ensure_installed();
        let script = root().join("tests/peers").join(script);
        let mut child = Command::new(peer_python())
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let facts = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        {
            let facts = Arc::clone(&facts);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(fact) = serde_json::from_str::<Value>(&line) {
                        lock(&facts).push(fact);
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        let peer = AiocoapPeer {
            child,
            stdin,
            facts,
        };
        assert!(
            peer.wait_for(START_TIMEOUT, |f| f.iter().any(|e| e["ev"] == "listening")),
            "{} did not start (its stderr is above)",
            script.display()
        );
        peer
    }

    /// The facts so far.
    pub fn facts(&self) -> Vec<Value> {
        lock(&self.facts).clone()
    }

    /// Waits until `done` holds for the facts so far or `timeout` passes; whether it held.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(&self.facts()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for AiocoapPeer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `coap-rd-openssl`, killed when dropped.
pub struct LibcoapRd {
    child: Child,
    /// Where it serves DTLS (CoAP is on the port before).
    pub dtls: SocketAddr,
    /// Its debug log (`-v 7`), when kept.
    log: Option<PathBuf>,
}

impl Drop for LibcoapRd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `LIBCOAP_LOG=FILE`: where libcoap's debug log goes, when asked for.
fn env_log() -> Option<std::fs::File> {
    std::env::var_os("LIBCOAP_LOG").map(|p| std::fs::File::create(p).expect("log file"))
}

/// Two consecutive free loopback UDP ports (CoAP on the first, DTLS on the next).
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = a.local_addr().expect("addr").port();
        if port < u16::MAX && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free UDP ports on loopback");
}

impl LibcoapRd {
    /// Its process id (for its memory and CPU in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `coap-rd-openssl` on two free loopback ports with PSK `key` (hint "swarm").
    /// `LIBCOAP_LOG=FILE`: libcoap's debug log goes there.
    pub fn start(key: &str) -> LibcoapRd {
        let log = env_log();
        LibcoapRd::spawn(free_port_pair(), &["-k", key, "-h", "swarm"], log.as_ref())
    }

    /// Starts it with certificates: `cert_and_key` is one PEM file with its certificate and
    /// private key (`-c`); client certificates must chain to the CA in `ca` (`-C`).
    /// `LIBCOAP_LOG=FILE` as for [`LibcoapRd::start`].
    pub fn start_pki(cert_and_key: &Path, ca: &Path) -> LibcoapRd {
        let log = env_log();
        let args = [
            "-c",
            cert_and_key.to_str().expect("a UTF-8 path"),
            "-C",
            ca.to_str().expect("a UTF-8 path"),
        ];
        LibcoapRd::spawn(free_port_pair(), &args, log.as_ref())
    }

    /// Starts `coap-rd-openssl` on `port` (CoAP over UDP and TCP) and `port + 1` (DTLS and TLS,
    /// with `cert_and_key`, a PEM file holding the server's certificate and its key), its debug
    /// log kept in `log` for [`LibcoapRd::answers`].
    pub fn start_logged(port: u16, cert_and_key: Option<&Path>, log: &Path) -> LibcoapRd {
        let cert = cert_and_key.map(|p| p.display().to_string());
        let args: Vec<&str> = cert.iter().flat_map(|c| ["-c", c.as_str()]).collect();
        let file = std::fs::File::create(log).expect("log file");
        let mut rd = LibcoapRd::spawn(port, &args, Some(&file));
        rd.log = Some(log.to_path_buf());
        rd
    }

    /// Responses with `code` (`"2.01"`) the directory logged sending.
    pub fn answers(&self, code: &str) -> usize {
        self.logged(&format!(" c:{code} "))
    }

    /// Lines of its log that contain `text`.
    pub fn logged(&self, text: &str) -> usize {
        let log = self.log.as_ref().expect("started with a log");
        let log = std::fs::read_to_string(log).expect("read the log");
        log.lines().filter(|l| l.contains(text)).count()
    }

    /// Where it serves CoAP over TCP (TLS is on the port after).
    pub fn tcp(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.dtls.port() - 1))
    }

    /// The registrations the directory holds now, by its own account (`/.well-known/core`
    /// lists one `</rd/...>` resource per registration), read with `coap-client-openssl`.
    pub fn registrations(&self) -> usize {
        let uri = format!("coap+tcp://{}/.well-known/core", self.tcp());
        let (status, out, err) = run_bounded(
            Command::new("coap-client-openssl").args(["-m", "get", &uri, "-v", "0"]),
            Duration::from_secs(10),
        );
        assert_eq!(status, Some(true), "coap-client-openssl {uri}: {err}");
        out.matches("</rd/").count()
    }

    fn spawn(port: u16, security: &[&str], log: Option<&std::fs::File>) -> LibcoapRd {
        // A log is written a line at a time (coreutils' stdbuf), so it can be read while the
        // directory runs.
        let mut command = if log.is_some() {
            let mut c = Command::new("stdbuf");
            c.args(["-oL", "-eL", "coap-rd-openssl"]);
            c
        } else {
            Command::new("coap-rd-openssl")
        };
        let mut child = command
            .args(["-A", "127.0.0.1", "-p", &port.to_string()])
            .args(security)
            .args(["-v", if log.is_some() { "7" } else { "0" }])
            .stdout(log.map_or_else(Stdio::null, |f| f.try_clone().expect("log file").into()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run coap-rd-openssl ({e}): install libcoap3-bin \
                 (scripts/install-peers does, with apt-get)"
                )
            });
        let dtls = SocketAddr::from(([127, 0, 0, 1], port + 1));
        // It binds within milliseconds (UDP, TCP, then with keys or a certificate DTLS and
        // TLS): give it a bounded moment for the last of them, and check it is still alive.
        let last = if security.is_empty() { port } else { port + 1 };
        let last = SocketAddr::from(([127, 0, 0, 1], last));
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpListener::bind(last).is_ok() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "coap-rd-openssl exited ({status}): is libcoap3-bin installed \
                     (scripts/install-peers), is port {port} or {} taken?",
                    port + 1
                );
            }
            assert!(
                Instant::now() < deadline,
                "coap-rd-openssl did not listen on {last}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        LibcoapRd {
            child,
            dtls,
            log: None,
        }
    }
}

/// The fleet in `toml` (`name` in its errors), checked against the shipped templates and
/// planned; `handshake_timeout` replaces every population's DTLS handshake timeout.
pub fn planned_fleet(
    toml: &str,
    name: &str,
    handshake_timeout: Option<Duration>,
) -> (
    lwm2m_swarm::fleet::Plan,
    Vec<Arc<lwm2m_swarm::model::DeviceTemplate>>,
) {
    let fleet = lwm2m_swarm::fleet::Fleet::from_toml(toml, name).unwrap_or_else(|e| panic!("{e}"));
    let templates = fleet
        .check(crate::shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut plan = fleet.plan();
    if let Some(timeout) = handshake_timeout {
        for group in &mut plan.groups {
            let mut config = (*group.config).clone();
            config.dtls.handshake_timeout = timeout;
            group.config = Arc::new(config);
        }
    }
    (plan, templates)
}

/// Whether every one of `clients` has had its Register end: answered, failed, or dropped unsent
/// when its connection or handshake failed. The peer runs stop then: their long hold is only a
/// deadline, so a loaded machine makes them slower, not wrong.
pub fn registers_ended(s: &lwm2m_swarm::metrics::Snapshot, clients: u64) -> bool {
    let r = s.request(lwm2m_swarm::client::RequestKind::Register);
    r.ok + r.error + r.timeout + r.aborted + r.unsent >= clients
}

/// Every one of `clients` handshook and registered (2.01), and every request kind is accounted
/// for with nothing left in flight.
pub fn assert_all_handshook_and_registered(s: &lwm2m_swarm::metrics::Snapshot, clients: u64) {
    let h = &s.handshakes;
    assert_eq!((h.ok, h.failed, h.aborted), (clients, 0, 0), "{s}");
    let register = s.request(lwm2m_swarm::client::RequestKind::Register);
    assert_eq!((register.sent, register.ok), (clients, clients), "{s}");
    assert_eq!(register.codes, vec![(Some(0x41), clients)], "{s}");
    crate::accounting::assert_accounted(s);
}
