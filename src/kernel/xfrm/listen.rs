//! The multicast listener: ACQUIRE, EXPIRE and MIGRATE notifications as engine events.
//!
//! Every datagram is untrusted bytes: it must come from the kernel (sender port id 0, header
//! port id 0), every length field must fit, and only the three expected message types pass.

use std::os::fd::AsFd;
use std::time::Duration;

use netlink_sys::{Socket, protocols::NETLINK_XFRM};
use tracing::{debug, warn};

use super::NlError;
use super::msg::{self, MsgError};
use crate::kernel::KernelEvent;

const RECV_BUF: usize = 65_536;
const MSG_TRUNC: i32 = 0x20;
/// A bigger socket buffer rides out bursts (mip6d sends 4-8 MIGRATEs per move).
const SOCKET_BUF: usize = 1 << 20;

/// Turns one received datagram into events; any invalid part rejects the whole datagram.
pub fn decode(data: &[u8], sender_pid: u32) -> Result<Vec<KernelEvent>, MsgError> {
    if sender_pid != 0 {
        return Err(MsgError("not from the kernel"));
    }
    let mut out = Vec::new();
    for m in msg::split(data)? {
        out.extend(msg::parse_event(&m)?);
    }
    Ok(out)
}

/// A NETLINK_XFRM socket in groups ACQUIRE, EXPIRE and MIGRATE of the current network namespace.
pub struct Listener {
    sock: Socket,
    buf: Vec<u8>,
    /// Notifications were lost (ENOBUFS) since [`Listener::take_lost`] last looked.
    lost: bool,
}

impl Listener {
    /// `poll` bounds each `recv` so a reader thread can notice that it should stop.
    pub fn open(poll: Duration) -> Result<Listener, NlError> {
        let io = |e: std::io::Error| NlError::Io(e.to_string());
        let mut sock = Socket::new(NETLINK_XFRM).map_err(io)?;
        sock.bind_auto().map_err(io)?;
        for g in [
            msg::XFRMNLGRP_ACQUIRE,
            msg::XFRMNLGRP_EXPIRE,
            msg::XFRMNLGRP_MIGRATE,
        ] {
            sock.add_membership(g).map_err(io)?;
        }
        let _ = sock.set_rx_buf_sz(SOCKET_BUF);
        let tv = nix::sys::time::TimeVal::new(poll.as_secs() as _, poll.subsec_micros() as _);
        nix::sys::socket::setsockopt(
            &sock.as_fd(),
            nix::sys::socket::sockopt::ReceiveTimeout,
            &tv,
        )
        .map_err(|e| NlError::Io(e.to_string()))?;
        Ok(Listener {
            sock,
            buf: vec![0; RECV_BUF],
            lost: false,
        })
    }

    /// Sets the socket's receive buffer (tests: a tiny one makes a burst overrun it).
    pub fn set_recv_buffer(&mut self, bytes: usize) -> Result<(), NlError> {
        self.sock
            .set_rx_buf_sz(i32::try_from(bytes).unwrap_or(i32::MAX))
            .map_err(|e| NlError::Io(e.to_string()))
    }

    /// Whether the kernel dropped notifications for us (socket buffer overrun) since the
    /// last call: a MIGRATE may be among them, so the caller must look at the kernel itself.
    pub fn take_lost(&mut self) -> bool {
        std::mem::take(&mut self.lost)
    }

    /// Waits for one datagram (at most the poll time) and returns its events; invalid
    /// datagrams are logged and yield none. Err only for socket failures.
    pub fn recv(&mut self) -> Result<Vec<KernelEvent>, NlError> {
        let Some((n, pid)) = self.recv_datagram()? else {
            return Ok(Vec::new());
        };
        let data = self.buf.get(..n).unwrap_or(&[]);
        match decode(data, pid) {
            Ok(evs) => Ok(evs),
            Err(e) => {
                debug!(len = n, "netlink datagram rejected: {e}");
                Ok(Vec::new())
            }
        }
    }

    /// Waits for one datagram and returns a copy of its bytes and the sender's port id
    /// (tests: real kernel messages as seeds for the hostile-input checks).
    pub fn recv_raw(&mut self) -> Result<Option<(Vec<u8>, u32)>, NlError> {
        Ok(self
            .recv_datagram()?
            .and_then(|(n, pid)| Some((self.buf.get(..n)?.to_vec(), pid))))
    }

    /// (length, sender port id) of the next datagram in `self.buf`; None on timeout or for a
    /// datagram too big for the buffer.
    fn recv_datagram(&mut self) -> Result<Option<(usize, u32)>, NlError> {
        let mut slice: &mut [u8] = &mut self.buf[..];
        let (n, from) = match self.sock.recv_from(&mut slice, MSG_TRUNC) {
            Ok(r) => r,
            Err(e) => {
                return match e.kind() {
                    std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted => Ok(None),
                    // ENOBUFS: the kernel dropped notifications; keep listening, and let the
                    // owner know (take_lost) so that it resynchronises with the kernel.
                    _ if e.raw_os_error() == Some(105) => {
                        warn!("XFRM notifications lost (socket buffer overrun)");
                        self.lost = true;
                        Ok(None)
                    }
                    _ => Err(NlError::Io(e.to_string())),
                };
            }
        };
        if n > RECV_BUF {
            debug!(len = n, "oversized netlink datagram dropped");
            return Ok(None);
        }
        Ok(Some((n, from.port_number())))
    }
}
