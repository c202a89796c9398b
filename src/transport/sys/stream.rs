//! epoll and a non-blocking TCP connect, for the TCP transport (under `sys`'s unsafe allowance).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use libc::{c_int, socklen_t};

use super::set_int_opt;

fn check(rc: c_int) -> io::Result<c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A new epoll instance.
pub(in crate::transport) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the returned descriptor is new and ours alone.
    let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl` with `op` (`EPOLL_CTL_ADD`, `_MOD`, `_DEL`) for `fd`, reporting `data` back.
pub(in crate::transport) fn epoll_ctl(
    epoll: BorrowedFd<'_>,
    op: c_int,
    fd: BorrowedFd<'_>,
    events: u32,
    data: u64,
) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: data };
    // SAFETY: `event` is a live local the kernel reads during the call.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd.as_raw_fd(), &raw mut event) })
        .map(|_| ())
}

/// Waits up to `timeout` (nanosecond resolution, like the shards' ppoll) for events; returns
/// how many were written to `events`. An interrupted wait returns 0.
pub(in crate::transport) fn epoll_wait(
    epoll: BorrowedFd<'_>,
    events: &mut [libc::epoll_event],
    timeout: Duration,
) -> io::Result<usize> {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    let max = c_int::try_from(events.len()).unwrap_or(c_int::MAX);
    // SAFETY: the pointer and count describe a live, exclusively borrowed slice; `ts` lives
    // across the call; a null signal mask leaves the mask unchanged.
    let rc = unsafe {
        libc::epoll_pwait2(
            epoll.as_raw_fd(),
            events.as_mut_ptr(),
            max,
            &raw const ts,
            std::ptr::null(),
        )
    };
    match check(rc) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// A TCP socket connecting to `to` without blocking (the connect completes when the socket turns
/// writable; `take_error` then says how it went). `from` binds the source address, the port
/// being the kernel's choice at connect time.
pub(in crate::transport) fn connect_nonblocking(
    from: Option<IpAddr>,
    to: SocketAddr,
) -> io::Result<TcpStream> {
    let domain = if to.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: no pointers; the returned descriptor is new.
    let fd = check(unsafe { libc::socket(domain, kind, 0) })?;
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Some(ip) = from.filter(|ip| ip.is_ipv4() == to.is_ipv4()) {
        // Many clients share a source address: pick the port at connect, by 4-tuple.
        let _ = set_int_opt(
            socket.as_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            1,
        );
        with_sockaddr(SocketAddr::new(ip, 0), |addr, len| {
            // SAFETY: addr and len describe a live sockaddr of the right family.
            check(unsafe { libc::bind(socket.as_raw_fd(), addr, len) })
        })?;
    }
    let connected = with_sockaddr(to, |addr, len| {
        // SAFETY: as above.
        check(unsafe { libc::connect(socket.as_raw_fd(), addr, len) })
    });
    match connected {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from(socket))
}

/// Calls `f` with `addr` as a C socket address.
fn with_sockaddr<R>(addr: SocketAddr, f: impl FnOnce(*const libc::sockaddr, socklen_t) -> R) -> R {
    let (storage, len) = super::sockaddr(addr);
    f((&raw const storage).cast(), len)
}
