#!/usr/bin/env python3
"""Traffic for the flood tier (tests/flood/run), run inside its network namespace.

  flood.py spoof  RATE SECONDS TEMPLATE DST PREFIX   spoofed IKE_SA_INIT, a new source and SPI each
  flood.py cookie RATE SECONDS TEMPLATE DST SRC      one source that answers every COOKIE

TEMPLATE is a captured IKE_SA_INIT request (strongSwan's, tests/fixtures/strongswan). Each prints
one line of `key=value` counters at the end; what the runner checks is in tests/flood/run.

Why raw sockets for the spoofed flood: the home agent must see many source addresses (its
per-source limits and cookie table are what is under test), and replies to them must go nowhere
(the runner routes PREFIX into a dummy interface).
"""

import os
import random
import socket
import struct
import sys
import time

IPV6_HDRINCL = 36
IKE_PORT = 500
N_COOKIE = 16390
PT_NOTIFY = 41


def load(path):
    with open(path, "rb") as f:
        msg = bytearray(f.read())
    if len(msg) < 28 or msg[17] != 0x20 or msg[18] != 34:
        sys.exit(f"{path}: not an IKEv2 IKE_SA_INIT")
    return msg


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def words(b):
    n = len(b)
    if n % 2:
        b = bytes(b) + b"\0"
    return sum(struct.unpack(f">{len(b) // 2}H", b))


def paced(rate, seconds, send, between=None):
    """Calls send() `rate` times a second for `seconds` (catching up after a slow moment),
    and between() each millisecond tick; returns the time taken."""
    start = time.monotonic()
    end = start + seconds
    n = 0
    while (now := time.monotonic()) < end:
        due = int((now - start) * rate)
        while n < due:
            send()
            n += 1
        if between:
            between()
        time.sleep(0.001)
    return time.monotonic() - start


def spoof(rate, seconds, template, dst, prefix):
    """IPv6 + UDP built here; only the source's interface identifier and the SPI change, so the
    UDP checksum is the template's sum plus those words (one's complement arithmetic)."""
    msg = load(template)
    dst_b = socket.inet_pton(socket.AF_INET6, dst)
    pfx = socket.inet_pton(socket.AF_INET6, prefix)[:8]
    udp_len = 8 + len(msg)
    msg[0:8] = b"\0" * 8  # SPI filled per packet
    udp = struct.pack(">HHHH", IKE_PORT, IKE_PORT, udp_len, 0) + bytes(msg)
    # pseudo-header without the source IID (added per packet) + UDP header and body
    base = words(pfx) + words(dst_b) + udp_len + 17 + words(udp)
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_HDRINCL, 1)
    except OSError:
        pass  # implied by IPPROTO_RAW on older kernels
    ip_hdr = struct.pack(">IHBB", 6 << 28, udp_len, 17, 64)
    rnd = random.Random(4877)
    count = {"sent": 0, "errors": 0}

    def send():
        iid = rnd.getrandbits(64).to_bytes(8, "big")
        spi = rnd.getrandbits(64).to_bytes(8, "big")
        c = fold(base + words(iid) + words(spi))
        c = (~c) & 0xFFFF or 0xFFFF
        pkt = b"".join(
            (
                ip_hdr,
                pfx,
                iid,
                dst_b,
                struct.pack(">HHHH", IKE_PORT, IKE_PORT, udp_len, c),
                spi,
                udp[16:],
            )
        )
        try:
            s.sendto(pkt, (dst, 0))
            count["sent"] += 1
        except OSError:
            count["errors"] += 1

    took = paced(rate, seconds, send)
    sent, errors = count["sent"], count["errors"]
    print(f"spoofed={sent} errors={errors} seconds={took:.2f} rate={sent / took:.0f}")


def with_cookie(msg, cookie):
    """RFC 7296 2.6: the same request with N(COOKIE) as its first payload."""
    first = msg[16]
    notify = struct.pack(">BBHBBH", first, 0, 8 + len(cookie), 0, 0, N_COOKIE) + cookie
    out = bytearray(msg[:28]) + notify + msg[28:]
    out[16] = PT_NOTIFY
    out[24:28] = struct.pack(">I", len(out))
    return bytes(out)


def first_notify(data):
    """(type, data) of the first payload when it is a Notify, else None."""
    if len(data) < 36 or data[16] != PT_NOTIFY:
        return None
    plen = struct.unpack(">H", data[30:32])[0]
    ntype = struct.unpack(">H", data[34:36])[0]
    spi_size = data[33]
    return ntype, data[36 + spi_size : 28 + plen]


def cookie(rate, seconds, template, dst, src):
    msg = load(template)
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.setblocking(False)
    rnd = random.Random(6275)
    pending = {}
    c = {"sent": 0, "answered": 0, "cookies": 0, "half_open": 0, "other": 0}

    def send():
        m = bytearray(msg)
        m[0:8] = rnd.getrandbits(64).to_bytes(8, "big")
        pending[bytes(m[0:8])] = bytes(m)
        if len(pending) > 4096:
            pending.pop(next(iter(pending)))
        try:
            s.sendto(m, (dst, IKE_PORT))
        except OSError:
            pass
        c["sent"] += 1

    def answer():
        while True:
            try:
                data = s.recv(4096)
            except BlockingIOError:
                return
            n = first_notify(data)
            req = pending.get(bytes(data[0:8]))
            if n and n[0] == N_COOKIE and req is not None:
                c["cookies"] += 1
                try:
                    s.sendto(with_cookie(req, n[1]), (dst, IKE_PORT))
                    c["answered"] += 1
                except OSError:
                    pass
            elif len(data) > 28 and data[16] == 33:  # SA first: a real answer, state made
                c["half_open"] += 1
            else:
                c["other"] += 1

    took = paced(rate, seconds, send, answer)
    sent, cookies, answered = c["sent"], c["cookies"], c["answered"]
    half_open, other = c["half_open"], c["other"]
    print(
        f"sent={sent} cookies={cookies} answered={answered} half_open_made={half_open} "
        f"other={other} seconds={took:.2f}"
    )


def main():
    if len(sys.argv) != 7 or sys.argv[1] not in ("spoof", "cookie"):
        sys.exit(__doc__)
    mode, rate, seconds, template, dst, last = sys.argv[1:]
    fn = spoof if mode == "spoof" else cookie
    fn(float(rate), float(seconds), template, dst, last)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
