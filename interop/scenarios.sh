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
export RUST_LOG=${RUST_LOG:-debug}
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
  for ns in mn ha; do
    ip -n $ns xfrm state flush
    ip -n $ns xfrm policy flush
    ip -n $ns -6 route flush table 220 2>/dev/null
  done
}

# wait_sas OURS SECONDS: both namespaces hold 4 ESP SAs; early exit when our daemon died.
wait_sas() {
  local ours=$1 end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    [[ $(lab_sa_count mn) == 4 && $(lab_sa_count ha) == 4 ]] && return 0
    ours_alive "$ours" || {
      WHY+="our daemon ($ours) exited; "
      return 1
    }
    sleep 0.2
  done
  WHY+="after $2 s the MN has $(lab_sa_count mn) ESP SAs, the HA $(lab_sa_count ha) (want 4 each); "
  return 1
}

# swan_children_ok NODE: swanctl --list-sas shows both children installed, mh in transport mode.
swan_children_ok() {
  local out
  out=$(sw "$1" --list-sas 2>&1)
  echo "$out" >"$SWAN/$1/list-sas.out"
  grep -qE '^ *mh: #[0-9]+, reqid [0-9]+, INSTALLED, TRANSPORT' <<<"$out" ||
    WHY+="swanctl --list-sas ($1): no installed TRANSPORT child mh; "
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
    sw mn --initiate --child mh --timeout 30 >"$SWAN/mn/initiate.out" 2>&1 ||
      WHY+="swanctl --initiate --child mh failed: $(grep -m1 -iE 'failed|error|unacceptable' "$SWAN/mn/initiate.out"); "
    sw mn --initiate --child tun --timeout 30 >>"$SWAN/mn/initiate.out" 2>&1 ||
      WHY+="swanctl --initiate --child tun failed; "
  fi
  [[ -z $WHY ]] || return 1
  wait_sas $OURS 40 || return 1
  lab_check_ours $OURS
  lab_check_peer $OURS $PEER
  swan_children_ok $PEER
  [[ -z $WHY ]]
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
  reset
  if ! up "$dir" "$log"; then
    explain "$name" "$log" "$WHY"
    return 1
  fi
  local ok=0
  RESULTS=/tmp/sub lab_ping_check "$name" mn ha $OURS || ok=1
  RESULTS=/tmp/sub lab_mh_check "$name" mn ha $OURS || ok=1
  if ((ok)); then
    grep -v '^PASS ' /tmp/sub >>"$RESULTS"
    rm -f /tmp/sub
    return 1
  fi
  rm -f /tmp/sub
  sw $PEER --list-sas >"$LOGS/$name.list-sas" 2>&1
  pass "$name"
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

# 1: ECDSA P-256 certificates (AUTH method 9 both ways: RFC 7427 is scenario 4), X25519,
# AES-128-CBC/HMAC-SHA2-256.
sc1() {
  local dir=$1
  OUR_SIG=legacy SW_SIGAUTH=no basic "s1-ecdsa-x25519-aescbc.$dir" "$dir"
}

PLAN=(lab-swan-vs-swan
  s1-ecdsa-x25519-aescbc.our-mn s1-ecdsa-x25519-aescbc.swan-mn)

run_all() {
  lab_warm_kernel && lab_netns_up || {
    fail lab-swan-vs-swan "kernel modules or namespaces could not be set up"
    return 1
  }
  sc_swan_vs_swan
  local d
  for d in our-mn swan-mn; do
    sc1 $d
  done
  reset
  lab_netns_down
}

: >"$RESULTS"
echo "${PLAN[@]}" >/job/plan
run_all
echo "scenarios done"
