//! A shard whose transport fails: its clients' requests end as aborted before it exits, the
//! other shards stop, and the error comes back with counts that still add up.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/shipped.rs"]
mod shipped;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use accounting::assert_accounted;
use lwm2m_swarm::client::{ClientState, RequestKind};
use lwm2m_swarm::engine::{Engine, EngineConfig, EngineError};
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::transport::{OutgoingDatagram, RecvBuffers, Transport, TransportError};

/// A network that swallows every datagram (no server ever answers); with `fail_after`, receiving
/// fails once that many datagrams went out.
struct Swallowing {
    sent: Arc<AtomicU64>,
    fail_after: Option<u64>,
}

impl Transport for Swallowing {
    fn send_batch(&mut self, batch: &[OutgoingDatagram<'_>]) -> Result<usize, TransportError> {
        self.sent.fetch_add(batch.len() as u64, Ordering::AcqRel);
        Ok(batch.len())
    }

    fn recv_batch(&mut self, _bufs: &mut RecvBuffers) -> Result<usize, TransportError> {
        match self.fail_after {
            Some(n) if self.sent.load(Ordering::Acquire) >= n => Err(TransportError::Recv {
                addr: "127.0.0.1:20000".parse().unwrap(),
                source: io::Error::other("the test's transport failed"),
            }),
            _ => Ok(0),
        }
    }

    fn wait(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        std::thread::sleep(timeout);
        Ok(false)
    }

    fn kernel_drops(&self) -> u64 {
        0
    }
}

#[test]
fn a_failing_transport_ends_its_clients_requests_as_aborted() {
    let clients = 20;
    let text = format!(
        "[client]\nlifetime = \"60s\"\nseed = 3\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = 200\nhold = \"30s\"\nstop_timeout = \"20s\"\n"
    );
    let fleet = Fleet::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let templates = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config = EngineConfig::new("127.0.0.1:5683".parse().unwrap());
    config.shards = 2;
    let per_shard = clients / 2;
    let engine = Engine::start_with(fleet.plan(), templates, &config, |layout| {
        assert_eq!(layout.shards(), 2);
        // Shard 0 fails once each of its clients has sent its Register; shard 1 never does.
        [Some(per_shard), None]
            .into_iter()
            .map(|fail_after| {
                Box::new(Swallowing {
                    sent: Arc::new(AtomicU64::new(0)),
                    fail_after,
                }) as Box<dyn Transport + Send>
            })
            .collect()
    })
    .expect("engine starts");
    // The hold (30 s) and the stop timeout (20 s) are far off: ending sooner means the failure
    // stopped the run, and the other shard's stop found its Registers still out.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !engine.is_finished() {
        assert!(Instant::now() < deadline, "{}", engine.snapshot());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (s, ended) = engine.finish();
    match ended {
        Err(EngineError::Transport(TransportError::Recv { source, .. })) => {
            assert_eq!(source.to_string(), "the test's transport failed");
        }
        other => panic!("expected the transport's error, got {other:?}\n{s}"),
    }
    let register = s.request(RequestKind::Register);
    // Shard 0's clients all sent theirs; shard 1 may have been stopped before its last start.
    assert!(register.sent >= per_shard, "{s}");
    // No answer ever came: each Register ended as aborted, by the failure or by the stop.
    assert_eq!(register.aborted, register.sent, "{s}");
    assert_accounted(&s);
    assert_eq!(s.state(ClientState::Stopped), register.sent, "{s}");
}
