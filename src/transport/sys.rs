//! The only unsafe code of the crate: thin wrappers over setsockopt, getsockopt, poll, getrlimit,
//! sendmmsg and recvmmsg (and, in `stream`, epoll and a non-blocking TCP connect) with safe
//! signatures. Buffers handed to the kernel are borrowed for the
//! duration of one call; the header arrays are preallocated once per socket and reused.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};

use libc::{c_int, c_void, socklen_t};

pub(super) mod stream;

/// `setsockopt` with an int value.
pub(super) fn set_int_opt(
    fd: BorrowedFd<'_>,
    level: c_int,
    name: c_int,
    value: c_int,
) -> io::Result<()> {
    // SAFETY: the option value points to a live c_int and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast::<c_void>(),
            size_of::<c_int>() as socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt` of an int option.
pub(super) fn get_int_opt(fd: BorrowedFd<'_>, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: value and len are live locals; len tells the kernel the buffer size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast::<c_void>(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `poll(2)` over caller-owned descriptors; returns how many have events.
/// `poll` with a nanosecond timeout (`ppoll`): a deadline 300 µs away is met within the
/// kernel's timer slack, not rounded to a whole millisecond.
pub(super) fn poll(fds: &mut [libc::pollfd], timeout: std::time::Duration) -> io::Result<usize> {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: the pointer and length describe a live, exclusively borrowed slice of pollfd;
    // `ts` lives across the call; a null signal mask leaves the mask unchanged.
    let rc = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &raw const ts,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// `RLIMIT_NOFILE` as (soft, hard).
pub(super) fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a live rlimit the kernel writes into.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) };
    if rc == 0 {
        Ok((lim.rlim_cur, lim.rlim_max))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft `RLIMIT_NOFILE` (up to the hard limit only; that needs no privilege).
pub(super) fn set_nofile_soft(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: lim is a live rlimit the kernel reads.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `addr` as a socket address the kernel reads, and its length.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, socklen_t) {
    let mut storage = zeroed_storage();
    let len = write_sockaddr(&mut storage, addr);
    (storage, len)
}

/// Writes `addr` into `storage` (only the bytes of its family's struct) and returns its length.
fn write_sockaddr(storage: &mut libc::sockaddr_storage, addr: SocketAddr) -> socklen_t {
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr kind.
            unsafe { std::ptr::write((&raw mut *storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&raw mut *storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    len as socklen_t
}

/// The address the kernel wrote into `storage` (IPv4 or IPv6; unspecified for anything else).
fn from_sockaddr(storage: &libc::sockaddr_storage) -> SocketAddr {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; storage is aligned for it.
            let sin: &libc::sockaddr_in = unsafe { &*(&raw const *storage).cast() };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6; storage is aligned for it.
            let sin6: &libc::sockaddr_in6 = unsafe { &*(&raw const *storage).cast() };
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            ))
        }
        _ => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
    }
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain C data; all-zero is a valid (AF_UNSPEC) value.
    unsafe { std::mem::zeroed() }
}

/// Control-message space: `IP_PKTINFO` or `IPV6_PKTINFO` plus `SO_RXQ_OVFL` on receive (at most
/// 40 + 24 bytes on 64-bit).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct ControlBuf([u8; 80]);

const CMSG_HEADER: usize = size_of::<libc::cmsghdr>();
const _: () = assert!(CMSG_HEADER.is_multiple_of(size_of::<usize>()));

impl ControlBuf {
    /// One control message choosing the source address of a send, `IP_PKTINFO` (IPv4) or
    /// `IPV6_PKTINFO`, its address left zero for [`ControlBuf::set_source`]. Also returns
    /// `CMSG_SPACE` of it.
    fn source_message(ipv6: bool) -> (ControlBuf, usize) {
        let (level, kind, data_len) = if ipv6 {
            (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                size_of::<libc::in6_pktinfo>(),
            )
        } else {
            (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                size_of::<libc::in_pktinfo>(),
            )
        };
        let mut buf = ControlBuf([0; 80]);
        // The kernel insists on exactly CMSG_LEN (header + data), without the tail padding.
        let len = CMSG_HEADER + data_len;
        let w = size_of::<usize>();
        buf.0[..w].copy_from_slice(&len.to_ne_bytes());
        buf.0[w..w + 4].copy_from_slice(&level.to_ne_bytes());
        buf.0[w + 4..w + 8].copy_from_slice(&kind.to_ne_bytes());
        (buf, len.next_multiple_of(w))
    }

    /// The source address of a message made by [`ControlBuf::source_message`] of `from`'s family:
    /// `in_pktinfo`'s `ipi_spec_dst` (after `ipi_ifindex`) or `in6_pktinfo`'s `ipi6_addr`.
    fn set_source(&mut self, from: IpAddr) {
        let data = &mut self.0[CMSG_HEADER..];
        match from {
            IpAddr::V4(v4) => data[4..8].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => data[..16].copy_from_slice(&v6.octets()),
        }
    }
}

fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain C data; all-zero (null pointers, zero lengths) is a valid value.
    unsafe { std::mem::zeroed() }
}

/// A datagram to send from a chosen local address (of the socket's family).
pub(super) struct Out<'a> {
    pub from: IpAddr,
    pub to: SocketAddr,
    pub payload: &'a [u8],
}

/// Preallocated sendmmsg headers for up to `capacity` datagrams per call.
pub(super) struct SendScratch {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    cmsgs: Vec<ControlBuf>,
    /// `CMSG_SPACE` of the source-address message, the same for every datagram of the socket.
    control_len: usize,
}

// SAFETY: the raw pointers inside are rewritten before every call and only dereferenced by the
// kernel during that call; between calls the scratch is inert data, safe to move across threads.
unsafe impl Send for SendScratch {}

impl SendScratch {
    /// For a socket of one family (`ipv6` or not): the control messages' headers are written here
    /// once, each send fills in addresses only.
    pub(super) fn new(capacity: usize, ipv6: bool) -> Self {
        let capacity = capacity.max(1);
        let (cmsg, control_len) = ControlBuf::source_message(ipv6);
        Self {
            hdrs: vec![zeroed_mmsghdr(); capacity],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                capacity
            ],
            names: vec![zeroed_storage(); capacity],
            cmsgs: vec![cmsg; capacity],
            control_len,
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Sends up to `capacity` datagrams in one sendmmsg; returns how many the kernel took (0 when
    /// the socket buffer is full). An error concerns the first datagram not sent.
    pub(super) fn send<'a>(
        &mut self,
        fd: BorrowedFd<'_>,
        items: impl IntoIterator<Item = Out<'a>>,
    ) -> io::Result<usize> {
        let mut n = 0;
        for (i, out) in items.into_iter().take(self.hdrs.len()).enumerate() {
            self.iovs[i] = libc::iovec {
                iov_base: out.payload.as_ptr().cast_mut().cast(),
                iov_len: out.payload.len(),
            };
            let name_len = write_sockaddr(&mut self.names[i], out.to);
            self.cmsgs[i].set_source(out.from);
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = name_len;
            h.msg_iov = &raw mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = (&raw mut self.cmsgs[i]).cast();
            h.msg_controllen = self.control_len as _;
            h.msg_flags = 0;
            n = i + 1;
        }
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: the first n headers point into this scratch's own arrays (not reallocated) and
        // into payloads borrowed by `items` for 'a, which outlives this call; n <= capacity.
        let rc = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                n as _,
                libc::MSG_DONTWAIT,
            )
        };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(0)
        } else {
            Err(err)
        }
    }
}

/// What recvmmsg reported for one datagram.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawRecv {
    pub peer: SocketAddr,
    pub len: usize,
    pub truncated: bool,
    /// Destination address from `IP_PKTINFO` (`ipi_addr`) or `IPV6_PKTINFO` (`ipi6_addr`).
    pub dst: Option<IpAddr>,
    /// The kernel's cumulative drop count for the socket (`SO_RXQ_OVFL`), when sent.
    pub drops: Option<u32>,
}

/// Preallocated recvmmsg headers for up to `capacity` datagrams per call.
pub(super) struct RecvScratch {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    cmsgs: Vec<ControlBuf>,
}

// SAFETY: as for SendScratch: pointers are rewritten before each call and unused between calls.
unsafe impl Send for RecvScratch {}

impl RecvScratch {
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            hdrs: vec![zeroed_mmsghdr(); capacity],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                capacity
            ],
            names: vec![zeroed_storage(); capacity],
            cmsgs: vec![ControlBuf([0; 80]); capacity],
        }
    }

    /// Receives into consecutive `slot`-byte chunks of `buf` without blocking; returns the count
    /// (0 when nothing is queued). Read each with [`RecvScratch::get`].
    pub(super) fn recv(
        &mut self,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        slot: usize,
    ) -> io::Result<usize> {
        let mut n = 0;
        for (i, chunk) in buf
            .chunks_exact_mut(slot.max(1))
            .take(self.hdrs.len())
            .enumerate()
        {
            self.iovs[i] = libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as socklen_t;
            h.msg_iov = &raw mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = (&raw mut self.cmsgs[i]).cast();
            h.msg_controllen = size_of::<ControlBuf>() as _;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
            n = i + 1;
        }
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: the first n headers point into this scratch's arrays and into disjoint chunks
        // of `buf`, exclusively borrowed for this call; n <= capacity; no timeout pointer.
        let rc = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                n as _,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(0)
        } else {
            Err(err)
        }
    }

    /// The `i`-th datagram of the last [`RecvScratch::recv`].
    pub(super) fn get(&self, i: usize) -> RawRecv {
        let m = &self.hdrs[i];
        let control_len = m.msg_hdr.msg_controllen.min(size_of::<ControlBuf>());
        let (dst, drops) = parse_control(&self.cmsgs[i].0[..control_len]);
        RawRecv {
            peer: from_sockaddr(&self.names[i]),
            len: m.msg_len as usize,
            truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            dst,
            drops,
        }
    }
}

/// Walks control messages in safe code: `IP_PKTINFO`'s `ipi_addr`, `IPV6_PKTINFO`'s `ipi6_addr`
/// and `SO_RXQ_OVFL`'s counter.
fn parse_control(buf: &[u8]) -> (Option<IpAddr>, Option<u32>) {
    const W: usize = size_of::<usize>();
    let hdr = size_of::<libc::cmsghdr>();
    let (mut dst, mut drops) = (None, None);
    let mut off = 0;
    while off + hdr <= buf.len() {
        let field = |at: usize, n: usize| &buf[off + at..off + at + n];
        let len = usize::from_ne_bytes(field(0, W).try_into().unwrap_or([0; W]));
        let level = c_int::from_ne_bytes(field(W, 4).try_into().unwrap_or([0; 4]));
        let kind = c_int::from_ne_bytes(field(W + 4, 4).try_into().unwrap_or([0; 4]));
        if len < hdr || len > buf.len() - off {
            break;
        }
        let data = &buf[off + hdr..off + len];
        match (level, kind) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if data.len() >= 12 => {
                dst = Some(IpAddr::V4(Ipv4Addr::new(
                    data[8], data[9], data[10], data[11],
                )));
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if data.len() >= 16 => {
                let octets: [u8; 16] = data[..16].try_into().expect("16 bytes");
                dst = Some(IpAddr::V6(Ipv6Addr::from(octets)));
            }
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) if data.len() >= 4 => {
                drops = Some(u32::from_ne_bytes([data[0], data[1], data[2], data[3]]));
            }
            _ => {}
        }
        off += len.next_multiple_of(W);
    }
    (dst, drops)
}
