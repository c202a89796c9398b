//! Certificates made for a test: a CA and a server certificate it signed (for `localhost` and
//! 127.0.0.1), written as PEM files in a directory of the test's own, removed on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate (the clients' trust anchor).
    pub ca: PathBuf,
    /// The server's certificate and then its private key, in one file (libcoap's `-c`).
    pub server_cert_and_key: PathBuf,
}

impl Pki {
    /// A fresh CA named after `name`, and a server certificate signed by it.
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("lwm2m-swarm-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir for certificates");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("lwm2m-swarm test CA {name}"));
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let write = |file: &str, text: String| {
            let path = dir.join(file);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        Pki {
            ca: write("ca.pem", ca_cert.pem()),
            server_cert_and_key: write(
                "server.pem",
                format!("{}{}", cert.pem(), key.serialize_pem()),
            ),
            dir,
        }
    }

    pub fn ca(&self) -> &Path {
        &self.ca
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
