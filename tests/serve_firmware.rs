//! `serve --firmware FILE` hands the file out over CoAP Block2 at `/fw/<file name>`, in the
//! block size the client asks, with an `ETag` and Size2; bad campaign flags are refused.

#[path = "support/serve.rs"]
mod serve;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use serve::Serve;

/// A file of `len` bytes under the temp dir, removed when dropped.
struct TempImage(std::path::PathBuf);

impl TempImage {
    fn new(name: &str, len: usize) -> TempImage {
        let dir = std::env::temp_dir().join(format!("swarm-fw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, bytes).unwrap();
        TempImage(path)
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir(self.0.parent().unwrap());
    }
}

fn serve(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"));
    command.args(["serve", "--bind", "127.0.0.1:0", "--status-every", "1s"]);
    command.args(args);
    command
}

/// GETs block `num` of `size` bytes.
fn get_block(socket: &UdpSocket, name: &str, num: u32, szx: u8) -> Packet {
    let mut request = Packet::new();
    request.header.set_type(MessageType::Confirmable);
    request.header.code = MessageClass::Request(RequestType::Get);
    request.header.message_id = u16::try_from(num).unwrap() + 1;
    request.set_token(vec![0xF0, num as u8]);
    request.add_option(CoapOption::UriPath, b"fw".to_vec());
    request.add_option(CoapOption::UriPath, name.as_bytes().to_vec());
    let value = num << 4 | u32::from(szx);
    let bytes: Vec<u8> = value
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    request.add_option(CoapOption::Block2, bytes);
    socket.send(&request.to_bytes().unwrap()).unwrap();
    let mut buf = [0; 2048];
    let n = socket
        .recv(&mut buf)
        .expect("an answer within the read timeout");
    Packet::from_bytes(&buf[..n]).unwrap()
}

#[test]
fn the_image_downloads_block_by_block_as_the_client_asks() {
    let image = TempImage::new("fw-2.0.bin", 1000);
    let expected = std::fs::read(&image.0).unwrap();
    let server = Serve::start(serve(&["--firmware", image.0.to_str().unwrap()]));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(&server.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut body = Vec::new();
    let mut etags = Vec::new();
    for num in 0.. {
        // szx 2: 64-byte blocks.
        let answer = get_block(&socket, "fw-2.0.bin", num, 2);
        assert_eq!(
            answer.header.code,
            MessageClass::Response(ResponseType::Content)
        );
        assert_eq!(answer.get_token(), [0xF0, num as u8]);
        let size2 = answer.get_first_option(CoapOption::Size2).is_some();
        assert_eq!(size2, num == 0, "Size2 on the first block only");
        etags.push(answer.get_first_option(CoapOption::ETag).unwrap().clone());
        body.extend_from_slice(&answer.payload);
        let block2 = answer.get_first_option(CoapOption::Block2).unwrap();
        let value = block2.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b));
        assert_eq!(value & 7, 2, "the size asked for");
        if value & 8 == 0 {
            break;
        }
        assert!(num < 100, "bounded");
    }
    assert_eq!(body, expected);
    assert!(etags.windows(2).all(|w| w[0] == w[1]));
    let missing = get_block(&socket, "other.bin", 0, 2);
    assert_eq!(
        missing.header.code,
        MessageClass::Response(ResponseType::NotFound)
    );
    server.stop();
}

#[test]
fn campaign_flags_start_a_server_and_bad_ones_are_refused() {
    let image = TempImage::new("fw-3.bin", 100);
    let path = image.0.to_str().unwrap();
    let server = Serve::start(serve(&[
        "--firmware",
        path,
        "--campaign-version",
        "3.0",
        "--campaign-max-concurrent",
        "7",
    ]));
    server.stop();
    let output = serve(&[
        "--firmware",
        path,
        "--campaign-version",
        "3",
        "--campaign-share",
        "2",
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--campaign-share"), "{stderr}");
    assert!(stderr.contains("did you mean 0.02"), "{stderr}");
    let bad_name = TempImage::new("fw 3.bin", 10);
    let output = serve(&["--firmware", bad_name.0.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("letters, digits"), "{stderr}");
}
