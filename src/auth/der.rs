//! Minimal DER reading and writing for the few structures this module handles itself (Names,
//! AlgorithmIdentifiers, SEC1 keys). Strict: single-byte tags, definite minimal lengths.

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_UTF8_STRING: u8 = 0x0c;
pub(crate) const TAG_NUMERIC_STRING: u8 = 0x12;
pub(crate) const TAG_PRINTABLE_STRING: u8 = 0x13;
pub(crate) const TAG_TELETEX_STRING: u8 = 0x14;
pub(crate) const TAG_IA5_STRING: u8 = 0x16;
pub(crate) const TAG_UNIVERSAL_STRING: u8 = 0x1c;
pub(crate) const TAG_BMP_STRING: u8 = 0x1e;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
pub(crate) const TAG_SET: u8 = 0x31;

/// One element: tag, content, and the whole encoding (tag + length + content).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub whole: &'a [u8],
}

/// Reads consecutive elements from a byte slice.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// Next element, None on malformed input.
    pub fn read(&mut self) -> Option<Tlv<'a>> {
        let (&tag, rest) = self.data.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // multi-byte tag numbers are never needed here
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            // 0x80 is the BER indefinite form; more than 4 length bytes is absurd here.
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (len_bytes, rest) = rest.split_at(n);
            if len_bytes.first() == Some(&0) {
                return None; // not minimal
            }
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return None; // long form for a short length is not DER
            }
            (len, rest)
        };
        if rest.len() < len {
            return None;
        }
        let (content, rest) = rest.split_at(len);
        let whole_len = self.data.len() - rest.len();
        let whole = self.data.get(..whole_len)?;
        self.data = rest;
        Some(Tlv {
            tag,
            content,
            whole,
        })
    }

    /// Next element, which must carry `tag`.
    pub fn expect(&mut self, tag: u8) -> Option<Tlv<'a>> {
        let tlv = self.read()?;
        (tlv.tag == tag).then_some(tlv)
    }
}

/// Parses `data` as exactly one element with `tag` and returns its content.
pub(crate) fn single(data: &[u8], tag: u8) -> Option<&[u8]> {
    let mut r = Reader::new(data);
    let tlv = r.expect(tag)?;
    r.is_empty().then_some(tlv.content)
}

/// Encodes one element.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let used = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | used.len() as u8);
        out.extend_from_slice(used);
    }
    out.extend_from_slice(content);
    out
}

/// Dotted form of an OID's content bytes, None when malformed.
pub(crate) fn oid_to_string(content: &[u8]) -> Option<String> {
    if content.is_empty() || content.last().is_some_and(|&b| b & 0x80 != 0) {
        return None;
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    let mut start = true;
    for &b in content {
        if start && b == 0x80 {
            return None; // non-minimal arc
        }
        acc = acc.checked_mul(128)?.checked_add(u64::from(b & 0x7f))?;
        start = b & 0x80 == 0;
        if start {
            arcs.push(acc);
            acc = 0;
        }
    }
    let first = *arcs.first()?;
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut s = format!("{a}.{b}");
    for arc in arcs.iter().skip(1) {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    Some(s)
}

/// Content bytes of a dotted OID ("2.5.4.3"), None when it is not one.
pub(crate) fn oid_from_str(s: &str) -> Option<Vec<u8>> {
    let arcs: Vec<u64> = s
        .split('.')
        .map(|a| {
            if a.is_empty() || !a.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                a.parse().ok()
            }
        })
        .collect::<Option<_>>()?;
    let (&a, rest) = arcs.split_first()?;
    let (&b, rest) = rest.split_first()?;
    if a > 2 || (a < 2 && b > 39) {
        return None;
    }
    let mut out = Vec::new();
    let mut push_arc = |v: u64| {
        let mut groups = [0u8; 10];
        let mut n = 0;
        let mut v = v;
        loop {
            groups[n] = (v & 0x7f) as u8;
            n += 1;
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            out.push(groups[i] | if i > 0 { 0x80 } else { 0 });
        }
    };
    push_arc((a * 40).checked_add(b)?);
    for &arc in rest {
        push_arc(arc);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let mut r = Reader::new(&long);
        let t = r.read().unwrap();
        assert_eq!(t.content.len(), 300);
        assert_eq!(t.whole.len(), 304);
        assert!(r.is_empty());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &[0x04u8, 0x80][..],          // indefinite
            &[0x04, 0x81, 0x05, 0, 0, 0], // long form for a short length
            &[0x04, 0x82, 0x00, 0x81],    // leading zero length byte
            &[0x04, 0x03, 0x00],          // truncated
            &[0x1f, 0x01, 0x00],          // multi-byte tag
            &[0x04, 0x85, 1, 0, 0, 0, 0], // 5 length bytes
            &[0x04],                      // no length
        ] {
            assert!(Reader::new(bad).read().is_none(), "{bad:02x?}");
        }
    }

    #[test]
    fn oids() {
        // commonName 2.5.4.3 = 55 04 03; ecdsa-with-SHA256 1.2.840.10045.4.3.2.
        assert_eq!(oid_from_str("2.5.4.3").unwrap(), vec![0x55, 0x04, 0x03]);
        let ecdsa = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        assert_eq!(oid_from_str("1.2.840.10045.4.3.2").unwrap(), ecdsa);
        assert_eq!(oid_to_string(&ecdsa).unwrap(), "1.2.840.10045.4.3.2");
        assert_eq!(oid_to_string(&[0x88, 0x37]).unwrap(), "2.999");
        assert_eq!(oid_from_str("2.999").unwrap(), vec![0x88, 0x37]);
        assert!(oid_to_string(&[0x55, 0x84]).is_none());
        assert!(oid_to_string(&[0x80, 0x01]).is_none());
        assert!(oid_from_str("2.5..3").is_none());
        assert!(oid_from_str("1.40").is_none());
        assert!(oid_from_str("CN").is_none());
        assert!(oid_from_str("3.1").is_none());
    }
}
