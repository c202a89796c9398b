//! `DTLS_set_timer_cb`, which neither the `openssl` crate nor openssl-sys wraps: unsafe FFI,
//! confined here behind a safe signature.
#![allow(unsafe_code)]

use foreign_types::ForeignTypeRef;
use libc::c_uint;
use openssl::ssl::SslRef;
use openssl_sys::SSL;

type TimerCallback = unsafe extern "C" fn(*mut SSL, c_uint) -> c_uint;

unsafe extern "C" {
    // OpenSSL >= 1.1.1 (openssl/ssl.h).
    fn DTLS_set_timer_cb(ssl: *mut SSL, callback: Option<TimerCallback>);
}

/// OpenSSL's flight timer reads the wall clock and retransmits by itself whenever it reads after
/// expiry. Set to ~71 minutes (the largest it takes), it never expires within a handshake, and
/// our clock alone times retransmissions.
unsafe extern "C" fn never_within_a_handshake(_ssl: *mut SSL, _previous_us: c_uint) -> c_uint {
    c_uint::MAX
}

pub(super) fn leave_flight_timing_to_us(ssl: &SslRef) {
    // SAFETY: `ssl` is live; the callback is a plain function of the signature OpenSSL expects
    // and keeps no pointer.
    unsafe { DTLS_set_timer_cb(ssl.as_ptr(), Some(never_within_a_handshake)) }
}
