//! UDP sockets for IKE: one per listen address and port. Wildcard sockets learn the destination
//! address of each datagram (IP_PKTINFO / IPV6_PKTINFO) and send from a chosen source address,
//! because the engine needs the real local address (it becomes the outer address of tunnel-mode
//! SAs and enters the NAT detection hashes).
//!
//! Every IKE socket carries per-socket IPsec bypass policies (inbound and outbound ALLOW, as
//! strongSwan and other IKE daemons set them): a socket policy takes precedence over the SPD, so
//! neither mip6d's `block` sub-policy (installed before each home registration and kept until
//! the Binding Acknowledgement, which waits for our SAs) nor its any-protocol ESP policies can
//! catch IKE itself.
//!
//! Datagrams the kernel drops before we read them (a full receive buffer during a burst) are
//! counted: SO_RXQ_OVFL attaches the socket's drop counter to every datagram received, and the
//! daemon's stats show the total.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use nix::libc;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn,
    SockaddrIn6, SockaddrStorage, bind, recvmsg, sendmsg, setsockopt, socket, sockopt,
};
use tokio::io::Interest;
use tracing::{info, warn};

use crate::policy::KernelBackend;

// The one module allowed `unsafe` (a raw setsockopt); see there for why.
mod sys;

/// The non-ESP marker that precedes IKE messages on the NAT-T port (RFC 3948 2.2, RFC 7296 2.23).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// What arrived on the NAT-T port.
#[derive(Debug, PartialEq, Eq)]
pub enum NatPortPayload<'a> {
    /// An IKE message (marker removed).
    Ike(&'a [u8]),
    /// A NAT keepalive (a single 0xff byte, RFC 3948 2.3).
    Keepalive,
    /// ESP in UDP (non-zero first four bytes): the kernel's business, not ours.
    Esp,
    /// Too short to be anything.
    Runt,
}

/// What goes out on the NAT-T port for `data` from the engine: IKE messages behind the non-ESP
/// marker, a NAT keepalive (one 0xFF byte, never an IKE message) as it is.
pub fn frame_for_nat_port(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if data == crate::ike::NAT_KEEPALIVE {
        std::borrow::Cow::Borrowed(data)
    } else {
        std::borrow::Cow::Owned([&NON_ESP_MARKER[..], data].concat())
    }
}

/// Classifies a datagram received on the NAT-T port.
pub fn classify_nat_port(data: &[u8]) -> NatPortPayload<'_> {
    match data {
        [0xff] => NatPortPayload::Keepalive,
        [0, 0, 0, 0, rest @ ..] => NatPortPayload::Ike(rest),
        d if d.len() < 4 => NatPortPayload::Runt,
        _ => NatPortPayload::Esp,
    }
}

/// Whether an IKE socket must carry its IPsec bypass policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bypass {
    /// XFRM backend: real IPsec policies exist (mip6d's), and without the bypass the handshake
    /// that would satisfy them deadlocks; a socket that cannot have it is an error.
    Required,
    /// In-memory backend (demo, tests, possibly without root, where the kernel refuses socket
    /// policies without CAP_NET_ADMIN): a failure is logged once and ignored.
    BestEffort,
}

impl Bypass {
    pub fn for_backend(backend: KernelBackend) -> Bypass {
        match backend {
            KernelBackend::Xfrm => Bypass::Required,
            KernelBackend::Memory => Bypass::BestEffort,
        }
    }
}

/// An IKE socket that could not get its bypass policy for one direction.
#[derive(Debug)]
pub struct BypassError {
    pub local: SocketAddr,
    pub inbound: bool,
    pub source: io::Error,
}

impl fmt::Display for BypassError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let option = if self.local.is_ipv4() {
            "IP_XFRM_POLICY"
        } else {
            "IPV6_XFRM_POLICY"
        };
        let dir = if self.inbound { "in" } else { "out" };
        write!(
            f,
            "cannot exempt the IKE socket {} from IPsec policies ({option}, dir {dir}): {}",
            self.local, self.source
        )?;
        if self.source.raw_os_error() == Some(libc::EPERM) {
            f.write_str(" (this needs root or CAP_NET_ADMIN)")?;
        }
        Ok(())
    }
}

impl std::error::Error for BypassError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Why [`IkeSocket::bind`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Bypass(#[from] BypassError),
}

impl BindError {
    /// The daemon's error for binding `addr`.
    pub fn into_daemon_error(self, addr: SocketAddr) -> super::DaemonError {
        match self {
            BindError::Io(source) => super::DaemonError::Bind { addr, source },
            BindError::Bypass(e) => super::DaemonError::Bypass(e),
        }
    }
}

/// Puts the inbound and outbound bypass policies on `fd` (a socket for `local`'s family).
fn set_bypass(fd: &impl AsFd, local: SocketAddr) -> Result<(), BypassError> {
    let (v6, family) = if local.is_ipv4() {
        (false, libc::AF_INET)
    } else {
        (true, libc::AF_INET6)
    };
    // AF_INET and AF_INET6 (2, 10) fit a u16, the selector's family field.
    let family = family as u16;
    for (dir, inbound) in [(sys::XFRM_POLICY_IN, true), (sys::XFRM_POLICY_OUT, false)] {
        let p = sys::policy(family, dir, sys::XFRM_POLICY_ALLOW);
        sys::set_socket_policy(fd.as_fd(), v6, &p).map_err(|source| BypassError {
            local,
            inbound,
            source,
        })?;
    }
    Ok(())
}

/// Logged once per process: with the in-memory backend every socket fails the same way.
static BYPASS_LOGGED: AtomicBool = AtomicBool::new(false);

/// The failure policy: whether the socket carries the bypass (Ok(true)), goes without it
/// (Ok(false), best effort), or must not be used (Err).
fn settle(mode: Bypass, r: Result<(), BypassError>) -> Result<bool, BypassError> {
    match (r, mode) {
        (Ok(()), _) => Ok(true),
        (Err(e), Bypass::Required) => Err(e),
        (Err(e), Bypass::BestEffort) => {
            // info, not warn: without root (the demo) this is expected and harmless.
            if !BYPASS_LOGGED.swap(true, Ordering::Relaxed) {
                info!(
                    "{e}; going on without it (in-memory kernel backend), but host IPsec policies may catch IKE packets"
                );
            }
            Ok(false)
        }
    }
}

/// One bound socket.
pub struct IkeSocket {
    sock: tokio::net::UdpSocket,
    local: SocketAddr,
    nat: bool,
    bypass: bool,
    /// The kernel's drop counter as last reported (SO_RXQ_OVFL): datagrams it dropped for this
    /// socket since the socket was made.
    drops: AtomicU32,
}

/// What [`IkeSocket::set_receive_buffer`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveBuffer {
    /// Bytes asked for.
    pub requested: u32,
    /// Bytes the kernel gives (SO_RCVBUF as read back, halved: the kernel doubles the value
    /// for its bookkeeping).
    pub granted: usize,
    /// Whether SO_RCVBUFFORCE was allowed (CAP_NET_ADMIN), which passes over net.core.rmem_max.
    pub forced: bool,
}

impl ReceiveBuffer {
    pub fn clamped(&self) -> bool {
        self.granted < self.requested as usize
    }
}

/// A datagram as read from a socket.
#[derive(Debug)]
pub struct Received {
    pub len: usize,
    pub remote: SocketAddr,
    /// Destination address of the datagram (from PKTINFO), when the kernel said.
    pub dst: Option<IpAddr>,
    pub truncated: bool,
}

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

impl IkeSocket {
    /// Binds `addr` (port 0: any free port). IPv6 sockets are IPv6-only so that an IPv4 socket
    /// can share the port; both ask for the destination address of each datagram. The bypass
    /// policies go on before the bind, so no datagram ever passes the socket without them.
    pub fn bind(addr: SocketAddr, nat: bool, bypass: Bypass) -> Result<IkeSocket, BindError> {
        let family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let fd = socket(
            family,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(io_err)?;
        let bypass = settle(bypass, set_bypass(&fd, addr))?;
        match addr {
            SocketAddr::V6(a) => {
                setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(io_err)?;
                setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true).map_err(io_err)?;
                bind(fd.as_raw_fd(), &SockaddrIn6::from(a)).map_err(io_err)?;
            }
            SocketAddr::V4(a) => {
                setsockopt(&fd, sockopt::Ipv4PacketInfo, &true).map_err(io_err)?;
                bind(fd.as_raw_fd(), &SockaddrIn::from(a)).map_err(io_err)?;
            }
        }
        if nat {
            // ESP in UDP to this port is the kernel's (NAT traversal). Without it the SAs of
            // a peer behind a NAT receive nothing, but IKE still works: say so, go on.
            if let Err(e) = sys::set_udp_encap(fd.as_fd()) {
                warn!(%addr, "cannot hand ESP in UDP to the kernel (UDP_ENCAP): {e}; CHILD_SAs across a NAT will not receive");
            }
        }
        // Drops are counted from here on; without the option (never on Linux) they are not.
        if let Err(e) = setsockopt(&fd, sockopt::RxqOvfl, &1) {
            warn!(%addr, "cannot count the datagrams the kernel drops (SO_RXQ_OVFL): {e}");
        }
        let std_sock = std::net::UdpSocket::from(fd);
        let local = std_sock.local_addr()?;
        let sock = tokio::net::UdpSocket::from_std(std_sock)?;
        Ok(IkeSocket {
            sock,
            local,
            nat,
            bypass,
            drops: AtomicU32::new(0),
        })
    }

    /// Sizes the receive buffer: SO_RCVBUFFORCE first (root: net.core.rmem_max does not
    /// apply), else SO_RCVBUF, which the kernel clamps to net.core.rmem_max.
    pub fn set_receive_buffer(&self, bytes: u32) -> io::Result<ReceiveBuffer> {
        let fd = self.sock.as_fd();
        let want = bytes as usize;
        let forced = setsockopt(&fd, sockopt::RcvBufForce, &want).is_ok();
        if !forced {
            setsockopt(&fd, sockopt::RcvBuf, &want).map_err(io_err)?;
        }
        let got = nix::sys::socket::getsockopt(&fd, sockopt::RcvBuf).map_err(io_err)?;
        Ok(ReceiveBuffer {
            requested: bytes,
            granted: got / 2,
            forced,
        })
    }

    /// Datagrams the kernel dropped for this socket before we read them, as of the last one
    /// read (the counter travels with each datagram; it wraps at 2^32).
    pub fn kernel_drops(&self) -> u32 {
        self.drops.load(Ordering::Relaxed)
    }

    /// True when the socket carries its IPsec bypass policies (always with [`Bypass::Required`]).
    pub fn has_bypass(&self) -> bool {
        self.bypass
    }

    /// The bound address (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// True on the NAT-T port, where IKE carries the non-ESP marker.
    pub fn is_nat(&self) -> bool {
        self.nat
    }

    pub fn is_wildcard(&self) -> bool {
        self.local.ip().is_unspecified()
    }

    /// Receives one datagram into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let fd = self.sock.as_raw_fd();
        self.sock
            .async_io(Interest::READABLE, || {
                let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::in_pktinfo, u32);
                let mut iov = [IoSliceMut::new(buf)];
                let msg =
                    recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
                        .map_err(io_err)?;
                let remote = msg
                    .address
                    .as_ref()
                    .and_then(|a| {
                        a.as_sockaddr_in6()
                            .map(|s| SocketAddr::V6((*s).into()))
                            .or_else(|| a.as_sockaddr_in().map(|s| SocketAddr::V4((*s).into())))
                    })
                    .ok_or_else(|| io::Error::other("datagram without a source address"))?;
                let mut dst = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        match c {
                            ControlMessageOwned::Ipv6PacketInfo(pi) => {
                                dst = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
                            }
                            ControlMessageOwned::Ipv4PacketInfo(pi) => {
                                dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                                    pi.ipi_addr.s_addr,
                                ))));
                            }
                            ControlMessageOwned::RxqOvfl(n) => {
                                self.drops.store(n, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                    }
                }
                Ok(Received {
                    len: msg.bytes,
                    remote,
                    dst,
                    truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
                })
            })
            .await
    }

    /// Sends `data` to `to`, from `from` when this socket is a wildcard one (unspecified `from`:
    /// the system chooses).
    pub async fn send(&self, from: IpAddr, to: SocketAddr, data: &[u8]) -> io::Result<()> {
        if !self.is_wildcard() || from.is_unspecified() {
            self.sock.send_to(data, to).await?;
            return Ok(());
        }
        let fd = self.sock.as_raw_fd();
        let dest = SockaddrStorage::from(to);
        self.sock
            .async_io(Interest::WRITABLE, || {
                let iov = [IoSlice::new(data)];
                let r = match from {
                    IpAddr::V6(a) => {
                        let pi = libc::in6_pktinfo {
                            ipi6_addr: libc::in6_addr {
                                s6_addr: a.octets(),
                            },
                            ipi6_ifindex: 0,
                        };
                        sendmsg(
                            fd,
                            &iov,
                            &[ControlMessage::Ipv6PacketInfo(&pi)],
                            MsgFlags::empty(),
                            Some(&dest),
                        )
                    }
                    IpAddr::V4(a) => {
                        let pi = libc::in_pktinfo {
                            ipi_ifindex: 0,
                            ipi_spec_dst: libc::in_addr {
                                s_addr: u32::from(a).to_be(),
                            },
                            ipi_addr: libc::in_addr { s_addr: 0 },
                        };
                        sendmsg(
                            fd,
                            &iov,
                            &[ControlMessage::Ipv4PacketInfo(&pi)],
                            MsgFlags::empty(),
                            Some(&dest),
                        )
                    }
                };
                r.map(|_| ()).map_err(io_err)
            })
            .await
    }
}

/// Picks the socket a datagram from `local` must leave by: the one bound to exactly that
/// address and port, else a wildcard socket of the same family on that port.
pub fn route(bound: &[SocketAddr], local: SocketAddr) -> Option<usize> {
    bound.iter().position(|b| *b == local).or_else(|| {
        bound.iter().position(|b| {
            b.ip().is_unspecified() && b.is_ipv4() == local.is_ipv4() && b.port() == local.port()
        })
    })
}

/// The address the system would send from towards `remote` (no packet is sent).
pub fn route_source(remote: SocketAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = if remote.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any)?;
    // connect() runs the outbound policy lookup: under mip6d's block it fails with EPERM, so
    // this socket needs the bypass as much as the IKE sockets do. Without it (no
    // CAP_NET_ADMIN: the IKE sockets have none either) connect() reports whatever the policies
    // do, so the error is not worth a message of its own.
    let _ = set_bypass(&s, any);
    s.connect(remote)?;
    Ok(s.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_port_classification() {
        // RFC 3948 2.2: a zero non-ESP marker precedes IKE; 2.3: keepalive is one 0xff byte.
        assert_eq!(
            classify_nat_port(&[0, 0, 0, 0, 1, 2]),
            NatPortPayload::Ike(&[1, 2])
        );
        assert_eq!(classify_nat_port(&[0xff]), NatPortPayload::Keepalive);
        assert_eq!(classify_nat_port(&[0, 0, 0]), NatPortPayload::Runt);
        assert_eq!(classify_nat_port(&[]), NatPortPayload::Runt);
        assert_eq!(
            classify_nat_port(&[0xc0, 0xff, 0xee, 0x01, 0, 0, 0, 1]),
            NatPortPayload::Esp
        );
        assert_eq!(classify_nat_port(&[0, 0, 0, 1, 0]), NatPortPayload::Esp);
        // What we send is what the peer's classification expects.
        assert_eq!(&*frame_for_nat_port(&[0xff]), &[0xff]);
        assert_eq!(
            classify_nat_port(&frame_for_nat_port(&[0xff])),
            NatPortPayload::Keepalive
        );
        assert_eq!(&*frame_for_nat_port(&[1, 2, 3]), &[0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(
            classify_nat_port(&frame_for_nat_port(&[1, 2, 3, 4, 5])),
            NatPortPayload::Ike(&[1, 2, 3, 4, 5])
        );
    }

    fn eperm(local: &str, inbound: bool) -> BypassError {
        BypassError {
            local: local.parse().unwrap(),
            inbound,
            source: io::Error::from_raw_os_error(libc::EPERM),
        }
    }

    #[test]
    fn bypass_failure_stops_the_xfrm_backend_only() {
        // XFRM backend: refused, naming the socket, the option, the direction and the cause.
        let e = settle(
            Bypass::for_backend(KernelBackend::Xfrm),
            Err(eperm("[::]:500", false)),
        )
        .unwrap_err()
        .to_string();
        for part in [
            "[::]:500",
            "IPV6_XFRM_POLICY",
            "dir out",
            "Operation not permitted",
            "CAP_NET_ADMIN",
        ] {
            assert!(e.contains(part), "{part:?} missing in {e:?}");
        }
        let e = eperm("192.0.2.1:4500", true).to_string();
        assert!(
            e.contains("192.0.2.1:4500") && e.contains("IP_XFRM_POLICY, dir in"),
            "{e}"
        );
        // In-memory backend: the socket is used without the bypass.
        let memory = Bypass::for_backend(KernelBackend::Memory);
        assert!(!settle(memory, Err(eperm("[::1]:500", true))).unwrap());
        assert!(settle(memory, Ok(())).unwrap());
        assert!(settle(Bypass::Required, Ok(())).unwrap());
        // Only EPERM hints at the capability.
        let other = BypassError {
            source: io::Error::from_raw_os_error(libc::EINVAL),
            ..eperm("[::1]:500", false)
        };
        assert!(!other.to_string().contains("CAP_NET_ADMIN"));
    }

    /// As root (the CI), every socket gets its bypass, also in best-effort mode.
    #[tokio::test(flavor = "current_thread")]
    async fn root_sockets_carry_the_bypass() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        for addr in ["[::1]:0", "127.0.0.1:0"] {
            let s = IkeSocket::bind(addr.parse().unwrap(), false, Bypass::Required).unwrap();
            assert!(s.has_bypass(), "{addr}");
        }
    }

    #[test]
    fn routing_prefers_exact_then_wildcard_of_same_family_and_port() {
        let bound: Vec<SocketAddr> = vec![
            "[::]:500".parse().unwrap(),
            "0.0.0.0:500".parse().unwrap(),
            "[2001:db8::1]:500".parse().unwrap(),
        ];
        assert_eq!(route(&bound, "[2001:db8::1]:500".parse().unwrap()), Some(2));
        assert_eq!(route(&bound, "[2001:db8::2]:500".parse().unwrap()), Some(0));
        assert_eq!(route(&bound, "192.0.2.1:500".parse().unwrap()), Some(1));
        assert_eq!(route(&bound, "[2001:db8::2]:4500".parse().unwrap()), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wildcard_socket_learns_destination_and_sends_from_it() {
        let Ok(a) = IkeSocket::bind("[::]:0".parse().unwrap(), false, Bypass::BestEffort) else {
            return;
        };
        let Ok(b) = IkeSocket::bind("[::1]:0".parse().unwrap(), false, Bypass::BestEffort) else {
            return;
        };
        let to_a: SocketAddr = (Ipv6Addr::LOCALHOST, a.local_addr().port()).into();
        b.send(IpAddr::V6(Ipv6Addr::UNSPECIFIED), to_a, b"ping")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let r = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..r.len], b"ping");
        assert_eq!(r.dst, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(r.remote, b.local_addr());
        assert!(!r.truncated);
        // Back from the wildcard socket with an explicit source.
        a.send(IpAddr::V6(Ipv6Addr::LOCALHOST), r.remote, b"pong")
            .await
            .unwrap();
        let r2 = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..r2.len], b"pong");
        assert_eq!(r2.remote, to_a);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ipv4_wildcard_socket_learns_destination() {
        let a = IkeSocket::bind("0.0.0.0:0".parse().unwrap(), false, Bypass::BestEffort).unwrap();
        let b = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), false, Bypass::BestEffort).unwrap();
        let to_a: SocketAddr = (Ipv4Addr::LOCALHOST, a.local_addr().port()).into();
        b.send(IpAddr::V4(Ipv4Addr::UNSPECIFIED), to_a, b"x")
            .await
            .unwrap();
        let mut buf = [0u8; 8];
        let r = a.recv(&mut buf).await.unwrap();
        assert_eq!(r.dst, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        a.send(IpAddr::V4(Ipv4Addr::LOCALHOST), r.remote, b"y")
            .await
            .unwrap();
        let r2 = b.recv(&mut buf).await.unwrap();
        assert_eq!(r2.remote, to_a);
    }
}
