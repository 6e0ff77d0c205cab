//! Per-socket IPsec bypass policies (IPV6_XFRM_POLICY / IP_XFRM_POLICY): the crate's only
//! `unsafe` code.
//!
//! Why unsafe at all: these options take a `struct xfrm_userpolicy_info` by pointer, and no
//! safe wrapper we can use offers them. nix 0.30 has no such sockopt (its `sockopt_impl!` macro
//! would only paste an `unsafe` block into this crate), socket2 keeps its raw `setsockopt`
//! private, rustix has no raw variant. So the unsafe surface is one `libc::setsockopt` call on a
//! byte buffer we own and a descriptor we borrow; the struct itself is built as plain bytes
//! (no `repr(C)` transmute), its size checked against the kernel by a test.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;

/// `sizeof(struct xfrm_userpolicy_info)` in this ABI: selector (56 bytes), lifetime config (8 x
/// u64), current lifetime (4 x u64), priority, index (u32), dir, action, flags, share (u8) = 164
/// bytes, padded to the alignment of u64 (168 on x86_64 and aarch64, 164 on i386, whose u64
/// is 4-aligned). A shorter buffer is refused with EINVAL; a longer one would be read as
/// templates.
pub const POLICY_LEN: usize = 164_usize.next_multiple_of(std::mem::align_of::<u64>());

// Offsets in struct xfrm_userpolicy_info (include/uapi/linux/xfrm.h).
/// `sel.family` (u16, host order): the kernel refuses anything but AF_INET / AF_INET6.
const OFF_SEL_FAMILY: usize = 40;
/// `lft`: struct xfrm_lifetime_cfg, 8 x u64 (byte and packet limits first, then seconds).
const OFF_LFT: usize = 56;
const OFF_DIR: usize = 160;
const OFF_ACTION: usize = 161;

/// XFRM_INF: no limit.
const XFRM_INF: u64 = u64::MAX;
pub const XFRM_POLICY_IN: u8 = 0;
pub const XFRM_POLICY_OUT: u8 = 1;
pub const XFRM_POLICY_ALLOW: u8 = 0;
#[cfg(test)]
pub const XFRM_POLICY_BLOCK: u8 = 1;

/// A socket policy for `dir` with `action` on every flow of `family` (AF_INET or AF_INET6):
/// a zero selector (any address, port, protocol), priority 0, no templates. Byte and packet
/// limits are XFRM_INF as `ip xfrm` sets them; the time limits stay 0 (= none): u64::MAX
/// seconds would wrap the kernel's `add_time + expires` arithmetic if a timer ever looked.
pub fn policy(family: u16, dir: u8, action: u8) -> [u8; POLICY_LEN] {
    let mut p = [0u8; POLICY_LEN];
    p[OFF_SEL_FAMILY..OFF_SEL_FAMILY + 2].copy_from_slice(&family.to_ne_bytes());
    for i in 0..4 {
        let at = OFF_LFT + 8 * i;
        p[at..at + 8].copy_from_slice(&XFRM_INF.to_ne_bytes());
    }
    p[OFF_DIR] = dir;
    p[OFF_ACTION] = action;
    p
}

/// The socket option and level for `family`'s sockets.
fn option(v6: bool) -> (libc::c_int, libc::c_int) {
    if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_XFRM_POLICY)
    } else {
        (libc::IPPROTO_IP, libc::IP_XFRM_POLICY)
    }
}

/// Puts `policy` (from [`policy`]) on the socket `fd` of the given family. The kernel wants
/// CAP_NET_ADMIN for it (EPERM otherwise).
pub fn set_socket_policy(fd: BorrowedFd<'_>, v6: bool, policy: &[u8]) -> io::Result<()> {
    let (level, name) = option(v6);
    setsockopt_bytes(fd, level, name, policy)
}

/// UDP_ENCAP_ESPINUDP (linux/udp.h): RFC 3948 ESP in UDP, IKE behind the non-ESP marker.
const UDP_ENCAP_ESPINUDP: libc::c_int = 2;

/// Makes the kernel take ESP in UDP arriving on this (NAT-T) socket and hand it to XFRM
/// (UDP_ENCAP, as strongSwan sets it); IKE with the non-ESP marker and keepalives still reach
/// the socket. nix has no such sockopt, hence the raw call.
pub fn set_udp_encap(fd: BorrowedFd<'_>) -> io::Result<()> {
    setsockopt_bytes(
        fd,
        libc::SOL_UDP,
        libc::UDP_ENCAP,
        &UDP_ENCAP_ESPINUDP.to_ne_bytes(),
    )
}

/// setsockopt(2) with an arbitrary byte buffer as the value.
#[allow(unsafe_code)]
fn setsockopt_bytes(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fd` is borrowed, so the descriptor stays open for the call; `value` is a live,
    // initialised slice of exactly `len` bytes, which the kernel only reads (it copies them in
    // and keeps no pointer); setsockopt writes no user memory.
    let r = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, value.as_ptr().cast(), len) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    const AF_INET: u16 = libc::AF_INET as u16;
    const AF_INET6: u16 = libc::AF_INET6 as u16;

    #[test]
    fn layout_of_xfrm_userpolicy_info() {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        assert_eq!(POLICY_LEN, 168);
        let p = policy(AF_INET6, XFRM_POLICY_OUT, XFRM_POLICY_ALLOW);
        // Zero selector but the family.
        assert!(p[..40].iter().all(|b| *b == 0));
        assert_eq!(u16::from_ne_bytes([p[40], p[41]]), 10);
        assert!(p[42..56].iter().all(|b| *b == 0));
        // Byte and packet limits infinite, time limits none.
        assert!(p[56..88].iter().all(|b| *b == 0xff));
        assert!(p[88..120].iter().all(|b| *b == 0));
        // curlft, priority, index zero; dir, action; flags, share zero; padding zero.
        assert!(p[120..160].iter().all(|b| *b == 0));
        assert_eq!((p[160], p[161]), (1, 0));
        assert!(p[162..].iter().all(|b| *b == 0));
        let p = policy(AF_INET, XFRM_POLICY_IN, XFRM_POLICY_BLOCK);
        assert_eq!(
            (u16::from_ne_bytes([p[40], p[41]]), p[160], p[161]),
            (2, 0, 1)
        );
    }

    /// False when the kernel tests are to be skipped (not root, MIP6_IKE_SKIP_KERNEL_TESTS=1);
    /// panics when not root otherwise, like tests/xfrm_host.rs.
    fn privileged() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        if std::env::var("MIP6_IKE_SKIP_KERNEL_TESTS").as_deref() == Ok("1") {
            eprintln!("skipped: not root (MIP6_IKE_SKIP_KERNEL_TESTS=1)");
            return false;
        }
        panic!(
            "socket policies need CAP_NET_ADMIN: run as root or set MIP6_IKE_SKIP_KERNEL_TESTS=1"
        );
    }

    /// The kernel's own size check (`len < sizeof(*p)`: EINVAL) and family check agree with
    /// our layout. Socket policies touch only the test's own sockets, not the host's SPD.
    #[test]
    fn kernel_takes_exactly_our_struct() {
        if !privileged() {
            return;
        }
        for (addr, v6, fam) in [("[::1]:0", true, AF_INET6), ("127.0.0.1:0", false, AF_INET)] {
            let s = UdpSocket::bind(addr).unwrap();
            let p = policy(fam, XFRM_POLICY_OUT, XFRM_POLICY_ALLOW);
            set_socket_policy(s.as_fd(), v6, &p).expect("the full struct");
            let short = set_socket_policy(s.as_fd(), v6, &p[..POLICY_LEN - 1]).unwrap_err();
            assert_eq!(
                short.raw_os_error(),
                Some(libc::EINVAL),
                "{addr}: one byte short"
            );
            let no_family = policy(0, XFRM_POLICY_OUT, XFRM_POLICY_ALLOW);
            let e = set_socket_policy(s.as_fd(), v6, &no_family).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{addr}: family 0");
        }
    }

    /// dir and action sit where the kernel reads them: an outbound BLOCK policy on a socket
    /// stops its sends (EPERM), an inbound one leaves sending alone and stops receiving.
    #[test]
    fn kernel_reads_dir_and_action_where_we_put_them() {
        if !privileged() {
            return;
        }
        for (addr, v6, fam) in [("[::1]:0", true, AF_INET6), ("127.0.0.1:0", false, AF_INET)] {
            let rx = UdpSocket::bind(addr).unwrap();
            rx.set_read_timeout(Some(std::time::Duration::from_millis(300)))
                .unwrap();
            let to = rx.local_addr().unwrap();
            let tx = UdpSocket::bind(addr).unwrap();
            tx.send_to(b"1", to).expect("no policy yet");
            let mut buf = [0u8; 4];
            assert_eq!(rx.recv(&mut buf).unwrap(), 1);

            let block_out = policy(fam, XFRM_POLICY_OUT, XFRM_POLICY_BLOCK);
            set_socket_policy(tx.as_fd(), v6, &block_out).unwrap();
            let e = tx.send_to(b"2", to).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{addr}: blocked out");
            // Allow again (the newer policy replaces the older one for that direction).
            let allow_out = policy(fam, XFRM_POLICY_OUT, XFRM_POLICY_ALLOW);
            set_socket_policy(tx.as_fd(), v6, &allow_out).unwrap();
            tx.send_to(b"3", to).expect("allowed again");
            assert_eq!(rx.recv(&mut buf).unwrap(), 1);
            assert_eq!(buf[0], b'3');

            let block_in = policy(fam, XFRM_POLICY_IN, XFRM_POLICY_BLOCK);
            set_socket_policy(rx.as_fd(), v6, &block_in).unwrap();
            tx.send_to(b"4", to).expect("the sender is not blocked");
            let e = rx.recv(&mut buf).unwrap_err();
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::WouldBlock,
                "{addr}: blocked in"
            );
        }
    }
}
