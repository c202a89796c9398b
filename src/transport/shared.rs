//! Shared sockets: one UDP socket per port serves every client on that port, whatever its local
//! address. `IP_PKTINFO` (`IPV6_PKTINFO` on IPv6) chooses the source address on send and reports
//! the destination (client) address on receive; sendmmsg/recvmmsg batch the system calls.
//!
//! IPv6 sockets are free-binding (`IPV6_FREEBIND`): with a routed prefix delivered locally (Linux
//! "AnyIP": `ip -6 route add local PREFIX dev lo`) every address of the prefix is a client's
//! source address, though none is configured on an interface.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::sys::{self, Out, RecvScratch, SendScratch};
use super::{
    Datagram, OutgoingDatagram, Poller, PortRange, RecvBuffers, Transport, TransportError,
};

/// Where Linux publishes the largest `SO_RCVBUF` an unprivileged process may ask for.
const RMEM_MAX_PATH: &str = "/proc/sys/net/core/rmem_max";
const WMEM_MAX_PATH: &str = "/proc/sys/net/core/wmem_max";

/// Options of a shared socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedConfig {
    /// Datagrams per sendmmsg/recvmmsg call.
    pub batch: usize,
    /// Receive and send buffer size to ask the kernel for, in bytes. The 212 KB default drops
    /// datagrams at a few hundred in flight.
    pub buffer_bytes: usize,
}

impl Default for SharedConfig {
    fn default() -> Self {
        Self {
            batch: 64,
            buffer_bytes: 8 << 20,
        }
    }
}

/// Socket buffer sizes the kernel granted (as getsockopt reports them: twice the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSizes {
    pub recv: usize,
    pub send: usize,
    /// `SO_RCVBUFFORCE` worked (root or `CAP_NET_ADMIN`), so the limits in /proc did not apply.
    pub forced: bool,
}

/// One UDP socket bound to a port on the wildcard (or one) address, sending from and receiving
/// for any local address of its family.
pub struct SharedSocket {
    socket: UdpSocket,
    local: SocketAddr,
    send: SendScratch,
    recv: RecvScratch,
    sizes: BufferSizes,
    drops: u64,
}

impl SharedSocket {
    /// Binds `local` (usually `0.0.0.0:port` or `[::]:port`; port 0 picks one), nonblocking, with
    /// packet info and `SO_RXQ_OVFL` on and the buffers raised.
    pub fn bind(local: SocketAddr, config: &SharedConfig) -> Result<Self, TransportError> {
        let addr = local;
        let socket =
            UdpSocket::bind(local).map_err(|source| TransportError::Bind { addr, source })?;
        let opt_err = |option| {
            move |source| TransportError::SocketOption {
                option,
                addr,
                source,
            }
        };
        socket
            .set_nonblocking(true)
            .map_err(opt_err("O_NONBLOCK"))?;
        let local = socket.local_addr().map_err(opt_err("getsockname"))?;
        let fd = socket.as_fd();
        if local.is_ipv4() {
            sys::set_int_opt(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
                .map_err(opt_err("IP_PKTINFO"))?;
        } else {
            sys::set_int_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
                .map_err(opt_err("IPV6_RECVPKTINFO"))?;
            sys::set_int_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, 1)
                .or_else(|_| sys::set_int_opt(fd, libc::IPPROTO_IP, libc::IP_FREEBIND, 1))
                .map_err(opt_err("IPV6_FREEBIND"))?;
        }
        sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)
            .map_err(opt_err("SO_RXQ_OVFL"))?;
        let sizes =
            raise_buffers(fd, config.buffer_bytes).map_err(opt_err("SO_RCVBUF/SO_SNDBUF"))?;
        Ok(Self {
            socket,
            local,
            send: SendScratch::new(config.batch, local.is_ipv6()),
            recv: RecvScratch::new(config.batch),
            sizes,
            drops: 0,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn buffer_sizes(&self) -> BufferSizes {
        self.sizes
    }

    /// The kernel's drop counter for this socket (`SO_RXQ_OVFL`). The kernel stamps it on each
    /// datagram as it is queued, so drops show up with the next datagram received after them.
    pub fn kernel_drops(&self) -> u64 {
        self.drops
    }

    /// Sends `batch`; every `from` must be of this socket's family and port. See
    /// [`Transport::send_batch`] for the meaning of the result.
    pub fn send_batch(&mut self, batch: &[OutgoingDatagram<'_>]) -> Result<usize, TransportError> {
        let local = self.local;
        let fd = self.socket.as_fd();
        let mut done = 0;
        while done < batch.len() {
            let chunk = &batch[done..batch.len().min(done + self.send.capacity())];
            let valid = chunk
                .iter()
                .position(|o| out_of(local, o).is_none())
                .unwrap_or(chunk.len());
            if valid == 0 {
                return Err(invalid(done, &batch[done], local));
            }
            let items = chunk[..valid].iter().filter_map(|o| out_of(local, o));
            let sent = self
                .send
                .send(fd, items)
                .map_err(|source| TransportError::Send {
                    index: done,
                    from: batch[done].from,
                    to: batch[done].to,
                    source,
                })?;
            if sent == 0 {
                break; // socket buffer full
            }
            done += sent;
        }
        Ok(done)
    }

    /// Appends what is queued (up to the free slots of `bufs` and the batch size) to `bufs`.
    pub fn recv_batch(&mut self, bufs: &mut RecvBuffers) -> Result<usize, TransportError> {
        let (free, slot) = bufs.free_slots();
        let n = self
            .recv
            .recv(self.socket.as_fd(), free, slot)
            .map_err(|source| TransportError::Recv {
                addr: self.local,
                source,
            })?;
        for i in 0..n {
            let raw = self.recv.get(i);
            if let Some(d) = raw.drops {
                self.drops = self.drops.max(u64::from(d));
            }
            let client = SocketAddr::new(raw.dst.unwrap_or(self.local.ip()), self.local.port());
            bufs.push(Datagram {
                client,
                peer: raw.peer,
                len: raw.len.min(slot),
                truncated: raw.truncated,
            });
        }
        Ok(n)
    }
}

impl AsFd for SharedSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// `o` as the kernel gets it from a socket bound to `local`: same family, same port.
fn out_of<'a>(local: SocketAddr, o: &OutgoingDatagram<'a>) -> Option<Out<'a>> {
    let same_family = o.from.is_ipv4() == local.is_ipv4() && o.to.is_ipv4() == local.is_ipv4();
    (same_family && o.from.port() == local.port()).then_some(Out {
        from: o.from.ip(),
        to: o.to,
        payload: o.payload,
    })
}

fn invalid(index: usize, o: &OutgoingDatagram<'_>, local: SocketAddr) -> TransportError {
    if o.from.port() == local.port() {
        let addr = if o.from.is_ipv4() == local.is_ipv4() {
            o.to
        } else {
            o.from
        };
        TransportError::WrongFamily { addr, local }
    } else {
        TransportError::UnknownSource {
            index,
            from: o.from,
        }
    }
}

/// `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` first (they ignore `rmem_max` but need `CAP_NET_ADMIN`), else the
/// plain options capped at the /proc maximum. Returns what the kernel granted.
pub fn raise_buffers(fd: BorrowedFd<'_>, want: usize) -> std::io::Result<BufferSizes> {
    let want = want.min(i32::MAX as usize / 2) as i32;
    let forced = sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want).is_ok()
        && sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, want).is_ok();
    if !forced {
        let cap =
            |path| read_usize(path).map_or(want, |max| want.min(max.min(i32::MAX as usize) as i32));
        sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, cap(RMEM_MAX_PATH))?;
        sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, cap(WMEM_MAX_PATH))?;
    }
    Ok(BufferSizes {
        recv: sys::get_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)? as usize,
        send: sys::get_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)? as usize,
        forced,
    })
}

fn read_usize(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Shared sockets for a contiguous range of ports (one per port), behind [`Transport`].
pub struct SharedTransport {
    sockets: Vec<SharedSocket>,
    first_port: u16,
    poller: Poller,
    /// Socket the next receive starts at, so a busy one does not starve the others.
    next: usize,
}

impl SharedTransport {
    /// Binds `ip:port` for every port of `ports` (`ip` is usually 0.0.0.0 or ::).
    pub fn open(
        ip: IpAddr,
        ports: PortRange,
        config: &SharedConfig,
    ) -> Result<Self, TransportError> {
        let sockets = (ports.first()..=ports.last())
            .map(|port| SharedSocket::bind(SocketAddr::new(ip, port), config))
            .collect::<Result<Vec<_>, _>>()?;
        let mut poller = Poller::new();
        for s in &sockets {
            poller.add(s.as_fd());
        }
        Ok(Self {
            sockets,
            first_port: ports.first(),
            poller,
            next: 0,
        })
    }

    pub fn sockets(&self) -> &[SharedSocket] {
        &self.sockets
    }

    fn socket_for(&self, from: SocketAddr) -> Option<usize> {
        let i = usize::from(from.port().checked_sub(self.first_port)?);
        (i < self.sockets.len()).then_some(i)
    }
}

impl Transport for SharedTransport {
    fn send_batch(&mut self, batch: &[OutgoingDatagram<'_>]) -> Result<usize, TransportError> {
        let mut done = 0;
        while done < batch.len() {
            let from = batch[done].from;
            let sock = self
                .socket_for(from)
                .ok_or(TransportError::UnknownSource { index: done, from })?;
            // The run of datagrams leaving from the same port goes out in one call.
            let run = batch[done..]
                .iter()
                .position(|o| o.from.port() != from.port())
                .unwrap_or(batch.len() - done);
            let sent = self.sockets[sock]
                .send_batch(&batch[done..done + run])
                .map_err(|e| reindex(e, done))?;
            done += sent;
            if sent < run {
                break;
            }
        }
        Ok(done)
    }

    fn recv_batch(&mut self, bufs: &mut RecvBuffers) -> Result<usize, TransportError> {
        let mut total = 0;
        let n = self.sockets.len();
        for k in 0..n {
            if bufs.is_full() {
                break;
            }
            let i = (self.next + k) % n;
            total += self.sockets[i].recv_batch(bufs)?;
        }
        self.next = (self.next + 1) % n.max(1);
        Ok(total)
    }

    fn wait(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        Ok(self.poller.wait(timeout).map_err(TransportError::Poll)? > 0)
    }

    fn kernel_drops(&self) -> u64 {
        self.sockets.iter().map(SharedSocket::kernel_drops).sum()
    }

    /// The wildcard-bound sockets send from and receive for any local address on their port:
    /// the client moves to `spare` with nothing to open.
    fn rebind(&mut self, _client: SocketAddr, spare: Option<SocketAddr>) -> Option<SocketAddr> {
        spare.filter(|s| self.socket_for(*s).is_some())
    }
}

/// Shifts a per-socket batch index to the index in the caller's batch.
fn reindex(e: TransportError, offset: usize) -> TransportError {
    match e {
        TransportError::Send {
            index,
            from,
            to,
            source,
        } => TransportError::Send {
            index: index + offset,
            from,
            to,
            source,
        },
        TransportError::UnknownSource { index, from } => TransportError::UnknownSource {
            index: index + offset,
            from,
        },
        other => other,
    }
}
