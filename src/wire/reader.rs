//! Bounds-checked big-endian cursor for parsing, and length patching for emitting.

use super::Error;

/// A cursor over input bytes. Every read checks the remaining length and fails with
/// `Error::Truncated(what)` instead of panicking.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if n > self.buf.len() {
            return Err(Error::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(u8::from_be_bytes(self.array(what)?))
    }

    pub(super) fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(super) fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(super) fn ipv4(&mut self, what: &'static str) -> Result<std::net::Ipv4Addr, Error> {
        Ok(self.array::<4>(what)?.into())
    }

    pub(super) fn ipv6(&mut self, what: &'static str) -> Result<std::net::Ipv6Addr, Error> {
        Ok(self.array::<16>(what)?.into())
    }

    /// Everything not read yet.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }
}

/// Splits off a substructure that starts with `last(1) reserved(1) length(2)`: checks that the
/// length covers at least `min` bytes and fits in the input, and returns
/// (last byte, whole substructure including its header, remainder).
pub(super) fn split_substructure<'a>(
    buf: &'a [u8],
    min: usize,
    what: &'static str,
) -> Result<(u8, &'a [u8], &'a [u8]), Error> {
    let mut r = Reader::new(buf);
    let last = r.u8(what)?;
    r.u8(what)?;
    let len = usize::from(r.u16(what)?);
    if len < min {
        return Err(Error::BadLength(what));
    }
    if len > buf.len() {
        return Err(Error::Truncated(what));
    }
    let (sub, rest) = buf.split_at(len);
    Ok((last, sub, rest))
}

/// Writes the big-endian 16-bit length of everything from `start` to the end of `out` at
/// `out[at..at + 2]`. Emit works on our own values, which come from parsed messages (so fit) or
/// from the engine; an oversized one is a bug, caught in debug builds and saturated otherwise.
pub(super) fn patch_len16(out: &mut [u8], at: usize, start: usize) {
    let len = out.len().saturating_sub(start);
    debug_assert!(
        len <= usize::from(u16::MAX),
        "IKE structure longer than 65535 bytes"
    );
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    if let Some(dst) = out.get_mut(at..at + 2) {
        dst.copy_from_slice(&len.to_be_bytes());
    }
}

/// A count or size byte for emit; saturates like `patch_len16`.
pub(super) fn count_u8(n: usize) -> u8 {
    debug_assert!(n <= usize::from(u8::MAX), "count does not fit in one byte");
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// A count or size field of 16 bits for emit; saturates like `patch_len16`.
pub(super) fn count_u16(n: usize) -> u16 {
    debug_assert!(
        n <= usize::from(u16::MAX),
        "count does not fit in two bytes"
    );
    u16::try_from(n).unwrap_or(u16::MAX)
}
