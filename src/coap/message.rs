//! Building requests and responses and reading the options LWM2M uses from coap-lite packets.

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};

use super::Token;

/// An option value that does not have the form its number requires.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error("option {0} is not UTF-8")]
    NotUtf8(u16),
    #[error("option {number} is {len} bytes long, more than a uint of {max} bytes")]
    UintTooLong { number: u16, len: usize, max: usize },
}

/// A request with one Uri-Path option per segment and one Uri-Query per `key=value` item.
/// The type and message ID are the endpoint's to set.
pub fn request(
    method: RequestType,
    path: &[&str],
    query: &[&str],
    content_format: Option<u16>,
    payload: Vec<u8>,
    token: Token,
) -> Packet {
    let mut packet = Packet::new();
    packet.header.code = MessageClass::Request(method);
    packet.set_token(token.as_slice().to_vec());
    for segment in path {
        packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    for item in query {
        packet.add_option(CoapOption::UriQuery, item.as_bytes().to_vec());
    }
    if let Some(format) = content_format {
        set_content_format(&mut packet, format);
    }
    packet.payload = payload;
    packet
}

/// A response with this code and no options; [`super::Endpoint::respond`] sets type, ID and token.
pub fn response(code: ResponseType) -> Packet {
    let mut packet = Packet::new();
    packet.header.code = MessageClass::Response(code);
    packet
}

/// The values of a string option, in order (empty when absent).
pub fn strings(packet: &Packet, option: CoapOption) -> Result<Vec<&str>, OptionError> {
    let Some(values) = packet.get_option(option) else {
        return Ok(Vec::new());
    };
    values
        .iter()
        .map(|v| std::str::from_utf8(v).map_err(|_| OptionError::NotUtf8(option.into())))
        .collect()
}

/// Uri-Path segments: `["3", "0", "13"]` for `/3/0/13`; empty for `/`.
pub fn uri_path(packet: &Packet) -> Result<Vec<&str>, OptionError> {
    strings(packet, CoapOption::UriPath)
}

/// Uri-Query items as they are on the wire: `["ep=dev1", "lt=300", "Q"]`.
pub fn uri_query(packet: &Packet) -> Result<Vec<&str>, OptionError> {
    strings(packet, CoapOption::UriQuery)
}

/// Uri-Query items split at the first `=`: `("pmin", Some("10"))`, `("Q", None)`.
pub fn query_pairs(packet: &Packet) -> Result<Vec<(&str, Option<&str>)>, OptionError> {
    let items = uri_query(packet)?;
    Ok(items
        .into_iter()
        .map(|item| match item.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (item, None),
        })
        .collect())
}

/// Location-Path segments (Register reply `["rd", "<id>"]`).
pub fn location_path(packet: &Packet) -> Result<Vec<&str>, OptionError> {
    strings(packet, CoapOption::LocationPath)
}

/// Replaces the Location-Path with these segments (Create reply `["<obj>", "<inst>"]`).
pub fn set_location_path(packet: &mut Packet, segments: &[&str]) {
    packet.clear_option(CoapOption::LocationPath);
    for segment in segments {
        packet.add_option(CoapOption::LocationPath, segment.as_bytes().to_vec());
    }
}

/// The first value of a uint option of at most `max_bytes` bytes; `None` when absent.
pub fn uint(
    packet: &Packet,
    option: CoapOption,
    max_bytes: usize,
) -> Result<Option<u32>, OptionError> {
    let Some(value) = packet.get_first_option(option) else {
        return Ok(None);
    };
    let max = max_bytes.min(4);
    if value.len() > max {
        return Err(OptionError::UintTooLong {
            number: option.into(),
            len: value.len(),
            max,
        });
    }
    Ok(Some(
        value.iter().fold(0, |acc, &b| (acc << 8) | u32::from(b)),
    ))
}

/// A uint option value: big endian without leading zeros (0 is empty).
pub fn encode_uint(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    bytes[skip..].to_vec()
}

/// Replaces a uint option with a single value.
pub fn set_uint(packet: &mut Packet, option: CoapOption, value: u32) {
    packet.clear_option(option);
    packet.add_option(option, encode_uint(value));
}

/// Content-Format as its number (11542 TLV, 110 `SenML` JSON, ...); coap-lite's enum lacks some.
pub fn content_format(packet: &Packet) -> Result<Option<u16>, OptionError> {
    Ok(uint(packet, CoapOption::ContentFormat, 2)?.map(|v| v as u16))
}

pub fn set_content_format(packet: &mut Packet, format: u16) {
    set_uint(packet, CoapOption::ContentFormat, u32::from(format));
}

/// Accept as a content-format number.
pub fn accept(packet: &Packet) -> Result<Option<u16>, OptionError> {
    Ok(uint(packet, CoapOption::Accept, 2)?.map(|v| v as u16))
}

pub fn set_accept(packet: &mut Packet, format: u16) {
    set_uint(packet, CoapOption::Accept, u32::from(format));
}

/// Observe: 0 register, 1 deregister in requests; the sequence number in notifications.
pub fn observe(packet: &Packet) -> Result<Option<u32>, OptionError> {
    uint(packet, CoapOption::Observe, 3)
}

/// Sets Observe, keeping the low 24 bits.
pub fn set_observe(packet: &mut Packet, value: u32) {
    set_uint(packet, CoapOption::Observe, value & 0x00FF_FFFF);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_through_bytes() {
        let token = Token::from_slice(&[1, 2]).unwrap();
        let packet = request(
            RequestType::Post,
            &["rd"],
            &["ep=dev-1", "lt=300", "Q"],
            Some(40),
            b"</3/0>".to_vec(),
            token,
        );
        let parsed = Packet::from_bytes(&packet.to_bytes().unwrap()).unwrap();
        assert_eq!(parsed.header.code, MessageClass::Request(RequestType::Post));
        assert_eq!(parsed.get_token(), [1, 2]);
        assert_eq!(uri_path(&parsed).unwrap(), ["rd"]);
        assert_eq!(uri_query(&parsed).unwrap(), ["ep=dev-1", "lt=300", "Q"]);
        assert_eq!(
            query_pairs(&parsed).unwrap(),
            [("ep", Some("dev-1")), ("lt", Some("300")), ("Q", None)]
        );
        assert_eq!(content_format(&parsed).unwrap(), Some(40));
        assert_eq!(accept(&parsed).unwrap(), None);
        assert_eq!(parsed.payload, b"</3/0>");
    }

    #[test]
    fn uint_options() {
        let mut packet = response(ResponseType::Content);
        set_content_format(&mut packet, 11542);
        set_accept(&mut packet, 0);
        set_observe(&mut packet, 0x0100_0005);
        let parsed = Packet::from_bytes(&packet.to_bytes().unwrap()).unwrap();
        assert_eq!(content_format(&parsed).unwrap(), Some(11542));
        assert_eq!(accept(&parsed).unwrap(), Some(0));
        assert_eq!(observe(&parsed).unwrap(), Some(5));
        assert_eq!(encode_uint(0), Vec::<u8>::new());
        assert_eq!(encode_uint(256), [1, 0]);
        packet.add_option(CoapOption::Observe, vec![1, 2, 3, 4]);
        packet.clear_option(CoapOption::Observe);
        packet.add_option(CoapOption::Observe, vec![1, 2, 3, 4]);
        assert!(matches!(
            observe(&packet),
            Err(OptionError::UintTooLong { number: 6, .. })
        ));
    }

    #[test]
    fn paths_and_bad_utf8() {
        let mut packet = response(ResponseType::Created);
        set_location_path(&mut packet, &["rd", "abc"]);
        assert_eq!(location_path(&packet).unwrap(), ["rd", "abc"]);
        assert_eq!(uri_path(&packet).unwrap(), Vec::<&str>::new());
        packet.add_option(CoapOption::UriPath, vec![0xff]);
        assert_eq!(uri_path(&packet), Err(OptionError::NotUtf8(11)));
    }
}
