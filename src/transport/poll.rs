//! Waiting on several sockets with a timeout, via poll(2): the engine's shard threads block here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use super::sys;

/// A fixed set of descriptors to wait on. It does not own them: a descriptor closed while still
/// registered is reported by the kernel as invalid, never read.
#[derive(Debug, Default)]
pub struct Poller {
    fds: Vec<libc::pollfd>,
}

impl Poller {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `fd` for readability; returns its index.
    pub fn add(&mut self, fd: BorrowedFd<'_>) -> usize {
        self.fds.push(libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        self.fds.len() - 1
    }

    /// Puts `fd` in place of descriptor `i` (a socket replaced by a new one).
    pub fn replace(&mut self, i: usize, fd: BorrowedFd<'_>) {
        if let Some(p) = self.fds.get_mut(i) {
            p.fd = fd.as_raw_fd();
            p.revents = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Waits until a descriptor is readable or `timeout` passes; returns how many are ready.
    /// An interrupted wait returns 0.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<usize> {
        match sys::poll(&mut self.fds, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            other => other,
        }
    }

    /// Whether descriptor `i` had data (or an error to collect) at the last wait.
    pub fn is_ready(&self, i: usize) -> bool {
        self.fds
            .get(i)
            .is_some_and(|p| p.revents & (libc::POLLIN | libc::POLLERR) != 0)
    }
}
