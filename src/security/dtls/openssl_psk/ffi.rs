//! The DTLS timer calls neither the `openssl` crate nor openssl-sys wraps (`DTLS_set_timer_cb`,
//! and `DTLSv1_get_timeout` and `DTLSv1_handle_timeout`, macros over `SSL_ctrl`): unsafe FFI, confined here behind safe
//! signatures.
#![allow(unsafe_code)]

use std::ptr;
use std::sync::OnceLock;
use std::time::Duration;

use foreign_types::ForeignTypeRef;
use libc::{c_uint, c_void, timeval};
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslRef};
use openssl_sys::{SSL, SSL_ctrl};

/// `DTLS_CTRL_GET_TIMEOUT` and `DTLS_CTRL_HANDLE_TIMEOUT` (openssl/dtls1.h).
const DTLS_CTRL_GET_TIMEOUT: libc::c_int = 73;
const DTLS_CTRL_HANDLE_TIMEOUT: libc::c_int = 74;

type TimerCallback = unsafe extern "C" fn(*mut SSL, c_uint) -> c_uint;

unsafe extern "C" {
    // OpenSSL >= 1.1.1 (openssl/ssl.h).
    fn DTLS_set_timer_cb(ssl: *mut SSL, callback: Option<TimerCallback>);
}

/// A session's first retransmission interval in µs, for the callback.
fn first_interval_index() -> Index<Ssl, c_uint> {
    static INDEX: OnceLock<Index<Ssl, c_uint>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL gives an ex_data index"))
}

/// OpenSSL's flight intervals: the session's first, doubled after each retransmission, as ours.
unsafe extern "C" fn interval(ssl: *mut SSL, previous_us: c_uint) -> c_uint {
    if previous_us > 0 {
        return previous_us.saturating_mul(2);
    }
    // SAFETY: OpenSSL calls back with the live SSL the callback was set on.
    let ssl = unsafe { SslRef::from_ptr(ssl) };
    ssl.ex_data(first_interval_index())
        .copied()
        .unwrap_or(1_000_000)
}

/// OpenSSL times flights on the wall clock: this gives its timer our intervals, so it expires
/// when our clock (a real one) says a retransmission is due.
pub(super) fn use_our_intervals(ssl: &mut SslRef, first_us: u32) {
    ssl.set_ex_data(first_interval_index(), first_us);
    // SAFETY: `ssl` is live; the callback is a plain function of the signature OpenSSL expects.
    unsafe { DTLS_set_timer_cb(ssl.as_ptr(), Some(interval)) }
}

/// `DTLSv1_handle_timeout`: retransmits the pending flight (new record numbers) into the write
/// BIO when OpenSSL's timer has expired. `Ok(false)`: not expired on the wall clock yet;
/// `Err`: OpenSSL gave up (a fatal error).
pub(super) fn retransmit(ssl: &SslRef) -> Result<bool, ()> {
    // SAFETY: `ssl` is live; this control takes no argument.
    let rc = unsafe { SSL_ctrl(ssl.as_ptr(), DTLS_CTRL_HANDLE_TIMEOUT, 0, ptr::null_mut()) };
    match rc {
        0 => Ok(false),
        r if r > 0 => Ok(true),
        _ => Err(()),
    }
}

/// `DTLSv1_get_timeout`: the wall-clock time left on OpenSSL's flight timer, if one runs.
pub(super) fn time_left(ssl: &SslRef) -> Option<Duration> {
    let mut left = timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: `ssl` is live; OpenSSL writes one timeval into `left`, which outlives the call.
    let running = unsafe {
        SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_GET_TIMEOUT,
            0,
            (&raw mut left).cast::<c_void>(),
        )
    };
    (running == 1).then(|| {
        Duration::from_secs(left.tv_sec.max(0) as u64)
            + Duration::from_micros(left.tv_usec.max(0) as u64)
    })
}
