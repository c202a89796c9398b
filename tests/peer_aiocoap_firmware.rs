//! Pull a firmware package from a second CoAP stack: `tests/peers/aiocoap_file_server.py` serves
//! a 64 KiB image with `aiocoap`'s own Block2. One client over loopback UDP, its LWM2M server
//! scripted here on a second socket, is written the Package URI `/5/0/1`, downloads the image
//! from `aiocoap` in Block2 GETs of the 512 bytes it asks for, reaches State 2, is executed and
//! registers again with the version `fw-` and the first 8 hex digits of the image's SHA-256.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/shipped.rs"]
mod shipped;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{
    CoapOption, ContentFormat, MessageClass, MessageType, Packet, RequestType, ResponseType,
};
use lwm2m_swarm::client::{
    Client, ClientConfig, ClientState, Delivery, Event, FirmwareConfig, FirmwareStep, RequestKind,
};
use lwm2m_swarm::clock::Instant;
use lwm2m_swarm::metrics::Recorder;
use lwm2m_swarm::model::Device;
use serde_json::Value;
use sha2::{Digest, Sha256};

const IMAGE_SIZE: usize = 64 * 1024;
const IMAGE_SEED: u64 = 13;
const IMAGE_PATH: &str = "/fw/image.bin";
/// Half aiocoap's own default (1024): the blocks it serves must follow the client's request.
const BLOCK_SIZE: u16 = 512;
const BLOCKS: u64 = (IMAGE_SIZE / BLOCK_SIZE as usize) as u64;
/// Every wait of the test: far beyond the second or so the whole exchange takes.
const DEADLINE: Duration = Duration::from_secs(60);

/// The image the script makes from its seed: SHA-256 of "SEED:0", "SEED:1"... end to end.
fn image(size: usize, seed: u64) -> Vec<u8> {
    let mut body: Vec<u8> = (0..size.div_ceil(32))
        .flat_map(|i| Sha256::digest(format!("{seed}:{i}").as_bytes()))
        .collect();
    body.truncate(size);
    body
}

/// The LWM2M server, scripted: answers Register, Update and De-register, sends requests and
/// keeps the client's piggybacked answers.
struct ScriptedServer {
    socket: UdpSocket,
    client: Option<SocketAddr>,
    registers: usize,
    deregisters: usize,
    next_id: u16,
    answers: Vec<Packet>,
}

impl ScriptedServer {
    fn bind() -> ScriptedServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the server socket");
        socket.set_nonblocking(true).unwrap();
        ScriptedServer {
            socket,
            client: None,
            registers: 0,
            deregisters: 0,
            next_id: 1,
            answers: Vec::new(),
        }
    }

    fn serve(&mut self) {
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = self.socket.recv_from(&mut buf) {
            let packet = Packet::from_bytes(&buf[..len]).expect("the client sends CoAP");
            let MessageClass::Request(method) = packet.header.code else {
                if packet.header.get_type() == MessageType::Acknowledgement {
                    self.answers.push(packet);
                }
                continue;
            };
            let path: Vec<String> = packet
                .get_option(CoapOption::UriPath)
                .into_iter()
                .flatten()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            let code = match (method, path.join("/").as_str()) {
                (RequestType::Post, "rd") => {
                    self.client = Some(from);
                    self.registers += 1;
                    ResponseType::Created
                }
                (RequestType::Post, "rd/1") => ResponseType::Changed,
                (RequestType::Delete, "rd/1") => {
                    self.deregisters += 1;
                    ResponseType::Deleted
                }
                _ => ResponseType::NotFound,
            };
            let mut reply = Packet::new();
            reply.header.set_type(MessageType::Acknowledgement);
            reply.header.message_id = packet.header.message_id;
            reply.header.code = MessageClass::Response(code);
            reply.set_token(packet.get_token().to_vec());
            if code == ResponseType::Created {
                reply.add_option(CoapOption::LocationPath, b"rd".to_vec());
                reply.add_option(CoapOption::LocationPath, b"1".to_vec());
            }
            self.socket
                .send_to(&reply.to_bytes().unwrap(), from)
                .unwrap();
        }
    }

    /// Sends a CON request to the registered client; its token.
    fn send(&mut self, method: RequestType, path: &str, body: Option<&str>) -> Vec<u8> {
        let mut request = Packet::new();
        request.header.set_type(MessageType::Confirmable);
        request.header.code = MessageClass::Request(method);
        request.header.message_id = self.next_id;
        let token = self.next_id.to_be_bytes().to_vec();
        self.next_id += 1;
        request.set_token(token.clone());
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            request.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
        }
        match body {
            Some(body) => {
                request.set_content_format(ContentFormat::TextPlain);
                request.payload = body.as_bytes().to_vec();
            }
            None if method == RequestType::Get => {
                request.add_option(CoapOption::Accept, vec![0]);
            }
            None => {}
        }
        let to = self.client.expect("the client registered");
        self.socket
            .send_to(&request.to_bytes().unwrap(), to)
            .unwrap();
        token
    }

    fn answer(&self, token: &[u8]) -> Option<&Packet> {
        self.answers.iter().find(|p| p.get_token() == token)
    }
}

/// The client on its own socket, the scripted server, and everything the client reported.
struct Rig {
    origin: std::time::Instant,
    socket: UdpSocket,
    client: Client,
    server: ScriptedServer,
    recorder: Recorder,
    firmware: Vec<FirmwareStep>,
}

impl Rig {
    /// A client with blocks of [`BLOCK_SIZE`] and a 1 s update, registered with the scripted
    /// server.
    fn registered() -> Rig {
        let server = ScriptedServer::bind();
        let mut config = ClientConfig {
            server: server.socket.local_addr().unwrap(),
            lifetime: Duration::from_secs(3600),
            update_jitter: 0.0,
            firmware: FirmwareConfig {
                update_time: Duration::from_secs(1),
                ..FirmwareConfig::default()
            },
            ..ClientConfig::default()
        };
        config.coap.block_size = BLOCK_SIZE;
        let template = shipped::templates()
            .device("smart-meter")
            .expect("shipped template");
        let client = Client::new(
            Arc::new(config),
            "aiocoap-fw",
            Device::new(template, 1, 1_700_000_000),
            1,
        );
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the client socket");
        socket.set_nonblocking(true).unwrap();
        let mut rig = Rig {
            origin: std::time::Instant::now(),
            socket,
            client,
            server,
            recorder: Recorder::new(),
            firmware: Vec::new(),
        };
        let now = rig.now();
        rig.client.start(now);
        rig.run_until("register", |rig| {
            rig.client.state() == ClientState::Registered
        });
        rig
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }

    fn step(&mut self) {
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = self.socket.recv_from(&mut buf) {
            let now = self.now();
            self.client.handle_datagram(now, from, &buf[..len]);
        }
        let now = self.now();
        if self.client.poll_timeout().is_some_and(|at| at <= now) {
            self.client.handle_timeout(now);
        }
        while let Some((to, bytes)) = self.client.poll_transmit() {
            self.socket.send_to(&bytes, to).unwrap();
        }
        while let Some(event) = self.client.poll_event() {
            if let Event::Firmware(record) = &event {
                self.firmware.push(record.step);
            }
            self.recorder.event(&event);
        }
        self.server.serve();
        std::thread::sleep(Duration::from_millis(1));
    }

    /// Steps until `done` holds; panics with `what` after [`DEADLINE`].
    fn run_until(&mut self, what: &str, done: impl Fn(&Rig) -> bool) {
        let deadline = std::time::Instant::now() + DEADLINE;
        while !done(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not within {DEADLINE:?}; firmware steps {:?}, client {:?}",
                self.firmware,
                self.client.state()
            );
            self.step();
        }
    }

    /// Sends a request from the server and waits for the client's answer: its code and body.
    fn ask(
        &mut self,
        method: RequestType,
        path: &str,
        body: Option<&str>,
    ) -> (ResponseType, String) {
        let token = self.server.send(method, path, body);
        self.run_until(path, |rig| rig.server.answer(&token).is_some());
        let answer = self.server.answer(&token).unwrap();
        let MessageClass::Response(code) = answer.header.code else {
            panic!("{path}: not a response: {answer:?}");
        };
        (code, String::from_utf8_lossy(&answer.payload).into_owned())
    }
}

/// aiocoap's side: one GET per block, in order, each asking for the client's block size.
fn assert_one_get_per_block(peer: &peers::AiocoapPeer) {
    let gets: Vec<Value> = peer
        .facts()
        .into_iter()
        .filter(|f| f["ev"] == "get")
        .collect();
    let blocks: Vec<u64> = gets.iter().filter_map(|g| g["block"].as_u64()).collect();
    assert_eq!(blocks, (0..BLOCKS).collect::<Vec<_>>(), "{gets:?}");
    let szx = u64::from(BLOCK_SIZE.trailing_zeros() - 4);
    assert!(gets.iter().all(|g| g["szx"] == szx), "{gets:?}");
}

#[test]
fn a_client_pulls_its_package_from_an_aiocoap_file_server() {
    let port = peers::free_udp_port();
    let args = [
        port.to_string(),
        IMAGE_SIZE.to_string(),
        IMAGE_SEED.to_string(),
        IMAGE_PATH.to_string(),
    ];
    let peer = peers::AiocoapPeer::start("aiocoap_file_server.py", &args);
    let body = image(IMAGE_SIZE, IMAGE_SEED);
    let sha256 = hex::encode(Sha256::digest(&body));
    let listening = peer
        .facts()
        .into_iter()
        .find(|f| f["ev"] == "listening")
        .unwrap();
    assert_eq!(listening["size"], IMAGE_SIZE, "{listening}");
    assert_eq!(listening["sha256"], sha256.as_str(), "{listening}");

    let mut rig = Rig::registered();

    let uri = format!("coap://127.0.0.1:{port}{IMAGE_PATH}");
    let (code, _) = rig.ask(RequestType::Put, "/5/0/1", Some(&uri));
    assert_eq!(code, ResponseType::Changed);
    rig.run_until("download", |rig| {
        matches!(
            rig.firmware.last(),
            Some(FirmwareStep::Downloaded { .. } | FirmwareStep::Failed(_))
        )
    });
    assert_eq!(
        rig.firmware,
        [
            FirmwareStep::Started(Delivery::Pull),
            FirmwareStep::Downloaded {
                bytes: IMAGE_SIZE as u64
            }
        ]
    );
    assert_eq!(
        rig.ask(RequestType::Get, "/5/0/3", None),
        (ResponseType::Content, "2".to_string())
    );

    let (code, _) = rig.ask(RequestType::Post, "/5/0/2", None);
    assert_eq!(code, ResponseType::Changed);
    rig.run_until("update", |rig| {
        rig.server.registers == 2 && rig.firmware.last() == Some(&FirmwareStep::Updated)
    });
    let version = format!("fw-{}", &sha256[..8]);
    assert_eq!(
        rig.ask(RequestType::Get, "/3/0/3", None),
        (ResponseType::Content, version)
    );
    assert_eq!(
        rig.ask(RequestType::Get, "/5/0/5", None),
        (ResponseType::Content, "1".to_string())
    );
    let now = rig.now();
    rig.client.stop(now);
    rig.run_until("de-register", |rig| {
        rig.client.state() == ClientState::Stopped
    });
    assert_eq!(rig.server.deregisters, 1);

    assert_one_get_per_block(&peer);

    // Ours: one download of the whole image, one update, every request accounted for.
    let snapshot = rig.recorder.snapshot(rig.origin.elapsed());
    accounting::assert_accounted(&snapshot);
    let f = &snapshot.firmware;
    assert_eq!(
        (f.started, f.downloaded, f.updated),
        (1, 1, 1),
        "{snapshot}"
    );
    assert_eq!(f.failed_total(), 0, "{snapshot}");
    assert_eq!(f.download_time.len(), 1, "{snapshot}");
    let downloads = snapshot.request(RequestKind::Download);
    assert_eq!(
        (downloads.sent, downloads.ok),
        (BLOCKS, BLOCKS),
        "{snapshot}"
    );
    let registers = snapshot.request(RequestKind::Register);
    assert_eq!((registers.sent, registers.ok), (2, 2), "{snapshot}");
}
