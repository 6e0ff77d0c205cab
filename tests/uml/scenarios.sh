# shellcheck shell=bash
# Runs INSIDE User-Mode Linux (started by tests/uml/run): our MN and HA daemons in two network
# namespaces with the XFRM backend and real ESP. Appends PASS/FAIL lines to /job/results.
# /job/env gives BIN (the daemon binaries, as seen from the guest).
set -u
# shellcheck source=/dev/null
. /job/env
# shellcheck source=tests/uml/lab.sh
. /job/lab.sh
# shellcheck source=tests/uml/move.sh
. /job/move.sh
# shellcheck source=tests/uml/resync.sh
. /job/resync.sh
# shellcheck source=tests/uml/mip6d-lab.sh
. /job/mip6d-lab.sh
# shellcheck source=tests/uml/mip6d.sh
. /job/mip6d.sh

IKED=$BIN/mip6-iked
export RUST_LOG=${RUST_LOG:-debug} NO_COLOR=1
OLD_SPIS=

# conf NAME ROLE POLICIES: writes /job/NAME.toml for our daemon.
conf() { OUR_POLICIES=$3 lab_our_conf "/job/$1.toml" "$2"; }

# start NS CONF LOG: starts our daemon in NS; the PID goes to /tmp/NS.pid.
start() {
  local ns=$1 cfg=$2 log=$3
  ip netns exec "$ns" "$IKED" --config "/job/$cfg.toml" >>"$LOGS/$log.log" 2>&1 &
  echo $! >/tmp/"$ns".pid
}

# stop NS [SIGNAL]: stops the daemon in NS (TERM by default) and waits for it.
stop() {
  local pid
  pid=$(cat /tmp/"$1".pid 2>/dev/null) || return 0
  kill -"${2:-TERM}" "$pid" 2>/dev/null
  local i
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -f /tmp/"$1".pid
}

# wait_both SECONDS: waits until both namespaces hold 4 SAs; gives up early when a daemon died.
wait_both() {
  local end=$((SECONDS + $1)) ns
  while ((SECONDS < end)); do
    [[ $(lab_sa_count mn) == 4 && $(lab_sa_count ha) == 4 ]] && return 0
    for ns in mn ha; do
      kill -0 "$(cat /tmp/$ns.pid 2>/dev/null)" 2>/dev/null || {
        WHY="the $ns daemon exited; "
        return 1
      }
    done
    sleep 0.2
  done
  WHY="timed out; "
  return 1
}

# check_rfc4877_sas: both namespaces hold exactly the four SAs mip6d's policies need, with
# matching SPIs across the two sides.
check_rfc4877_sas() {
  WHY=
  lab_check_ours mn
  lab_check_ours ha
  lab_check_peer mn ha
  [[ -z $WHY ]]
}

# ---- scenario bodies -----------------------------------------------------------------------

# 1: SAs negotiated and installed with mip6d's policies present.
sc_sa_install() {
  local name=$1
  lab_mip6d_policies mn mn && lab_mip6d_policies ha ha || {
    fail "$name" "could not install mip6d-style policies"
    return 1
  }
  conf ha ha mip6d
  conf mn mn mip6d
  start ha ha ha
  sleep 0.5
  start mn mn mn
  if ! wait_both 40; then
    fail "$name" "expected 4 ESP SAs on each side, MN has $(lab_sa_count mn), HA has $(lab_sa_count ha): $WHY" \
      "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
    return 1
  fi
  if ! check_rfc4877_sas; then
    fail "$name" "SAs do not have the RFC 4877 shape: $WHY" "$(lab_state mn; lab_state ha)"
    return 1
  fi
  pass "$name"
}

# 2: ping HoA -> CN through the tunnel SAs; 3: BU HoA -> HA and BA HA -> HoA through the
# transport SAs (see lab.sh).
sc_ping() { lab_ping_check "$1" mn ha; }
sc_mh() { lab_mh_check "$1" mn ha; }

# 4: kill -9 of the HA daemon leaves its SAs in the kernel; the restarted daemon removes them, a
# foreign SA (not ours: another reqid, installed by hand) survives, and the MN re-establishes
# fresh SAs.
sc_restart() {
  local name=$1 old foreign=0x0badcafe left
  old=$(lab_sas ha | awk '{ print $3 }' | sort | tr '\n' ' ')
  ip -n ha xfrm state add src 2001:db8:9::1 dst 2001:db8:9::2 proto esp spi $foreign reqid 999 \
    mode tunnel auth 'hmac(sha256)' 0x$(printf '%064d' 0) enc 'cbc(aes)' 0x$(printf '%032d' 0)
  stop ha KILL
  [[ $(lab_sa_count ha) == 5 ]] || {
    fail "$name" "after kill -9 the HA's 4 SAs should still be there (got $(lab_sa_count ha) with the foreign one)"
    return 1
  }
  echo "=== restart after kill -9" >>"$LOGS/ha.log"
  start ha ha ha
  WHY=
  # the stale SAs go at start-up, before any new negotiation could replace them
  local i
  for i in $(seq 1 50); do
    left=$(lab_sas ha | awk -v old="$old" 'index(old, $3" ") { print $3 }' | tr '\n' ' ')
    [[ -z $left ]] && break
    sleep 0.1
  done
  [[ -z $left ]] || WHY+="stale SAs still in the HA's kernel 5 s after the restart: $left; "
  lab_sas ha | grep -q "$foreign" || WHY+="the foreign SA $foreign (reqid 999) was removed; "
  ip -n ha xfrm state delete src 2001:db8:9::1 dst 2001:db8:9::2 proto esp spi $foreign 2>/dev/null
  # the MN notices the dead IKE SA (liveness) and initiates again
  if wait_both 60 && sleep 1 && check_rfc4877_sas; then
    left=$(lab_sas ha | awk -v old="$old" 'index(old, $3" ") { print $3 }' | tr '\n' ' ')
    [[ -z $left ]] || WHY+="old SPIs back on the HA after re-establishment: $left; "
  else
    WHY+="no fresh SAs after the restart (HA has $(lab_sa_count ha), MN $(lab_sa_count mn)); "
  fi
  if [[ -n $WHY ]]; then
    fail "$name" "$WHY" "$LOGS/ha.log" "$LOGS/mn.log" "$(lab_state mn; lab_state ha)"
    return 1
  fi
  pass "$name"
}

# ACQUIRE: the HA stops cleanly (it deletes the IKE SA, so the MN's SAs go and the MN plans its
# next attempt in 5 s); the HA comes back; one BU from the HoA hits the MN's MH policy without SA,
# the kernel raises an ACQUIRE and the MN negotiates at once.
# With `typed`, the MN's outbound MH policy names the BU type in sport as mip6d's HomeRegBinding
# does, so the ACQUIRE's selector carries MH type 5.
sc_acquire() {
  local name=$1 n
  if [[ ${2:-} == typed ]]; then
    ip -n mn xfrm policy delete src $HOA/128 dst $HA/128 proto 135 dir out &&
      ip -n mn xfrm policy add src $HOA/128 dst $HA/128 proto 135 type 5 dir out priority 2 \
        tmpl proto esp mode transport reqid 1 || {
      fail "$name" "could not install the typed BU policy"
      return 1
    }
  fi
  stop ha
  if ! lab_wait_sas mn 0 10; then
    fail "$name" "the MN kept $(lab_sa_count mn) SAs after the HA deleted its IKE SA" "$LOGS/mn.log"
    return 1
  fi
  echo "=== acquire" >>"$LOGS/ha.log"
  start ha ha ha
  sleep 0.5
  n=$(wc -l <"$LOGS/mn.log")
  lab_send_mh mn $HOA $HA 5
  WHY=
  wait_both 15 || WHY+="no SAs after the ACQUIRE: MN $(lab_sa_count mn), HA $(lab_sa_count ha); "
  tail -n +"$((n + 1))" "$LOGS/mn.log" | grep -q 'ACQUIRE: initiating' ||
    WHY+="the MN log has no 'ACQUIRE: initiating' after the BU; "
  check_rfc4877_sas || true
  if [[ -n $WHY ]]; then
    fail "$name" "$WHY" "$LOGS/mn.log" "$(lab_state mn; lab_state ha)"
    return 1
  fi
  if [[ ${2:-} == typed ]]; then
    # and the BU now goes through the new SA
    RESULTS=/tmp/sub lab_mh_check "$name" mn ha || {
      grep -v '^PASS ' /tmp/sub >>"$RESULTS"
      rm -f /tmp/sub
      return 1
    }
    rm -f /tmp/sub
  fi
  pass "$name"
}

# SIGTERM of both daemons removes every SA they installed (and, in daemon mode, every policy).
sc_shutdown() {
  local name=$1 mode=$2
  stop mn
  stop ha
  WHY=
  [[ $(lab_owned_sa_count mn) == 0 ]] || WHY+="MN kernel still has $(lab_owned_sa_count mn) SAs; "
  [[ $(lab_owned_sa_count ha) == 0 ]] || WHY+="HA kernel still has $(lab_owned_sa_count ha) SAs; "
  if [[ $mode == daemon ]]; then
    local n
    for n in mn ha; do
      [[ -z $(ip -n $n xfrm policy) ]] || WHY+="$n: policies left: $(ip -n $n xfrm policy | grep -c '^src'); "
    done
  fi
  if [[ -n $WHY ]]; then
    fail "$name" "$WHY" "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
    return 1
  fi
  pass "$name"
}

# policies = "daemon": the daemons install the policies themselves (mip6d's shape), SAs come up,
# ping and MH go through.
sc_daemon_policies() {
  local name=$1
  ip -n mn xfrm policy flush
  ip -n ha xfrm policy flush
  conf ha ha daemon
  conf mn mn daemon
  echo "=== policies = daemon" | tee -a "$LOGS/ha.log" >>"$LOGS/mn.log"
  start ha ha ha
  sleep 0.5
  start mn mn mn
  if ! wait_both 40 || ! check_rfc4877_sas; then
    fail "$name" "SAs: MN has $(lab_sa_count mn), HA has $(lab_sa_count ha); ${WHY:-}" \
      "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
    return 1
  fi
  WHY=
  local n d r
  for n in mn ha; do
    for r in 1 2 3 4; do
      ip -n $n xfrm policy | grep -q "reqid $r " ||
        WHY+="$n: no policy with reqid $r; "
    done
    for d in in out; do
      ip -n $n xfrm policy | grep -q "dir $d" || WHY+="$n: no $d policy; "
    done
  done
  if [[ -n $WHY ]]; then
    fail "$name" "$WHY" "$(lab_state mn; lab_state ha)"
    return 1
  fi
  pass "$name"
}

# ---- run ------------------------------------------------------------------------------------

run_all() {
  if [[ ${ONLY:-} == mip6d ]]; then
    lab_warm_kernel && sc_mip6d_all
    return
  fi
  lab_warm_kernel || {
    fail kernel-setup "esp6/xfrm_user/crypto modules could not be loaded" "$(dmesg | tail -5)"
    return 1
  }
  lab_netns_up || {
    fail kernel-setup "network namespaces could not be set up"
    return 1
  }
  pass kernel-setup
  # the lab's own datapath with hand-made SAs: a failure here is the lab's, not the daemon's
  lab_mip6d_policies mn mn && lab_mip6d_policies ha ha && lab_manual_sas
  if check_rfc4877_sas; then
    sc_ping lab-datapath-ping && sc_mh lab-datapath-mh
  else
    fail lab-datapath-ping "hand-made SAs: $WHY"
  fi
  ip -n mn xfrm state flush
  ip -n ha xfrm state flush
  ip -n mn xfrm policy flush
  ip -n ha xfrm policy flush
  # policies = "mip6d": the script installs what mip6d would
  if sc_sa_install sa-install-mip6d-policies; then
    sc_ping ping-tunnel-sa
    sc_mh mh-transport-sa
    sc_restart restart-after-kill-9
    sc_acquire acquire-starts-negotiation
    sc_acquire acquire-typed-bu-policy typed
    sc_shutdown shutdown-removes-sas mip6d
  else
    local s
    for s in ping-tunnel-sa mh-transport-sa restart-after-kill-9 acquire-starts-negotiation \
      acquire-typed-bu-policy shutdown-removes-sas; do
      fail $s "not run: sa-install-mip6d-policies failed"
    done
    stop mn
    stop ha
  fi
  ip -n mn xfrm state flush
  ip -n ha xfrm state flush
  sc_move_all
  sc_resync_transient
  if sc_daemon_policies daemon-policies; then
    sc_ping ping-tunnel-sa-daemon-policies
    sc_mh mh-transport-sa-daemon-policies
    sc_shutdown shutdown-removes-policies daemon
  else
    local s
    for s in ping-tunnel-sa-daemon-policies mh-transport-sa-daemon-policies shutdown-removes-policies; do
      fail $s "not run: daemon-policies failed"
    done
    stop mn
    stop ha
  fi
  lab_netns_down
  sc_mip6d_all
}

: >"$RESULTS"
# the plan: the host reports any of these without a result line as FAIL
echo kernel-setup lab-datapath-ping lab-datapath-mh sa-install-mip6d-policies ping-tunnel-sa \
  mh-transport-sa restart-after-kill-9 acquire-starts-negotiation acquire-typed-bu-policy \
  shutdown-removes-sas daemon-policies ping-tunnel-sa-daemon-policies \
  mh-transport-sa-daemon-policies shutdown-removes-policies $MV_PLAN $RS_PLAN $MD_PLAN >/job/plan
[[ ${ONLY:-} == mip6d ]] && echo "$MD_PLAN" >/job/plan
run_all
echo "scenarios done"
