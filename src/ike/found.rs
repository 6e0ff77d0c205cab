//! One pass over a message's payloads: what each exchange handler looks for, by kind. The first
//! payload of each kind counts (duplicates are ignored); CERT payloads are all kept, in order.

use crate::wire::consts::CERT_X509_SIGNATURE;
use crate::wire::{ConfigPayload, Id, Notify, Payload, Proposal, TrafficSelector};

/// Nonce length bounds (RFC 7296 2.10: at least 16 octets, at most 256).
pub(super) fn nonce_ok(n: &[u8]) -> bool {
    (16..=256).contains(&n.len())
}

/// The first notify of type `ty` in a payload list.
pub(super) fn notify(payloads: &[Payload], ty: u16) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == ty => Some(n),
        _ => None,
    })
}

/// The first error notify (type < 16384) in a message, if any.
pub(super) fn error_notify(payloads: &[Payload]) -> Option<u16> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type < 16384 => Some(n.notify_type),
        _ => None,
    })
}

/// An error notify for log lines: its name and number (`TS_UNACCEPTABLE(38)`), the number
/// alone when unnamed, `none` when there was none.
pub(super) struct NotifyLabel(pub Option<u16>);

impl std::fmt::Display for NotifyLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("none"),
            Some(n) => match crate::wire::consts::notify_name(n) {
                Some(name) => write!(f, "{name}({n})"),
                None => write!(f, "{n}"),
            },
        }
    }
}

#[derive(Default)]
pub(super) struct Found<'a> {
    pub sa: Option<&'a [Proposal]>,
    pub ke: Option<(u16, &'a [u8])>,
    pub nonce: Option<&'a [u8]>,
    pub id_i: Option<&'a Id>,
    pub id_r: Option<&'a Id>,
    /// X.509 certificates, end entity first.
    pub certs: Vec<&'a [u8]>,
    pub certreq: bool,
    pub auth: Option<(u8, &'a [u8])>,
    pub tsi: Option<&'a [TrafficSelector]>,
    pub tsr: Option<&'a [TrafficSelector]>,
    pub cp: Option<&'a ConfigPayload>,
    all: &'a [Payload],
}

impl<'a> Found<'a> {
    pub fn new(payloads: &'a [Payload]) -> Found<'a> {
        let mut f = Found {
            all: payloads,
            ..Found::default()
        };
        for p in payloads {
            match p {
                Payload::Sa(v) => _ = f.sa.get_or_insert(v),
                Payload::Ke { group, data } => _ = f.ke.get_or_insert((*group, data)),
                Payload::Nonce(n) => _ = f.nonce.get_or_insert(n),
                Payload::IdI(id) => _ = f.id_i.get_or_insert(id),
                Payload::IdR(id) => _ = f.id_r.get_or_insert(id),
                Payload::Cert {
                    encoding: CERT_X509_SIGNATURE,
                    data,
                } => f.certs.push(data),
                Payload::CertReq { .. } => f.certreq = true,
                Payload::Auth { method, data } => _ = f.auth.get_or_insert((*method, data)),
                Payload::TsI(v) => _ = f.tsi.get_or_insert(v),
                Payload::TsR(v) => _ = f.tsr.get_or_insert(v),
                Payload::Cp(c) => _ = f.cp.get_or_insert(c),
                _ => {}
            }
        }
        f
    }

    /// The first notify of type `ty`.
    pub fn notify(&self, ty: u16) -> Option<&'a Notify> {
        notify(self.all, ty)
    }

    /// Every notify of type `ty` (NAT_DETECTION_SOURCE_IP may come several times).
    pub fn notifies(&self, ty: u16) -> impl Iterator<Item = &'a Notify> + use<'a> {
        self.all.iter().filter_map(move |p| match p {
            Payload::Notify(n) if n.notify_type == ty => Some(n),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::NotifyLabel;

    #[test]
    fn notify_labels_name_the_number() {
        assert_eq!(NotifyLabel(Some(38)).to_string(), "TS_UNACCEPTABLE(38)");
        assert_eq!(NotifyLabel(Some(9999)).to_string(), "9999");
        assert_eq!(NotifyLabel(None).to_string(), "none");
    }
}
