#!/usr/bin/env python3
"""A model of UMIP 1.0 mip6d's kernel side, built from the XFRM traces of real mip6d runs
(reference mip6d-traces, `static/` and `none/`), for the UML tier. Python standard library only.

It does to the kernel what mip6d does with `UseMnHaIPsec enabled`, `KeyMngMobCapability enabled`,
`IPsecPolicy Mh UseESP 1 2`, `IPsecPolicy TunnelPayload UseESP 3 4`: the same policies (main and
sub, priorities, selectors, templates), the same route-optimisation states (hao, route2), the
same MIGRATEs (one policy, one XFRMA_MIGRATE entry, always XFRMA_KMADDRESS), in the same order,
and real Binding Updates / Acknowledgements (raw IPPROTO_MH sockets) with mip6d's retransmission
timers. It never handles an ACQUIRE and never installs an ESP SA: that is the key manager's job.

  mip6d_model.py mn --hoa HOA --ha HA --home-if IF --slaac ADDR --ctl FIFO [--scale N]
  mip6d_model.py ha --hoa HOA --ha HA [--scale N]

MN commands (one per line on the FIFO): `move IFACE COA` (a new care-of address, usable now:
the MN registers it), `home IFACE` (back on the home link: deregistration), `quit` (as SIGINT).
The MN starts on the home link: it first registers its SLAAC address as a care-of address, then
~0.3 s later deregisters (what mip6d does at start-up, trace observation 2).
`--scale N` divides every mip6d timer (BU retransmission 1.5/3/6/12 s on a first registration,
1/2/4/8/16 s otherwise, capped at 32 s; start-up delays; the HA's 1 s DAD for a new binding).
Both roles log one line per action (`t=SECONDS what`) on stdout; the MN logs `BA accepted`.

How packets and addresses are handled (the traces show the XFRM side only; see README.md):
- BUs leave the HoA through the transport SA with the Home Address option the kernel inserts
  from the hao state (mip6d's own state); the HA reads the CoA from that option; the BA goes
  with a type 2 routing header given on the socket (IPV6_RTHDR), as mip6d's mh_send sends it.
- The HoA moves as mip6d's mv_hoa moves it (HoA/64 on the home link at home, HoA/128 on lo
  away: the model has no ip6tnl device), flagged IFA_F_HOMEADDRESS as mip6d's flag_hoa does.
- Never traced, so the model's own choice: shutdown away from home removes everything the
  model installed; a BA with an error status is ignored like a stale one.
"""
import argparse
import os
import random
import select
import signal
import socket
import struct
import time

NETLINK_XFRM = 6
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
NEWSA, DELSA, NEWPOLICY, DELPOLICY, UPDPOLICY, UPDSA, MIGRATE = 0x10, 0x11, 0x13, 0x14, 0x19, 0x1A, 0x21
XFRMA_TMPL, XFRMA_SRCADDR, XFRMA_COADDR, XFRMA_POLICY_TYPE = 5, 13, 14, 16
XFRMA_MIGRATE, XFRMA_KMADDRESS = 17, 19
DIRS = {"in": 0, "out": 1, "fwd": 2}
MODES = {"transport": 0, "tunnel": 1, "ro": 2}
PROTOS = {"esp": 50, "hao": 60, "route2": 43}  # hao = IPPROTO_DSTOPTS, route2 = IPPROTO_ROUTING
MAIN, SUB = 0, 1
MH, ICMP6 = 135, 58
INF = 0xFFFFFFFFFFFFFFFF
XFRM_STATE_WILDRECV = 8
ANY = "::/0"
T0 = time.monotonic()
SCALE = 1.0


def log(msg):
    print("t=%.3f %s" % (time.monotonic() - T0, msg), flush=True)


def a6(text):
    return socket.inet_pton(socket.AF_INET6, text.split("/")[0])


def plen(text):
    return int(text.split("/")[1]) if "/" in text else 128


def selector(src, dst, proto=0, mhtype=None):
    """struct xfrm_selector; mip6d puts an MH/ICMPv6 type in sport (mask 0xffff)."""
    sport, smask = (mhtype, 0xFFFF) if mhtype is not None else (0, 0)
    return (a6(dst) + a6(src) + struct.pack("!HHHH", 0, 0, sport, smask)
            + struct.pack("=HBBB3xiI", socket.AF_INET6, plen(dst), plen(src), proto, 0, 0))


def rtattr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


LIFETIME_CFG = struct.pack("=8Q", INF, INF, INF, INF, 0, 0, 0, 0)


class Netlink:
    def __init__(self):
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
        self.s.bind((0, 0))
        self.s.settimeout(5)
        self.seq = 0

    def request(self, kind, payload, what):
        self.seq += 1
        self.s.sendto(struct.pack("=IHHII", 16 + len(payload), kind, NLM_F_REQUEST | NLM_F_ACK,
                                  self.seq, 0) + payload, (0, 0))
        while True:
            data = self.s.recv(65536)
            _, t, _, seq, _ = struct.unpack_from("=IHHII", data)
            if t == NLMSG_ERROR and seq == self.seq:
                (err,) = struct.unpack_from("=i", data, 16)
                if err:
                    log("kernel refused %s: %s" % (what, os.strerror(-err)))
                return err == 0


class Policy:
    """One policy as the traces show it: selector, dir, ptype, priority, action, templates.
    A template is (src, dst, proto, mode, reqid, optional)."""

    def __init__(self, src, dst, dir_, prio, ptype=MAIN, proto=0, mhtype=None, block=False, tmpls=()):
        self.src, self.dst, self.dir, self.prio, self.ptype = src, dst, dir_, prio, ptype
        self.proto, self.mhtype, self.block, self.tmpls = proto, mhtype, block, list(tmpls)

    def key(self):
        return (self.src, self.dst, self.proto, self.mhtype, self.dir, self.ptype)

    def __str__(self):
        t = "".join(" tmpl %s>%s %s %s reqid %d%s" % (s, d, p, m, r, " use" if o else "")
                    for s, d, p, m, r, o in self.tmpls)
        return "%s>%s proto %d%s dir %s prio %d %s%s%s" % (
            self.src, self.dst, self.proto, "" if self.mhtype is None else " type %d" % self.mhtype,
            self.dir, self.prio, "sub" if self.ptype == SUB else "main",
            " block" if self.block else "", t)


def tmpl(src, dst, proto, mode, reqid, optional=False):
    return (src, dst, proto, mode, reqid, optional)


class Xfrm:
    """The kernel calls mip6d makes (policies, ro states, MIGRATE), each logged."""

    def __init__(self):
        self.nl = Netlink()
        self.policies = {}  # key -> Policy, what the model believes is installed

    def _ptype(self, p):
        return rtattr(XFRMA_POLICY_TYPE, struct.pack("=BHB2x", p.ptype, 0, 0)[:6])

    def policy(self, p, update=None):
        """NEWPOLICY, or UPDPOLICY when `update` (default: when the model installed it before),
        as mip6d chooses by its own bookkeeping (the monitor prints the request's type)."""
        if update is None:
            update = p.key() in self.policies
        body = (selector(p.src, p.dst, p.proto, p.mhtype) + LIFETIME_CFG + b"\0" * 32
                + struct.pack("=IIBBBB4x", p.prio, 0, DIRS[p.dir], 1 if p.block else 0, 0, 0))
        tm = b""
        for s, d, proto, mode, reqid, optional in p.tmpls:
            tm += (a6(d) + struct.pack("=IB3x", 0, PROTOS[proto]) + struct.pack("=H2x", socket.AF_INET6)
                   + a6(s) + struct.pack("=IBBBxIII", reqid, MODES[mode], 0, 1 if optional else 0,
                                         0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF))
        attrs = (rtattr(XFRMA_TMPL, tm) if tm else b"") + self._ptype(p)
        what = ("update " if update else "add ") + str(p)
        log("policy " + what)
        self.nl.request(UPDPOLICY if update else NEWPOLICY, body + attrs, what)
        self.policies[p.key()] = p

    def delete(self, p):
        log("policy delete " + str(p))
        body = selector(p.src, p.dst, p.proto, p.mhtype) + struct.pack("=IB3x", 0, DIRS[p.dir])
        self.nl.request(DELPOLICY, body + self._ptype(p), "delete " + str(p))
        self.policies.pop(p.key(), None)

    def has(self, p):
        return p.key() in self.policies

    def ro_state(self, proto, src, dst, coa, update=False, wild=False):
        """hao / route2 state (mode ro) with a care-of address; `wild`: mip6d's receive-side
        wildcard (addresses ::, flag wildrecv)."""
        sel = selector(src + "/0" if wild else src, dst + "/0" if wild else dst)
        body = (sel + a6(dst) + struct.pack("=IB3x", 0, PROTOS[proto]) + a6(src) + LIFETIME_CFG
                + b"\0" * 32 + b"\0" * 12 + struct.pack("=IIHBBB7x", 0, 0, socket.AF_INET6,
                                                        MODES["ro"], 0, XFRM_STATE_WILDRECV if wild else 0))
        what = "%s state %s %s>%s coa %s" % ("update" if update else "add", proto, src, dst, coa)
        log(what)
        self.nl.request(UPDSA if update else NEWSA, body + rtattr(XFRMA_COADDR, a6(coa)), what)

    def del_ro_state(self, proto, src, dst):
        log("delete state %s %s>%s" % (proto, src, dst))
        body = a6(dst) + struct.pack("=IHBx", 0, socket.AF_INET6, PROTOS[proto])
        self.nl.request(DELSA, body + rtattr(XFRMA_SRCADDR, a6(src)), "delete state")

    def migrate(self, p, reqid, mode, old, new, km):
        """One MIGRATE: policy p, one entry (ESP, mode, reqid, old/new endpoints), KMADDRESS."""
        body = selector(p.src, p.dst, p.proto, p.mhtype) + struct.pack("=IB3x", 0, DIRS[p.dir])
        mig = (a6(old[1]) + a6(old[0]) + a6(new[1]) + a6(new[0])
               + struct.pack("=BBHIHH", 50, MODES[mode], 0, reqid, socket.AF_INET6, socket.AF_INET6))
        kma = a6(km[0]) + a6(km[1]) + struct.pack("=IH2x", 0, socket.AF_INET6)
        what = "MIGRATE dir %s reqid %d %s old %s>%s new %s>%s km %s>%s" % (
            p.dir, reqid, mode, old[0], old[1], new[0], new[1], km[0], km[1])
        log(what)
        self.nl.request(MIGRATE, body + rtattr(XFRMA_MIGRATE, mig) + rtattr(XFRMA_KMADDRESS, kma)
                        + self._ptype(p), what)


def common_startup(x):
    """What both roles install first (xfrm_cn_init / xfrm_mn_init / xfrm_ha_init): the inbound
    HAO sub-policy and the wildcard hao state, MH bypass (priority 12), ND bypasses."""
    x.policy(Policy(ANY, ANY, "in", 9, SUB, MH, 5, tmpls=[tmpl("::", "::", "hao", "ro", 0, True)]))
    x.ro_state("hao", "::", "::", "::", wild=True)
    x.policy(Policy(ANY, ANY, "out", 12, SUB, MH))
    x.policy(Policy(ANY, ANY, "out", 12, SUB, ICMP6, 135))
    x.policy(Policy(ANY, ANY, "out", 12, MAIN, ICMP6, 135))
    x.policy(Policy(ANY, ANY, "out", 3, SUB, ICMP6, 136))
    x.policy(Policy(ANY, ANY, "out", 3, MAIN, ICMP6, 136))
    x.policy(Policy(ANY, ANY, "out", 12, SUB, ICMP6, 0))


def rtnl_addr(add, dev, addr, length):
    """RTM_NEWADDR (nodad) / RTM_DELADDR over NETLINK_ROUTE (an `ip` process per address would
    cost ~0.1 s under UML and shift the model's timing)."""
    try:
        index = socket.if_nametoindex(dev)
    except OSError as e:
        log("no interface %s: %s" % (dev, e))
        return
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    s.settimeout(2)
    # IFA_F_NODAD | IFA_F_HOMEADDRESS, as mip6d's flag_hoa ("flags 12"): the kernel accepts a
    # type 2 routing header only for a home address
    body = struct.pack("=BBBBI", socket.AF_INET6, length, 0x12 if add else 0, 0, index)
    body += rtattr(2, a6(addr)) + rtattr(1, a6(addr))  # IFA_LOCAL, IFA_ADDRESS
    flags = NLM_F_REQUEST | NLM_F_ACK | (0x400 | 0x200 if add else 0)  # NLM_F_CREATE|NLM_F_EXCL
    s.sendto(struct.pack("=IHHII", 16 + len(body), 20 if add else 21, flags, 1, 0) + body, (0, 0))
    try:
        data = s.recv(4096)
        (err,) = struct.unpack_from("=i", data, 16)
        if err:
            log("%s %s/%d on %s: %s" % ("adding" if add else "removing", addr, length, dev, os.strerror(-err)))
    except socket.timeout:
        pass
    s.close()


def mh_socket():
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, MH)
    s.setsockopt(socket.IPPROTO_IPV6, 7, 4)  # IPV6_CHECKSUM: the MH checksum at offset 4
    return s


def mh_packet(mhtype, body):
    """MH header (payload proto 59, length in 8-octet units after the first 8), body, PadN."""
    raw = struct.pack("!BBBBH", 59, 0, mhtype, 0, 0) + body
    pad = (8 - len(raw) % 8) % 8
    if pad == 1:
        raw += b"\0"
    elif pad:
        raw += bytes([1, pad - 2]) + b"\0" * (pad - 2)
    return raw[:1] + bytes([len(raw) // 8 - 1]) + raw[2:]


def stop_on_signals():
    """SIGINT/SIGTERM end the main loop at once: the handler only records the signal, the
    wake-up pipe (in every select) makes the loop see it."""
    stop = []
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w)
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    return stop, r


def sleep(s):
    time.sleep(s / SCALE)


# ---- mobile node ---------------------------------------------------------------------------

class MobileNode:
    def __init__(self, a):
        self.a, self.hoa, self.ha = a, a.hoa, a.ha
        self.x = Xfrm()
        self.rx = mh_socket()
        self.seq = random.randint(1000, 30000)
        self.block_all = False      # sub out ::/0 -> ::/0 block priority 4
        self.hoa_ha = None          # sub out HoA -> HA: "block" (prio 4) or "hao" (prio 6, after BA)
        self.in6 = False            # sub in HA -> HoA route2 priority 6 (after a BA away)
        self.hao_coa = None         # hao state HoA -> HA coa
        self.tunnel = None          # outer MN endpoint of the tunnel templates (None: no policies)
        self.at_home = True
        self.pending = None         # (seq, lifetime) of the outstanding BU
        self.next_tx = None
        self.timeout = 1.0
        self.hoa_dev = None

    # policies by name
    def P(self, name, **kw):
        hoa, ha = self.hoa + "/128", self.ha + "/128"
        d = {
            "mh_in": Policy(ha, hoa, "in", 2, MAIN, MH, tmpls=[tmpl("::", "::", "esp", "transport", 2)]),
            "mh_out": Policy(hoa, ha, "out", 2, MAIN, MH, tmpls=[tmpl("::", "::", "esp", "transport", 1)]),
            "ba_sub": Policy(ha, hoa, "in", 2, SUB, MH, 6, tmpls=[tmpl("::", "::", "route2", "ro", 0, True)]),
            "bu_sub": Policy(hoa, ha, "out", 2, SUB, MH, 5, tmpls=[tmpl(self.hoa, self.ha, "hao", "ro", 0, True)]),
            "ba_sub0": Policy(ha, hoa, "in", 2, SUB, MH, 6),
            "bu_sub0": Policy(hoa, ha, "out", 2, SUB, MH, 5),
            "block_all": Policy(ANY, ANY, "out", 4, SUB, block=True),
            "hoa_ha_block": Policy(hoa, ha, "out", 4, SUB, block=True),
            "hoa_ha_hao": Policy(hoa, ha, "out", 6, SUB, tmpls=[tmpl(self.hoa, self.ha, "hao", "ro", 0, True)]),
            "ha_hoa_rt2": Policy(ha, hoa, "in", 6, SUB, tmpls=[tmpl("::", "::", "route2", "ro", 0, True)]),
            "tun_in": Policy(ANY, hoa, "in", 13, MAIN, tmpls=[tmpl(self.ha, self.hoa, "esp", "tunnel", 4)]),
            "tun_out": Policy(hoa, ANY, "out", 13, MAIN, tmpls=[tmpl(self.hoa, self.ha, "esp", "tunnel", 3)]),
            "mh12": Policy(ANY, ANY, "out", 12, SUB, MH),
            "bu_main": Policy(hoa, ANY, "out", 4, MAIN, MH, 5),
            "bu_type7": Policy(ANY, ANY, "out", 3, SUB, MH, 7),
            "rt2_any": Policy(ANY, ANY, "in", 19, SUB, tmpls=[tmpl("::", "::", "route2", "ro", 0, True)]),
        }
        return d[name]

    def startup(self):
        """xfrm_cn_init + xfrm_mn_init (trace: MN mon 29-74)."""
        x = self.x
        common_startup(x)
        x.policy(self.P("bu_main"))
        x.policy(self.P("mh_in"))
        x.policy(self.P("mh_out"))
        x.policy(self.P("bu_type7"))
        x.policy(self.P("rt2_any"))
        x.ro_state("route2", "::", "::", "::", wild=True)
        self.move_hoa("lo", 128)

    def move_hoa(self, dev, length):
        """mip6d's mv_hoa: the HoA/64 on the home link at home, /128 elsewhere (here lo)."""
        if self.hoa_dev == dev:
            return
        if self.hoa_dev:
            rtnl_addr(False, self.hoa_dev, self.hoa, 128 if self.hoa_dev == "lo" else 64)
        rtnl_addr(True, dev, self.hoa, length)
        self.hoa_dev = dev
        log("HoA %s/%d on %s" % (self.hoa, length, dev))

    def register(self, iface, coa):
        """A home registration from a care-of address (trace: none MN mon 159-205, static
        178-223, 246-293; the start-up one with the SLAAC address, MN mon 47-90)."""
        x, P = self.x, self.P
        first = self.at_home
        log("move to %s CoA %s (%s registration)" % (iface, coa, "first" if first else "new CoA"))
        self.move_hoa("lo", 128)
        had_hoa_ha = self.hoa_ha is not None
        if self.hoa_ha == "hao":
            x.delete(P("hoa_ha_hao"))
        elif self.hoa_ha == "block":
            x.delete(P("hoa_ha_block"))
        if self.in6:
            x.delete(P("ha_hoa_rt2"))
            self.in6 = False
        if self.block_all:
            x.delete(P("block_all"))
        x.policy(P("block_all"), update=False)
        self.block_all = True
        x.policy(P("mh_in"), update=True)
        x.policy(P("mh_out"), update=True)
        x.policy(P("ba_sub"))
        x.policy(P("bu_sub"))
        x.policy(P("hoa_ha_block"), update=had_hoa_ha)
        self.hoa_ha = "block"
        x.ro_state("hao", self.hoa, self.ha, coa, update=self.hao_coa is not None)
        self.hao_coa = coa
        if self.tunnel is None:
            x.policy(P("tun_in"), update=False)
            x.policy(P("tun_out"), update=False)
            self.tunnel = self.hoa
        km = (coa, self.ha)
        x.migrate(P("mh_out"), 1, "transport", ("::", "::"), (coa, self.ha), km)
        x.migrate(P("mh_in"), 2, "transport", ("::", "::"), (self.ha, coa), km)
        x.migrate(P("tun_out"), 3, "tunnel", (self.tunnel, self.ha), (coa, self.ha), km)
        x.migrate(P("tun_in"), 4, "tunnel", (self.ha, self.tunnel), (self.ha, coa), km)
        self.tunnel = coa
        self.at_home = False
        self.start_bu(86396, 1.5 if first else 1.0)

    def deregister(self, iface):
        """Back home (trace: none MN mon 93-141 at start-up, static 316-364)."""
        x, P = self.x, self.P
        log("home on %s (deregistration)" % iface)
        if self.tunnel is not None:
            km = (self.hoa, self.ha)
            x.migrate(P("tun_out"), 3, "tunnel", (self.tunnel, self.ha), (self.hoa, self.ha), km)
            x.migrate(P("tun_in"), 4, "tunnel", (self.ha, self.tunnel), (self.ha, self.hoa), km)
            x.delete(P("tun_in"))
            x.delete(P("tun_out"))
            self.tunnel = None
        if self.block_all:
            x.delete(P("block_all"))
        x.policy(P("block_all"), update=False)
        self.block_all = True
        if self.hao_coa is not None:
            x.del_ro_state("hao", self.hoa, self.ha)
            self.hao_coa = None
        if self.hoa_ha == "hao":
            x.delete(P("hoa_ha_hao"))
        elif self.hoa_ha == "block":
            x.delete(P("hoa_ha_block"))
        self.hoa_ha = None
        if self.in6:
            x.delete(P("ha_hoa_rt2"))
            self.in6 = False
        self.move_hoa(iface, 64)
        x.policy(P("mh_in"), update=True)
        x.policy(P("mh_out"), update=True)
        x.policy(P("ba_sub0"), update=True)
        x.policy(P("bu_sub0"), update=True)
        km = (self.hoa, self.ha)
        x.migrate(P("mh_out"), 1, "transport", ("::", "::"), (self.hoa, self.ha), km)
        x.migrate(P("mh_in"), 2, "transport", ("::", "::"), (self.ha, self.hoa), km)
        self.at_home = True
        self.start_bu(0, 1.0)

    def start_bu(self, lifetime, timeout):
        self.pending = lifetime
        self.timeout = timeout
        self.send_bu()

    def send_bu(self):
        """One BU (new sequence number each time, as mip6d): A, H and K flags. mip6d refreshes
        its priority-12 MH sub-policy before each BU (trace observation 7)."""
        self.seq = (self.seq + 1) & 0xFFFF
        self.x.policy(self.P("mh12"), update=True)
        bu = mh_packet(5, struct.pack("!HHH", self.seq, 0x8000 | 0x4000 | 0x1000, self.pending // 4))
        try:
            s = mh_socket()
            s.bind((self.hoa, 0))
            s.sendto(bu, (self.ha, 0))
            s.close()
            log("BU sent seq %d lifetime %d flags AHK" % (self.seq, self.pending))
        except OSError as e:
            log("BU seq %d not sent: %s" % (self.seq, e))
        self.next_tx = time.monotonic() + self.timeout / SCALE
        self.timeout = min(self.timeout * 2, 32.0)

    def on_ba(self, data, src):
        if len(data) < 12 or data[2] != 6:
            return
        status, flags, seq, life = struct.unpack_from("!BBHH", data, 6)
        if self.pending is None or seq != self.seq or status >= 128 or src != self.ha:
            log("BA ignored: seq %d status %d from %s (outstanding seq %d)" % (seq, status, src, self.seq))
            return
        log("BA accepted seq %d status %d lifetime %d%s" % (seq, status, life * 4, " K" if flags & 0x80 else ""))
        self.pending = None
        self.next_tx = None
        x, P = self.x, self.P
        x.delete(P("block_all"))
        self.block_all = False
        if self.at_home:
            x.delete(P("bu_sub0"))
            x.delete(P("ba_sub0"))
        else:
            x.policy(P("hoa_ha_hao"), update=True)
            self.hoa_ha = "hao"
            x.policy(P("ha_hoa_rt2"), update=True)
            self.in6 = True

    def shutdown(self):
        """SIGINT (trace: none MN mon 340-404; static 373-418)."""
        x, P = self.x, self.P
        log("shutdown")
        if self.pending is not None:
            self.send_bu()
            x.delete(P("bu_sub0" if self.at_home else "bu_sub"))
            x.delete(P("ba_sub0" if self.at_home else "ba_sub"))
        if self.block_all:
            x.delete(P("block_all"))
        # away from home (never traced): what the model installed goes too
        if self.tunnel is not None:
            x.delete(P("tun_in"))
            x.delete(P("tun_out"))
        if self.hao_coa is not None:
            x.del_ro_state("hao", self.hoa, self.ha)
        if self.hoa_ha == "hao":
            x.delete(P("hoa_ha_hao"))
        elif self.hoa_ha == "block":
            x.delete(P("hoa_ha_block"))
        if self.in6:
            x.delete(P("ha_hoa_rt2"))
        x.delete(P("bu_type7"))
        x.del_ro_state("route2", "::", "::")
        x.delete(P("rt2_any"))
        x.delete(P("bu_main"))
        x.delete(P("mh_in"))
        x.delete(P("mh_out"))
        x.delete(Policy(ANY, ANY, "in", 9, SUB, MH, 5))
        x.del_ro_state("hao", "::", "::")
        for p in (Policy(ANY, ANY, "out", 12, SUB, MH), Policy(ANY, ANY, "out", 12, SUB, ICMP6, 135),
                  Policy(ANY, ANY, "out", 12, MAIN, ICMP6, 135), Policy(ANY, ANY, "out", 3, SUB, ICMP6, 136),
                  Policy(ANY, ANY, "out", 3, MAIN, ICMP6, 136), Policy(ANY, ANY, "out", 12, SUB, ICMP6, 0)):
            x.delete(p)

    def command(self, line):
        w = line.split()
        if not w:
            return True
        log("command: " + line.strip())
        if w[0] == "move" and len(w) == 3:
            self.register(w[1], w[2])
        elif w[0] == "home" and len(w) == 2:
            self.deregister(w[1])
        elif w[0] == "quit":
            return False
        else:
            log("unknown command")
        return True

    def run(self):
        a = self.a
        self.stop, self.wake = stop_on_signals()
        if not os.path.exists(a.ctl):
            os.mkfifo(a.ctl)
        ctl = os.open(a.ctl, os.O_RDWR | os.O_NONBLOCK)
        self.startup()
        # mip6d: router discovery on the home link, then the SLAAC address taken for a CoA
        # (trace: 2.1 s after start), deregistration ~0.3 s later (observation 2)
        sleep(a.start_delay)
        self.register(a.home_if, a.slaac)
        sleep(0.3)
        self.deregister(a.home_if)
        buf = b""
        while not self.stop:
            wait = 0.5 if self.next_tx is None else max(0.0, self.next_tx - time.monotonic())
            r, _, _ = select.select([self.rx, ctl, self.wake], [], [], wait)
            if self.stop:
                break
            if self.rx in r:
                data, addr = self.rx.recvfrom(2000)
                self.on_ba(data, addr[0])
            if ctl in r:
                buf += os.read(ctl, 4096)
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not self.command(line.decode()):
                        self.stop.append(1)
            if self.next_tx is not None and time.monotonic() >= self.next_tx:
                self.send_bu()
        self.shutdown()


# ---- home agent ----------------------------------------------------------------------------

class HomeAgent:
    def __init__(self, a):
        self.a, self.hoa, self.ha = a, a.hoa, a.ha
        self.x = Xfrm()
        self.rx = mh_socket()
        self.rx.setsockopt(socket.IPPROTO_IPV6, 58, 1)  # IPV6_RECVDSTOPTS: the HAO (the CoA)
        self.coa = None             # the binding's care-of address (None: no binding)
        self.tunnel = None          # the MN's outer endpoint in the tunnel templates

    def P(self, name):
        hoa, ha = self.hoa + "/128", self.ha + "/128"
        return {
            "mh_in": Policy(hoa, ha, "in", 2, MAIN, MH, tmpls=[tmpl("::", "::", "esp", "transport", 1)]),
            "mh_out": Policy(ha, hoa, "out", 2, MAIN, MH, tmpls=[tmpl("::", "::", "esp", "transport", 2)]),
            "tun_in": Policy(hoa, ANY, "in", 13, MAIN, tmpls=[tmpl(self.hoa, self.ha, "esp", "tunnel", 3)]),
            "tun_fwd": Policy(hoa, ANY, "fwd", 13, MAIN, tmpls=[tmpl(self.hoa, self.ha, "esp", "tunnel", 3)]),
            "tun_out": Policy(ANY, hoa, "out", 13, MAIN, tmpls=[tmpl(self.ha, self.hoa, "esp", "tunnel", 4)]),
            "rt2_out": Policy(ha, hoa, "out", 16, SUB, tmpls=[tmpl("::", "::", "route2", "ro", 0, True)]),
            "hao_in": Policy(hoa, ha, "in", 16, SUB, tmpls=[tmpl(self.hoa, self.ha, "hao", "ro", 0, True)]),
            "mh12": Policy(ANY, ANY, "out", 12, SUB, MH),
        }[name]

    def startup(self):
        """xfrm_cn_init + xfrm_ha_init + ha_mn_ipsec_init (trace: HA mon 29-59)."""
        common_startup(self.x)
        self.x.policy(self.P("mh_in"))
        self.x.policy(self.P("mh_out"))

    def migrate5(self, old, new, km):
        """in:1, out:2, in:3, fwd:3, out:4 (trace observation 3)."""
        x, P = self.x, self.P
        x.migrate(P("mh_in"), 1, "transport", ("::", "::"), (new, self.ha), km)
        x.migrate(P("mh_out"), 2, "transport", ("::", "::"), (self.ha, new), km)
        x.migrate(P("tun_in"), 3, "tunnel", (old, self.ha), (new, self.ha), km)
        x.migrate(P("tun_fwd"), 3, "tunnel", (old, self.ha), (new, self.ha), km)
        x.migrate(P("tun_out"), 4, "tunnel", (self.ha, old), (self.ha, new), km)

    def ro(self, coa, update):
        x = self.x
        x.ro_state("route2", self.ha, self.hoa, coa, update=update)
        x.ro_state("hao", self.hoa, self.ha, coa, update=update)
        x.policy(self.P("rt2_out"), update=update)
        x.policy(self.P("hao_in"), update=update)

    def on_bu(self, data, src, coa):
        seq, flags, life = struct.unpack_from("!HHH", data, 6)
        life *= 4
        log("BU received seq %d from %s CoA %s lifetime %d%s" % (seq, src, coa, life, " K" if flags & 0x1000 else ""))
        if src != self.hoa:
            return
        x, P = self.x, self.P
        if life and coa != self.hoa:
            if self.coa is None:
                # a new binding: DAD for the HoA's proxy first (trace: 1.0 s), BUs meanwhile
                # are dropped (static mh-ha.txt 2: seq 19136 never answered)
                sleep(self.a.dad)
                self.drain()
                x.policy(P("tun_in"), update=False)
                x.policy(P("tun_fwd"), update=False)
                x.policy(P("tun_out"), update=False)
                self.tunnel = self.hoa
                self.migrate5(self.tunnel, coa, (self.ha, coa))
                self.ro(coa, update=False)
            elif coa != self.coa:
                self.migrate5(self.tunnel, coa, (self.ha, coa))
                self.ro(coa, update=True)
            else:
                self.ro(coa, update=True)
            self.coa = self.tunnel = coa
        elif self.coa is not None:
            # deregistration (trace: static HA mon 108-181, 328-401)
            self.migrate5(self.tunnel, self.hoa, (self.ha, self.hoa))
            self.ro(self.hoa, update=True)
            x.delete(P("rt2_out"))
            x.del_ro_state("route2", self.ha, self.hoa)
            x.delete(P("hao_in"))
            x.del_ro_state("hao", self.hoa, self.ha)
            km = (self.ha, self.hoa)
            same = (self.hoa, self.ha)
            x.migrate(P("tun_in"), 3, "tunnel", same, same, km)
            x.migrate(P("tun_fwd"), 3, "tunnel", same, same, km)
            x.migrate(P("tun_out"), 4, "tunnel", (self.ha, self.hoa), (self.ha, self.hoa), km)
            x.delete(P("tun_in"))
            x.delete(P("tun_fwd"))
            x.delete(P("tun_out"))
            self.coa = self.tunnel = None
        self.send_ba(seq, life, flags & 0x1000, coa)

    def send_ba(self, seq, life, k, coa):
        self.x.policy(self.P("mh12"), update=True)
        ba = mh_packet(6, struct.pack("!BBHH", 0, 0x80 if k else 0, seq, life // 4))
        anc = []
        if coa != self.hoa:
            # type 2 routing header to the CoA (the kernel puts the HoA in it)
            anc = [(socket.IPPROTO_IPV6, 57, struct.pack("!BBBB4x", 0, 2, 2, 1) + a6(coa))]
        try:
            s = mh_socket()
            s.bind((self.ha, 0))
            s.sendmsg([ba], anc, 0, (self.hoa, 0))
            s.close()
            log("BA sent seq %d status 0 lifetime %d%s%s" % (seq, life, " K" if k else "",
                                                              " rth %s" % coa if anc else ""))
        except OSError as e:
            log("BA seq %d not sent: %s" % (seq, e))

    def drain(self):
        self.rx.setblocking(False)
        try:
            while True:
                data, _ = self.rx.recvfrom(2000)
                log("BU dropped while the binding is being set up (%d bytes)" % len(data))
        except BlockingIOError:
            pass
        self.rx.setblocking(True)

    def recv(self):
        data, anc, _, addr = self.rx.recvmsg(2000, 512)
        coa = addr[0]
        for level, kind, opt in anc:
            if level == socket.IPPROTO_IPV6 and kind == 59:  # IPV6_DSTOPTS
                i = 2
                while i + 1 < len(opt):
                    if opt[i] == 0:
                        i += 1
                        continue
                    if opt[i] == 0xC9 and opt[i + 1] == 16:  # Home Address option: the CoA
                        coa = socket.inet_ntop(socket.AF_INET6, opt[i + 2:i + 18])
                    i += 2 + opt[i + 1]
        return data, addr[0], coa

    def run(self):
        self.stop, self.wake = stop_on_signals()
        self.startup()
        while not self.stop:
            r, _, _ = select.select([self.rx, self.wake], [], [], 0.5)
            if self.rx in r:
                data, src, coa = self.recv()
                if len(data) >= 12 and data[2] == 5:
                    self.on_bu(data, src, coa)
        log("shutdown")
        x = self.x
        if self.coa is not None:  # never traced: a binding left at shutdown
            for n in ("rt2_out", "hao_in", "tun_in", "tun_fwd", "tun_out"):
                x.delete(self.P(n))
            x.del_ro_state("route2", self.ha, self.hoa)
            x.del_ro_state("hao", self.hoa, self.ha)
        x.delete(self.P("mh_in"))
        x.delete(self.P("mh_out"))
        x.delete(Policy(ANY, ANY, "in", 9, SUB, MH, 5))
        x.del_ro_state("hao", "::", "::")
        for p in (Policy(ANY, ANY, "out", 12, SUB, MH), Policy(ANY, ANY, "out", 12, SUB, ICMP6, 135),
                  Policy(ANY, ANY, "out", 12, MAIN, ICMP6, 135), Policy(ANY, ANY, "out", 3, SUB, ICMP6, 136),
                  Policy(ANY, ANY, "out", 3, MAIN, ICMP6, 136), Policy(ANY, ANY, "out", 12, SUB, ICMP6, 0)):
            x.delete(p)


def main():
    global SCALE
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("role", choices=["mn", "ha"])
    p.add_argument("--hoa", required=True)
    p.add_argument("--ha", required=True)
    p.add_argument("--home-if", default="mn-home")
    p.add_argument("--slaac")
    p.add_argument("--ctl", default="/tmp/mip6d-model.ctl")
    p.add_argument("--scale", type=float, default=1.0, help="divide mip6d's timers by this")
    p.add_argument("--start-delay", type=float, default=2.1,
                   help="MN: seconds (unscaled) from start to the first registration")
    p.add_argument("--dad", type=float, default=1.0, help="HA: seconds (unscaled) of DAD for a new binding")
    a = p.parse_args()
    SCALE = a.scale
    log("mip6d model, role %s, HoA %s, HA %s, timers / %g, epoch %.6f" % (
        a.role, a.hoa, a.ha, SCALE, time.time() - (time.monotonic() - T0)))
    if a.role == "mn":
        if not a.slaac:
            p.error("mn needs --slaac")
        MobileNode(a).run()
    else:
        HomeAgent(a).run()
    log("stopped")


if __name__ == "__main__":
    main()
