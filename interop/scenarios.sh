# shellcheck shell=bash
# Runs INSIDE User-Mode Linux (started by interop/run): strongSwan against our daemon, in both
# roles, in two network namespaces with real ESP. Appends PASS/FAIL lines to /job/results.
set -u
# shellcheck source=/dev/null
. /job/env
# shellcheck source=tests/uml/lab.sh
. /job/lab.sh
# shellcheck source=interop/swan.sh
. /job/swan.sh

IKED=$BIN/mip6-iked
export RUST_LOG=${RUST_LOG:-debug} NO_COLOR=1
ONLY=${ONLY:-}

# ours_start NS ROLE LOG: our daemon with /job/ROLE.toml in NS.
ours_start() {
  ip netns exec "$1" "$IKED" --config "/job/$2.toml" >>"$LOGS/$3" 2>&1 &
  echo $! >/tmp/ours-"$1".pid
}

ours_stop() {
  local pid i
  pid=$(cat /tmp/ours-"$1".pid 2>/dev/null) || return 0
  kill -"${2:-TERM}" "$pid" 2>/dev/null
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -f /tmp/ours-"$1".pid
}

ours_alive() { kill -0 "$(cat /tmp/ours-"$1".pid 2>/dev/null)" 2>/dev/null; }

# reset: every daemon stopped, no SA or policy left in either namespace.
reset() {
  ours_stop mn
  ours_stop ha
  swan_stop mn
  swan_stop ha
  local ns
  ip -n mn addr replace $HOA/128 dev lo nodad
  for ns in mn ha; do
    ip -n $ns xfrm state flush
    ip -n $ns xfrm policy flush
    ip -n $ns -6 route flush table 220 2>/dev/null
  done
}

# wait_sas OURS SECONDS: both namespaces hold 4 ESP SAs (SA_WANT when set); early exit when
# our daemon died.
wait_sas() {
  local ours=$1 end=$((SECONDS + $2)) want=${SA_WANT:-4}
  while ((SECONDS < end)); do
    [[ $(lab_sa_count mn) == "$want" && $(lab_sa_count ha) == "$want" ]] && return 0
    ours_alive "$ours" || {
      WHY+="our daemon ($ours) exited; "
      return 1
    }
    sleep 0.2
  done
  WHY+="after $2 s the MN has $(lab_sa_count mn) ESP SAs, the HA $(lab_sa_count ha) (want $want each); "
  return 1
}

# swan_children_ok NODE: swanctl --list-sas shows both children installed, mh in transport mode
# (only the children in SW_CHILDREN when set).
swan_children_ok() {
  local out
  out=$(sw "$1" --list-sas 2>&1)
  echo "$out" >"$SWAN/$1/list-sas.out"
  if [[ " ${SW_CHILDREN:-mh tun} " == *" mh "* ]]; then
    grep -qE '^ *mh: #[0-9]+, reqid [0-9]+, INSTALLED, TRANSPORT' <<<"$out" ||
      WHY+="swanctl --list-sas ($1): no installed TRANSPORT child mh; "
  fi
  grep -qE '^ *tun: #[0-9]+, reqid [0-9]+, INSTALLED, TUNNEL' <<<"$out" ||
    WHY+="swanctl --list-sas ($1): no installed TUNNEL child tun; "
}

# user_file FILE IDENTITY HOA [PSK]: one user of our HA (classes bu-ba and payload).
user_file() {
  {
    echo "identity = \"$2\""
    if [[ -n ${4:-} ]]; then
      echo 'auth = "psk"'
      echo "psk = \"$4\""
    else
      echo 'auth = "certificate"'
    fi
    echo "home_addresses = [\"$3\"]"
    echo 'classes = ["bu-ba", "payload"]'
  } >"$1"
  # A file holding a pre-shared key must be private, or the daemon refuses it.
  chmod 600 "$1"
}

# up DIR LOG: brings the pair up in direction DIR (our-mn: our MN, strongSwan HA; swan-mn:
# strongSwan MN, our HA) with the current OUR_* / SW_* settings. Sets OURS, PEER. WHY on failure.
up() {
  local dir=$1 log=$2
  WHY=
  if [[ $dir == our-mn ]]; then
    OURS=mn PEER=ha
    lab_mip6d_policies mn mn
    swan_conf ha ha
    swan_start ha || WHY+="charon (ha) did not start; "
    lab_our_conf /job/mn.toml mn
    # It may hold OUR_PSK: the daemon refuses a PSK file that group or others may read.
    chmod 600 /job/mn.toml
    ours_start mn mn "$log"
  else
    OURS=ha PEER=mn
    lab_mip6d_policies ha ha
    if [[ -z ${OUR_USERS:-} ]]; then
      mkdir -p /job/users
      user_file /job/users/mn1.toml "dn:C=CH, O=mip6-ike test, CN=mn1@example.net" $HOA
    fi
    lab_our_conf /job/ha.toml ha
    ours_start ha ha "$log"
    swan_conf mn mn
    swan_start mn || WHY+="charon (mn) did not start; "
    sleep 0.3
    ours_alive ha || {
      WHY+="our daemon (ha) exited; "
      return 1
    }
    : >"$SWAN/mn/initiate.out"
    local child
    for child in ${SW_CHILDREN:-mh tun}; do
      sw mn --initiate --child "$child" --timeout 30 >>"$SWAN/mn/initiate.out" 2>&1 ||
        WHY+="swanctl --initiate --child $child failed: $(grep -m1 -iE 'failed|error|unacceptable' "$SWAN/mn/initiate.out"); "
    done
  fi
  [[ -z $WHY ]] || return 1
  wait_sas $OURS 40 || return 1
  settled swan_children_ok $PEER
}

# settled [EXTRA_CHECK ARGS]: our SAs have the RFC 4877 shape and the peer holds the same ones.
# A rekey in flight briefly shows old and new SAs side by side, so give it up to 5 s to settle.
settled() {
  local i
  for i in $(seq 1 15); do
    WHY=
    lab_check_ours $OURS
    if [[ ${PEER_SPI_ONLY:-} ]]; then
      lab_check_peer_spi $OURS $PEER
    else
      lab_check_peer $OURS $PEER
    fi
    [[ $# -gt 0 ]] && "$@"
    [[ -z $WHY ]] && return 0
    sleep 0.3
  done
  return 1
}

# lab_check_peer_spi OURS PEER: like lab_check_peer, but only SPI and mode must match.
lab_check_peer_spi() {
  local r spi mine theirs
  for r in 1 2 3 4; do
    spi=$(lab_sa "$1" $r spi)
    [[ -n $spi ]] || continue
    mine=$(lab_sa_spi "$1" "$spi" mode)
    theirs=$(lab_sa_spi "$2" "$spi" mode)
    [[ $mine == "$theirs" ]] || WHY+="SPI $spi: '$mine' in $1, '${theirs:-nothing}' in $2; "
  done
}

# report NAME LOG: FAIL with the logs of both sides, or nothing.
explain() {
  local name=$1 log=$2 reason=$3
  fail "$name" "$reason" "$LOGS/$log" "$SWAN/$PEER/charon.log" "$(lab_state mn; lab_state ha)"
}

# basic NAME DIR: the pair comes up, a ping through the tunnel SAs and MH through the transport
# SAs arrive (kernel counters on both ends), and strongSwan lists both children.
basic() {
  local name=$1 dir=$2 log=$1.log
  # for CHECK functions: this scenario's log (of our daemon) and name
  CUR_LOG=$log CUR_NAME=$name
  reset
  if ! up "$dir" "$log"; then
    explain "$name" "$log" "$WHY"
    return 1
  fi
  local ok=0
  RESULTS=/tmp/sub lab_ping_check "$name" mn ha $OURS || ok=1
  if [[ -z ${NO_MH:-} ]]; then
    RESULTS=/tmp/sub lab_mh_check "$name" mn ha $OURS || ok=1
  fi
  if ((ok)); then
    grep -v '^PASS ' /tmp/sub >>"$RESULTS"
    rm -f /tmp/sub
    return 1
  fi
  rm -f /tmp/sub
  sw $PEER --list-sas >"$LOGS/$name.list-sas" 2>&1
  if [[ -n ${CHECK:-} ]]; then
    WHY=
    $CHECK
    if [[ -n $WHY ]]; then
      explain "$name" "$log" "$WHY"
      return 1
    fi
  fi
  pass "$name"
}

# ---- our control socket (mip6-ikectl) ----------------------------------------------------

# ctl ROLE ARGS...: our daemon's control CLI, JSON results (lab_our_conf: one socket per role).
ctl() {
  local role=$1
  shift
  "$BIN/mip6-ikectl" --socket "/run/mip6-iked-$role/control.sock" --json "$@"
}

# What every ctl_py check starts with: `role`, `hoa`, `r` (the JSON result), `kern` ({SPI:
# reqid} of our kernel's ESP SAs), `args` (the extra arguments), `hx` and an empty `why`.
CTL_PRELUDE=$(
  cat <<'EOF'
import json, sys
role, hoa, out, kernel = sys.argv[1:5]
args = sys.argv[5:]
def hx(v):
    try:
        return int(str(v), 16)
    except ValueError:
        return -1
kern = {}
for line in kernel.splitlines():
    f = line.split()
    if len(f) >= 4 and f[3].isdigit():
        kern[hx(f[2])] = int(f[3])
try:
    r = json.loads(out)
except ValueError as e:
    print(f"mip6-ikectl ({role}) answered no JSON ({e}): {out[:200]}; ", end="")
    sys.exit()
why = []
EOF
)

# ctl_py ROLE REQUEST [ARGS...] <<PYTHON: `mip6-ikectl REQUEST` on our side, checked by the
# Python code on stdin (after CTL_PRELUDE); what it appends to `why` goes to WHY.
ctl_py() {
  local role=$1 req=$2 out code
  shift 2
  code=$(cat)
  if ! out=$(ctl "$role" $req 2>&1); then
    WHY+="mip6-ikectl $req ($role) failed: $out; "
    return
  fi
  WHY+=$(python3 -c "$CTL_PRELUDE
$code
print(''.join(f'mip6-ikectl {sys.argv[1]}: {w}; ' for w in why), end='')" \
    "$role" "$HOA" "$out" "$(lab_sas "$role")" "$@" 2>&1)
}

# The peer's identity as our side lists it.
ctl_peer_id() {
  if [[ $OURS == mn ]]; then
    echo "CN=ha.example.net"
  else
    echo "${SW_ID:-CN=mn1@example.net}"
  fi
}

# ctl_check_sas IKE_TRANSFORM CHILD_TRANSFORM: `mip6-ikectl sas` on our side lists one
# established IKE SA with the peer's identity, IKE_TRANSFORM and our home address, and its two
# CHILD_SAs: bu-ba (transport) and payload (tunnel; CTL_CLASSES when set) with mip6d's reqids, CHILD_TRANSFORM and
# exactly the SPIs (with those reqids) our kernel holds. Appends to WHY.
ctl_check_sas() {
  ctl_py $OURS sas "$(ctl_peer_id)" "$1" "$2" "${CTL_CLASSES:-bu-ba payload}" <<'EOF'
peer, ike_tf, child_tf, want_classes = args
est = [s for s in r.get("ike_sas", []) if s.get("state") == "established"]
if len(est) != 1:
    why.append(f"{len(est)} established IKE SAs listed (want 1)")
for s in est[:1]:
    got = s.get("peer")
    if peer not in str(got):
        why.append(f"IKE SA peer {got!r}, want {peer!r}")
    got = s.get("transforms")
    if ike_tf not in str(got):
        why.append(f"IKE SA transforms {got!r} without {ike_tf}")
    got = s.get("home_address")
    if got != hoa:
        why.append(f"home_address {got!r}, want {hoa}")
    ch = s.get("children", [])
    classes = sorted(str(c.get("class")) for c in ch)
    if classes != sorted(want_classes.split()):
        why.append(f"CHILD_SA classes {classes} (want {want_classes})")
    # (mode, reqid_in, reqid_out) on the HA: mip6d's reqids 1/2 MH to the HA / to the MN,
    # 3/4 payload; the MN's are the other way round.
    want = {"bu-ba": ("transport", 1, 2), "payload": ("tunnel", 3, 4)}
    for c in ch:
        name = c.get("class")
        if name not in want:
            continue
        mode, rin, rout = want[name]
        if role == "mn":
            rin, rout = rout, rin
        got = c.get("mode")
        if got != mode:
            why.append(f"{name} mode {got!r}, want {mode}")
        got = (c.get("reqid_in"), c.get("reqid_out"))
        if got != (rin, rout):
            why.append(f"{name} reqids {got}, want {(rin, rout)}")
        got = c.get("transforms")
        if child_tf not in str(got):
            why.append(f"{name} transforms {got!r} without {child_tf}")
        for d, rq in (("spi_in", rin), ("spi_out", rout)):
            spi = c.get(d)
            got = kern.get(hx(spi))
            if got != rq:
                why.append(f"{name} {d} {spi}: our kernel has it with reqid {got} (want {rq})")
EOF
}

# ctl_ike_ids ROLE: the IKE SAs our side lists (their `ike` ids), one a line.
ctl_ike_ids() {
  ctl "$1" sas 2>/dev/null | python3 -c '
import json, sys
try:
    for s in json.load(sys.stdin).get("ike_sas", []):
        print(s.get("ike"))
except ValueError:
    pass'
}

# ctl_spis ROLE: "ike spi_in spi_out ..." of what our side lists, sorted (a generation's names).
ctl_spis() {
  ctl "$1" sas 2>/dev/null | python3 -c '
import json, sys
try:
    for s in json.load(sys.stdin).get("ike_sas", []):
        print(s.get("ike"))
        for c in s.get("children", []):
            print(c.get("spi_in"))
            print(c.get("spi_out"))
except ValueError:
    pass' | sort
}

# ctl_gone ROLE ID WHAT: the IKE SA ID is no longer listed, or WHY grows.
ctl_gone() {
  [[ -n $2 ]] || {
    WHY+="$3: no IKE SA id from mip6-ikectl ($1) to compare; "
    return
  }
  ctl_ike_ids "$1" | grep -qx "$2" && WHY+="$3: mip6-ikectl ($1) still lists IKE SA $2; "
}

# ---- scenarios -----------------------------------------------------------------------------

# 0: strongSwan against strongSwan in this lab (the lab's own check, with strongSwan's reqids).
sc_swan_vs_swan() {
  local name=lab-swan-vs-swan
  reset
  swan_conf ha ha
  swan_conf mn mn
  WHY=
  swan_start ha && swan_start mn || WHY+="charon did not start; "
  sw mn --initiate --child mh --timeout 30 >"$SWAN/mn/initiate.out" 2>&1 || WHY+="initiate mh failed; "
  sw mn --initiate --child tun --timeout 30 >>"$SWAN/mn/initiate.out" 2>&1 || WHY+="initiate tun failed; "
  swan_children_ok mn
  swan_children_ok ha
  if [[ -z $WHY ]]; then
    ip netns exec mn ping -6 -c 2 -i 0.3 -W 2 -I $HOA $CN >/dev/null 2>&1 || WHY+="ping failed; "
    [[ $(lab_mh_roundtrip mn $HOA ha $HA 5) == "$HOA 5" ]] || WHY+="BU did not arrive; "
  fi
  if [[ -n $WHY ]]; then
    fail "$name" "$WHY" "$SWAN/mn/charon.log" "$SWAN/ha/charon.log" "$(lab_state mn; lab_state ha)"
    return 1
  fi
  pass "$name"
}

# keep_logs NAME: strongSwan's logs next to ours in /job/logs.
keep_logs() {
  local node
  for node in mn ha; do
    [[ -f $SWAN/$node/charon.log ]] && cp "$SWAN/$node/charon.log" "$LOGS/$1.charon-$node.log"
  done
}

# charon_says NODE REGEX WHAT: strongSwan's log on NODE has a line matching REGEX, or WHY grows.
charon_says() {
  grep -qE "$2" "$SWAN/$1/charon.log" 2>/dev/null || WHY+="charon ($1) log has no '$2' ($3); "
}

# 1: ECDSA P-256 certificates (AUTH method 9 both ways: RFC 7427 is scenario 4), X25519,
# AES-128-CBC/HMAC-SHA2-256.
sc1() {
  OUR_SIG=legacy SW_SIGAUTH=no CHECK=check_sc1 basic "$1" "$2"
}
check_sc1() {
  charon_says $PEER 'with ECDSA-256 signature successful' "peer authenticated with AUTH method 9"
  charon_says $PEER 'CURVE_25519' "X25519"
  ctl_check_sas CURVE_25519 AES_CBC_128
}

# 2: RSA-2048 certificates with MODP-2048.
sc2() {
  OUR_KEYS=rsa SW_KEYS=rsa OUR_IKE='["aes128-sha256-modp2048"]' SW_IKE=aes128-sha256-modp2048 \
    CHECK=check_sc2 basic "$1" "$2"
}
check_sc2() {
  charon_says $PEER 'authentication of .*CN=(mn1@|ha\.)example\.net.* with RSA.* successful' "RSA authentication"
  charon_says $PEER 'MODP_2048' "MODP-2048"
  ctl_check_sas MODP_2048 AES_CBC_128
}

# 3: PSK, ECP-256, AES-GCM-16 for ESP.
PSK=interop-only-psk-0123456789abcdef
sc3() {
  mkdir -p /job/users-psk
  user_file /job/users-psk/mnpsk.toml "fqdn:mnpsk.example.net" $HOA "$PSK"
  OUR_PSK=$PSK OUR_ID=fqdn:mnpsk.example.net OUR_USERS=users-psk SW_AUTH=psk SW_PSK=$PSK \
    SW_ID=mnpsk.example.net OUR_IKE='["aes128-sha256-ecp256"]' SW_IKE=aes128-sha256-ecp256 \
    OUR_ESP='["aes128gcm16"]' SW_ESP=aes128gcm16 CHECK=check_sc3 basic "$1" "$2"
}
check_sc3() {
  charon_says $PEER 'with pre-shared key successful' "PSK authentication"
  charon_says $PEER 'ECP_256' "ECP-256"
  ip -n $OURS xfrm state | grep -q 'rfc4106(gcm(aes))' || WHY+="no AES-GCM SA in our kernel; "
  ctl_check_sas ECP_256 AES_GCM_16
}

# 4: RFC 7427 digital signatures (strongSwan pubkey-sha256).
sc4() {
  OUR_SIG=rfc7427 SW_AUTH=pubkey-sha256 CHECK=check_sc4 basic "$1" "$2"
}
check_sc4() {
  charon_says $PEER 'with ECDSA_WITH_SHA256_DER successful' "peer authenticated with an RFC 7427 signature"
  ctl_check_sas CURVE_25519 AES_CBC_128
}

# 7: authorization. A strongSwan MN with mn1's valid certificate asks for mn2's home address:
# our HA refuses (TS_UNACCEPTABLE) and installs nothing for it. Reverse: our MN asks a strongSwan
# HA for an address the HA does not give it, and installs nothing.
sc7() {
  local name=$1 dir=$2 log=$1.log other=2001:db8:1::200 i spis left n
  reset
  WHY=
  if [[ $dir == swan-mn ]]; then
    OURS=ha PEER=mn
    mkdir -p /job/users-authz
    user_file /job/users-authz/mn1.toml "dn:C=CH, O=mip6-ike test, CN=mn1@example.net" $HOA
    user_file /job/users-authz/mn2.toml "dn:C=CH, O=mip6-ike test, CN=mn2@example.net" $other
    lab_mip6d_policies ha ha
    OUR_USERS=users-authz lab_our_conf /job/ha.toml ha
    ours_start ha ha "$log"
    SW_MN_HOA=$other swan_conf mn mn
    swan_start mn || WHY+="charon (mn) did not start; "
    sleep 0.3
    if sw mn --initiate --child mh --timeout 20 >"$SWAN/mn/initiate.out" 2>&1; then
      WHY+="strongSwan got a CHILD_SA for $other; "
    fi
    charon_says mn 'N\(TS_UNACCEPT\)' "our HA's refusal"
    grep -q "$other" "$LOGS/$log" || WHY+="our HA's log does not name $other; "
    ctl_py ha stats <<'PY'
if r.get("ts_refused", 0) < 1:
    why.append(f"stats: ts_refused {r.get('ts_refused')} (want the refusal counted)")
PY
  else
    OURS=mn PEER=ha
    lab_mip6d_policies mn mn
    swan_conf ha ha
    swan_start ha || WHY+="charon (ha) did not start; "
    OUR_HOA=$other lab_our_conf /job/mn.toml mn
    ours_start mn mn "$log"
    sleep 8
    grep -qE 'CHILD_SA not established.*notify=TS_UNACCEPTABLE\(38\)' "$LOGS/$log" ||
      WHY+="our MN's log has no CHILD_SA refused with TS_UNACCEPTABLE (38); "
    charon_says ha "traffic selectors .*$other/128.* unacceptable" "strongSwan's refusal"
    charon_says ha 'N\(TS_UNACCEPT\)' "TS_UNACCEPTABLE sent"
    ctl_py mn stats <<'PY'
if not [x for x in r.get("failures", []) if x.get("notify") == "TS_UNACCEPTABLE"]:
    why.append(f"stats: no failure with TS_UNACCEPTABLE in {r.get('failures')}")
PY
    # Every inbound SPI our MN took (its log names each with its address: the HoA's for the MH
    # transport SA, the CoA's for the tunnel; taken from the SPI stock, a larval ALLOCSPI state,
    # or chosen by the engine) is gone with the refusal: no state with that address and SPI,
    # keyed or larval. A retry in flight may hold one for a moment.
    for i in 1 2 3 4 5 6; do
      spis=$(sed -n 's/.*inbound SPI dst=\([0-9a-f:.]*\) spi=\([0-9a-f]\{8\}\).*/\1 0x\2/p' "$LOGS/$log" | sort -u)
      left=$(lab_states mn | awk -v l="$spis" 'BEGIN { n = split(l, w, "\n"); for (i = 1; i <= n; i++) took[w[i]] = 1 }
        took[$2 " " $3] { print $2, $3 }')
      [[ -z $left ]] && break
      sleep 0.5
    done
    grep -q "inbound SPI dst=$other " "$LOGS/$log" ||
      WHY+="our MN's log names no inbound SPI for $other (debug 'inbound SPI dst=...'); "
    [[ -z $left ]] || WHY+="our MN's kernel keeps states with the refused CHILD_SA's SPIs: $(echo $left); "
    # What else names the address can only be the SPI stock's reservations (larval, source ::,
    # reqid 0, at most 16 per address), and those go when our daemon stops.
    left=$(lab_states mn | awk -v a="$other" '($1 == a || $2 == a) && !($8 == 0 && $1 == "::" && $4 == 0)')
    [[ -z $left ]] || WHY+="our MN's kernel has states for $other that are not SPI reservations: $(echo $left); "
    n=$(lab_larval mn | awk -v a="$other" '$2 == a' | wc -l)
    ((n <= 16)) || WHY+="our MN's kernel holds $n reservations for $other (the stock keeps at most 16); "
  fi
  # our side lists no CHILD_SA at all
  ctl_py $OURS sas <<'PY'
for s in r.get("ike_sas", []):
    for c in s.get("children", []):
        why.append(f"lists CHILD_SA {c.get('spi_in')} ({c.get('class')}, {c.get('ts_remote')})")
PY
  # a keyed SA naming the address (ALLOCSPI's larval states carry no keys and expire in 30 s)
  for n in mn ha; do
    ip -n $n xfrm state | awk -v a="$other" '
      /^src / { hit = ($2 == a || $4 == a) }
      /sel src/ && index($0, a) { hit = 1 }
      /^\t(enc|aead|auth)/ && hit { found = 1 }
      END { exit !found }' && WHY+="$n kernel has a keyed SA for $other; "
  done
  if [[ $OURS == mn ]]; then
    ours_stop mn
    n=$(lab_states mn | awk -v a="$other" '$1 == a || $2 == a' | wc -l)
    ((n == 0)) || WHY+="after our MN stopped its kernel still has $n states for $other (reservations not released); "
  fi
  keep_logs "$name"
  if [[ -n $WHY ]]; then
    explain "$name" "$log" "$WHY"
    return 1
  fi
  pass "$name"
}

# wait_count NS N SECONDS: NS holds exactly N ESP SAs within SECONDS.
wait_count() { lab_wait_sas "$1" "$2" "$3"; }

# 8: delete and liveness. The peer deletes the IKE SA: our side removes its SAs. Our side
# deletes (SIGTERM): the peer removes its SAs. The peer falls silent (SIGSTOP): our liveness
# check notices and our SAs go.
sc8() {
  local name=$1 dir=$2 log=$1.log t
  reset
  if ! up "$dir" "$log"; then
    explain "$name" "$log" "$WHY"
    return 1
  fi
  WHY=
  local ike
  ike=$(ctl_ike_ids $OURS | head -1)
  # (a) the peer deletes
  if [[ $dir == our-mn ]]; then
    sw ha --terminate --ike mip6 --timeout 10 >/dev/null 2>&1 || WHY+="swanctl --terminate (ha) failed; "
  else
    sw mn --terminate --ike mip6 --timeout 10 >/dev/null 2>&1 || WHY+="swanctl --terminate (mn) failed; "
  fi
  wait_count $OURS 0 5 || WHY+="(a) after strongSwan's Delete our $OURS kernel still has $(lab_sa_count $OURS) SAs; "
  ctl_gone $OURS "$ike" "(a)"
  # our HA initiates nothing: its listing is empty
  [[ $OURS == ha && -n $(ctl_ike_ids ha) ]] && WHY+="(a) mip6-ikectl (ha) lists IKE SAs $(echo $(ctl_ike_ids ha)); "
  # (b) we delete: our daemon stops with SIGTERM
  if [[ $dir == our-mn ]]; then
    wait_sas mn 20 || WHY+="(b) our MN did not initiate again; "
  else
    sw mn --initiate --child mh --timeout 20 >/dev/null 2>&1 && sw mn --initiate --child tun --timeout 20 >/dev/null 2>&1 ||
      WHY+="(b) strongSwan could not initiate again; "
  fi
  [[ $(lab_sa_count $PEER) == 4 ]] || WHY+="(b) the peer has $(lab_sa_count $PEER) SAs before our Delete; "
  ours_stop $OURS
  wait_count $PEER 0 5 || WHY+="(b) after our Delete strongSwan ($PEER) kernel still has $(lab_sa_count $PEER) SAs; "
  sw $PEER --list-sas 2>/dev/null | grep -q 'mip6: #' && WHY+="(b) swanctl --list-sas ($PEER) still lists the IKE SA; "
  # (c) the peer falls silent
  if [[ $dir == our-mn ]]; then
    ours_start mn mn "$log"
    wait_sas mn 20 || WHY+="(c) no SAs after our MN's restart; "
  else
    ours_start ha ha "$log"
    sleep 0.5
    sw mn --initiate --child mh --timeout 20 >/dev/null 2>&1 && sw mn --initiate --child tun --timeout 20 >/dev/null 2>&1 ||
      WHY+="(c) strongSwan could not initiate again; "
  fi
  [[ $(lab_sa_count $OURS) == 4 ]] || WHY+="(c) our $OURS has $(lab_sa_count $OURS) SAs before the silence; "
  ike=$(ctl_ike_ids $OURS | head -1)
  kill -STOP "$(cat $SWAN/$PEER/charon.pid)"
  t=$SECONDS
  if wait_count $OURS 0 40; then
    echo "liveness: our $OURS removed its SAs $((SECONDS - t)) s after strongSwan fell silent" >>"$LOGS/$log"
    ctl_gone $OURS "$ike" "(c)"
  else
    WHY+="(c) 40 s after strongSwan fell silent our $OURS still has $(lab_sa_count $OURS) SAs; "
  fi
  kill -CONT "$(cat $SWAN/$PEER/charon.pid)"
  if [[ -n $WHY ]]; then
    keep_logs "$name"
    explain "$name" "$log" "$WHY"
    return 1
  fi
  pass "$name"
}

# 5: dynamic home address. Our MN asks with CP (INTERNAL_IP6_ADDRESS) and gets it from a
# strongSwan `pools` entry; a strongSwan MN asks ours (vips = ::) and gets the address its user
# file allows, and installs it itself. The payload ping must pass. (With a virtual IP strongSwan
# installs its end of the MH transport SA between CoA and HA instead of HoA and HA and its own MH
# packets then bypass it, so only SPI and mode are compared and no MH is sent.)
sc5() {
  if [[ $2 == swan-mn ]]; then
    ip -n mn addr del $HOA/128 dev lo
    NO_MH=1 PEER_SPI_ONLY=1 SW_VIPS=:: CHECK=check_sc5 basic "$1" "$2"
  else
    NO_MH=1 PEER_SPI_ONLY=1 OUR_HOA=dynamic SW_POOL=$HOA/128 CHECK=check_sc5 basic "$1" "$2"
  fi
}
check_sc5() {
  if [[ $OURS == mn ]]; then
    charon_says ha "assigning virtual IP $HOA to peer" "the pool's address"
  else
    charon_says mn "installing new virtual IP $HOA" "the address from our HA"
    ip -n mn addr | grep -q "$HOA" || WHY+="strongSwan did not install $HOA on the MN; "
  fi
  # the assigned address is the IKE SA's home address on our side
  ctl_check_sas CURVE_25519 AES_CBC_128
}

# 6: rekeying. Short lifetimes make both CHILD_SAs and the IKE SA rekey at least twice (the MN
# drives it) while a ping runs; at most a few packets may be lost, the tunnel must not die.
sc6() {
  local name=$1 dir=$2 log=$1.log out lost n
  reset
  if [[ $dir == our-mn ]]; then
    OUR_TIMERS='retransmit_timeout = 1.0
retransmit_tries = 3
liveness_interval = 30
child_rekey = 8
child_lifetime = 20
ike_rekey = 10' up "$dir" "$log"
  else
    SW_CHILD_EXTRA='rekey_time = 8s
        life_time = 20s
        rand_time = 1s' SW_IKE_EXTRA='rekey_time = 10s
    rand_time = 1s' up "$dir" "$log"
  fi
  if [[ -n $WHY ]]; then
    explain "$name" "$log" "$WHY"
    return 1
  fi
  WHY=
  local gen0
  gen0=$(ctl_spis $OURS)
  [[ $(wc -l <<<"$gen0") == 5 ]] || WHY+="mip6-ikectl ($OURS) lists '$(echo $gen0)' before the rekeys (want an IKE SA and 4 SPIs); "
  out=$(ip netns exec mn ping -6 -c 50 -i 0.5 -W 2 -I $HOA $CN 2>&1)
  lost=$(echo "$out" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
  lost=$((50 - ${lost:-0}))
  ((lost <= 4)) || WHY+="$lost of 50 pings lost during the rekeys; "
  ip netns exec mn ping -6 -c 2 -i 0.3 -W 2 -I $HOA $CN >/dev/null 2>&1 || WHY+="the tunnel is dead after the rekeys; "
  n=$(grep -c 'IKE SA rekeyed' "$LOGS/$log")
  ((n >= 2)) || WHY+="our log shows $n IKE SA rekeys (want 2 or more); "
  local c
  for c in BuBa Payload; do
    n=$(grep -c "CHILD_SA up.*class=Some($c)" "$LOGS/$log")
    ((n >= 3)) || WHY+="our log shows $n CHILD_SAs of class $c (want the first and 2 or more rekeys); "
  done
  for c in mh tun; do
    n=$(grep -oE "CHILD_SA $c\{[0-9]+\} established" "$SWAN/$PEER/charon.log" | sort -u | wc -l)
    ((n >= 3)) || WHY+="strongSwan ($PEER) established $n $c CHILD_SAs (want 3 or more); "
  done
  # every generation has new names: the IKE SA's id and all four SPIs
  local same
  same=$(comm -12 <(echo "$gen0") <(ctl_spis $OURS))
  [[ -z $same ]] || WHY+="mip6-ikectl ($OURS) still lists $(echo $same) from before the rekeys; "
  ctl_py $OURS stats <<'PY'
n = r.get("children_established", 0)
if n < 6:
    why.append(f"stats: {n} CHILD_SAs established (want 2 and 2 or more rekeys of each)")
PY
  local why=$WHY
  settled ctl_check_sas CURVE_25519 AES_CBC_128 || why+=$WHY
  WHY=$why
  if [[ -n $WHY ]]; then
    keep_logs "$name"
    explain "$name" "$log" "$WHY"
    return 1
  fi
  pass "$name"
}

# 9: the MN's IKE daemon dies without a word (kill -9) and starts again. Its first IKE_AUTH
# carries INITIAL_CONTACT (RFC 7296 2.4; strongSwan sends it, so does our MN), so the HA drops
# the stale IKE SA at once: exactly one IKE SA and 4 ESP SAs on the HA, not two IKE SAs and 8
# ESP SAs until liveness gives up on the dead one.
sc9() {
  local name=$1 dir=$2 log=$1.log old n i
  reset
  if ! up "$dir" "$log"; then
    explain "$name" "$log" "$WHY"
    return 1
  fi
  WHY=
  if [[ $dir == our-mn ]]; then
    ours_stop mn KILL
    # the kernel keeps what the dead daemon installed; our start-up cleanup removes it
    ours_start mn mn "$log"
    for i in $(seq 1 100); do
      n=$(sw ha --list-sas 2>/dev/null | grep -c 'mip6: #')
      [[ $n == 1 && $(lab_sa_count ha) == 4 && $(lab_sa_count mn) == 4 ]] &&
        grep -q 'destroying duplicate IKE_SA.*INITIAL_CONTACT' "$SWAN/ha/charon.log" && break
      sleep 0.2
    done
    [[ $n == 1 ]] || WHY+="strongSwan (ha) lists $n IKE SAs after our MN's restart (want 1); "
    charon_says ha 'destroying duplicate IKE_SA.*received INITIAL_CONTACT' "our MN's INITIAL_CONTACT honoured"
  else
    old=$(ctl_ike_ids ha)
    kill -KILL "$(cat "$SWAN/mn/charon.pid")" 2>/dev/null
    wait "$(cat "$SWAN/mn/charon.pid")" 2>/dev/null
    rm -f "$SWAN/mn/charon.pid" "$SWAN/mn/charon.vici"
    # as after a reboot: nothing of the dead charon in the MN's kernel
    ip -n mn xfrm state flush
    ip -n mn xfrm policy flush
    swan_start mn || WHY+="charon (mn) did not start again; "
    sw mn --initiate --child mh --timeout 30 >"$SWAN/mn/initiate.out" 2>&1 &&
      sw mn --initiate --child tun --timeout 30 >>"$SWAN/mn/initiate.out" 2>&1 ||
      WHY+="strongSwan could not initiate after its restart; "
    for i in $(seq 1 50); do
      n=$(ctl_ike_ids ha | wc -l)
      [[ $n == 1 && $(lab_sa_count ha) == 4 ]] && break
      sleep 0.2
    done
    [[ $n == 1 ]] || WHY+="mip6-ikectl (ha) lists $n IKE SAs after strongSwan's restart (want 1); "
    ctl_gone ha "$old" "the stale IKE SA"
    grep -q 'INITIAL_CONTACT: the peer restarted' "$LOGS/$log" ||
      WHY+="our HA's log does not show the INITIAL_CONTACT; "
  fi
  [[ $(lab_sa_count ha) == 4 ]] || WHY+="the HA kernel holds $(lab_sa_count ha) ESP SAs (want 4); "
  settled swan_children_ok $PEER || true
  if [[ -n $WHY ]]; then
    keep_logs "$name"
    explain "$name" "$log" "$WHY"
    return 1
  fi
  pass "$name"
}

# ---- 10: IKE fragmentation (RFC 7383) ------------------------------------------------------
# An RSA-4096 chain of about 6 KB (certs/make-big-chain.sh: leaf and three intermediates) on a
# path with MTU 1280 that drops IP fragments (a tc ingress filter on both ends drops every IPv6
# packet whose next header is a Fragment header; Debian's UML kernel has no nf_tables families
# but bridge), as seed 001 warns for certificate-based MIPv6:
# the IKE_AUTH messages arrive only as IKE fragments, in both directions. strongSwan keeps its
# defaults (fragmentation = yes, fragment_size = 1280).

# frag_path on|off: the lossy path described above, or the plain link back.
frag_path() {
  local ns
  for ns in mn ha; do
    if [[ $1 == on ]]; then
      ip -n $ns link set $ns-eth0 mtu 1280 || return 1
      ip netns exec $ns tc qdisc add dev $ns-eth0 ingress || return 1
      # IPv6 next header (offset 6) 44: a Fragment header follows
      ip netns exec $ns tc filter add dev $ns-eth0 parent ffff: protocol ipv6 u32 \
        match u8 44 0xff at 6 action drop || return 1
    else
      ip netns exec $ns tc qdisc del dev $ns-eth0 ingress 2>/dev/null
      ip -n $ns link set $ns-eth0 mtu 1500
    fi
  done
  return 0
}

# frag_drops NS: IP fragments the filter dropped in NS so far.
frag_drops() {
  ip netns exec "$1" tc -s filter show dev "$1-eth0" parent ffff: 2>/dev/null |
    grep -o 'dropped [0-9]*' | awk '{ n += $2 } END { print n + 0 }'
}

sc10() {
  local name=$1 dir=$2
  modprobe -a sch_ingress cls_u32 act_gact 2>/dev/null
  reset
  if ! frag_path on; then
    frag_path off
    fail "$name" "could not set up a path that drops IP fragments (tc ingress filter)"
    return 1
  fi
  # The path really drops IP fragments: a 2000-byte ping does not cross it.
  if ip netns exec mn ping -6 -c 1 -W 2 -s 2000 2001:db8:2::1 >/dev/null 2>&1 ||
    (($(frag_drops ha) == 0)); then
    frag_path off
    fail "$name" "the path does not drop IP fragments (a 2000-byte ping crossed it; $(frag_drops ha) dropped)"
    return 1
  fi
  local rc=0
  OUR_KEYS=big SW_KEYS=big CHECK=check_sc10 basic "$name" "$dir" || rc=1
  frag_path off
  return $rc
}
check_sc10() {
  # charon sent its IKE_AUTH in fragments and reassembled ours (strongSwan's log words).
  charon_says $PEER 'splitting IKE message .* into [0-9]+ fragments' "strongSwan fragmented its IKE_AUTH"
  charon_says $PEER 'reassembled fragmented IKE message' "strongSwan reassembled our fragments"
  ctl_py $OURS stats <<'PY'
if r.get("fragmented_sent", 0) < 1:
    why.append(f"fragmented_sent = {r.get('fragmented_sent')} (want >= 1)")
if r.get("reassembled", 0) < 1:
    why.append(f"reassembled = {r.get('reassembled')} (want >= 1)")
PY
}

# ---- IPv4 care-of addresses and NAT traversal (issue 12) ---------------------------------

# v4: IKE and the payload tunnel over IPv4 outer addresses (HA4 <-> COA4 on the lab's veth)
# while everything inside stays IPv6 (HoA, HA, CN; the MH transport SAs HoA <-> HA): the pair
# comes up, a ping from the HoA crosses the IPv6-in-IPv4 tunnel SAs and a BU/BA the transport
# SAs (counters on both ends), and our tunnel SAs carry `flag af-unspec` (without it the kernel
# gives the SA the outer family and nothing passes).
sc_ipv4() {
  local rc
  if ! lab_ipv4_up; then
    fail "$1" "no IPv4 outer addresses in the lab (esp4 module, addresses)"
    return 1
  fi
  # A strongSwan HA routes the HoA through its tunnel peer, here `via 192.0.2.100` (an IPv4
  # gateway for an IPv6 route): the MH transport SA's packets (HA -> HoA, IPv6) never arrived
  # that way. The lab's own route (HoA via the IPv6 CoA, what a binding gives the HA) is used.
  SW_INSTALL_ROUTES=no TUN_HA=$HA4 TUN_COA=$COA4 OUR_LISTEN='["::", "0.0.0.0"]' \
    CHECK=check_ipv4 basic "$1" "$2"
  rc=$?
  reset
  lab_ipv4_down
  return $rc
}
check_ipv4() {
  ip -n $OURS xfrm state | awk '
    function done() { if (tun && !unspec) bad++; tun = 0; unspec = 0 }
    /^src / { done() }
    /mode tunnel/ { tun = 1 }
    /flag.*af-unspec/ { unspec = 1 }
    END { done(); exit bad > 0 }' ||
    WHY+="a tunnel SA in our kernel ($OURS) lacks flag af-unspec; "
  ctl_check_sas CURVE_25519 AES_CBC_128
}

# ---- 11: certificate revocation (CRL files) -------------------------------------------------

# rev_swan_cert NODE NAME: after swan_conf, strongSwan's NODE presents certs/NAME.{pem,key} in
# place of its usual certificate (same file names, so swanctl.conf stays as it is).
rev_swan_cert() {
  local d=$SWAN/$1 f
  f=$(cd "$d/swanctl/x509" && ls)
  cp "/job/certs/$2.pem" "$d/swanctl/x509/$f"
  cp "/job/certs/$2.key" "$d/swanctl/private/${f%.pem}.key"
}

# 11: revocation by CRL. `.swan-mn`: a strongSwan MN with mn3's certificate registers with our
# HA while its CRL lists nobody; the CA revokes mn3 (new CRL file, `mip6-ikectl reload`): our HA
# deletes the IKE SA (both kernels empty) and refuses the MN's next attempt with
# AUTHENTICATION_FAILED. `.our-mn`: our MN against a strongSwan HA whose certificate
# (ha-revoked-rsa) the RSA CA then revokes; our MN notices the changed CRL file by itself
# (check_interval), deletes the SA and refuses the HA on every retry.
sc11() {
  local name=$1 dir=$2 log=$1.log ike
  reset
  WHY=
  if [[ $dir == swan-mn ]]; then
    OURS=ha PEER=mn
    mkdir -p /job/users-rev
    user_file /job/users-rev/mn3.toml "dn:C=CH, O=mip6-ike test, CN=mn3@example.net" $HOA
    cp /job/certs/crl-ecdsa-empty.pem /job/crl.pem
    lab_mip6d_policies ha ha
    OUR_USERS=users-rev lab_our_conf /job/ha.toml ha
    printf '[revocation]\npolicy = "relaxed"\ncrls = ["crl.pem"]\ncheck_interval = 0\n' >>/job/ha.toml
    ours_start ha ha "$log"
    swan_conf mn mn
    rev_swan_cert mn mn3-ecdsa
    sed -i 's/CN=mn1@example.net/CN=mn3@example.net/' "$SWAN/mn/swanctl/swanctl.conf"
    swan_start mn || WHY+="charon (mn) did not start; "
    sleep 0.3
    sw mn --initiate --child mh --timeout 30 >"$SWAN/mn/initiate.out" 2>&1 &&
      sw mn --initiate --child tun --timeout 30 >>"$SWAN/mn/initiate.out" 2>&1 ||
      WHY+="strongSwan (mn3, not yet revoked) could not initiate; "
  else
    OURS=mn PEER=ha
    lab_mip6d_policies mn mn
    SW_KEYS=rsa swan_conf ha ha
    rev_swan_cert ha ha-revoked-rsa
    swan_start ha || WHY+="charon (ha) did not start; "
    cp /job/certs/crl-rsa-empty.pem /job/crl.pem
    OUR_KEYS=rsa lab_our_conf /job/mn.toml mn
    printf '[revocation]\npolicy = "strict"\ncrls = ["crl.pem"]\ncheck_interval = 1\n' >>/job/mn.toml
    ours_start mn mn "$log"
  fi
  if [[ -z $WHY ]] && wait_sas $OURS 40; then
    ctl_py $OURS certs <<'PY'
peers = [c for c in r.get("certs", []) if c.get("kind") == "peer"]
want = "CN=mn3@example.net" if role == "ha" else "CN=ha.example.net"
if len(peers) != 1 or want not in peers[0].get("subject", "") or peers[0].get("status") != "good" \
        or not str(peers[0].get("source", "")).startswith("crl "):
    why.append(f"certs lists peers {peers} (want {want}, good by a crl)")
if len(r.get("crls", [])) != 1 or r["crls"][0].get("revoked") != 0:
    why.append(f"certs lists CRLs {r.get('crls')} (want one, without entries)")
PY
    ike=$(ctl_ike_ids $OURS | head -1)
    # the CA revokes the peer's certificate
    if [[ $dir == swan-mn ]]; then
      cp /job/certs/crl-ecdsa.pem /job/crl.pem
      ctl ha reload >"$SWAN/reload.out" 2>&1 || WHY+="mip6-ikectl reload failed: $(cat "$SWAN/reload.out"); "
    else
      cp /job/certs/crl-rsa.pem /job/crl.pem
    fi
    wait_count $OURS 0 8 || WHY+="after the revocation our $OURS kernel still has $(lab_sa_count $OURS) SAs; "
    wait_count $PEER 0 8 || WHY+="after our Delete strongSwan ($PEER) still has $(lab_sa_count $PEER) SAs; "
    ctl_gone $OURS "$ike" "the revoked peer's IKE SA"
    grep -q 'peer certificate revoked: deleting the IKE SA' "$LOGS/$log" ||
      WHY+="our log does not show the revoked peer's IKE SA deleted; "
    # ... and it cannot come back
    if [[ $dir == swan-mn ]]; then
      sw mn --initiate --child mh --timeout 20 >>"$SWAN/mn/initiate.out" 2>&1 &&
        WHY+="strongSwan (mn3, revoked) got a CHILD_SA again; "
      charon_says mn 'AUTHENTICATION_FAILED' "our HA refused the revoked certificate"
    else
      # our MN tries again after 5 s and refuses the HA each time
      sleep 8
      charon_says ha 'received DELETE for IKE_SA' "our MN's Delete after refusing the HA"
    fi
    grep -q 'is revoked by crl /job/crl.pem' "$LOGS/$log" ||
      WHY+="our log has no authentication refused for a certificate revoked by /job/crl.pem; "
    [[ $(lab_sa_count $OURS) == 0 ]] || WHY+="our $OURS kernel holds $(lab_sa_count $OURS) SAs after the refusal; "
    ctl_py $OURS certs <<'PY'
if [c for c in r.get("certs", []) if c.get("kind") == "peer"]:
    why.append(f"certs still lists a peer certificate: {r['certs']}")
# the ECDSA CA's CRL lists mn3 and mn4, the RSA CA's ha-revoked-rsa
want = [2] if role == "ha" else [1]
if [c.get("revoked") for c in r.get("crls", [])] != want:
    why.append(f"certs lists CRLs {r.get('crls')} (want entries {want})")
PY
  fi
  keep_logs "$name"
  if [[ -n $WHY ]]; then
    explain "$name" "$log" "$WHY"
    return 1
  fi
  pass "$name"
}

# ---- the algorithms of strongSwan's default proposals (issue 12) ----------------------------

# alg_warm NAME KEYBYTES: load the kernel's AEAD NAME (ICV 128) before the daemons start, as
# lab_warm_kernel does for AES (a module loaded on first use stalls the first SA under UML).
alg_warm() {
  local k
  k=0x$(printf '%0*d' $((2 * $2)) 0)
  ip xfrm state add src ::1 dst ::1 proto esp spi 0x3 mode transport aead "$1" "$k" 128 &&
    ip xfrm state delete src ::1 dst ::1 proto esp spi 0x3
}

# alg_in_kernels NAME KEYBITS: all 4 ESP SAs in both namespaces use the kernel AEAD NAME with a
# key of KEYBITS (key and salt), ICV 128 bits.
alg_in_kernels() {
  local ns n
  for ns in mn ha; do
    n=$(ip -n $ns xfrm state | grep -cE "^[[:space:]]*aead $(sed 's/[()]/\\&/g' <<<"$1") 0x[0-9a-f]{$(($2 / 4))} 128$")
    [[ $n == 4 ]] || WHY+="$ns kernel: $n SAs with aead $1, $2-bit key, ICV 128 (want 4); "
  done
}

# a1: ChaCha20-Poly1305 (RFC 7634) for IKE with PRF-HMAC-SHA2-256 and ECP-384, and for ESP
# (the kernel's rfc7539esp, 256-bit key and 32-bit salt).
sc_alg_chacha() {
  alg_warm 'rfc7539esp(chacha20,poly1305)' 36 || {
    fail "$1" "the kernel has no rfc7539esp(chacha20,poly1305)"
    return 1
  }
  OUR_IKE='["chacha20poly1305-prfsha256-ecp384"]' SW_IKE=chacha20poly1305-prfsha256-ecp384 \
    OUR_ESP='["chacha20poly1305"]' SW_ESP=chacha20poly1305 CHECK=check_sc_alg_chacha basic "$1" "$2"
}
check_sc_alg_chacha() {
  charon_says $PEER 'selected proposal: IKE:CHACHA20_POLY1305(_256)?/PRF_HMAC_SHA2_256/ECP_384' "the IKE SA's suite"
  charon_says $PEER 'selected proposal: ESP:CHACHA20_POLY1305(_256)?/NO_EXT_SEQ' "the CHILD_SAs' suite"
  alg_in_kernels 'rfc7539esp(chacha20,poly1305)' 288
  ctl_check_sas CHACHA20_POLY1305/PRF_HMAC_SHA2_256/ECP_384 CHACHA20_POLY1305
}

# a2: ECDSA P-384 certificates (a P-384 CA signing with SHA-384), RFC 7427 signatures with
# SHA-384 both ways, AES-256-GCM with PRF-HMAC-SHA2-384 and ECP-384, AES-256-GCM for ESP.
sc_alg_p384() {
  OUR_KEYS=ecdsa384 SW_KEYS=ecdsa384 OUR_IKE='["aes256gcm16-prfsha384-ecp384"]' \
    SW_IKE=aes256gcm16-prfsha384-ecp384 OUR_ESP='["aes256gcm16"]' SW_ESP=aes256gcm16 \
    CHECK=check_sc_alg_p384 basic "$1" "$2"
}
check_sc_alg_p384() {
  # (The peer's identity directly followed by ` with`: not strongSwan's own "(myself)" line.)
  charon_says $PEER "authentication of .*CN=(mn1@|ha\\.)example\\.net' with ECDSA_WITH_SHA384_DER successful" \
    "our P-384 key's RFC 7427 signature (ecdsa-with-SHA384)"
  charon_says $PEER 'selected proposal: IKE:AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384' "the IKE SA's suite"
  alg_in_kernels 'rfc4106(gcm(aes))' 288
  ctl_check_sas AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384 AES_GCM_16_256
}

# kernel_lines REGEX WHAT: each namespace's `ip xfrm state` has REGEX on exactly 4 lines (one
# per ESP SA).
kernel_lines() {
  local ns n
  for ns in mn ha; do
    n=$(ip -n $ns xfrm state | grep -cE "$1")
    [[ $n == 4 ]] || WHY+="$ns kernel: $n SAs with $2 (want 4); "
  done
}

# a3: AES-256-CBC with HMAC-SHA2-384 (IKE: PRF-HMAC-SHA2-384, MODP-3072) and, for ESP, AES-256-CBC
# with HMAC-SHA2-512 (256-bit ICV) and PFS on MODP-4096 for the CHILD_SA of CREATE_CHILD_SA.
sc_alg_sha2() {
  OUR_IKE='["aes256-sha384-modp3072"]' SW_IKE=aes256-sha384-modp3072 \
    OUR_ESP='["aes256-sha512-modp4096"]' SW_ESP=aes256-sha512-modp4096 CHECK=check_sc_alg_sha2 \
    basic "$1" "$2"
}
check_sc_alg_sha2() {
  charon_says $PEER 'selected proposal: IKE:AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/MODP_3072' "the IKE SA's suite"
  charon_says $PEER 'selected proposal: ESP:AES_CBC_256/HMAC_SHA2_512_256/MODP_4096' "the tunnel CHILD_SA's PFS group"
  kernel_lines '^[[:space:]]*auth-trunc hmac\(sha512\) 0x[0-9a-f]{128} 256$' 'auth-trunc hmac(sha512), 512-bit key, 256-bit ICV'
  kernel_lines '^[[:space:]]*enc cbc\(aes\) 0x[0-9a-f]{64}$' 'enc cbc(aes), 256-bit key'
  ctl_check_sas AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/MODP_3072 AES_CBC_256/HMAC_SHA2_512_256
}

# a4: ECDSA P-521 certificates (P-521 keys under the P-384 CA: webpki on ring checks no P-521
# signatures in chains), AUTH method 11 (ECDSA P-521 with SHA-512, r | s) both ways, ECP-521.
sc_alg_p521() {
  OUR_KEYS=ecdsa521 SW_KEYS=ecdsa521 OUR_SIG=legacy SW_SIGAUTH=no \
    OUR_IKE='["aes256gcm16-prfsha512-ecp521"]' SW_IKE=aes256gcm16-prfsha512-ecp521 \
    CHECK=check_sc_alg_p521 basic "$1" "$2"
}
check_sc_alg_p521() {
  charon_says $PEER "authentication of .*CN=(mn1@|ha\\.)example\\.net' with ECDSA-521 signature successful" \
    "our P-521 key's method 11 signature"
  charon_says $PEER 'selected proposal: IKE:AES_GCM_16_256/PRF_HMAC_SHA2_512/ECP_521' "the IKE SA's suite"
  ctl_check_sas AES_GCM_16_256/PRF_HMAC_SHA2_512/ECP_521 AES_CBC_128
}

# ---- NAT traversal through a real NAT (issue 12) ---------------------------------------------
# n1-nat: the MN sits behind an IPv4 NAT router (lab_nat_up: a third namespace doing
# iptables-legacy MASQUERADE, UDP ports mapped into 40000-49999), IKE and the payload tunnel
# run over IPv4 (MN4 -> NAT4 -> HA4) with IPv6 inside. Both sides detect the NAT, IKE floats to
# 4500 (the HA sees the NAT's 4xxxx), every ESP SA in both kernels carries `encap type
# espinudp`, a ping from the HoA crosses the IPv6-in-IPv4 tunnel SAs through the NAT (counters
# on both ends), and NAT keepalives (one 0xFF byte to UDP 4500) leave the MN's side (a tc
# counter on the NAT's inside port) while none come from the HA.
# Only the payload tunnel SAs: the MH transport SAs (bu-ba) cannot work through an IPv4 NAT.
# strongSwan itself refuses them: in transport mode behind a NAT it replaces a host traffic
# selector by the IKE address (RFC 7296 2.23.1's fix for transport mode), also for
# transport_proxy, so HoA[135] becomes 192.0.2.254[135] (strongSwan HA: "received:
# 192.0.2.254/32[mobility-header] => no match", TS_UNACCEPTABLE) or 10.1.0.100[135]
# (strongSwan MN, on our HA's answer: "no acceptable traffic selectors found"). And even
# negotiated, they would run HoA <-> HA over IPv6, outside the IPv4 NAT, yet as ESP in UDP
# with the IKE SA's ports (encapsulation is per IKE SA), i.e. the NAT's IPv4 port mapping: the
# BA would go to HoA:<the NAT's port>, where nothing listens. MH through a NAT is RFC 5555
# (MH over IPv4), which this project does not implement.

# env_run VAR=VALUE... COMMAND ARGS...: COMMAND (a shell function) with those variables set for
# its duration, like `VAR=VALUE command` but from an array.
env_run() {
  local assigns=()
  while [[ $1 == *=* ]]; do
    assigns+=("$1")
    shift
  done
  local a
  for a in "${assigns[@]}"; do local "${a%%=*}"; export "$a"; done
  "$@"
}

# swan_exchanges NODE PARSED_RE PACKET_RE: how many lines of charon's log on NODE match PARSED_RE
# (an "ENC" line: generating/parsed ...) next to a line matching PACKET_RE (its "NET" line:
# a packet sent right after it is generated, received right before it is parsed). "Next to"
# is within 3 lines: charon's threads log concurrently, so another thread's line can fall
# between the two.
swan_exchanges() {
  # through the environment: awk -v would eat the regexes' backslashes
  M=$2 P=$3 awk '
    BEGIN { m = ENVIRON["M"]; p = ENVIRON["P"] }
    { line[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) {
        if (line[i] !~ m) continue
        for (j = i - 3; j <= i + 3; j++)
          if (j != i && j >= 1 && j <= NR && line[j] ~ p) { n++; break }
      }
      print n + 0
    }' "$SWAN/$1/charon.log" 2>/dev/null
}

# Keepalive counters on the NAT router: iptables-legacy FORWARD rules (their packet counters)
# matching a NAT keepalive as it crosses: IPv4, UDP, length 29 (20 + 8 + 1), the payload byte
# 0xFF (u32: the last byte of the 4 at IP header length + 5; u32 reads 4 bytes and matches
# nothing when they run past the packet's end, so it cannot read at + 8). From the MN's side
# (in on nat-lan) to port 4500, from the HA's (in on nat-wan) from port 4500.
KEEPALIVE_MATCH=(-p udp -m length --length 29 -m u32 --u32 '0>>22&0x3C@5&0xFF=0xFF')
nat_counters_on() {
  modprobe -a iptable_filter xt_length xt_u32 xt_tcpudp 2>/dev/null
  ip netns exec nat iptables-legacy -A FORWARD -i nat-lan "${KEEPALIVE_MATCH[@]}" --dport 4500 -j ACCEPT &&
    ip netns exec nat iptables-legacy -A FORWARD -i nat-wan "${KEEPALIVE_MATCH[@]}" --sport 4500 -j ACCEPT
}

# nat_counter IFACE: keepalives that came in on IFACE of the NAT router so far.
nat_counter() {
  ip netns exec nat iptables-legacy -L FORWARD -v -x -n 2>/dev/null |
    awk -v i="$1" '$6 == i { n += $1 } END { print n + 0 }'
}

sc_nat() {
  local name=$1 dir=$2 rc
  reset
  if ! lab_nat_up; then
    fail "$name" "no NAT router in the lab (esp4, iptable_nat, xt_MASQUERADE, iptables-legacy)"
    lab_nat_down
    return 1
  fi
  # The NAT is real: the MN reaches the HA's IPv4 address, the HA has no route back to the
  # MN's private address, so the answer can only have come through the masquerade.
  if ! ip netns exec mn ping -c 1 -W 2 $HA4 >/dev/null 2>&1 ||
    ip netns exec ha ping -c 1 -W 1 $MN4 >/dev/null 2>&1; then
    fail "$name" "the NAT router does not masquerade (ping MN4 -> HA4 failed, or HA4 reaches MN4 directly)"
    lab_nat_down
    return 1
  fi
  if ! nat_counters_on; then
    fail "$name" "could not set up the keepalive counters (iptables-legacy, xt_length, xt_u32)"
    lab_nat_down
    return 1
  fi
  # Keepalives every 2 s on the MN's side (ours: nat_keepalive, strongSwan: keep_alive), so a
  # few cross the NAT within the scenario. The HA sees the NAT's address as the MN's tunnel
  # endpoint, so our HA's (mip6d-style) policies name NAT4; a strongSwan MN binds its private one.
  # The payload tunnel only (see above): 2 SAs a side, reqids 3/4, strongSwan's child tun.
  local only_tun=(SA_WANT=2 LAB_REQIDS="3 4" SW_CHILDREN=tun CTL_CLASSES=payload NO_MH=1
    PEER_SPI_ONLY=1 TUN_HA=$HA4 SW_INSTALL_ROUTES=no OUR_LISTEN='["::", "0.0.0.0"]')
  if [[ $dir == our-mn ]]; then
    env_run "${only_tun[@]}" OUR_CLASSES='["payload"]' OUR_TIMERS_EXTRA='nat_keepalive = 2' \
      TUN_COA=$MN4 CHECK=check_nat basic "$name" "$dir"
  else
    env_run "${only_tun[@]}" SW_KEEPALIVE=2s SW_COA=$MN4 TUN_COA=$NAT4 CHECK=check_nat basic "$name" "$dir"
  fi
  rc=$?
  reset
  lab_nat_down
  return $rc
}

# nat_encap_check NS: every keyed ESP SA in NS (SA_WANT of them) is ESP in UDP (espinudp).
# Larval states (ALLOCSPI reservations of our SPI stock, no keys) carry no encapsulation yet.
nat_encap_check() {
  local out
  out=$(ip -n "$1" xfrm state | awk '
    function done() { if (esp && keyed) { n++; if (!encap) bad = bad " " spi } esp = 0; encap = 0; keyed = 0 }
    /^src / { done() }
    /proto esp spi/ { esp = 1; spi = $4 }
    /^\t(auth|auth-trunc|enc|aead|comp) / { keyed = 1 }
    /encap type espinudp/ { encap = 1 }
    END { done(); printf "%d%s", n, bad }')
  [[ $out == "${SA_WANT:-4}" ]] || WHY+="$1 kernel: want ${SA_WANT:-4} ESP SAs, all with 'encap type espinudp' (count, then SPIs without: $out); "
}

check_nat() {
  nat_encap_check mn
  nat_encap_check ha
  # the ports: the MN's SAs 4500 <-> 4500, the HA's between 4500 and the NAT's mapping of it
  local mnp hap
  mnp=$(ip -n mn xfrm state | grep -o 'encap type espinudp sport [0-9]* dport [0-9]*' | sort -u)
  hap=$(ip -n ha xfrm state | grep -o 'encap type espinudp sport [0-9]* dport [0-9]*' | sort -u)
  [[ $mnp == "encap type espinudp sport 4500 dport 4500" ]] ||
    WHY+="the MN's SAs encapsulate with '$(echo $mnp)' (want sport 4500 dport 4500 only); "
  [[ $(grep -cE 'sport (4500 dport 4[0-9]{4}|4[0-9]{4} dport 4500)$' <<<"$hap") == 2 &&
    $(wc -l <<<"$hap") == 2 ]] ||
    WHY+="the HA's SAs encapsulate with '$(echo $hap)' (want 4500 <-> the NAT's port, 40000-49999); "
  # the HA's tunnel SAs end at the NAT's address, the MN's at its own private one
  ip -n ha xfrm state | grep -q "^src $HA4 dst $NAT4" || WHY+="the HA has no SA $HA4 -> $NAT4 (the NAT's address); "
  ip -n mn xfrm state | grep -q "^src $MN4 dst $HA4" || WHY+="the MN has no SA $MN4 -> $HA4; "
  # NAT detection in both logs, the right side behind the NAT
  if [[ $OURS == mn ]]; then
    grep -q 'NAT detected: moving to the NAT-T port' "$LOGS/$CUR_LOG" ||
      WHY+="our MN's log does not show the float to 4500; "
    grep -q 'we_behind_nat=true' "$LOGS/$CUR_LOG" || WHY+="our MN did not find itself behind the NAT; "
    charon_says ha 'remote host is behind NAT' "strongSwan HA saw the NAT before our MN"
  else
    grep -q 'peer_behind_nat=true' "$LOGS/$CUR_LOG" || WHY+="our HA did not find the MN behind a NAT; "
    grep -qE "NAT: the peer.s port changed; following|peer moved the IKE SA to the NAT-T port" "$LOGS/$CUR_LOG" ||
      WHY+="our HA's log does not show it following the MN to the NAT's mapping of 4500; "
    charon_says mn 'local host is behind NAT, sending keep alives' "strongSwan MN behind the NAT"
  fi
  # our listing: the IKE SA between HA4:4500 and the NAT's address (our HA) or MN4:4500 (our MN)
  ctl_py $OURS sas "$HA4" "$NAT4" "$MN4" <<'PY'
ha4, nat4, mn4 = args
for s in r.get("ike_sas", [])[:1]:
    loc, rem = str(s.get("local")), str(s.get("remote"))
    if role == "ha":
        ok = loc == f"{ha4}:4500" and rem.startswith(nat4 + ":4") and len(rem) == len(nat4) + 6
    else:
        ok = loc == f"{mn4}:4500" and rem == f"{ha4}:4500"
    if not ok:
        why.append(f"IKE SA {loc} <-> {rem}: not on the NAT-T ports through the NAT")
PY
  ctl_check_sas CURVE_25519 AES_CBC_128
  # keepalives: from the MN's side through the NAT, none from the HA; two intervals and a bit
  sleep 5
  local k_mn k_ha
  k_mn=$(nat_counter nat-lan)
  k_ha=$(nat_counter nat-wan)
  ((k_mn >= 1)) || WHY+="no NAT keepalive (0xFF to UDP 4500) from the MN's side; "
  ((k_ha == 0)) || WHY+="$k_ha NAT keepalives from the HA (it is not behind a NAT); "
  echo "nat keepalives seen by the NAT: $k_mn from the MN's side, $k_ha from the HA" >>"$LOGS/$CUR_LOG"
}

# n2-swan-mobike: a strongSwan MN with mobike = yes (strongSwan's default) against our HA over
# IPv6, no NAT. strongSwan moves IKE to UDP 4500 in IKE_AUTH; our HA follows: the SAs come up
# (plain ESP: no NAT), ping and BU/BA pass, and later exchanges still run on 4500: our HA's
# liveness checks (liveness_interval = 3) answered by strongSwan, and a CHILD_SA rekey that
# strongSwan initiates (swanctl --rekey), after which the ping still crosses the tunnel.
sc_mobike() {
  SW_MOBIKE=yes CHECK=check_mobike basic "$1" "$2"
}
check_mobike() {
  charon_says mn "sending packet: from $COA\[4500\] to $HA\[4500\]" "strongSwan floated IKE_AUTH to 4500"
  ip -n mn xfrm state | grep -q 'encap' && WHY+="a strongSwan SA is UDP-encapsulated without a NAT; "
  ip -n ha xfrm state | grep -q 'encap' && WHY+="an SA of ours is UDP-encapsulated without a NAT; "
  grep -q 'peer moved the IKE SA to the NAT-T port; following' "$LOGS/$CUR_LOG" ||
    WHY+="our HA's log does not show it following strongSwan to 4500; "
  ctl_py ha sas "$HA" <<'PY'
ha, = args
for s in r.get("ike_sas", [])[:1]:
    loc, rem = str(s.get("local")), str(s.get("remote"))
    if not (loc == f"[{ha}]:4500" and rem.endswith("]:4500")):
        why.append(f"IKE SA {loc} <-> {rem}: not on 4500")
PY
  ctl_check_sas CURVE_25519 AES_CBC_128
  [[ -n $WHY ]] && return
  # a liveness check of ours after the float, answered on 4500 (3 s of silence: wait 7).
  # charon logs the packet ("received packet: from ...") and its parse on separate lines.
  local before after
  before=$(swan_exchanges mn 'parsed INFORMATIONAL request' "received packet: from $HA\[4500\] to $COA\[4500\]")
  sleep 7
  after=$(swan_exchanges mn 'parsed INFORMATIONAL request' "received packet: from $HA\[4500\] to $COA\[4500\]")
  ((after > before)) || WHY+="no INFORMATIONAL request (liveness) from our HA reached strongSwan on 4500 in 7 s ($before before, $after after); "
  ours_alive ha || WHY+="our HA died; "
  # a CHILD_SA rekey strongSwan initiates, on 4500; then the tunnel still works
  local gen0 i
  gen0=$(ctl_spis ha)
  sw mn --rekey --child tun >"$SWAN/mn/rekey.out" 2>&1 || WHY+="swanctl --rekey --child tun failed; "
  # wait for both sides: our HA installs the new pair when it answers, charon logs the answer
  # a few milliseconds later (ci16 read charon's log in between and failed)
  local answers=0
  for i in $(seq 1 30); do
    answers=$(swan_exchanges mn 'parsed CREATE_CHILD_SA response [0-9]+ \[ SA' \
      "received packet: from $HA\[4500\] to $COA\[4500\]")
    [[ $(ctl_spis ha) != "$gen0" && $(lab_sa_count ha) == 4 ]] && ((answers >= 2)) && break
    sleep 0.3
  done
  (($(swan_exchanges mn 'generating CREATE_CHILD_SA request [0-9]+ \[ N\(REKEY_SA\)' \
    "sending packet: from $COA\[4500\] to $HA\[4500\]") >= 1)) ||
    WHY+="charon (mn) sent no CHILD_SA rekey (CREATE_CHILD_SA with REKEY_SA) to $HA[4500]; "
  ((answers >= 2)) ||
    WHY+="charon (mn) got no answer to its rekey from $HA[4500] in 9 s ($answers CREATE_CHILD_SA responses with SA; want 2: the tun child and its rekey); "
  [[ $(ctl_spis ha) != "$gen0" ]] || WHY+="our HA lists the same SPIs after strongSwan's rekey; "
  local why=$WHY
  settled ctl_check_sas CURVE_25519 AES_CBC_128 || why+=$WHY
  WHY=$why
  local w=$WHY
  RESULTS=/tmp/sub2 lab_ping_check "$CUR_NAME.after-rekey" mn ha ha >/dev/null || w+="after the rekey: $WHY"
  WHY=$w
  rm -f /tmp/sub2
}

# ---- 12: certificate revocation (OCSP) -------------------------------------------------------

# ocsp_responder_start STATUS [NS CERT CN]: `openssl ocsp` as the ECDSA CA's responder (signing
# with the CA's own key) on port 8888 of namespace NS (default ha: only our daemon there asks
# it), with an index where certificate CERT (default mn3-ecdsa, subject CN) is STATUS (V or R).
# openssl reads its index once: a change means a restart.
ocsp_responder_start() {
  local ns=${2:-ha} cert=${3:-mn3-ecdsa} cn=${4:-mn3@example.net} serial
  serial=$(openssl x509 -in /job/certs/$cert.pem -noout -serial | cut -d= -f2)
  mkdir -p /job/ocsp
  if [[ $1 == R ]]; then
    printf 'R\t20550101000000Z\t250101000000Z\t%s\tunknown\t/CN=%s\n' "$serial" "$cn" >/job/ocsp/index.txt
  else
    printf 'V\t20550101000000Z\t\t%s\tunknown\t/CN=%s\n' "$serial" "$cn" >/job/ocsp/index.txt
  fi
  echo "$ns $cert $cn" >/tmp/ocsp-responder.args
  ip -n "$ns" link set lo up
  ip netns exec "$ns" openssl ocsp -index /job/ocsp/index.txt -port 8888 \
    -rsigner /job/certs/ca-ecdsa.pem -rkey /job/certs/ca-ecdsa.key -CA /job/certs/ca-ecdsa.pem \
    >>"$LOGS/ocsp-responder.log" 2>&1 &
  echo $! >/tmp/ocsp-responder.pid
  # listening before anyone asks: openssl takes a while to start in a loaded guest (a fixed
  # half second was not enough once: "Connection refused" to the restarted responder)
  local i
  for i in $(seq 1 50); do
    ip netns exec "$ns" ss -Hltn 'sport = :8888' 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  echo "the OCSP responder is not listening on port 8888 in $ns after 5 s" >>"$LOGS/ocsp-responder.log"
}

# ocsp_responder_restart STATUS: the same responder, its certificate now STATUS.
ocsp_responder_restart() {
  local args
  read -ra args </tmp/ocsp-responder.args
  ocsp_responder_stop
  ocsp_responder_start "$1" "${args[@]}"
}

ocsp_responder_stop() {
  local pid
  pid=$(cat /tmp/ocsp-responder.pid 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -f /tmp/ocsp-responder.pid
}

# 12: revocation by OCSP, no CRL at all: our side, strict, asks the responder configured for
# the ECDSA CA (`ocsp_responders`) about the peer's certificate and parks the IKE_AUTH until the
# answer (our HA parks the MN's request, our MN the HA's response). The certificate is good:
# the SAs come up and `certs` names the responder. The CA revokes it (index changed, responder
# restarted); `mip6-ikectl reload` makes our side ask again about every established SA's
# certificate: the revoked answer deletes the SA (both kernels empty), and the next attempt is
# refused (.swan-mn: strongSwan gets AUTHENTICATION_FAILED; .our-mn: our MN's retries refuse the
# HA, each telling it with a Delete).
sc12() {
  local name=$1 dir=$2 log=$1.log ike
  reset
  WHY=
  local rev='[revocation]\npolicy = "strict"\nfetch = false\nfetch_timeout = 3\nocsp_responders = [{ ca = "certs/ca-ecdsa.pem", uri = "http://127.0.0.1:8888/" }]\n'
  if [[ $dir == swan-mn ]]; then
    OURS=ha PEER=mn
    ocsp_responder_start V
    mkdir -p /job/users-rev
    user_file /job/users-rev/mn3.toml "dn:C=CH, O=mip6-ike test, CN=mn3@example.net" $HOA
    lab_mip6d_policies ha ha
    OUR_USERS=users-rev lab_our_conf /job/ha.toml ha
    printf "$rev" >>/job/ha.toml
    ours_start ha ha "$log"
    swan_conf mn mn
    rev_swan_cert mn mn3-ecdsa
    sed -i 's/CN=mn1@example.net/CN=mn3@example.net/' "$SWAN/mn/swanctl/swanctl.conf"
    swan_start mn || WHY+="charon (mn) did not start; "
    sleep 0.3
    sw mn --initiate --child mh --timeout 30 >"$SWAN/mn/initiate.out" 2>&1 &&
      sw mn --initiate --child tun --timeout 30 >>"$SWAN/mn/initiate.out" 2>&1 ||
      WHY+="strongSwan (mn3, good by OCSP) could not initiate; "
  else
    OURS=mn PEER=ha
    # the responder in the MN's namespace, about strongSwan HA's certificate (ECDSA CA)
    ocsp_responder_start V mn ha-ecdsa ha.example.net
    lab_mip6d_policies mn mn
    swan_conf ha ha
    swan_start ha || WHY+="charon (ha) did not start; "
    lab_our_conf /job/mn.toml mn
    printf "$rev" >>/job/mn.toml
    ours_start mn mn "$log"
  fi
  local want_cn=mn3@example.net
  [[ $dir == our-mn ]] && want_cn=ha.example.net
  if [[ -z $WHY ]] && wait_sas $OURS 40; then
    grep -q 'OCSP answer verified' "$LOGS/$log" || WHY+="our log shows no verified OCSP answer; "
    if [[ $dir == our-mn ]]; then
      grep -q "waiting for the revocation status of the home agent's certificate" "$LOGS/$log" ||
        WHY+="our MN's log does not show it waiting for the HA certificate's status; "
    fi
    WANT_CN=$want_cn ctl_py $OURS certs <<'PY'
import os
cn = os.environ["WANT_CN"]
peers = [c for c in r.get("certs", []) if c.get("kind") == "peer"]
if len(peers) != 1 or f"CN={cn}" not in peers[0].get("subject", "") \
        or peers[0].get("status") != "good" \
        or peers[0].get("source") != "ocsp http://127.0.0.1:8888/" or not peers[0].get("checked_at"):
    why.append(f"certs lists peers {peers} (want {cn}, good by ocsp http://127.0.0.1:8888/)")
PY
    ike=$(ctl_ike_ids $OURS | head -1)
    # the CA revokes the peer's certificate; our side asks again on reload
    ocsp_responder_restart R
    ctl $OURS reload >"$SWAN/reload.out" 2>&1 || WHY+="mip6-ikectl reload failed: $(cat "$SWAN/reload.out"); "
    wait_count $OURS 0 8 || WHY+="after the revocation our $OURS kernel still has $(lab_sa_count $OURS) SAs; "
    wait_count $PEER 0 8 || WHY+="after our Delete strongSwan ($PEER) still has $(lab_sa_count $PEER) SAs; "
    ctl_gone $OURS "$ike" "the revoked peer's IKE SA"
    grep -q 'reload: OCSP re-check of the established SAs' "$LOGS/$log" ||
      WHY+="our log does not show the OCSP re-check on reload; "
    grep -q 'peer certificate revoked: deleting the IKE SA' "$LOGS/$log" ||
      WHY+="our log does not show the revoked peer's IKE SA deleted; "
    if [[ $dir == swan-mn ]]; then
      sw mn --initiate --child mh --timeout 20 >>"$SWAN/mn/initiate.out" 2>&1 &&
        WHY+="strongSwan (mn3, revoked) got a CHILD_SA again; "
      charon_says mn 'AUTHENTICATION_FAILED' "our HA refused the revoked certificate"
    else
      # our MN tries again after 5 s, asks nobody (the revoked answer is held) and refuses
      sleep 8
      charon_says ha 'received DELETE for IKE_SA' "our MN's Delete after refusing the HA"
    fi
    grep -q 'is revoked by ocsp http://127.0.0.1:8888/' "$LOGS/$log" ||
      WHY+="our log has no authentication refused for a certificate revoked by OCSP; "
    [[ $(lab_sa_count $OURS) == 0 ]] || WHY+="our $OURS kernel holds $(lab_sa_count $OURS) SAs after the refusal; "
  fi
  ocsp_responder_stop
  keep_logs "$name"
  if [[ -n $WHY ]]; then
    explain "$name" "$log" "$WHY"
    return 1
  fi
  pass "$name"
}

# name|function: the scenarios, each in both directions.
SCENARIOS=()
for d in our-mn swan-mn; do
  SCENARIOS+=("s1-ecdsa-x25519-aescbc.$d|sc1" "s2-rsa-modp2048.$d|sc2" "s3-psk-ecp256-aesgcm.$d|sc3"
    "s4-rfc7427.$d|sc4" "s5-dynamic-hoa.$d|sc5" "s6-rekey.$d|sc6" "s7-authorization.$d|sc7"
    "s8-delete-liveness.$d|sc8" "s9-restart-initial-contact.$d|sc9"
    "s10-ike-fragmentation.$d|sc10" "s11-revocation-crl.$d|sc11" "v4-ipv4-care-of.$d|sc_ipv4" "n1-nat.$d|sc_nat")
  # The algorithms of strongSwan's default proposals.
  SCENARIOS+=("a1-chacha20poly1305-ecp384.$d|sc_alg_chacha" "a2-ecdsa384-aes256gcm-prfsha384.$d|sc_alg_p384"
    "a3-aes256-sha384-modp3072-sha512-modp4096.$d|sc_alg_sha2" "a4-ecdsa521-method11-ecp521.$d|sc_alg_p521")
done
# strongSwan's MOBIKE float concerns a strongSwan initiator: a strongSwan MN with our HA
SCENARIOS+=("n2-swan-mobike.swan-mn|sc_mobike")
# OCSP: our HA checks a strongSwan MN, our MN a strongSwan HA.
SCENARIOS+=("s12-revocation-ocsp.our-mn|sc12" "s12-revocation-ocsp.swan-mn|sc12")
# ONLY (a regex) and SHARD (K/N: every N-th scenario from the K-th, for guests side by side)
# select what runs.
SHARD=${SHARD:-}
SELECTED=()
i=0
for s in "${SCENARIOS[@]}"; do
  n=${s%%|*}
  if [[ -z $ONLY || $n =~ $ONLY ]]; then
    if [[ -z $SHARD ]] || ((i % ${SHARD#*/} == ${SHARD%/*} - 1)); then
      SELECTED+=("$s")
    fi
    i=$((i + 1))
  fi
done
PLAN=(lab-swan-vs-swan)
for s in "${SELECTED[@]}"; do PLAN+=("${s%%|*}"); done

run_all() {
  lab_warm_kernel && lab_netns_up || {
    fail lab-swan-vs-swan "kernel modules or namespaces could not be set up"
    return 1
  }
  sc_swan_vs_swan
  local s n
  for s in "${SELECTED[@]}"; do
    n=${s%%|*}
    "${s#*|}" "$n" "${n##*.}"
    keep_logs "$n"
  done
  reset
  lab_netns_down
}

: >"$RESULTS"
echo "${PLAN[@]}" >/job/plan
run_all
echo "scenarios done"
