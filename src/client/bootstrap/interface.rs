//! The Bootstrap interface as the client answers it: the bootstrap server's Write, Delete,
//! Discover and Read, and the Finish, which looks for a usable LWM2M server account.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use coap_lite::{MessageClass, Packet, RequestType, ResponseType};

use super::{Account, BootstrapFailure, BootstrapOutcome, MODE_NO_SEC, MODE_PSK, Phase};
use crate::client::operations::{Answer, operation_kind, request_target};
use crate::client::{Client, Deferred, LwM2mVersion, OperationKind};
use crate::clock::Instant;
use crate::coap::message;
use crate::content::ContentFormat;
use crate::content::link::{Link, format_links};
use crate::model::{Path, Value};
use crate::security::Psk;

impl Client {
    /// A request from the bootstrap server (the client is `Bootstrapping`).
    pub(in crate::client) fn bootstrap_request(
        &mut self,
        now: Instant,
        request: &Packet,
    ) -> (OperationKind, Path, Answer) {
        if message::uri_path(request).is_ok_and(|segments| segments == ["bs"]) {
            return match request.header.code {
                MessageClass::Request(RequestType::Post) => {
                    (OperationKind::BootstrapFinish, Path::ROOT, self.finish(now))
                }
                _ => (OperationKind::Other, Path::ROOT, refuse()),
            };
        }
        let (path, method) = match request_target(request) {
            Ok(target) => target,
            Err(refused) => return refused,
        };
        let kind = operation_kind(method, &path, request);
        let answer = match kind {
            OperationKind::Discover => self.bootstrap_discover(now, &path),
            OperationKind::Read => self.bootstrap_read(now, &path, request),
            OperationKind::Write if method == RequestType::Put => {
                self.bootstrap_write(&path, request)
            }
            OperationKind::Delete => self.bootstrap_delete(now, &path),
            // Execute, Create, Observe, Write-Attributes, partial writes: not bootstrap operations.
            _ => refuse(),
        };
        (kind, path, answer)
    }

    /// Bootstrap-Write: any resource, instances created as needed.
    fn bootstrap_write(&mut self, path: &Path, request: &Packet) -> Answer {
        if path.is_root() || path.len() > 3 {
            return refuse();
        }
        let records = match self.decode_payload(path, request) {
            Ok(records) => records,
            Err(answer) => return answer,
        };
        match self.device.bootstrap_write(path, &records) {
            Ok(()) => Answer::code(ResponseType::Changed),
            Err(error) => error.into(),
        }
    }

    /// Bootstrap-Delete of `/`, `/o` or `/o/i`: everything there but the bootstrap account
    /// and the Device instance, which are kept (named directly: 4.00).
    fn bootstrap_delete(&mut self, now: Instant, path: &Path) -> Answer {
        let objects: Vec<u16> = match path.object_id() {
            None => self
                .device
                .template()
                .objects()
                .iter()
                .map(|o| o.def.id)
                .collect(),
            Some(object) if self.device.object_def(object).is_some() => vec![object],
            Some(_) => return Answer::code(ResponseType::NotFound),
        };
        if path.len() > 2 {
            return Answer::code(ResponseType::BadRequest);
        }
        if let Some(instance) = path.instance_id() {
            let object = objects[0];
            if !self.device.instances(object).contains(&instance) {
                return Answer::code(ResponseType::NotFound);
            }
            if self.is_protected(now, object, instance) {
                return Answer::code(ResponseType::BadRequest);
            }
            self.device.remove_instance(object, instance);
            return Answer::code(ResponseType::Deleted);
        }
        for object in objects {
            for instance in self.device.instances(object) {
                if !self.is_protected(now, object, instance) {
                    self.device.remove_instance(object, instance);
                }
            }
        }
        Answer::code(ResponseType::Deleted)
    }

    fn is_protected(&mut self, now: Instant, object: u16, instance: u16) -> bool {
        (object == 3 && instance == 0) || (object == 0 && self.is_bootstrap_account(now, instance))
    }

    /// The bootstrap account: the Security instance whose Bootstrap-Server resource (`/0/x/1`)
    /// is true, wherever it is numbered.
    pub(super) fn bootstrap_account(&mut self, now: Instant) -> Option<u16> {
        self.device
            .instances(0)
            .into_iter()
            .find(|i| self.is_bootstrap_account(now, *i))
    }

    pub(super) fn is_bootstrap_account(&mut self, now: Instant, instance: u16) -> bool {
        matches!(
            self.value_at(now, Path::resource(0, instance, 1)),
            Some(Value::Boolean(true))
        )
    }

    pub(super) fn value_at(&mut self, now: Instant, path: Path) -> Option<Value> {
        self.device.value(&path, now)
    }

    pub(super) fn integer_at(&mut self, now: Instant, path: Path) -> Option<i64> {
        match self.value_at(now, path)? {
            Value::Integer(v) => Some(v),
            Value::UnsignedInteger(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Bootstrap-Discover of `/` or `/o`: the enabler version, then objects and instances, the
    /// Security and Server instances with their short server id and the Security ones with
    /// their server URI (the bootstrap account shows neither).
    fn bootstrap_discover(&mut self, now: Instant, path: &Path) -> Answer {
        if path.len() > 1 {
            return refuse();
        }
        if let Some(object) = path.object_id()
            && self.device.object_def(object).is_none()
        {
            return Answer::code(ResponseType::NotFound);
        }
        let found: Vec<(Path, Option<String>)> = self
            .device
            .bootstrap_paths()
            .into_iter()
            .filter(|(p, _)| path.is_root() || p.object_id() == path.object_id())
            .map(|(p, version)| (p, version.map(str::to_string)))
            .collect();
        let mut links = vec![Link {
            target: "/".to_string(),
            attributes: vec![(
                "lwm2m".to_string(),
                Some(self.config.version.as_str().to_string()),
            )],
        }];
        for (target, version) in found {
            let mut attributes = Vec::new();
            if let Some(version) = version {
                attributes.push(("ver".to_string(), Some(version)));
            }
            if let (Some(object), Some(instance)) = (target.object_id(), target.instance_id()) {
                self.account_attributes(now, object, instance, &mut attributes);
            }
            links.push(Link {
                target: target.to_string(),
                attributes,
            });
        }
        Answer::content(ContentFormat::LinkFormat, format_links(&links).into_bytes())
    }

    fn account_attributes(
        &mut self,
        now: Instant,
        object: u16,
        instance: u16,
        out: &mut Vec<(String, Option<String>)>,
    ) {
        let ssid_resource = match object {
            0 if !self.is_bootstrap_account(now, instance) => 10,
            1 => 0,
            _ => return,
        };
        if let Some(ssid) = self.integer_at(now, Path::resource(object, instance, ssid_resource)) {
            out.push(("ssid".to_string(), Some(ssid.to_string())));
        }
        if object == 0
            && let Some(Value::String(uri)) = self.value_at(now, Path::resource(0, instance, 0))
        {
            out.push(("uri".to_string(), Some(uri)));
        }
    }

    /// Bootstrap-Read (1.1 on): the Server and Access Control objects only.
    fn bootstrap_read(&mut self, now: Instant, path: &Path, request: &Packet) -> Answer {
        if self.config.version == LwM2mVersion::V1_0 || !matches!(path.object_id(), Some(1 | 2)) {
            return refuse();
        }
        self.read(now, path, request)
    }

    /// Bootstrap-Finish: 2.04 when a usable LWM2M server account is configured (the switch
    /// to it follows the answer), 4.06 when not (the attempt fails and is retried).
    fn finish(&mut self, now: Instant) -> Answer {
        let attempt = self.bootstrap.as_ref().map(|b| (b.phase, b.started));
        let Some((_, started)) = attempt.filter(|(p, _)| *p != Phase::Idle) else {
            // Not waiting for one (a late Finish after the attempt failed).
            return Answer::code(ResponseType::NotAcceptable);
        };
        let Some(account) = self.configured_account(now) else {
            self.bootstrap_failed(now, BootstrapFailure::Unusable);
            return Answer::code(ResponseType::NotAcceptable);
        };
        if let Some(b) = self.bootstrap.as_deref_mut() {
            b.phase = Phase::Idle;
            b.failures = 0;
            b.pending = Some(Box::new(account));
        }
        self.record_bootstrap(started, now, BootstrapOutcome::Finished);
        self.deferred = Some((Deferred::Bootstrapped, now));
        Answer::code(ResponseType::Changed)
    }

    /// The first Security instance that is no bootstrap account, has a Server instance with
    /// its short server id, a URI this client can reach (an IP address or `localhost`) and a
    /// mode it speaks (PSK over `coaps://`, `NoSec` over `coap://`).
    fn configured_account(&mut self, now: Instant) -> Option<Account> {
        let servers: Vec<(u16, i64)> = self
            .device
            .instances(1)
            .into_iter()
            .filter_map(|i| Some((i, self.integer_at(now, Path::resource(1, i, 0))?)))
            .collect();
        for instance in self.device.instances(0) {
            if self.is_bootstrap_account(now, instance) {
                continue;
            }
            let Some(ssid) = self.integer_at(now, Path::resource(0, instance, 10)) else {
                continue;
            };
            let Some(&(server_instance, _)) = servers.iter().find(|(_, s)| *s == ssid) else {
                continue;
            };
            if let Some(account) = self.account(now, instance, server_instance) {
                return Some(account);
            }
        }
        None
    }

    fn account(&mut self, now: Instant, security: u16, server: u16) -> Option<Account> {
        let Some(Value::String(uri)) = self.value_at(now, Path::resource(0, security, 0)) else {
            return None;
        };
        let uri = crate::coap::uri::parse_uri(&uri).ok()?;
        let ip = match uri.host.as_str() {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            host => host.parse().ok()?,
        };
        let opaque = |value: Option<Value>| match value {
            Some(Value::Opaque(bytes)) => Some(bytes),
            Some(Value::String(text)) => Some(text.into_bytes()),
            _ => None,
        };
        let psk = match (
            uri.scheme,
            self.integer_at(now, Path::resource(0, security, 2))?,
        ) {
            (crate::coap::uri::Scheme::Coap, MODE_NO_SEC) => None,
            (crate::coap::uri::Scheme::Coaps, MODE_PSK) => {
                let identity = opaque(self.value_at(now, Path::resource(0, security, 3)))?;
                let key = opaque(self.value_at(now, Path::resource(0, security, 5)))?;
                if identity.is_empty() || key.is_empty() {
                    return None;
                }
                Some(Psk { identity, key })
            }
            // Certificates, raw public keys, EST, or a mode that does not fit the scheme.
            _ => return None,
        };
        let lifetime = self
            .integer_at(now, Path::resource(1, server, 1))
            .filter(|secs| *secs > 0)
            .map(|secs| Duration::from_secs(secs.unsigned_abs()));
        let binding = match self.value_at(now, Path::resource(1, server, 7)) {
            Some(Value::String(b)) if !b.is_empty() => Some(b.into_boxed_str()),
            _ => None,
        };
        Some(Account {
            server: SocketAddr::new(ip, uri.port),
            psk,
            lifetime,
            binding,
        })
    }
}

/// An operation the Bootstrap interface does not have, or a target it does not allow.
fn refuse() -> Answer {
    Answer::code(ResponseType::MethodNotAllowed)
}
