# shellcheck shell=bash
# Guest-side helpers (inside User-Mode Linux) shared by tests/uml/scenarios.sh and the interop
# lab: the two-namespace network, mip6d-style policies, kernel SA listings and result lines.
#
# Network (documentation prefixes):
#   ns ha: ha-eth0 = HA 2001:db8:1::1/64 (home link) + 2001:db8:2::1/64 (the MN's access router),
#          lo = CN 2001:db8:3::3/128 (a correspondent behind the HA, target of the payload ping)
#   ns mn: mn-eth0 = CoA 2001:db8:2::100/64, lo = HoA 2001:db8:1::100/128 (nodad)
# The HA reaches the HoA through the CoA (what a binding would give it).

HA=2001:db8:1::1
COA=2001:db8:2::100
HOA=2001:db8:1::100
CN=2001:db8:3::3
# IPv4 outer addresses (lab_ipv4_up; interop's IPv4 and NAT scenarios): HA and care-of address
# on the same veth. TUN_HA / TUN_COA name the tunnel's outer endpoints (IKE, tunnel SAs and
# their templates); they default to the IPv6 ones, which every other scenario uses.
HA4=192.0.2.1
COA4=192.0.2.100
RESULTS=${RESULTS:-/job/results}
LOGS=${LOGS:-/job/logs}
mkdir -p "$LOGS"

# lab_our_conf FILE ROLE(ha|mn): our daemon's configuration, from these variables:
#   OUR_POLICIES (mip6d|daemon), OUR_IKE / OUR_ESP (TOML arrays of proposals), OUR_KEYS
#   (ecdsa|rsa: the certs/ pair), OUR_SIG (rfc7427|legacy), OUR_PSK (MN: use this PSK and
#   OUR_ID instead of mn1's certificate), OUR_HOA (MN: an address or "dynamic"), OUR_USERS (HA:
#   users directory), OUR_TIMERS (lines for [timers]), OUR_CLASSES (MN: TOML array).
# Paths are relative to /job, where certs/ lives.
lab_our_conf() {
  local file=$1 role=$2 keys=${OUR_KEYS:-ecdsa}
  {
    if [[ $role == ha ]]; then
      echo 'role = "home-agent"'
    else
      echo 'role = "mobile-node"'
    fi
    echo '[listen]'
    echo "addresses = ${OUR_LISTEN:-[\"::\"]}"
    echo '[identity]'
    if [[ $role == mn && -n ${OUR_PSK:-} ]]; then
      echo "id = \"$OUR_ID\""
      echo "psk = \"$OUR_PSK\""
    else
      if [[ $role == ha ]]; then
        echo 'id = "dn:C=CH, O=mip6-ike test, CN=ha.example.net"'
        # a chain file (leaf, then intermediates) where there is one (certs/make-big-chain.sh)
        if [[ -f /job/certs/ha-$keys-chain.pem ]]; then
          echo "certificate = \"certs/ha-$keys-chain.pem\""
        else
          echo "certificate = \"certs/ha-$keys.pem\""
        fi
        echo "private_key = \"certs/ha-$keys.key\""
      else
        echo 'id = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"'
        if [[ -f /job/certs/mn1-$keys-chain.pem ]]; then
          echo "certificate = \"certs/mn1-$keys-chain.pem\""
        else
          echo "certificate = \"certs/mn1-$keys.pem\""
        fi
        echo "private_key = \"certs/mn1-$keys.key\""
      fi
      echo "signature = \"${OUR_SIG:-rfc7427}\""
    fi
    echo "ca = [\"certs/ca-$keys.pem\"]"
    echo '[proposals]'
    echo "ike = ${OUR_IKE:-[\"aes128-sha256-x25519\"]}"
    echo "esp = ${OUR_ESP:-[\"aes128-sha256\"]}"
    echo '[timers]'
    echo "${OUR_TIMERS:-retransmit_timeout = 1.0
retransmit_tries = 3
liveness_interval = 3}"
    [[ -n ${OUR_TIMERS_EXTRA:-} ]] && echo "$OUR_TIMERS_EXTRA"
    if [[ $role == ha ]]; then
      echo '[home_agent]'
      echo "address = \"$HA\""
      echo "users_dir = \"${OUR_USERS:-users}\""
    else
      echo '[mobile_node]'
      if [[ ${TUN_HA:-$HA} == *:* ]]; then
        echo "home_agent = \"[$HA]:500\""
      else
        echo "home_agent = \"$TUN_HA:500\""
        echo "home_agent_address = \"$HA\""
      fi
      echo "care_of_address = \"${TUN_COA:-$COA}\""
      echo "home_address = \"${OUR_HOA:-$HOA}\""
      echo "classes = ${OUR_CLASSES:-[\"bu-ba\", \"payload\"]}"
      echo 'home_agent_id = "dn:C=CH, O=mip6-ike test, CN=ha.example.net"'
    fi
    echo '[kernel]'
    echo 'backend = "xfrm"'
    echo "policies = \"${OUR_POLICIES:-mip6d}\""
    # Both daemons share the guest's /run: one control socket each.
    echo '[control]'
    echo "socket = \"/run/mip6-iked-$role/control.sock\""
  } >"$file"
  # it may hold a PSK: the daemon refuses a secret-bearing file others can read
  chmod 600 "$file"
}

# Kernel modules and crypto: the first SA with a new algorithm loads modules and runs the
# crypto self-tests, which under UML takes over a second; do it before any daemon has a timer.
lab_warm_kernel() {
  local k64 k32 k20
  modprobe -a esp6 xfrm_user mip6 veth || return 1
  k64=0x$(printf '%064d' 0)
  k32=0x$(printf '%032d' 0)
  k20=0x$(printf '%040d' 0)
  ip xfrm state add src ::1 dst ::1 proto esp spi 0x1 mode tunnel \
    auth 'hmac(sha256)' "$k64" enc 'cbc(aes)' "$k32" || return 1
  ip xfrm state add src ::1 dst ::1 proto esp spi 0x2 mode transport \
    aead 'rfc4106(gcm(aes))' "$k20" 128 || return 1
  ip xfrm state flush
}

lab_netns_up() {
  local ns
  for ns in ha mn; do
    ip netns add $ns || return 1
    ip -n $ns link set lo up
    # no DAD (written through /proc: procps may be absent)
    ip netns exec $ns sh -c 'echo 0 >/proc/sys/net/ipv6/conf/all/accept_dad &&
      echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad' || return 1
  done
  ip -n ha link add ha-eth0 type veth peer name mn-eth0 netns mn || return 1
  ip netns exec ha sh -c 'echo 1 >/proc/sys/net/ipv6/conf/all/forwarding'
  ip -n ha addr add $HA/64 dev ha-eth0 nodad
  ip -n ha addr add 2001:db8:2::1/64 dev ha-eth0 nodad
  ip -n ha addr add $CN/128 dev lo nodad
  ip -n mn addr add $COA/64 dev mn-eth0 nodad
  ip -n mn addr add $HOA/128 dev lo nodad
  ip -n ha link set ha-eth0 up
  ip -n mn link set mn-eth0 up
  ip -n mn -6 route add default via 2001:db8:2::1 dev mn-eth0
  ip -n ha -6 route add $HOA/128 via $COA dev ha-eth0
}

# lab_ipv4_up / lab_ipv4_down: IPv4 on the lab's veth (HA4, COA4) for the IPv4 scenarios only,
# and esp4 for IPv4 outer addresses. Removed again, so later scenarios see the IPv6-only lab.
lab_ipv4_up() {
  modprobe -a esp4 || return 1
  ip -n ha addr add $HA4/24 dev ha-eth0 &&
    ip -n mn addr add $COA4/24 dev mn-eth0
}
lab_ipv4_down() {
  ip -n ha addr del $HA4/24 dev ha-eth0 2>/dev/null
  ip -n mn addr del $COA4/24 dev mn-eth0 2>/dev/null
  true
}

# lab_nat_up / lab_nat_down: an IPv4 NAT router (interop's NAT scenarios only). A third
# namespace `nat` sits between the MN's private IPv4 network and the HA's IPv4 network, on veths
# of their own (the lab's IPv6 veth stays as it is, so the MH transport SAs HoA <-> HA do not
# cross the NAT):
#   mn: mn-lan  MN4 10.1.0.100/24, default IPv4 route via 10.1.0.1
#   nat: nat-lan 10.1.0.1/24, nat-wan NAT4 192.0.2.254/24, forwarding, iptables-legacy
#        MASQUERADE out of nat-wan; UDP source ports are mapped into 40000-49999, so that both
#        the address and the ports (500, 4500) of the MN are rewritten
#   ha: ha-wan  HA4 192.0.2.1/24, no route to 10.1.0.0/24 (only the NAT's address is reachable)
# Debian's UML 6.1 kernel has no nf_tables families but bridge: iptables-legacy (xt_MASQUERADE).
MN4=10.1.0.100
NAT4=192.0.2.254
lab_nat_up() {
  modprobe -a esp4 iptable_nat xt_MASQUERADE nf_nat nf_conntrack || return 1
  ip netns add nat || return 1
  ip -n nat link set lo up
  ip -n mn link add mn-lan type veth peer name nat-lan netns nat || return 1
  ip -n ha link add ha-wan type veth peer name nat-wan netns nat || return 1
  ip -n mn addr add $MN4/24 dev mn-lan
  ip -n nat addr add 10.1.0.1/24 dev nat-lan
  ip -n nat addr add $NAT4/24 dev nat-wan
  ip -n ha addr add $HA4/24 dev ha-wan
  ip -n mn link set mn-lan up
  ip -n nat link set nat-lan up
  ip -n nat link set nat-wan up
  ip -n ha link set ha-wan up
  ip -n mn -4 route add default via 10.1.0.1 dev mn-lan || return 1
  ip netns exec nat sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward' || return 1
  ip netns exec nat iptables-legacy -t nat -A POSTROUTING -o nat-wan -p udp \
    -j MASQUERADE --to-ports 40000-49999 || return 1
  ip netns exec nat iptables-legacy -t nat -A POSTROUTING -o nat-wan -j MASQUERADE || return 1
}
lab_nat_down() {
  ip netns del nat 2>/dev/null
  # deleting the namespace deletes the veths' other ends too
  ip -n mn link del mn-lan 2>/dev/null
  ip -n ha link del ha-wan 2>/dev/null
  true
}

lab_netns_down() {
  ip netns del mn 2>/dev/null
  ip netns del ha 2>/dev/null
  true
}

# lab_mip6d_policies NS ROLE: the policies mip6d (UMIP) installs for `IPsecPolicy Mh UseESP 1 2`
# and `IPsecPolicy TunnelPayload UseESP 3 4`: main type, ESP only, priorities 2 (MH) and 13
# (payload), one reqid per direction, transport templates without addresses.
# (mip6d's HomeRegBinding class names the MH type in sport: `proto 135 type 5` writes it exactly
# as mip6d does, but on Debian's 6.1 UML kernel an inbound MH never matched a typed policy: the
# packet is decrypted, then dropped with XfrmInTmplMismatch. `Mh` works on every kernel.)
lab_mip6d_policies() {
  local ns=$1 role=$2
  if [[ $role == mn ]]; then
    ip -n $ns xfrm policy add src $HOA/128 dst $HA/128 proto 135 dir out priority 2 \
      tmpl proto esp mode transport reqid 1 &&
      ip -n $ns xfrm policy add src $HA/128 dst $HOA/128 proto 135 dir in priority 2 \
        tmpl proto esp mode transport reqid 2 &&
      ip -n $ns xfrm policy add src $HOA/128 dst ::/0 dir out priority 13 \
        tmpl src ${TUN_COA:-$COA} dst ${TUN_HA:-$HA} proto esp mode tunnel reqid 3 &&
      ip -n $ns xfrm policy add src ::/0 dst $HOA/128 dir in priority 13 \
        tmpl src ${TUN_HA:-$HA} dst ${TUN_COA:-$COA} proto esp mode tunnel reqid 4
  else
    ip -n $ns xfrm policy add src $HOA/128 dst $HA/128 proto 135 dir in priority 2 \
      tmpl proto esp mode transport reqid 1 &&
      ip -n $ns xfrm policy add src $HA/128 dst $HOA/128 proto 135 dir out priority 2 \
        tmpl proto esp mode transport reqid 2 &&
      ip -n $ns xfrm policy add src $HOA/128 dst ::/0 dir in priority 13 \
        tmpl src ${TUN_COA:-$COA} dst ${TUN_HA:-$HA} proto esp mode tunnel reqid 3 &&
      ip -n $ns xfrm policy add src ::/0 dst $HOA/128 dir out priority 13 \
        tmpl src ${TUN_HA:-$HA} dst ${TUN_COA:-$COA} proto esp mode tunnel reqid 4
  fi
}

# lab_states NS: one line per ESP state of the kernel: "src dst spi reqid mode bytes packets
# keyed", keyed 1 for an SA with keys (an auth/auth-trunc/enc/aead/comp line), 0 for a larval
# state: the kernel's own for an ACQUIRE (SPI 0, the template's reqid) or an ALLOCSPI reservation
# (a real SPI; our daemon's SPI stock makes them with source :: and reqid 0, up to 16 per local
# address; `ip xfrm state` prints them with no algorithm line and "expire add: hard 30(sec)").
lab_states() {
  ip -n "$1" -s xfrm state 2>/dev/null | awk '
    function flush() { if (spi != "") print src, dst, spi, reqid, mode, bytes + 0, pkts + 0, keyed; spi = "" }
    /^src / { flush(); src = $2; dst = $4; bytes = 0; pkts = 0; cur = 0; keyed = 0 }
    /^\tproto esp spi/ { spi = $4; reqid = $6; mode = $8; sub(/\(.*/, "", spi); sub(/\(.*/, "", reqid) }
    /^\t(auth|auth-trunc|enc|aead|comp) / { keyed = 1 }
    /lifetime current:/ { cur = 1; next }
    cur && /\(bytes\)/ { sub(/\(bytes\),?/, "", $1); sub(/\(packets\)/, "", $2); bytes = $1; pkts = $2; cur = 0 }
    END { flush() }'
}

# lab_sas NS: one line per keyed ESP SA: "src dst spi reqid mode bytes packets". Larval states
# (lab_states) are left out: "4 SAs" means the four keyed ones, whatever SPIs a key manager
# holds in reserve.
lab_sas() { lab_states "$1" | awk '$8 == 1 { print $1, $2, $3, $4, $5, $6, $7 }'; }

# lab_larval NS: the larval states, as lab_states prints them.
lab_larval() { lab_states "$1" | awk '$8 == 0'; }

# lab_sa NS REQID FIELD: FIELD (src dst spi mode bytes packets) of the keyed SA with REQID (first one).
lab_sa() {
  lab_sas "$1" | awk -v r="$2" -v f="$3" '
    BEGIN { split("src dst spi reqid mode bytes packets", n, " "); for (i in n) col[n[i]] = i }
    $4 == r { print $(col[f]); exit }'
}

lab_sa_count() { lab_sas "$1" | wc -l; }

# lab_owned_sa_count NS: states other than the kernel's own larval states (SPI 0, made by an
# ACQUIRE when traffic hits a policy without SA; the kernel expires them): keyed SAs and
# ALLOCSPI reservations (real SPIs) alike. What a daemon that shut down must not leave behind:
# its SPI stock releases its reservations at shutdown, and so does the backend those it handed
# out that no SA completed.
lab_owned_sa_count() { lab_states "$1" | awk '$3 != "0x00000000"' | wc -l; }

# lab_acquire_count NS: the kernel's larval states for ACQUIREs (SPI 0).
lab_acquire_count() { lab_states "$1" | awk '$3 == "0x00000000"' | wc -l; }

# lab_wait_sas NS COUNT SECONDS: waits until NS has exactly COUNT ESP SAs.
lab_wait_sas() {
  local ns=$1 want=$2 end=$((SECONDS + $3))
  while ((SECONDS < end)); do
    [[ $(lab_sa_count "$ns") == "$want" ]] && return 0
    sleep 0.2
  done
  return 1
}

# lab_sa_spi NS SPI FIELD: FIELD of the SA with that SPI.
lab_sa_spi() {
  lab_sas "$1" | awk -v s="$2" -v f="$3" '
    BEGIN { split("src dst spi reqid mode bytes packets", n, " "); for (i in n) col[n[i]] = i }
    $3 == s { print $(col[f]); exit }'
}

# lab_check_ours NS: NS holds exactly the four SAs of an RFC 4877 MN-HA pair with mip6d's
# per-direction reqids (1/2 MH transport HoA<->HA, 3/4 payload tunnel CoA<->HA). Appends to WHY.
# LAB_REQIDS="3 4" expects only those (a pair without the MH transport SAs).
lab_check_ours() {
  local ns=$1 r want got n reqids=${LAB_REQIDS:-1 2 3 4}
  local nwant
  nwant=$(wc -w <<<"$reqids")
  n=$(lab_sa_count "$ns")
  [[ $n == "$nwant" ]] || WHY+="$ns has $n ESP SAs instead of $nwant; "
  for r in $reqids; do
    case $r in
      1) want="$HOA $HA transport" ;;
      2) want="$HA $HOA transport" ;;
      3) want="${TUN_COA:-$COA} ${TUN_HA:-$HA} tunnel" ;;
      4) want="${TUN_HA:-$HA} ${TUN_COA:-$COA} tunnel" ;;
    esac
    got=$(lab_sas "$ns" | awk -v r=$r '$4 == r { print $1, $2, $5 }')
    [[ $got == "$want" ]] || WHY+="$ns reqid $r: want '$want', kernel has '${got:-nothing}'; "
  done
}

# lab_check_peer OURS PEER: PEER holds the same four SAs as OURS (SPI, endpoints, mode; the
# peer's reqids are its own business). Appends to WHY.
lab_check_peer() {
  local ours=$1 peer=$2 r spi mine theirs
  for r in 1 2 3 4; do
    spi=$(lab_sa "$ours" $r spi)
    [[ -n $spi ]] || continue
    mine=$(lab_sas "$ours" | awk -v s="$spi" '$3 == s { print $1, $2, $5 }')
    theirs=$(lab_sas "$peer" | awk -v s="$spi" '$3 == s { print $1, $2, $5 }')
    [[ $mine == "$theirs" ]] || WHY+="SPI $spi: '$mine' in $ours, '${theirs:-nothing}' in $peer; "
  done
}

# lab_counters NS SPI: "bytes packets" of that SA.
lab_counters() { lab_sas "$1" | awk -v s="$2" '$3 == s { print $6, $7; exit }'; }

# lab_grew BEFORE AFTER: the packet count went up.
lab_grew() {
  local b a
  b=$(echo "$1" | cut -d' ' -f2)
  a=$(echo "$2" | cut -d' ' -f2)
  [[ -n $a && ${a:-0} -gt ${b:-0} ]]
}

# lab_traffic NAME OURS PEER REQIDS COMMAND...: runs COMMAND; the packet counters of the SAs with
# REQIDS in OURS (found by SPI in both namespaces) must grow on both ends. Appends to WHY.
lab_traffic() {
  local ours=$1 peer=$2 reqids=$3 r spi ns
  shift 3
  declare -A before
  for r in $reqids; do
    spi=$(lab_sa "$ours" $r spi)
    for ns in $ours $peer; do before[$ns.$r]=$(lab_counters $ns "$spi"); done
  done
  "$@"
  for r in $reqids; do
    spi=$(lab_sa "$ours" $r spi)
    for ns in $ours $peer; do
      lab_grew "${before[$ns.$r]}" "$(lab_counters $ns "$spi")" ||
        WHY+="$ns SA $spi (reqid $r on $ours): packets ${before[$ns.$r]#* } -> $(lab_sa_spi $ns "$spi" packets); "
    done
  done
}

# lab_ping_check NAME MN_NS HA_NS [OURS]: ping HoA -> CN through the tunnel SAs (reqids 3, 4 of
# OURS, default MN_NS); the counters grow on both ends. Prints PASS/FAIL.
lab_ping_check() {
  local name=$1 mn=$2 ha=$3 ours=${4:-$2} peer out
  [[ $ours == "$mn" ]] && peer=$ha || peer=$mn
  WHY=
  _ping() { out=$(ip netns exec "$mn" ping -6 -c 3 -i 0.3 -W 2 -I $HOA $CN 2>&1) || WHY+="ping failed; "; }
  lab_traffic "$ours" "$peer" "3 4" _ping
  if [[ -n $WHY ]]; then
    fail "$name" "$WHY" "$out" "$(lab_state "$mn"; lab_state "$ha")"
    return 1
  fi
  pass "$name"
}

# lab_mh_check NAME MN_NS HA_NS [OURS]: a Binding Update (MH type 5) HoA -> HA through the
# transport SA (reqid 1 of OURS) and a Binding Acknowledgement (type 6) HA -> HoA (reqid 2); each
# receiver sees its packet and the counters grow on both ends. Prints PASS/FAIL.
lab_mh_check() {
  local name=$1 mn=$2 ha=$3 ours=${4:-$2} peer got
  [[ $ours == "$mn" ]] && peer=$ha || peer=$mn
  WHY=
  _bu() {
    got=$(lab_mh_roundtrip "$mn" $HOA "$ha" $HA 5)
    [[ $got == "$HOA 5" ]] || WHY+="HA received '${got:-nothing}' instead of a BU from $HOA; "
  }
  _ba() {
    got=$(lab_mh_roundtrip "$ha" $HA "$mn" $HOA 6)
    [[ $got == "$HA 6" ]] || WHY+="MN received '${got:-nothing}' instead of a BA from $HA; "
  }
  lab_traffic "$ours" "$peer" 1 _bu
  lab_traffic "$ours" "$peer" 2 _ba
  if [[ -n $WHY ]]; then
    fail "$name" "$WHY" "$(lab_state "$mn"; lab_state "$ha")"
    return 1
  fi
  pass "$name"
}

# Result lines: PASS name / FAIL name: reason, with log excerpts indented under a FAIL.
pass() {
  echo "PASS $1" >>"$RESULTS"
  echo "$(date +%T) PASS $1$([[ $RESULTS == /job/results ]] || echo ' (step)')"
}
fail() {
  local name=$1 reason=$2
  shift 2
  echo "FAIL $name: $reason" >>"$RESULTS"
  echo "$(date +%T) FAIL $name"
  local f
  for f in "$@"; do
    if [[ -f $f ]]; then
      echo "    --- $(basename "$f") (last 15 lines)" >>"$RESULTS"
      tail -15 "$f" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /' >>"$RESULTS"
    else
      # a literal explanation
      printf '%s\n' "$f" | sed 's/^/    /' >>"$RESULTS"
    fi
  done
}

# lab_manual_sas: the four SAs of an RFC 4877 MN-HA pair, installed by hand on both sides (fixed
# keys), to check the lab's datapath independently of any key manager.
lab_manual_sas() {
  local ns k64 k32
  k64=0x$(printf '%064d' 1)
  k32=0x$(printf '%032d' 2)
  for ns in mn ha; do
    ip -n $ns xfrm state add src $HOA dst $HA proto esp spi 0x1001 reqid 1 mode transport \
      auth 'hmac(sha256)' "$k64" enc 'cbc(aes)' "$k32" sel src $HOA/128 dst $HA/128 proto 135 &&
      ip -n $ns xfrm state add src $HA dst $HOA proto esp spi 0x1002 reqid 2 mode transport \
        auth 'hmac(sha256)' "$k64" enc 'cbc(aes)' "$k32" sel src $HA/128 dst $HOA/128 proto 135 &&
      ip -n $ns xfrm state add src $COA dst $HA proto esp spi 0x1003 reqid 3 mode tunnel \
        auth 'hmac(sha256)' "$k64" enc 'cbc(aes)' "$k32" sel src $HOA/128 dst ::/0 &&
      ip -n $ns xfrm state add src $HA dst $COA proto esp spi 0x1004 reqid 4 mode tunnel \
        auth 'hmac(sha256)' "$k64" enc 'cbc(aes)' "$k32" sel src ::/0 dst $HOA/128 || return 1
  done
}

# lab_state NS: the kernel's SA and policy lists, for a failure report.
lab_state() {
  echo "--- ip -n $1 -s xfrm state"
  ip -n "$1" -s xfrm state 2>&1 | grep -E '^src|proto esp|lifetime current|bytes'
  echo "--- ip -n $1 xfrm policy"
  ip -n "$1" xfrm policy 2>&1 | grep -E '^src|dir|tmpl|proto esp'
}

# lab_send_mh NS SRC DST TYPE: a raw Mobility Header (next header 135) packet, e.g. a Binding
# Update (type 5), with the kernel computing the MH checksum.
lab_send_mh() {
  ip netns exec "$1" python3 - "$2" "$3" "$4" <<'EOF'
import socket, struct, sys
src, dst, mhtype = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
s.setsockopt(socket.IPPROTO_IPV6, 7, 4)   # IPV6_CHECKSUM: the MH checksum is at offset 4
s.bind((src, 0))
# payload proto 59 (none), header length 1 (16 bytes), type, reserved, checksum, sequence 1,
# flags A|H, lifetime 10 (units of 4 s), PadN(2)
mh = struct.pack("!BBBBHHHH", 59, 1, mhtype, 0, 0, 1, 0xC000, 10) + bytes([1, 2, 0, 0])
s.sendto(mh, (dst, 0))
EOF
}

# lab_recv_mh NS OUTFILE: waits (10 s) for one MH packet and writes "SRC TYPE" to OUTFILE.
# Started in the background; OUTFILE.ready appears when the socket is open.
lab_recv_mh() {
  ip netns exec "$1" python3 - "$2" <<'EOF'
import socket, sys
out = sys.argv[1]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
s.settimeout(10)
open(out + ".ready", "w").close()
try:
    data, addr = s.recvfrom(2000)
    open(out, "w").write("%s %d\n" % (addr[0], data[2] if len(data) > 2 else -1))
except socket.timeout:
    pass
EOF
}

# lab_mh_roundtrip FROM_NS SRC TO_NS DST TYPE: sends one MH packet and prints "SRC TYPE" as
# received (empty when nothing arrived).
lab_mh_roundtrip() {
  local out
  out=$(mktemp -u /tmp/mh.XXXXXX)
  lab_recv_mh "$3" "$out" &
  local rx=$! i
  for i in $(seq 1 50); do
    [[ -e $out.ready ]] && break
    sleep 0.1
  done
  lab_send_mh "$1" "$2" "$4" "$5"
  wait $rx
  cat "$out" 2>/dev/null
  rm -f "$out" "$out.ready"
}
