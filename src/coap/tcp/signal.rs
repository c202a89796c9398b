//! Signaling messages (RFC 8323 §5): codes 7.01 to 7.05 and their options, whose numbers are
//! per signal (option 2 is Max-Message-Size in a CSM, Custody in a Ping).

use super::frame::{self, FrameError, Message};

pub const CSM: u8 = 0xE1;
pub const PING: u8 = 0xE2;
pub const PONG: u8 = 0xE3;
pub const RELEASE: u8 = 0xE4;
pub const ABORT: u8 = 0xE5;

/// Max-Message-Size before the peer's CSM says otherwise (RFC 8323 §5.3.1).
pub const BASE_MAX_MESSAGE_SIZE: u32 = 1152;

/// One signaling message, with the options RFC 8323 defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// 7.01 Capabilities and Settings: options 2 Max-Message-Size, 4 Block-Wise-Transfer.
    Csm {
        max_message_size: Option<u32>,
        block_wise: bool,
    },
    /// 7.02: option 2 Custody.
    Ping { custody: bool },
    /// 7.03: option 2 Custody.
    Pong { custody: bool },
    /// 7.04: options 2 Alternative-Address (repeatable), 4 Hold-Off (seconds).
    Release {
        alternative_addresses: Vec<String>,
        hold_off: Option<u32>,
    },
    /// 7.05: option 2 Bad-CSM-Option; a diagnostic payload.
    Abort {
        bad_csm_option: Option<u16>,
        diagnostic: String,
    },
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignalError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("code {}.{:02} is not a signal", code >> 5, code & 0x1F)]
    NotASignal { code: u8 },
    /// Odd option numbers are critical: one we do not know rejects the message (§5.3).
    #[error("unknown critical option {option} in signal {}.{:02}", code >> 5, code & 0x1F)]
    UnknownCritical { code: u8, option: u16 },
    #[error("option {option} of signal {}.{:02}: {problem}", code >> 5, code & 0x1F)]
    BadValue {
        code: u8,
        option: u16,
        problem: &'static str,
    },
}

/// Class 7 is signaling.
pub fn is_signal(code: u8) -> bool {
    code >> 5 == 7
}

/// Reads a signal; unknown elective options are ignored (§5.3).
pub fn parse(message: &Message<'_>) -> Result<Signal, SignalError> {
    let code = message.code;
    let (options, payload) = frame::options(message.body)?;
    let known: &[u16] = match code {
        CSM | RELEASE => &[2, 4],
        PING | PONG | ABORT => &[2],
        _ => return Err(SignalError::NotASignal { code }),
    };
    if let Some(&(option, _)) = options
        .iter()
        .find(|(n, _)| n % 2 == 1 && !known.contains(n))
    {
        return Err(SignalError::UnknownCritical { code, option });
    }
    let values = |number: u16| options.iter().filter(move |(n, _)| *n == number);
    let first = |number: u16| values(number).map(|(_, v)| *v).next();
    let uint = |number: u16, max: usize| -> Result<Option<u32>, SignalError> {
        first(number)
            .map(|v| {
                if v.len() > max {
                    return Err(SignalError::BadValue {
                        code,
                        option: number,
                        problem: "too long for its uint",
                    });
                }
                Ok(v.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
            })
            .transpose()
    };
    Ok(match code {
        CSM => Signal::Csm {
            max_message_size: uint(2, 4)?,
            block_wise: first(4).is_some(),
        },
        PING => Signal::Ping {
            custody: first(2).is_some(),
        },
        PONG => Signal::Pong {
            custody: first(2).is_some(),
        },
        RELEASE => Signal::Release {
            alternative_addresses: values(2)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .collect(),
            hold_off: uint(4, 3)?,
        },
        _ => Signal::Abort {
            bad_csm_option: uint(2, 2)?.map(|n| n as u16),
            diagnostic: String::from_utf8_lossy(payload).into_owned(),
        },
    })
}

type OwnedOptions = Vec<(u16, Vec<u8>)>;

/// Frames a signal with `token` (usually empty; a Pong echoes its Ping's).
pub fn encode(signal: &Signal, token: &[u8]) -> Vec<u8> {
    let uint = |v: u32| {
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        bytes[skip..].to_vec()
    };
    let flag = |on: bool| on.then_some(Vec::new());
    let (code, options, payload): (u8, OwnedOptions, &[u8]) = match signal {
        Signal::Csm {
            max_message_size,
            block_wise,
        } => {
            let mut options = OwnedOptions::new();
            options.extend(max_message_size.map(|v| (2, uint(v))));
            options.extend(flag(*block_wise).map(|v| (4, v)));
            (CSM, options, &[])
        }
        Signal::Ping { custody } => (
            PING,
            flag(*custody).map(|v| (2, v)).into_iter().collect(),
            &[],
        ),
        Signal::Pong { custody } => (
            PONG,
            flag(*custody).map(|v| (2, v)).into_iter().collect(),
            &[],
        ),
        Signal::Release {
            alternative_addresses,
            hold_off,
        } => {
            let mut options: OwnedOptions = alternative_addresses
                .iter()
                .map(|a| (2, a.as_bytes().to_vec()))
                .collect();
            options.extend(hold_off.map(|v| (4, uint(v))));
            (RELEASE, options, &[])
        }
        Signal::Abort {
            bad_csm_option,
            diagnostic,
        } => (
            ABORT,
            bad_csm_option
                .map(|n| (2, uint(u32::from(n))))
                .into_iter()
                .collect(),
            diagnostic.as_bytes(),
        ),
    };
    let borrowed: Vec<(u16, &[u8])> = options.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    frame::encode(code, token, &frame::encode_options(&borrowed, payload))
}
