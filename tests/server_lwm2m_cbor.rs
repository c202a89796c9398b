//! The embedded server asking for LWM2M CBOR (`ServerConfig::lwm2m_cbor`, `--lwm2m-cbor`):
//! 1.2 clients answer its Reads and notify its Observes in 11544, 1.1 clients are not asked.

#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/world.rs"]
mod world;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, Packet, ResponseType};
use lwm2m_swarm::client::{ClientConfig, LwM2mVersion};
use lwm2m_swarm::content::decode_lwm2m_cbor;
use lwm2m_swarm::model::{Path, Value};
use lwm2m_swarm::server::{ObserveLoad, ServerConfig};
use world::{Hop, World};

const SECOND: Duration = Duration::from_secs(1);

fn temperature() -> Path {
    Path::resource(3303, 0, 5700)
}

/// The Content-Format and payload of a 2.05 a client sent.
type Content = (Option<u16>, Vec<u8>);

/// Runs four clients of `version` for two minutes against a server asking for LWM2M CBOR;
/// returns the Content-Format and payload of every 2.05 the clients sent.
fn contents(version: LwM2mVersion) -> (World, Vec<Content>) {
    let server = ServerConfig {
        read: Some((temperature(), 30 * SECOND)),
        observe: Some(ObserveLoad {
            path: temperature(),
            pmin: Some(10),
            pmax: Some(20),
        }),
        lwm2m_cbor: true,
        ..ServerConfig::default()
    };
    let client = ClientConfig {
        version,
        lifetime: Duration::from_secs(300),
        ..ClientConfig::default()
    };
    let mut world = World::new(server, client, 4);
    let seen: Rc<RefCell<Vec<Content>>> = Rc::new(RefCell::new(Vec::new()));
    let record = Rc::clone(&seen);
    world.drop = Box::new(move |hop, bytes| {
        if let (Hop::ToServer(_), Ok(packet)) = (hop, Packet::from_bytes(bytes))
            && packet.header.code == MessageClass::Response(ResponseType::Content)
        {
            let format = packet
                .get_option(CoapOption::ContentFormat)
                .and_then(|values| values.front().cloned())
                .map(|v| v.iter().fold(0u16, |n, b| (n << 8) | u16::from(*b)));
            record.borrow_mut().push((format, packet.payload));
        }
        false
    });
    for i in 0..4 {
        world.start(i);
    }
    world.run_for(120 * SECOND);
    let seen = seen.borrow().clone();
    (world, seen)
}

#[test]
fn clients_of_1_2_answer_reads_and_notify_in_lwm2m_cbor() {
    let (world, contents) = contents(LwM2mVersion::V1_2);
    let stats = *world.server.stats();
    assert!(stats.read.ok >= 4 * 3, "{:?}", stats.read);
    assert_eq!(stats.observe.ok, 4);
    assert!(stats.notifications >= 4 * 5, "{}", stats.notifications);
    assert_eq!(stats.read.client_error + stats.observe.client_error, 0);
    // Reads, first Observe answers and notifications: all 11544, all the temperature.
    assert!(contents.len() as u64 >= stats.read.ok + stats.notifications);
    for (format, payload) in &contents {
        assert_eq!(*format, Some(11544), "{payload:02X?}");
        let records = decode_lwm2m_cbor(payload).expect("LWM2M CBOR decodes");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].path, temperature());
        assert!(matches!(records[0].value, Value::Float(_)), "{records:?}");
    }
}

#[test]
fn clients_of_1_1_are_not_asked_for_it() {
    let (world, contents) = contents(LwM2mVersion::V1_1);
    let stats = *world.server.stats();
    assert!(stats.read.ok >= 4 * 3, "{:?}", stats.read);
    assert_eq!(stats.read.client_error + stats.observe.client_error, 0);
    assert!(!contents.is_empty());
    // No Accept: a single value comes as text.
    assert!(contents.iter().all(|(format, _)| *format == Some(0)));
}
