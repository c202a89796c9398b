//! One socket per client: works against any server on any network, up to the open-files limit.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use super::{Datagram, OutgoingDatagram, Poller, RecvBuffers, Transport, TransportError, sys};

/// Descriptors kept free for everything that is not a client socket (stdio, files, the engine).
pub const FD_RESERVE: u64 = 64;

/// An `RLIMIT_NOFILE` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

impl FdLimit {
    /// This process's limit.
    pub fn current() -> Result<Self, TransportError> {
        let (soft, hard) = sys::nofile_limit().map_err(TransportError::FdLimit)?;
        Ok(Self { soft, hard })
    }
}

/// Pure check: the soft limit `clients` sockets need (it may be raised up to the hard limit
/// without privilege), or the error that says how to get out.
pub fn check_fd_budget(clients: u64, limit: FdLimit) -> Result<u64, TransportError> {
    let needed = clients.saturating_add(FD_RESERVE);
    if needed > limit.hard {
        return Err(TransportError::TooManyFiles {
            clients,
            needed,
            soft: limit.soft,
            hard: limit.hard,
        });
    }
    Ok(needed.max(limit.soft))
}

/// Raises the soft open-files limit for `sockets` sockets (up to the hard limit, which needs no
/// privilege), or says why it cannot.
pub fn reserve_files(sockets: u64) -> Result<(), TransportError> {
    let limit = FdLimit::current()?;
    let soft = check_fd_budget(sockets, limit)?;
    if soft > limit.soft {
        sys::set_nofile_soft(soft, limit.hard).map_err(TransportError::FdLimit)?;
    }
    Ok(())
}

/// One nonblocking std UDP socket per client endpoint.
pub struct PerClientTransport {
    sockets: Vec<UdpSocket>,
    endpoints: Vec<SocketAddr>,
    by_endpoint: HashMap<SocketAddr, usize>,
    poller: Poller,
    /// Socket the next receive starts at, so early clients do not starve later ones.
    next: usize,
}

impl PerClientTransport {
    /// Checks the open-files limit (raising the soft limit if needed and allowed), then binds one
    /// socket per endpoint.
    pub fn open(endpoints: &[SocketAddr]) -> Result<Self, TransportError> {
        reserve_files(endpoints.len() as u64)?;
        let mut sockets = Vec::with_capacity(endpoints.len());
        let mut by_endpoint = HashMap::with_capacity(endpoints.len());
        let mut resolved = Vec::with_capacity(endpoints.len());
        let mut poller = Poller::new();
        for (i, &addr) in endpoints.iter().enumerate() {
            let socket = bind_nonblocking(addr)?;
            // Port 0 endpoints resolve to the port the kernel chose.
            let local = socket.local_addr().unwrap_or(addr);
            poller.add(socket.as_fd());
            by_endpoint.insert(local, i);
            resolved.push(local);
            sockets.push(socket);
        }
        Ok(Self {
            sockets,
            endpoints: resolved,
            by_endpoint,
            poller,
            next: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// The bound endpoints, in the order given to `open` (port 0 resolved).
    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }
}

impl Transport for PerClientTransport {
    fn send_batch(&mut self, batch: &[OutgoingDatagram<'_>]) -> Result<usize, TransportError> {
        for (index, o) in batch.iter().enumerate() {
            let &i = self
                .by_endpoint
                .get(&o.from)
                .ok_or(TransportError::UnknownSource {
                    index,
                    from: o.from,
                })?;
            match self.sockets[i].send_to(o.payload, o.to) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(index),
                Err(source) => {
                    return Err(TransportError::Send {
                        index,
                        from: o.from,
                        to: o.to,
                        source,
                    });
                }
            }
        }
        Ok(batch.len())
    }

    fn recv_batch(&mut self, bufs: &mut RecvBuffers) -> Result<usize, TransportError> {
        // One poll(2) finds the readable sockets instead of one recv per socket.
        if self
            .poller
            .wait(Duration::ZERO)
            .map_err(TransportError::Poll)?
            == 0
        {
            return Ok(0);
        }
        let n = self.sockets.len();
        let mut added = 0;
        for k in 0..n {
            let i = (self.next + k) % n;
            if !self.poller.is_ready(i) {
                continue;
            }
            // Drain this socket while there is room.
            while !bufs.is_full() {
                let (free, slot) = bufs.free_slots();
                match self.sockets[i].recv_from(&mut free[..slot]) {
                    Ok((len, peer)) => {
                        bufs.push(Datagram {
                            client: self.endpoints[i],
                            peer,
                            len,
                            // The slot has one spare byte: filling it means the datagram was cut.
                            truncated: len == slot,
                        });
                        added += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // An ICMP error queued on this socket: not a datagram, skip it.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(source) => {
                        return Err(TransportError::Recv {
                            addr: self.endpoints[i],
                            source,
                        });
                    }
                }
            }
            if bufs.is_full() {
                self.next = i;
                return Ok(added);
            }
        }
        self.next = (self.next + 1) % n.max(1);
        Ok(added)
    }

    fn wait(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        Ok(self.poller.wait(timeout).map_err(TransportError::Poll)? > 0)
    }

    /// Per-client sockets do not ask for the kernel's counter.
    fn kernel_drops(&self) -> u64 {
        0
    }

    fn rebind(&mut self, client: SocketAddr, _spare: Option<SocketAddr>) -> Option<SocketAddr> {
        let i = *self.by_endpoint.get(&client)?;
        // Bound before the old one closes, so the kernel cannot hand back the same port.
        let socket = bind_nonblocking(SocketAddr::new(client.ip(), 0)).ok()?;
        let local = socket.local_addr().ok()?;
        self.poller.replace(i, socket.as_fd());
        self.sockets[i] = socket;
        self.by_endpoint.remove(&client);
        self.by_endpoint.insert(local, i);
        self.endpoints[i] = local;
        Some(local)
    }
}

fn bind_nonblocking(addr: SocketAddr) -> Result<UdpSocket, TransportError> {
    let socket = UdpSocket::bind(addr).map_err(|source| TransportError::Bind { addr, source })?;
    socket
        .set_nonblocking(true)
        .map_err(|source| TransportError::SocketOption {
            option: "O_NONBLOCK",
            addr,
            source,
        })?;
    Ok(socket)
}
