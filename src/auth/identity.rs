//! IKEv2 identities and how they are written in configuration files.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::der::{self, Reader};
use crate::wire::consts::{
    ID_DER_ASN1_DN, ID_FQDN, ID_IPV4_ADDR, ID_IPV6_ADDR, ID_KEY_ID, ID_RFC822_ADDR,
};

/// An identity as carried in IDi/IDr.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_DER_ASN1_DN: DER-encoded Name.
    Dn(Vec<u8>),
    /// ID_FQDN.
    Fqdn(String),
    /// ID_RFC822_ADDR.
    Email(String),
    /// ID_IPV4_ADDR.
    Ipv4(Ipv4Addr),
    /// ID_IPV6_ADDR.
    Ipv6(Ipv6Addr),
    /// ID_KEY_ID: opaque bytes.
    KeyId(Vec<u8>),
}

fn id_err(msg: impl Into<String>) -> super::Error {
    super::Error::Identity(msg.into())
}

impl Identity {
    /// From an ID payload body (type and data). Rejects malformed values (bad DER, non-ASCII
    /// FQDN, wrong address length).
    pub fn from_wire(id_type: u8, data: &[u8]) -> Result<Identity, super::Error> {
        if data.is_empty() {
            return Err(id_err("empty identification data"));
        }
        match id_type {
            ID_IPV4_ADDR => <[u8; 4]>::try_from(data)
                .map(|a| Identity::Ipv4(Ipv4Addr::from(a)))
                .map_err(|_| id_err(format!("ID_IPV4_ADDR of {} bytes", data.len()))),
            ID_IPV6_ADDR => <[u8; 16]>::try_from(data)
                .map(|a| Identity::Ipv6(Ipv6Addr::from(a)))
                .map_err(|_| id_err(format!("ID_IPV6_ADDR of {} bytes", data.len()))),
            ID_FQDN => {
                // Host names are plain ASCII without spaces or control characters.
                if data.iter().all(|b| b.is_ascii_graphic()) {
                    Ok(Identity::Fqdn(String::from_utf8_lossy(data).into_owned()))
                } else {
                    Err(id_err("ID_FQDN is not printable ASCII"))
                }
            }
            ID_RFC822_ADDR => {
                if data.iter().all(|&b| (0x20..0x7f).contains(&b)) {
                    Ok(Identity::Email(String::from_utf8_lossy(data).into_owned()))
                } else {
                    Err(id_err("ID_RFC822_ADDR is not printable ASCII"))
                }
            }
            ID_DER_ASN1_DN => {
                if parse_dn(data).is_some() {
                    Ok(Identity::Dn(data.to_vec()))
                } else {
                    Err(id_err("ID_DER_ASN1_DN is not a DER-encoded Name"))
                }
            }
            ID_KEY_ID => Ok(Identity::KeyId(data.to_vec())),
            other => Err(id_err(format!("unsupported ID type {other}"))),
        }
    }

    /// (ID type, data) for an ID payload.
    pub fn to_wire(&self) -> (u8, Vec<u8>) {
        match self {
            Identity::Dn(d) => (ID_DER_ASN1_DN, d.clone()),
            Identity::Fqdn(s) => (ID_FQDN, s.as_bytes().to_vec()),
            Identity::Email(s) => (ID_RFC822_ADDR, s.as_bytes().to_vec()),
            Identity::Ipv4(a) => (ID_IPV4_ADDR, a.octets().to_vec()),
            Identity::Ipv6(a) => (ID_IPV6_ADDR, a.octets().to_vec()),
            Identity::KeyId(k) => (ID_KEY_ID, k.clone()),
        }
    }

    /// Parses the configuration syntax: `dn:C=CH, O=Example, CN=mn1` (RFC 4514-like, RDNs
    /// separated by `,` or `/`, attribute names C, ST, L, O, OU, CN, E/emailAddress, DC, SN,
    /// serialNumber), `fqdn:ha.example.net`, `email:alice@example.net`, `ipv6:2001:db8::1`,
    /// `ipv4:192.0.2.1`, `keyid:0a1b2c` (hex). The error says what to write instead.
    ///
    /// Also accepted: `+` between attributes of a multi-valued RDN, a dotted OID as attribute
    /// name, `#hex` (a whole DER value, RFC 4514) as attribute value, and `\` to escape `,` `/`
    /// `+` `\` or a leading/trailing space in a value (Display writes these forms, so the two
    /// round trip).
    pub fn parse_config(s: &str) -> Result<Identity, super::Error> {
        // A DN may end in an escaped space: its text trims itself.
        let raw = s.trim_start();
        let s = s.trim();
        let Some((kind, raw_value)) = raw.split_once(':') else {
            return Err(id_err(missing_prefix_hint(s)));
        };
        let value = raw_value.trim();
        match kind.to_ascii_lowercase().as_str() {
            "dn" => dn_from_config(raw_value).map(Identity::Dn),
            "fqdn" => {
                if !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic()) {
                    Ok(Identity::Fqdn(value.to_string()))
                } else {
                    Err(id_err(format!(
                        "`{s}`: an FQDN is non-empty ASCII without spaces, e.g. fqdn:ha.example.net"
                    )))
                }
            }
            "email" => {
                if !value.is_empty() && value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    Ok(Identity::Email(value.to_string()))
                } else {
                    Err(id_err(format!(
                        "`{s}`: an email identity is non-empty ASCII, e.g. email:alice@example.net"
                    )))
                }
            }
            "ipv4" => value
                .parse()
                .map(Identity::Ipv4)
                .map_err(|_| id_err(format!("`{s}`: not an IPv4 address, e.g. ipv4:192.0.2.1"))),
            "ipv6" => value
                .parse()
                .map(Identity::Ipv6)
                .map_err(|_| id_err(format!("`{s}`: not an IPv6 address, e.g. ipv6:2001:db8::1"))),
            "keyid" => match hex_decode(value) {
                Some(k) if !k.is_empty() => Ok(Identity::KeyId(k)),
                _ => Err(id_err(format!(
                    "`{s}`: a key ID is an even number of hex digits, e.g. keyid:0a1b2c"
                ))),
            },
            _ => Err(id_err(missing_prefix_hint(s))),
        }
    }
}

/// Error text for an identity without a known `type:` prefix, guessing what was meant.
fn missing_prefix_hint(s: &str) -> String {
    let suggestion = if s.parse::<Ipv4Addr>().is_ok() {
        format!("ipv4:{s}")
    } else if s.parse::<Ipv6Addr>().is_ok() {
        format!("ipv6:{s}")
    } else if s.contains('=') {
        format!("dn:{s}")
    } else if s.contains('@') {
        format!("email:{s}")
    } else {
        format!("fqdn:{s}")
    };
    format!(
        "`{s}` needs a type prefix (dn:, fqdn:, email:, ipv4:, ipv6:, keyid:); did you mean `{suggestion}`?"
    )
}

/// Readable form, the same syntax `parse_config` accepts (DNs as `dn:C=CH, O=..., CN=...`).
impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Dn(d) => write!(f, "dn:{}", dn_to_string(d)),
            Identity::Fqdn(s) => write!(f, "fqdn:{s}"),
            Identity::Email(s) => write!(f, "email:{s}"),
            Identity::Ipv4(a) => write!(f, "ipv4:{a}"),
            Identity::Ipv6(a) => write!(f, "ipv6:{a}"),
            Identity::KeyId(k) => write!(f, "keyid:{}", hex_encode(k)),
        }
    }
}

pub(crate) fn hex_encode(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| {
            let hi = (p.first()?.to_ascii_lowercase() as char).to_digit(16)?;
            let lo = (p.get(1)?.to_ascii_lowercase() as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

// ---- Distinguished names -------------------------------------------------------------------

/// Attribute names we read and write: (name, OID content bytes, string tag used when encoding).
/// The tags are the ones OpenSSL uses, so that a configured DN is byte-equal to the subject of a
/// certificate OpenSSL made (countryName and serialNumber are PrintableString, emailAddress and
/// domainComponent IA5String, the rest UTF8String).
const ATTRS: &[(&str, &[u8], u8)] = &[
    ("C", &[0x55, 0x04, 0x06], der::TAG_PRINTABLE_STRING),
    ("ST", &[0x55, 0x04, 0x08], der::TAG_UTF8_STRING),
    ("L", &[0x55, 0x04, 0x07], der::TAG_UTF8_STRING),
    ("O", &[0x55, 0x04, 0x0a], der::TAG_UTF8_STRING),
    ("OU", &[0x55, 0x04, 0x0b], der::TAG_UTF8_STRING),
    ("CN", &[0x55, 0x04, 0x03], der::TAG_UTF8_STRING),
    (
        "E",
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        der::TAG_IA5_STRING,
    ),
    (
        "DC",
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        der::TAG_IA5_STRING,
    ),
    ("SN", &[0x55, 0x04, 0x04], der::TAG_UTF8_STRING),
    (
        "serialNumber",
        &[0x55, 0x04, 0x05],
        der::TAG_PRINTABLE_STRING,
    ),
];

/// Extra spellings accepted when parsing.
const ATTR_ALIASES: &[(&str, &str)] = &[
    ("emailAddress", "E"),
    ("S", "ST"),
    ("SP", "ST"),
    ("surname", "SN"),
];

/// One AttributeTypeAndValue of a parsed Name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ava<'a> {
    /// OID content bytes.
    pub oid: &'a [u8],
    pub value_tag: u8,
    pub value: &'a [u8],
    /// The whole value TLV (for values that are not strings).
    pub value_tlv: &'a [u8],
}

/// Parses a DER Name into its RDNs (each a non-empty list of AVAs). None if malformed.
pub(crate) fn parse_dn(der_bytes: &[u8]) -> Option<Vec<Vec<Ava<'_>>>> {
    let seq = der::single(der_bytes, der::TAG_SEQUENCE)?;
    let mut rdns = Vec::new();
    let mut r = Reader::new(seq);
    while !r.is_empty() {
        let set = r.expect(der::TAG_SET)?;
        let mut avas = Vec::new();
        let mut sr = Reader::new(set.content);
        while !sr.is_empty() {
            let ava = sr.expect(der::TAG_SEQUENCE)?;
            let mut ar = Reader::new(ava.content);
            let oid = ar.expect(der::TAG_OID)?;
            der::oid_to_string(oid.content)?;
            let value = ar.read()?;
            if !ar.is_empty() {
                return None;
            }
            avas.push(Ava {
                oid: oid.content,
                value_tag: value.tag,
                value: value.content,
                value_tlv: value.whole,
            });
        }
        if avas.is_empty() {
            return None;
        }
        rdns.push(avas);
    }
    Some(rdns)
}

/// Decodes the ASN.1 string types found in Names. TeletexString is read as Latin-1 (what
/// it holds in practice). None for other types or invalid content.
pub(crate) fn decode_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        der::TAG_UTF8_STRING => std::str::from_utf8(value).ok().map(str::to_string),
        der::TAG_PRINTABLE_STRING | der::TAG_IA5_STRING | der::TAG_NUMERIC_STRING => value
            .is_ascii()
            .then(|| String::from_utf8_lossy(value).into_owned()),
        der::TAG_TELETEX_STRING => Some(value.iter().map(|&b| char::from(b)).collect()),
        der::TAG_BMP_STRING => {
            if !value.len().is_multiple_of(2) {
                return None;
            }
            let units = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        der::TAG_UNIVERSAL_STRING => {
            if !value.len().is_multiple_of(4) {
                return None;
            }
            value
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

fn attr_name(oid: &[u8]) -> Option<&'static str> {
    ATTRS.iter().find(|(_, o, _)| *o == oid).map(|(n, _, _)| *n)
}

fn attr_by_name(name: &str) -> Option<(&'static [u8], u8)> {
    let name = ATTR_ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, canonical)| canonical);
    ATTRS
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, o, t)| (*o, *t))
}

/// Writes a value with the escapes `parse_config` understands.
fn escape_value(s: &str, out: &mut String) {
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        let edge_space = c == ' ' && (i == 0 || i == last);
        let first_special = i == 0 && (c == '#' || (c == '*' && last == 0));
        if matches!(c, ',' | '/' | '+' | '\\') || edge_space || first_special {
            out.push('\\');
        }
        out.push(c);
    }
}

/// strongSwan-style text of a DER Name, "C=CH, O=mip6-ike test, CN=ha.example.net"; values that
/// are not strings are written `#` + hex of their DER. A malformed Name is written as
/// `#` + hex of the whole input (still unambiguous, but not parseable back).
pub(crate) fn dn_to_string(der_bytes: &[u8]) -> String {
    let Some(rdns) = parse_dn(der_bytes) else {
        return format!("#{}", hex_encode(der_bytes));
    };
    let mut out = String::new();
    for (i, rdn) in rdns.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        for (j, ava) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match attr_name(ava.oid) {
                Some(n) => out.push_str(n),
                None => out.push_str(&der::oid_to_string(ava.oid).unwrap_or_default()),
            }
            out.push('=');
            match decode_string(ava.value_tag, ava.value) {
                Some(s) => escape_value(&s, &mut out),
                None => {
                    out.push('#');
                    out.push_str(&hex_encode(ava.value_tlv));
                }
            }
        }
    }
    out
}

/// A value as written in the configuration: a string, `#hex` DER, or `*` (patterns only).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConfigValue {
    Text(String),
    Der(Vec<u8>),
    Any,
}

/// One configured attribute: OID content bytes, tag to encode text with, value.
type ConfigAva = (Vec<u8>, u8, ConfigValue);

/// Splits the configuration text of a DN into RDNs of AVAs. `wildcards` allows an unescaped
/// `*` as a whole value.
fn parse_dn_text(s: &str, wildcards: bool) -> Result<Vec<Vec<ConfigAva>>, String> {
    // Characters with a flag saying whether they were escaped.
    let mut chars: Vec<(char, bool)> = Vec::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(n) => chars.push((n, true)),
                None => return Err("the DN ends with a lone `\\`".into()),
            }
        } else {
            chars.push((c, false));
        }
    }
    let is_sep = |&(c, esc): &(char, bool)| !esc && (c == ',' || c == '/');
    let mut rdns = Vec::new();
    for (idx, rdn_chars) in chars.split(is_sep).enumerate() {
        if rdn_chars.iter().all(|&(c, esc)| !esc && c.is_whitespace()) {
            // A leading "/" (OpenSSL's "/C=CH/O=...") leaves an empty first part.
            if idx == 0 {
                continue;
            }
            return Err("empty RDN (two separators in a row, or a trailing one)".into());
        }
        let mut rdn = Vec::new();
        for ava in rdn_chars.split(|&(c, esc)| !esc && c == '+') {
            let eq = ava
                .iter()
                .position(|&(c, esc)| !esc && c == '=')
                .ok_or_else(|| format!("`{}` has no `=`", collect(ava)))?;
            let (key, value) = ava.split_at(eq);
            let value = value.get(1..).unwrap_or(&[]);
            let key = collect(trim(key));
            let value = trim(value);
            let (oid, tag) = match attr_by_name(&key) {
                Some((oid, tag)) => (oid.to_vec(), tag),
                None => match der::oid_from_str(&key) {
                    Some(oid) => (oid, der::TAG_UTF8_STRING),
                    None => {
                        return Err(format!(
                            "unknown attribute `{key}` (use C, ST, L, O, OU, CN, E, DC, SN, \
                             serialNumber or a dotted OID)"
                        ));
                    }
                },
            };
            let value = match value {
                [('*', false)] if wildcards => ConfigValue::Any,
                [('*', false)] => {
                    return Err(
                        "`*` is only allowed in patterns; write `\\*` for a literal star".into(),
                    );
                }
                [('#', false), rest @ ..] => {
                    let hex = collect(rest);
                    let der_value = hex_decode(&hex)
                        .filter(|d| {
                            Reader::new(d)
                                .read()
                                .is_some_and(|t| t.whole.len() == d.len())
                        })
                        .ok_or_else(|| format!("`#{hex}` is not the hex of one DER value"))?;
                    ConfigValue::Der(der_value)
                }
                _ => ConfigValue::Text(collect(value)),
            };
            rdn.push((oid, tag, value));
        }
        rdns.push(rdn);
    }
    Ok(rdns)
}

fn collect(chars: &[(char, bool)]) -> String {
    chars.iter().map(|&(c, _)| c).collect()
}

/// Drops unescaped whitespace at both ends.
fn trim(chars: &[(char, bool)]) -> &[(char, bool)] {
    let start = chars
        .iter()
        .position(|&(c, esc)| esc || !c.is_whitespace())
        .unwrap_or(chars.len());
    let end = chars
        .iter()
        .rposition(|&(c, esc)| esc || !c.is_whitespace())
        .map_or(start, |p| p + 1);
    chars.get(start..end).unwrap_or(&[])
}

/// DER Name from the configuration text (without the `dn:` prefix).
fn dn_from_config(s: &str) -> Result<Vec<u8>, super::Error> {
    let rdns = parse_dn_text(s, false).map_err(|e| id_err(format!("dn:{s}: {e}")))?;
    let mut seq = Vec::new();
    for rdn in rdns {
        let mut encoded: Vec<Vec<u8>> = Vec::new();
        for (oid, tag, value) in rdn {
            let value_der = match value {
                ConfigValue::Der(d) => d,
                ConfigValue::Any => return Err(id_err(format!("dn:{s}: `*` only in patterns"))),
                ConfigValue::Text(t) => {
                    let ok = match tag {
                        der::TAG_PRINTABLE_STRING => t.chars().all(is_printable_string_char),
                        der::TAG_IA5_STRING => t.is_ascii(),
                        _ => true,
                    };
                    if !ok {
                        return Err(id_err(format!(
                            "dn:{s}: `{t}` has characters this attribute cannot hold"
                        )));
                    }
                    der::tlv(tag, t.as_bytes())
                }
            };
            let mut ava = der::tlv(der::TAG_OID, &oid);
            ava.extend_from_slice(&value_der);
            encoded.push(der::tlv(der::TAG_SEQUENCE, &ava));
        }
        // DER orders the members of a SET OF by their encodings.
        encoded.sort();
        seq.extend(der::tlv(der::TAG_SET, &encoded.concat()));
    }
    Ok(der::tlv(der::TAG_SEQUENCE, &seq))
}

fn is_printable_string_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c)
}

/// The comparable form of a value: decoded strings with spaces trimmed and runs of spaces
/// collapsed, ASCII-lowercased (RFC 5280 7.1 / RFC 4518 caseIgnoreMatch, ASCII only); other
/// values as their DER bytes.
#[derive(Debug, PartialEq, Eq)]
enum Normalized {
    Text(String),
    Der(Vec<u8>),
}

fn normalize_text(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

fn normalize(ava: &Ava<'_>) -> Normalized {
    match decode_string(ava.value_tag, ava.value) {
        Some(s) => Normalized::Text(normalize_text(&s)),
        None => Normalized::Der(ava.value_tlv.to_vec()),
    }
}

fn normalize_config(v: &ConfigValue) -> Option<Normalized> {
    match v {
        ConfigValue::Text(t) => Some(Normalized::Text(normalize_text(t))),
        ConfigValue::Der(d) => {
            let t = Reader::new(d).read()?;
            Some(match decode_string(t.tag, t.content) {
                Some(s) => Normalized::Text(normalize_text(&s)),
                None => Normalized::Der(d.clone()),
            })
        }
        ConfigValue::Any => None,
    }
}

/// Whether the AVAs of two RDNs match as sets (the order inside a SET OF depends on encoding).
/// `eq(i, j)` compares AVA i of the first with AVA j of the second.
fn rdn_match(n_a: usize, n_b: usize, eq: impl Fn(usize, usize) -> bool) -> bool {
    if n_a != n_b {
        return false;
    }
    let mut used = vec![false; n_b];
    for i in 0..n_a {
        let Some(j) = (0..n_b).find(|&j| !used[j] && eq(i, j)) else {
            return false;
        };
        used[j] = true;
    }
    true
}

/// Compares two DER Names semantically: same RDNs in the same order, equal attribute types,
/// values equal after decoding their string types (PrintableString vs UTF8String etc.), ASCII
/// case-insensitively and ignoring insignificant spaces. False when either is malformed.
pub fn dn_equal(a_der: &[u8], b_der: &[u8]) -> bool {
    let (Some(a), Some(b)) = (parse_dn(a_der), parse_dn(b_der)) else {
        return false;
    };
    a.len() == b.len()
        && a.iter().zip(&b).all(|(ra, rb)| {
            rdn_match(ra.len(), rb.len(), |i, j| {
                let (x, y) = (&ra[i], &rb[j]);
                x.oid == y.oid && normalize(x) == normalize(y)
            })
        })
}

/// Matches a DER Name against a pattern in the configuration syntax (with or without the
/// `dn:` prefix) where `*` stands for any whole value, e.g. `C=CH, O=mip6-ike test, CN=*`.
/// Same comparison rules as `dn_equal`; the number and order of RDNs must match. A malformed
/// pattern or Name matches nothing.
pub fn dn_matches_pattern(pattern: &str, dn_der: &[u8]) -> bool {
    let pattern = pattern.trim();
    let pattern = match pattern.split_once(':') {
        Some((p, rest)) if p.eq_ignore_ascii_case("dn") => rest,
        _ => pattern,
    };
    let (Ok(pat), Some(dn)) = (parse_dn_text(pattern, true), parse_dn(dn_der)) else {
        return false;
    };
    pat.len() == dn.len()
        && pat.iter().zip(&dn).all(|(rp, rd)| {
            rdn_match(rp.len(), rd.len(), |i, j| {
                let ((oid, _, value), ava) = (&rp[i], &rd[j]);
                oid.as_slice() == ava.oid
                    && (value == &ConfigValue::Any
                        || normalize_config(value) == Some(normalize(ava)))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject_of(pem: &str) -> Vec<u8> {
        let der = super::super::cert::certs_from_pem(pem).unwrap().remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.subject().as_raw().to_vec()
    }

    #[test]
    fn wire_round_trip_every_type() {
        let ids = [
            Identity::Dn(dn_from_config("C=CH, O=mip6-ike test, CN=ha.example.net").unwrap()),
            Identity::Fqdn("ha.example.net".into()),
            Identity::Email("mn1@example.net".into()),
            Identity::Ipv4("192.0.2.1".parse().unwrap()),
            Identity::Ipv6("2001:db8:1::1".parse().unwrap()),
            Identity::KeyId(vec![0x0a, 0x1b, 0x2c]),
        ];
        let types = [9u8, 2, 3, 1, 5, 11];
        for (id, ty) in ids.iter().zip(types) {
            let (t, data) = id.to_wire();
            assert_eq!(t, ty, "{id}");
            assert_eq!(&Identity::from_wire(t, &data).unwrap(), id);
        }
        assert_eq!(
            Identity::Ipv4("192.0.2.1".parse().unwrap()).to_wire().1,
            vec![192, 0, 2, 1]
        );
    }

    #[test]
    fn wire_rejects_malformed() {
        assert!(Identity::from_wire(1, &[1, 2, 3]).is_err());
        assert!(Identity::from_wire(5, &[0; 4]).is_err());
        assert!(Identity::from_wire(2, b"ha.example.net\0").is_err());
        assert!(Identity::from_wire(2, "hä.example".as_bytes()).is_err());
        assert!(Identity::from_wire(2, b"").is_err());
        assert!(Identity::from_wire(3, b"a\nb@example.net").is_err());
        assert!(Identity::from_wire(9, &[0x30, 0x03, 0x31, 0x01]).is_err());
        assert!(Identity::from_wire(9, &[0x30, 0x02, 0x31, 0x00]).is_err()); // empty RDN
        assert!(Identity::from_wire(9, b"CN=x").is_err());
        assert!(Identity::from_wire(10, &[0x30, 0x00]).is_err()); // ID_DER_ASN1_GN
        // A Name with no RDN is valid DER.
        assert_eq!(
            Identity::from_wire(9, &[0x30, 0x00]).unwrap(),
            Identity::Dn(vec![0x30, 0x00])
        );
    }

    #[test]
    fn config_round_trip() {
        for s in [
            "dn:C=CH, O=mip6-ike test, CN=ha.example.net",
            "dn:C=CH, ST=Bern, L=Bern, O=Ex\\, Inc., OU=R\\/D, CN=mn1+SN=Smith, E=a@b.c",
            "dn:DC=net, DC=example, serialNumber=1234, CN=\\ padded\\ ",
            "dn:CN=a\\+b\\\\c, 1.2.3.4=other, 2.5.4.45=#030200ff",
            "dn:CN=\\*, OU=\\#1, O=a*b",
            "fqdn:ha.example.net",
            "email:mn1@example.net",
            "ipv4:192.0.2.1",
            "ipv6:2001:db8::1",
            "keyid:0a1b2c",
        ] {
            let id = Identity::parse_config(s).unwrap();
            assert_eq!(id.to_string(), s);
            assert_eq!(Identity::parse_config(&id.to_string()).unwrap(), id);
        }
    }

    #[test]
    fn config_accepts_variants() {
        let canonical = Identity::parse_config("dn:C=CH, O=mip6-ike test, CN=mn1").unwrap();
        for s in [
            "dn:/C=CH/O=mip6-ike test/CN=mn1",
            "DN: c=CH,o=mip6-ike test ,  cn = mn1 ",
            "dn:C=CH/O=mip6-ike test/CN=mn1",
        ] {
            assert_eq!(Identity::parse_config(s).unwrap(), canonical, "{s}");
        }
        assert_eq!(
            Identity::parse_config("dn:emailAddress=a@b.c").unwrap(),
            Identity::parse_config("dn:E=a@b.c").unwrap()
        );
        assert_eq!(
            Identity::parse_config("keyid:0A1B").unwrap(),
            Identity::KeyId(vec![0x0a, 0x1b])
        );
    }

    #[test]
    fn config_errors_say_what_to_write() {
        let msg = |s: &str| Identity::parse_config(s).unwrap_err().to_string();
        assert!(msg("ha.example.net").contains("fqdn:ha.example.net"));
        assert!(msg("mn1@example.net").contains("email:mn1@example.net"));
        assert!(msg("192.0.2.1").contains("ipv4:192.0.2.1"));
        assert!(msg("2001:db8::1").contains("ipv6:2001:db8::1"));
        assert!(msg("C=CH, CN=x").contains("dn:C=CH, CN=x"));
        assert!(msg("dn:C=CH, XX=y").contains("unknown attribute `XX`"));
        assert!(msg("dn:C=CH, CN").contains("has no `=`"));
        assert!(msg("dn:C=CH,, CN=x").contains("empty RDN"));
        assert!(msg("dn:C=Schweiz!").contains("cannot hold"));
        assert!(msg("dn:CN=*").contains("only allowed in patterns"));
        assert!(msg("keyid:abc").contains("hex"));
        assert!(msg("ipv4:2001:db8::1").contains("IPv4"));
        assert!(msg("fqdn:").contains("FQDN"));
    }

    #[test]
    fn dn_from_config_equals_openssl_subjects() {
        let certs = [
            (include_str!("../../certs/ha-ecdsa.pem"), "ha.example.net"),
            (include_str!("../../certs/mn1-ecdsa.pem"), "mn1@example.net"),
            (include_str!("../../certs/mn2-rsa.pem"), "mn2@example.net"),
            (
                include_str!("../../certs/ca-ecdsa.pem"),
                "mip6-ike ECDSA CA",
            ),
            (include_str!("../../certs/ca-rsa.pem"), "mip6-ike RSA CA"),
        ];
        for (pem, cn) in certs {
            let text = format!("dn:C=CH, O=mip6-ike test, CN={cn}");
            let id = Identity::parse_config(&text).unwrap();
            let subject = subject_of(pem);
            assert_eq!(id, Identity::Dn(subject.clone()), "{cn}");
            assert_eq!(Identity::Dn(subject).to_string(), text);
        }
    }

    /// Name = C=CH (PrintableString) + CN=<cn> with the given string tag.
    fn name(cn_tag: u8, cn: &[u8], c_tag: u8) -> Vec<u8> {
        let ava = |oid: &[u8], tag: u8, v: &[u8]| {
            let mut a = der::tlv(der::TAG_OID, oid);
            a.extend(der::tlv(tag, v));
            der::tlv(der::TAG_SET, &der::tlv(der::TAG_SEQUENCE, &a))
        };
        let mut seq = ava(&[0x55, 4, 6], c_tag, b"CH");
        seq.extend(ava(&[0x55, 4, 3], cn_tag, cn));
        der::tlv(der::TAG_SEQUENCE, &seq)
    }

    #[test]
    fn dn_equal_across_encodings() {
        let utf8 = name(der::TAG_UTF8_STRING, b"mn1", der::TAG_PRINTABLE_STRING);
        // strongSwan writes PrintableString where the characters allow it.
        let printable = name(der::TAG_PRINTABLE_STRING, b"MN1", der::TAG_PRINTABLE_STRING);
        let c_utf8 = name(der::TAG_UTF8_STRING, b"mn1", der::TAG_UTF8_STRING);
        let bmp = name(
            der::TAG_BMP_STRING,
            &[0, b'm', 0, b'n', 0, b'1'],
            der::TAG_PRINTABLE_STRING,
        );
        let ia5 = name(der::TAG_IA5_STRING, b" mn1 ", der::TAG_PRINTABLE_STRING);
        for other in [&printable, &c_utf8, &bmp, &ia5] {
            assert_ne!(&utf8, other);
            assert!(dn_equal(&utf8, other));
            assert!(dn_equal(other, &utf8));
        }
        let different = name(der::TAG_UTF8_STRING, b"mn2", der::TAG_PRINTABLE_STRING);
        assert!(!dn_equal(&utf8, &different));
        let only_c = der::tlv(der::TAG_SEQUENCE, &utf8[2..15]);
        assert!(dn_equal(&only_c, &only_c));
        assert!(!dn_equal(&utf8, &only_c));
        assert!(!dn_equal(&utf8, b"garbage"));
        // Order of RDNs matters.
        let a = Identity::parse_config("dn:C=CH, CN=x").unwrap().to_wire().1;
        let b = Identity::parse_config("dn:CN=x, C=CH").unwrap().to_wire().1;
        assert!(!dn_equal(&a, &b));
        // Order inside a multi-valued RDN does not (it depends on the encoding).
        let a = Identity::parse_config("dn:CN=x+OU=y").unwrap().to_wire().1;
        let b = Identity::parse_config("dn:OU=Y+CN=X").unwrap().to_wire().1;
        assert!(dn_equal(&a, &b));
    }

    #[test]
    fn pattern_match() {
        let dn = subject_of(include_str!("../../certs/mn1-ecdsa.pem"));
        assert!(dn_matches_pattern("C=CH, O=mip6-ike test, CN=*", &dn));
        assert!(dn_matches_pattern("dn:C=CH, O=*, CN=*", &dn));
        assert!(dn_matches_pattern(
            "C=ch, O=MIP6-IKE test, CN=mn1@example.net",
            &dn
        ));
        assert!(dn_matches_pattern("/C=CH/O=mip6-ike test/CN=*", &dn));
        assert!(!dn_matches_pattern("C=CH, O=other, CN=*", &dn));
        assert!(!dn_matches_pattern("C=CH, CN=*", &dn));
        assert!(!dn_matches_pattern(
            "C=CH, O=mip6-ike test, CN=*, OU=*",
            &dn
        ));
        assert!(!dn_matches_pattern("C=CH, O=mip6-ike test, OU=*", &dn));
        assert!(!dn_matches_pattern(
            "C=CH, O=mip6-ike test, CN=mn2@example.net",
            &dn
        ));
        // `*` is a whole value, not a glob.
        assert!(!dn_matches_pattern("C=CH, O=mip6-ike test, CN=mn1*", &dn));
        assert!(!dn_matches_pattern("C=CH, O=mip6-ike test, CN=\\*", &dn));
        assert!(!dn_matches_pattern("C=CH, XX=1, CN=*", &dn));
        assert!(!dn_matches_pattern("C=CH, O=mip6-ike test, CN=*", b"junk"));
    }
}
