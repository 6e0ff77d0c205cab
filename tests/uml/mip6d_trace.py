#!/usr/bin/env python3
"""Records and compares XFRM event sequences for the mip6d model's validation against the traces
of real mip6d (tests/uml/mip6d-traces/none, copied from the reference recordings).

  mip6d_trace.py listen OUT          decode XFRM_MSG_MIGRATE (which iproute2 6.1 prints as
                                     `Unknown message`) into OUT, one line each, in the traces'
                                     migrate-acquire format; runs until killed
  mip6d_trace.py normalise MONITOR MIGRATES
                                     print the normalised event sequence of an `ip -ts xfrm
                                     monitor` recording, its k-th MIGRATE taken from the k-th
                                     MIGRATE line of MIGRATES (how the traces were made too)
  mip6d_trace.py capture OUT         one line per IKE packet seen on the namespace's interfaces
                                     (AF_PACKET; UDP 500, or 4500 with the non-ESP marker):
                                     `IFACE SRC DST EXCHANGE request|response SPI_I`; runs
                                     until killed
  mip6d_trace.py compare REF_MON REF_MIG MON MIG
                                     exit 0 when both normalise to the same sequence, else print
                                     a unified diff and exit 1

Normalisation (what is compared: policy adds/updates/deletes with selector, dir, ptype,
priority, action and templates; route-optimisation state adds/updates/deletes with addresses,
coa and selector; MIGRATEs with dir, selector, KMADDRESS, entry; ACQUIREs with flow, policy and
template), and why:
- time stamps are dropped (timing is not compared);
- `Async event` lines (XFRM_MSG_NEWAE) are dropped: the kernel sends them only because the
  recording subscribed to the AEVENTS group; mip6d does not cause them;
- `Expired` lines are dropped: the kernel expires a larval state 30 s after its ACQUIRE, a
  kernel timer whose place in the sequence depends on the pace of the run;
- ESP states are dropped (in the traces they come from the keying, not from mip6d; the larval
  ones show only as `acquire`/`Expired`), and so are the state lines that carry counters or
  times (`anti-replay context`, `lastused`);
- `dev IFACE` in an ACQUIRE's flow is dropped (interface indexes and names of the recording);
- of a run of `Updated src ::/0 dst ::/0 proto mobility-header dir out priority 12 ptype sub`
  (mip6d refreshes it before each BU it sends, trace observation 7) only the first is kept,
  ACQUIREs in the run staying after it: the number of BU retransmissions at a location depends
  on how long the run stays there, not on mip6d's logic;
- MIGRATE lines are compared from `dir=` on (the decoder's time stamps dropped).
"""
import difflib
import re
import socket
import struct
import sys

NETLINK_XFRM = 6
XFRMNLGRP_MIGRATE = 7
XFRM_MSG_MIGRATE = 0x21
XFRMA_MIGRATE, XFRMA_KMADDRESS, XFRMA_POLICY_TYPE = 17, 19, 16
MODES = {0: "transport", 1: "tunnel", 2: "ro"}
DIRS = {0: "in", 1: "out", 2: "fwd"}
PROTOS = {50: "esp", 51: "ah", 108: "comp"}


def ntop(b):
    return socket.inet_ntop(socket.AF_INET6, b)


def decode_migrate(payload):
    sel = payload[:56]
    daddr, saddr = ntop(sel[0:16]), ntop(sel[16:32])
    sport, smask = struct.unpack_from("!HH", sel, 36)
    _family, plen_d, plen_s, proto = struct.unpack_from("=HBBB", sel, 40)
    (dir_,) = struct.unpack_from("=B", payload, 60)
    off, ptype, km, entries = 64, 0, "-", []
    while off + 4 <= len(payload):
        ln, kind = struct.unpack_from("=HH", payload, off)
        if ln < 4:
            break
        data = payload[off + 4:off + ln]
        if kind == XFRMA_MIGRATE:
            for i in range(0, len(data) - 75, 76):
                m = data[i:i + 76]
                od, os_, nd, ns = ntop(m[0:16]), ntop(m[16:32]), ntop(m[32:48]), ntop(m[48:64])
                p, mode, _r, reqid = struct.unpack_from("=BBHI", m, 64)
                entries.append("%s,%s,reqid=%d,old=%s>%s,new=%s>%s" % (
                    PROTOS.get(p, p), MODES.get(mode, mode), reqid, os_, od, ns, nd))
        elif kind == XFRMA_KMADDRESS:
            km = "%s>%s" % (ntop(data[0:16]), ntop(data[16:32]))
        elif kind == XFRMA_POLICY_TYPE:
            ptype = data[0]
        off += (ln + 3) & ~3
    mtype = str(sport) if smask else "-"
    return "MIGRATE dir=%s sel=%s/%d>%s/%d proto=%d type=%s ptype=%d km=%s n=%d %s" % (
        DIRS.get(dir_, dir_), saddr, plen_s, daddr, plen_d, proto, mtype, ptype, km, len(entries),
        " ".join("m%d=%s" % (i, e) for i, e in enumerate(entries)))


def listen(out):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
    s.bind((0, 1 << (XFRMNLGRP_MIGRATE - 1)))
    with open(out, "a", buffering=1) as f:
        f.write("# listening\n")
        while True:
            data = s.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, kind = struct.unpack_from("=IH", data, off)
                if ln < 16:
                    break
                if kind == XFRM_MSG_MIGRATE:
                    f.write(decode_migrate(data[off + 16:off + ln]) + "\n")
                off += (ln + 3) & ~3


MH12 = "upd policy src ::/0 dst ::/0 proto mobility-header | dir out priority 12 ptype sub"


def migrates(path):
    out = []
    for line in open(path):
        m = re.search(r"MIGRATE (dir=.*)", line)
        if m:
            # ptype 0 (main) is all mip6d uses; the trace decoder printed it, so does ours
            out.append("MIGRATE " + m.group(1).strip())
    return out


def events(monitor_path, migrate_path):
    """The normalised events of one recording (see the module doc)."""
    migs = migrates(migrate_path)
    raw, cur = [], None
    for line in open(monitor_path):
        line = line.rstrip("\n")
        m = re.match(r"^\[[^\]]*\] ?(.*)$", line)
        if m:
            cur = [m.group(1)]
            raw.append(cur)
        elif cur is not None:
            cur.append(line)
    out, k = [], 0
    for ev in raw:
        head = ev[0].strip()
        if head.startswith("Async event") or head.startswith("Expired"):
            continue
        if head.startswith("Unknown message") and head.endswith("0x00000021 0x00000000"):
            out.append(migs[k] if k < len(migs) else "MIGRATE <no decoded message>")
            k += 1
            continue
        if head.startswith("acquire"):
            parts = [re.sub(r" dev \S+", "", l.strip()) for l in ev if l.strip()]
            out.append("acquire | " + " | ".join(parts[1:]) + " | " + parts[0])
            continue
        op = "add"
        for prefix, name in (("Updated ", "upd"), ("Deleted ", "del")):
            if head.startswith(prefix):
                op, head = name, head[len(prefix):]
        body = [head] + [l.strip() for l in ev[1:] if l.strip()]
        if any(l.startswith("dir ") for l in body):
            out.append("%s policy %s" % (op, " | ".join(body)))
            continue
        if any(l.startswith("proto esp") for l in body):
            continue
        keep = []
        for l in body:
            if l.startswith(("anti-replay", "lastused")):
                continue
            if l.startswith("replay-window"):
                l = " ".join(l.split()[2:])
                if not l:
                    continue
            keep.append(l)
        out.append("%s state %s" % (op, " | ".join(keep)))
    norm, last = [], None
    for e in out:
        if e == MH12 and last == MH12:
            continue
        norm.append(e)
        if not e.startswith("acquire"):
            last = e
    return norm


def capture(out):
    """IKE packets on the wire, for counting IKE_SA_INITs (exchange 34) by initiator SPI."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    with open(out, "a", buffering=1) as f:
        f.write("# capturing\n")
        while True:
            data, addr = s.recvfrom(65536)
            if addr[2] == socket.PACKET_OUTGOING or len(data) < 14 + 40 + 8 + 28:
                continue
            if struct.unpack_from("!H", data, 12)[0] != 0x86DD or data[14 + 6] != 17:
                continue
            sport, dport = struct.unpack_from("!HH", data, 54)
            ike = 62
            if 4500 in (sport, dport):
                if data[ike:ike + 4] != b"\0\0\0\0":
                    continue  # ESP in UDP
                ike += 4
            elif 500 not in (sport, dport):
                continue
            if len(data) < ike + 28:
                continue
            exch, flags = data[ike + 18], data[ike + 19]
            f.write("%s %s %s %d %s %s\n" % (
                addr[0], ntop(data[22:38]), ntop(data[38:54]), exch,
                "response" if flags & 0x20 else "request", data[ike:ike + 8].hex()))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "listen":
        listen(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "capture":
        capture(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "normalise":
        print("\n".join(events(sys.argv[2], sys.argv[3])))
    elif len(sys.argv) == 6 and sys.argv[1] == "compare":
        ref, got = events(sys.argv[2], sys.argv[3]), events(sys.argv[4], sys.argv[5])
        if ref == got:
            print("same %d events" % len(ref))
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            [e + "\n" for e in ref], [e + "\n" for e in got], "trace (mip6d)", "model", n=3))
        return 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
