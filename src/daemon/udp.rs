//! UDP sockets for IKE: one per listen address and port. Wildcard sockets learn the destination
//! address of each datagram (IP_PKTINFO / IPV6_PKTINFO) and send from a chosen source address,
//! because the engine needs the real local address (it becomes the outer address of tunnel-mode
//! SAs and enters the NAT detection hashes).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn,
    SockaddrIn6, SockaddrStorage, bind, recvmsg, sendmsg, setsockopt, socket, sockopt,
};
use tokio::io::Interest;

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

/// Classifies a datagram received on the NAT-T port.
pub fn classify_nat_port(data: &[u8]) -> NatPortPayload<'_> {
    match data {
        [0xff] => NatPortPayload::Keepalive,
        [0, 0, 0, 0, rest @ ..] => NatPortPayload::Ike(rest),
        d if d.len() < 4 => NatPortPayload::Runt,
        _ => NatPortPayload::Esp,
    }
}

/// One bound socket.
pub struct IkeSocket {
    sock: tokio::net::UdpSocket,
    local: SocketAddr,
    nat: bool,
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
    /// can share the port; both ask for the destination address of each datagram.
    pub fn bind(addr: SocketAddr, nat: bool) -> io::Result<IkeSocket> {
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
        let std_sock = std::net::UdpSocket::from(fd);
        let local = std_sock.local_addr()?;
        let sock = tokio::net::UdpSocket::from_std(std_sock)?;
        Ok(IkeSocket { sock, local, nat })
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
                let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::in_pktinfo);
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
        let Ok(a) = IkeSocket::bind("[::]:0".parse().unwrap(), false) else {
            return;
        };
        let Ok(b) = IkeSocket::bind("[::1]:0".parse().unwrap(), false) else {
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
        let a = IkeSocket::bind("0.0.0.0:0".parse().unwrap(), false).unwrap();
        let b = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
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
