//! The fleet file's `[tls]`: TLS for `coaps+tcp://` servers, as paths to PEM files (relative to
//! the fleet file). Parsing only; the files are read when the run builds its TLS configuration.

use std::path::{Path as FsPath, PathBuf};

use toml::Spanned;

use super::raw::RawTls;
use super::span::At;
use super::{FleetError, Scheme, ServerUri};
use crate::security::tls::TlsSettings;

/// `[tls]` checked against the server's scheme. `server_err` locates an error on the server URI.
pub(super) fn tls(
    raw: Option<&Spanned<RawTls>>,
    server: Option<&ServerUri>,
    file: &str,
    text: &str,
    server_err: impl FnOnce(&str) -> FleetError,
) -> Result<Option<TlsSettings>, FleetError> {
    let over_tls = server.is_some_and(|s| s.scheme == Scheme::CoapsTcp);
    let Some(raw) = raw else {
        if over_tls {
            return Err(server_err(
                "coaps+tcp:// needs a [tls] table: ca_file = \"ca.pem\" (or, for a test server, \
                 insecure_skip_verify = true)",
            ));
        }
        return Ok(None);
    };
    let at = At {
        file,
        text,
        span: raw.span(),
    };
    let raw = raw.get_ref();
    if !over_tls {
        return Err(at.err(
            "tls",
            "TLS settings need a coaps+tcp:// server: set [server] uri = \
             \"coaps+tcp://HOST:5684\" or give --server coaps+tcp://HOST:PORT",
        ));
    }
    let insecure = raw.insecure_skip_verify.unwrap_or(false);
    match (&raw.ca_file, insecure) {
        (Some(_), true) => {
            return Err(at.err(
                "insecure_skip_verify",
                "either ca_file (verify the server) or insecure_skip_verify = true, not both",
            ));
        }
        (None, false) => {
            return Err(at.err(
                "ca_file",
                "set ca_file to the CA that signed the server's certificate (PEM), or \
                 insecure_skip_verify = true for a test server",
            ));
        }
        _ => {}
    }
    if raw.certificate_file.is_some() != raw.key_file.is_some() {
        let missing = if raw.key_file.is_none() {
            "key_file"
        } else {
            "certificate_file"
        };
        return Err(at.err(
            missing,
            "a client certificate needs certificate_file and key_file, both",
        ));
    }
    let dir = FsPath::new(file).parent().unwrap_or(FsPath::new(""));
    let path = |p: &Option<String>| p.as_ref().map(|p| dir.join(p));
    Ok(Some(TlsSettings {
        ca_file: path(&raw.ca_file),
        insecure_skip_verify: insecure,
        certificate_file: path(&raw.certificate_file),
        key_file: path(&raw.key_file),
        server_name: raw.server_name.clone(),
    }))
}

/// One line for `check`: what is verified and with what.
pub(super) fn describe(settings: &TlsSettings) -> String {
    let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let server = match show(&settings.ca_file) {
        Some(ca) => format!("server certificate verified against {ca}"),
        None => "INSECURE: the server's certificate is not verified (insecure_skip_verify)".into(),
    };
    let name = settings
        .server_name
        .as_ref()
        .map(|n| format!(", as {n:?}"))
        .unwrap_or_default();
    let client = show(&settings.certificate_file).map_or_else(
        || "no client certificate".to_string(),
        |cert| format!("client certificate {cert}"),
    );
    format!("{server}{name}; {client}")
}

#[cfg(test)]
mod tests {
    use crate::client::LwM2mVersion;
    use crate::fleet::{Fleet, Scheme, parse_uri};

    const GROUP: &str = "[[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"t\"\n\
                         [load]\nclients = 2\nrate = 1\nhold = \"0s\"\n";

    fn fleet(head: &str) -> Result<Fleet, String> {
        Fleet::from_toml(&format!("{head}{GROUP}"), "fleets/f.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn tcp_schemes_parse_with_their_default_ports() {
        let cases = [
            ("coap+tcp://h", Scheme::CoapTcp, 5683),
            ("coaps+tcp://h", Scheme::CoapsTcp, 5684),
            ("coaps+tcp://[::1]:6000", Scheme::CoapsTcp, 6000),
        ];
        for (uri, scheme, port) in cases {
            let parsed = parse_uri(uri).unwrap();
            assert_eq!((parsed.scheme, parsed.port), (scheme, port), "{uri}");
            assert!(parsed.scheme.is_tcp());
        }
        assert_eq!(
            parse_uri("coap+tcp://h").unwrap().to_string(),
            "coap+tcp://h:5683"
        );
        assert!(
            parse_uri("coap+udp://h")
                .unwrap_err()
                .contains("coap+tcp://")
        );
    }

    #[test]
    fn tcp_clients_default_to_binding_t_and_refuse_1_0_or_a_binding_without_t() {
        let f = fleet("[server]\nuri = \"coap+tcp://127.0.0.1\"\n").unwrap();
        assert_eq!(f.groups[0].config.binding, "T");
        assert_eq!(f.groups[0].config.version, LwM2mVersion::V1_1);
        assert!(f.tls.is_none());
        let udp = fleet("[server]\nuri = \"coap://127.0.0.1\"\n").unwrap();
        assert_eq!(udp.groups[0].config.binding, "U");
        let old = fleet("[server]\nuri = \"coap+tcp://h\"\n[client]\nlwm2m = \"1.0\"\n");
        let old = old.unwrap_err();
        assert!(
            old.contains("f.toml:4: field `lwm2m`") && old.contains("binding T"),
            "{old}"
        );
        let u = fleet("[server]\nuri = \"coap+tcp://h\"\n[client]\nbinding = \"U\"\n");
        assert!(u.unwrap_err().contains("the binding must have T"));
        assert!(fleet("[server]\nuri = \"coap+tcp://h\"\n[client]\nbinding = \"UT\"\n").is_ok());
        // A population's own setting is named at its line.
        let pop = Fleet::from_toml(
            "[server]\nuri = \"coap+tcp://h\"\n[[population]]\nname = \"p\"\nshare = 1.0\n\
             template = \"t\"\nclient = { lwm2m = \"1.0\" }\n[load]\nclients = 2\nrate = 1\n\
             hold = \"0s\"\n",
            "f.toml",
        );
        let pop = pop.unwrap_err().to_string();
        assert!(pop.contains("f.toml:7: field `lwm2m`"), "{pop}");
    }

    #[test]
    fn tls_table_checks() {
        let ok =
            fleet("[server]\nuri = \"coaps+tcp://h\"\n[tls]\nca_file = \"pki/ca.pem\"\n").unwrap();
        let tls = ok.tls.unwrap();
        assert_eq!(
            tls.ca_file.unwrap(),
            std::path::Path::new("fleets/pki/ca.pem")
        );
        assert!(!tls.insecure_skip_verify);
        let cases = [
            (
                "[server]\nuri = \"coaps+tcp://h\"\n",
                "f.toml:2: field `uri`: coaps+tcp:// needs a [tls]",
            ),
            (
                "[server]\nuri = \"coap+tcp://h\"\n[tls]\ninsecure_skip_verify = true\n",
                "f.toml:3: field `tls`: TLS settings need a coaps+tcp:// server",
            ),
            (
                "[server]\nuri = \"coaps+tcp://h\"\n[tls]\nca_file = \"a\"\ninsecure_skip_verify = true\n",
                "f.toml:5: field `insecure_skip_verify`: either ca_file",
            ),
            (
                "[server]\nuri = \"coaps+tcp://h\"\n[tls]\ninsecure_skip_verify = false\n",
                "field `ca_file`: set ca_file",
            ),
            (
                "[server]\nuri = \"coaps+tcp://h\"\n[tls]\nca_file = \"a\"\ncertificate_file = \"c\"\n",
                "field `key_file`: a client certificate needs",
            ),
            (
                "[server]\nuri = \"coaps+tcp://h\"\n[tls]\nca_file = \"a\"\ncafile = \"b\"\n",
                "unknown field \"cafile\": did you mean \"ca_file\"?",
            ),
            (
                "[server]\nuri = \"coaps+tcp://h\"\n[security]\nmode = \"psk\"\nkey = \"00\"\n\
                 [tls]\ninsecure_skip_verify = true\n",
                "DTLS credentials need a coaps:// server",
            ),
        ];
        for (head, expected) in cases {
            let error = fleet(head).unwrap_err();
            assert!(error.contains(expected), "{error}\n  expected {expected}");
        }
    }
}
