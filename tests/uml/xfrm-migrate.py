#!/usr/bin/env python3
"""Sends one XFRM_MSG_MIGRATE exactly as mip6d (UMIP) does on a movement: one policy
(xfrm_userpolicy_id: selector + direction), exactly one XFRMA_MIGRATE entry (ESP, mode, reqid,
old/new endpoints) and always an XFRMA_KMADDRESS (the IKE endpoints after the move).
Asks for an ACK (NLM_F_ACK) and exits non-zero when the kernel refuses the message.

Usage (IPv6 only, as mip6d):
  xfrm-migrate.py --sel SRC/PLEN DST/PLEN [--proto N] [--type T] --dir in|out|fwd \
      --reqid N --mode transport|tunnel --old SRC DST --new SRC DST --km LOCAL REMOTE \
      [+ --sel ... (the next MIGRATE)]...
Several messages separated by `+` go out one after the other, each acknowledged before the
next (one python start for a whole move: UML is slow to start processes).
mip6d's transport entries have old endpoints `:: ::`; tunnel entries the old outer endpoints.
`--type T` puts an MH/ICMPv6 type in the selector's sport (host value, mask 0xffff) as mip6d
does for HomeRegBinding and MobPfxDisc.
"""
import argparse
import errno
import os
import socket
import struct
import sys

NETLINK_XFRM = 6
XFRM_MSG_MIGRATE = 0x21
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
XFRMA_MIGRATE = 17
XFRMA_KMADDRESS = 19
IPPROTO_ESP = 50
MODES = {"transport": 0, "tunnel": 1}
DIRS = {"in": 0, "out": 1, "fwd": 2}


def addr(text):
    return socket.inet_pton(socket.AF_INET6, text)


def prefix(text):
    a, _, plen = text.partition("/")
    return addr(a), int(plen or 128)


def selector(src, dst, proto, mhtype):
    """struct xfrm_selector (56 bytes): ports are big-endian, the rest host order."""
    (saddr, splen), (daddr, dplen) = prefix(src), prefix(dst)
    sport, smask = (mhtype, 0xFFFF) if mhtype is not None else (0, 0)
    return (
        daddr
        + saddr
        + struct.pack("!HHHH", 0, 0, sport, smask)
        + struct.pack("=HBBB3xiI", socket.AF_INET6, dplen, splen, proto, 0, 0)
    )


def rtattr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def build(a, seq):
    # struct xfrm_userpolicy_id: selector, index u32, dir u8, 3 bytes padding
    body = selector(a.sel[0], a.sel[1], a.proto, a.type) + struct.pack("=IB3x", 0, DIRS[a.dir])
    # struct xfrm_user_migrate (76 bytes): old_daddr, old_saddr, new_daddr, new_saddr, proto,
    # mode, reserved u16, reqid u32, old_family u16, new_family u16
    mig = (
        addr(a.old[1]) + addr(a.old[0]) + addr(a.new[1]) + addr(a.new[0])
        + struct.pack("=BBHIHH", IPPROTO_ESP, MODES[a.mode], 0, a.reqid,
                      socket.AF_INET6, socket.AF_INET6)
    )
    # struct xfrm_user_kmaddress (40 bytes): local, remote, reserved u32, family u16, padding
    km = addr(a.km[0]) + addr(a.km[1]) + struct.pack("=IH2x", 0, socket.AF_INET6)
    payload = body + rtattr(XFRMA_MIGRATE, mig) + rtattr(XFRMA_KMADDRESS, km)
    hdr = struct.pack("=IHHII", 16 + len(payload), XFRM_MSG_MIGRATE,
                      NLM_F_REQUEST | NLM_F_ACK, seq, 0)
    return hdr + payload


def parser():
    p = argparse.ArgumentParser(prog="xfrm-migrate.py", description=__doc__.split("\n")[0])
    p.add_argument("--sel", nargs=2, required=True, metavar=("SRC/PLEN", "DST/PLEN"))
    p.add_argument("--proto", type=int, default=0)
    p.add_argument("--type", type=int, default=None)
    p.add_argument("--dir", choices=DIRS, required=True)
    p.add_argument("--reqid", type=int, required=True)
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--old", nargs=2, required=True, metavar=("SRC", "DST"))
    p.add_argument("--new", nargs=2, required=True, metavar=("SRC", "DST"))
    p.add_argument("--km", nargs=2, required=True, metavar=("LOCAL", "REMOTE"))
    return p


def send(s, msg, seq, what):
    """Sends one MIGRATE and checks the kernel's ACK; returns an error text or None."""
    s.sendto(msg, (0, 0))
    try:
        data = s.recv(65536)
    except socket.timeout:
        return "no answer from the kernel"
    if len(data) < 20:
        return "short answer from the kernel"
    _, kind, _, got, _ = struct.unpack_from("=IHHII", data)
    if kind != NLMSG_ERROR or got != seq:
        return "unexpected answer type %d seq %d" % (kind, got)
    (err,) = struct.unpack_from("=i", data, 16)
    if err != 0:
        return "kernel refused the MIGRATE (%s): %s (%s)" % (
            what, os.strerror(-err), errno.errorcode.get(-err, -err))
    return None


def main():
    groups, cur = [], []
    for arg in sys.argv[1:]:
        if arg == "+":
            groups.append(cur)
            cur = []
        else:
            cur.append(arg)
    groups.append(cur)
    msgs = []
    for seq, g in enumerate(groups, 1):
        a = parser().parse_args(g)
        try:
            msgs.append((build(a, seq), seq, "%s %s dir %s reqid %d" % (
                a.sel[0], a.sel[1], a.dir, a.reqid)))
        except (OSError, ValueError, struct.error) as e:
            print("xfrm-migrate: bad argument: %s" % e, file=sys.stderr)
            return 2
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
    s.settimeout(5)
    s.bind((0, 0))
    for msg, seq, what in msgs:
        err = send(s, msg, seq, what)
        if err:
            print("xfrm-migrate: " + err, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
