//! Firmware images the server hands out at `/fw/<name>` with CoAP Block2 (RFC 7959): block size
//! as the client asks (16..=1024), an `ETag` of the image, Size2 on the first block. One shared
//! copy of each image: a block is sliced from it per request, nothing is kept per download.

use std::fmt;
use std::sync::Arc;

use coap_lite::{CoapOption, Packet, ResponseType};
use sha2::{Digest, Sha256};

use crate::coap::block;
use crate::coap::message;

/// The first path segment of a served image's URI.
pub const FIRMWARE_PATH: &str = "fw";
const OCTET_STREAM: u16 = 42;
/// The block size when the client asks for none.
const DEFAULT_BLOCK: u16 = 1024;

/// A named image, shared by every download of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Firmware {
    name: Box<str>,
    image: Arc<[u8]>,
    etag: [u8; 8],
}

impl Firmware {
    pub fn new(name: &str, image: Arc<[u8]>) -> Firmware {
        let digest = Sha256::digest(&image);
        let mut etag = [0; 8];
        etag.copy_from_slice(&digest[..8]);
        Firmware {
            name: name.into(),
            image,
            etag,
        }
    }

    /// `size` bytes of a repeating pattern seeded by `name`: a stand-in image.
    pub fn generated(name: &str, size: usize) -> Firmware {
        let seed = Sha256::digest(name.as_bytes());
        let image: Arc<[u8]> = (0..size)
            .map(|i| seed[i % seed.len()] ^ (i as u8))
            .collect();
        Firmware::new(name, image)
    }

    /// Whether `name` goes into `/fw/<name>` as it is: letters, digits, `.`, `-`, `_`.
    pub fn is_valid_name(name: &str) -> bool {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn image(&self) -> &[u8] {
        &self.image
    }

    pub fn etag(&self) -> [u8; 8] {
        self.etag
    }
}

impl fmt::Debug for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Firmware({:?}, {} bytes)", self.name, self.image.len())
    }
}

/// The answer to a GET of `/fw/<name>`, and the payload bytes it carries.
pub(super) fn answer(firmware: Option<&Firmware>, request: &Packet) -> (Packet, usize) {
    let Some(firmware) = firmware else {
        return (message::response(ResponseType::NotFound), 0);
    };
    let Ok(requested) = block::block2(request) else {
        return (message::response(ResponseType::BadOption), 0);
    };
    let mut response = message::response(ResponseType::Content);
    match block::apply_block2(&mut response, &firmware.image, requested, DEFAULT_BLOCK) {
        Ok(()) => {
            // The first block always carries Size2 (RFC 7959 4), even for an image that fits.
            if requested.is_none_or(|b| b.num == 0) {
                block::set_size2(
                    &mut response,
                    u32::try_from(firmware.image.len()).unwrap_or(u32::MAX),
                );
            }
            message::set_content_format(&mut response, OCTET_STREAM);
            response.add_option(CoapOption::ETag, firmware.etag.to_vec());
            let len = response.payload.len();
            (response, len)
        }
        Err(_) => (message::response(ResponseType::BadOption), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coap::block::BlockValue;
    use coap_lite::{MessageClass, RequestType};

    fn get(block2: Option<BlockValue>) -> Packet {
        let token = crate::coap::Token::from_slice(&[1]).unwrap();
        let mut p = message::request(RequestType::Get, &["fw", "a"], &[], None, Vec::new(), token);
        if let Some(b) = block2 {
            block::set_block2(&mut p, b);
        }
        p
    }

    #[test]
    fn blocks_follow_the_size_asked_and_reassemble_the_image() {
        let fw = Firmware::generated("a", 1000);
        for size in [16u16, 64, 256, 1024] {
            let mut body = Vec::new();
            let mut num = 0;
            loop {
                let (resp, n) = answer(
                    Some(&fw),
                    &get(Some(BlockValue::new(num, false, size).unwrap())),
                );
                assert_eq!(
                    resp.header.code,
                    MessageClass::Response(ResponseType::Content)
                );
                assert_eq!(n, resp.payload.len());
                assert_eq!(
                    resp.get_first_option(CoapOption::ETag).unwrap(),
                    &fw.etag().to_vec()
                );
                let b = block::block2(&resp).unwrap().unwrap();
                assert_eq!(b.size(), usize::from(size.min(1024)));
                assert_eq!(block::size2(&resp).unwrap().is_some(), num == 0);
                body.extend_from_slice(&resp.payload);
                if !b.more {
                    break;
                }
                num += 1;
            }
            assert_eq!(body, fw.image(), "size {size}");
        }
    }

    #[test]
    fn beyond_the_end_and_unknown_images_are_errors() {
        let fw = Firmware::generated("a", 100);
        let (resp, _) = answer(
            Some(&fw),
            &get(Some(BlockValue::new(7, false, 16).unwrap())),
        );
        assert_eq!(
            resp.header.code,
            MessageClass::Response(ResponseType::BadOption)
        );
        let (resp, _) = answer(None, &get(None));
        assert_eq!(
            resp.header.code,
            MessageClass::Response(ResponseType::NotFound)
        );
        // No Block2 asked: the first block, with Size2.
        let (resp, n) = answer(Some(&fw), &get(None));
        assert_eq!(n, 100);
        assert_eq!(block::size2(&resp).unwrap(), Some(100));
    }

    #[test]
    fn clones_share_the_image() {
        let fw = Firmware::generated("a", 4096);
        let other = fw.clone();
        assert!(std::ptr::eq(fw.image().as_ptr(), other.image().as_ptr()));
    }
}
