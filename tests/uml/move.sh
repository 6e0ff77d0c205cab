# shellcheck shell=bash
# Movement scenarios (RFC 6275 11.7.1 K bit, RFC 4877 4.5), sourced by tests/uml/scenarios.sh
# inside User-Mode Linux: the MN moves to a new care-of address and both sides send the MIGRATE
# sequence mip6d sends (MN: 4, one per policy direction; HA: 5, with the FWD tunnel policy; each
# with one entry and KMADDRESS; transport entries with old endpoints `::`), through
# tests/uml/xfrm-migrate.py. The kernel moves the tunnel SAs; our daemons must move their IKE SA
# once (K bit) or re-establish it (no K bit).
# Uses lab.sh, and from scenarios.sh: conf, start, stop, wait_both, check_rfc4877_sas, pass, fail.

MV_MIGRATE=/job/xfrm-migrate.py
MV_CTL=$BIN/mip6-ikectl
MV_COAS="2001:db8:2::101 2001:db8:2::102 2001:db8:2::103"

# mv_ctl ROLE ARGS...: mip6-ikectl --json against that daemon's control socket.
mv_ctl() {
  local role=$1
  shift
  "$MV_CTL" --socket /run/mip6-iked-"$role"/control.sock --json "$@"
}

# mv_ike ROLE: one line per IKE SA: "id spi_i spi_r local remote state".
mv_ike() {
  mv_ctl "$1" sas | python3 -c '
import json, sys
for line in sys.stdin:
    for s in json.loads(line).get("ike_sas", []):
        print(s["ike"], s["spi_i"], s["spi_r"], s["local"], s["remote"], s["state"])'
}

# mv_child ROLE CLASS FIELD: FIELD of the CHILD_SA of that class (first IKE SA).
mv_child() {
  mv_ctl "$1" sas | python3 -c '
import json, sys
cls, field = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    for s in json.loads(line).get("ike_sas", []):
        for c in s["children"]:
            if c["class"] == cls:
                print(c[field]); sys.exit(0)' "$2" "$3"
}

# mv_stat ROLE COUNTER: one counter of `mip6-ikectl stats`.
mv_stat() { mv_ctl "$1" stats | python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$2"; }
mv_migrations() { mv_stat "$1" migrations; }

# mv_send NS ARGS...: MIGRATEs from NS (separated by `+`); a refusal goes to WHY.
mv_send() {
  local ns=$1 out
  shift
  out=$(ip netns exec "$ns" python3 "$MV_MIGRATE" "$@" 2>&1) || WHY+="$ns MIGRATE $*: ${out:-failed}; "
}

# mv_migrate_mn OLD NEW: the MN's four MIGRATEs (KMADDRESS new CoA, HA). Transport entries: old
# `::` (mip6d's templates have no addresses), new built from the CoA, as in the mip6d traces.
mv_migrate_mn() {
  local o=$1 n=$2
  mv_send mn --sel $HOA/128 $HA/128 --proto 135 --dir out --reqid 1 --mode transport \
    --old :: :: --new "$n" $HA --km "$n" $HA + \
    --sel $HA/128 $HOA/128 --proto 135 --dir in --reqid 2 --mode transport \
    --old :: :: --new $HA "$n" --km "$n" $HA + \
    --sel $HOA/128 ::/0 --dir out --reqid 3 --mode tunnel \
    --old "$o" $HA --new "$n" $HA --km "$n" $HA + \
    --sel ::/0 $HOA/128 --dir in --reqid 4 --mode tunnel \
    --old $HA "$o" --new $HA "$n" --km "$n" $HA
}

# mv_migrate_ha OLD NEW: the HA's five MIGRATEs (KMADDRESS HA, new CoA; the HoA at home), eight
# when NEW is the HoA.
mv_migrate_ha() {
  local o=$1 n=$2
  mv_send ha --sel $HOA/128 $HA/128 --proto 135 --dir in --reqid 1 --mode transport \
    --old :: :: --new "$n" $HA --km $HA "$n" + \
    --sel $HA/128 $HOA/128 --proto 135 --dir out --reqid 2 --mode transport \
    --old :: :: --new $HA "$n" --km $HA "$n" + \
    --sel $HOA/128 ::/0 --dir in --reqid 3 --mode tunnel \
    --old "$o" $HA --new "$n" $HA --km $HA "$n" + \
    --sel $HOA/128 ::/0 --dir fwd --reqid 3 --mode tunnel \
    --old "$o" $HA --new "$n" $HA --km $HA "$n" + \
    --sel ::/0 $HOA/128 --dir out --reqid 4 --mode tunnel \
    --old $HA "$o" --new $HA "$n" --km $HA "$n"
  # back home mip6d sends 3 more before it deletes its tunnel policies, with old = new =
  # HoA <-> HA (traces: static migrate-acquire-ha.txt 29-31): 8 MIGRATEs for one move
  [[ $n == "$HOA" ]] || return 0
  mv_send ha --sel $HOA/128 ::/0 --dir in --reqid 3 --mode tunnel \
    --old $HOA $HA --new $HOA $HA --km $HA $HOA + \
    --sel $HOA/128 ::/0 --dir fwd --reqid 3 --mode tunnel \
    --old $HOA $HA --new $HOA $HA --km $HA $HOA + \
    --sel ::/0 $HOA/128 --dir out --reqid 4 --mode tunnel \
    --old $HA $HOA --new $HA $HOA --km $HA $HOA
}

# mv_link OLD NEW: the MN leaves OLD for NEW (NEW = HoA: back on the home link); the HA's route
# to the HoA follows (what its binding cache would do).
mv_link() {
  local o=$1 n=$2
  ip -n mn addr add "$n"/64 dev mn-eth0 nodad
  if [[ $n == "$HOA" ]]; then
    ip -n ha -6 route replace $HOA/128 dev ha-eth0
  else
    ip -n ha -6 route replace $HOA/128 via "$n" dev ha-eth0
  fi
  [[ $o == "$HOA" ]] || ip -n mn addr del "$o"/64 dev mn-eth0
}

# mv_policies: mip6d's policies at the original CoA, plus the HA's FWD tunnel policy (mip6d
# migrates it too: the HA's 5th MIGRATE).
mv_policies() {
  ip -n mn xfrm policy flush
  ip -n ha xfrm policy flush
  lab_mip6d_policies mn mn && lab_mip6d_policies ha ha &&
    ip -n ha xfrm policy add src $HOA/128 dst ::/0 dir fwd priority 13 \
      tmpl src $COA dst $HA proto esp mode tunnel reqid 3
}

# mv_start KMOB: both daemons (key_mobility = KMOB) with mip6d's policies; 4 SAs each.
mv_start() {
  local f
  conf ha ha mip6d
  conf mn mn mip6d
  for f in ha mn; do sed -i "1a key_mobility = $1" /job/$f.toml; done
  echo "=== move scenarios, key_mobility = $1" | tee -a "$LOGS/ha.log" >>"$LOGS/mn.log"
  MV_LINES_MN=$(wc -l <"$LOGS/mn.log")
  MV_LINES_HA=$(wc -l <"$LOGS/ha.log")
  start ha ha ha
  sleep 0.5
  start mn mn mn
  wait_both 40 && check_rfc4877_sas
}

# mv_check_tunnels NEW SPI3 SPI4: on both sides the tunnel SAs with these SPIs run NEW <-> HA,
# the transport SAs HoA <-> HA. Appends to WHY.
mv_check_tunnels() {
  local n=$1 ns t got
  for ns in mn ha; do
    t=$(lab_sas $ns)
    got=$(awk -v s="$2" '$3 == s { print $1, $2 }' <<<"$t")
    [[ $got == "$n $HA" ]] || WHY+="$ns SA $2 (reqid 3): '$got', want '$n $HA'; "
    got=$(awk -v s="$3" '$3 == s { print $1, $2 }' <<<"$t")
    [[ $got == "$HA $n" ]] || WHY+="$ns SA $3 (reqid 4): '$got', want '$HA $n'; "
    got=$(awk '$5 == "transport" { print $1, $2 }' <<<"$t" | sort | tr '\n' ' ')
    [[ $got == "$(printf '%s\n' "$HA $HOA" "$HOA $HA" | sort | tr '\n' ' ')" ]] ||
      WHY+="$ns transport SAs: '$got'; "
  done
}

# mv_move_k NAME OLD NEW: one move with the K bit and its checks (NAME, NAME-ping, NAME-rekey).
mv_move_k() {
  local name=$1 o=$2 n=$3 s3 s4 mn0 ha0 ike_mn ike_ha got m_mn m_ha ev_mn ev_ha i
  WHY=
  s3=$(lab_sa mn 3 spi)
  s4=$(lab_sa mn 4 spi)
  ike_mn=$(mv_ike mn | awk '{ print $2, $3 }')
  ike_ha=$(mv_ike ha | awk '{ print $2, $3 }')
  mn0=$(mv_migrations mn)
  ha0=$(mv_migrations ha)
  ev_mn=$(grep -c '"migrated"' /tmp/ev.mn)
  ev_ha=$(grep -c '"migrated"' /tmp/ev.ha)
  mv_link "$o" "$n"
  mv_migrate_mn "$o" "$n"
  mv_migrate_ha "$o" "$n"
  # the kernel moved the tunnel SAs (same SPIs), the transport SAs stay
  mv_check_tunnels "$n" "$s3" "$s4"
  # both daemons moved their IKE SA once (4 and 5 MIGRATEs), keeping its SPIs and ports
  for i in $(seq 1 20); do
    [[ $(mv_ike mn | awk '{ print $4, $5 }') == "[$n]:500 [$HA]:500" &&
      $(mv_ike ha | awk '{ print $4, $5 }') == "[$HA]:500 [$n]:500" ]] && break
    sleep 0.1
  done
  got=$(mv_ike mn)
  [[ $(echo "$got" | awk '{ print $2, $3, $4, $5 }') == "$ike_mn [$n]:500 [$HA]:500" ]] ||
    WHY+="MN IKE SA '$got', want SPIs '$ike_mn' at [$n]:500 <-> [$HA]:500; "
  got=$(mv_ike ha)
  [[ $(echo "$got" | awk '{ print $2, $3, $4, $5 }') == "$ike_ha [$HA]:500 [$n]:500" ]] ||
    WHY+="HA IKE SA '$got', want SPIs '$ike_ha' at [$HA]:500 <-> [$n]:500; "
  m_mn=$(mv_migrations mn)
  m_ha=$(mv_migrations ha)
  [[ $m_mn == $((mn0 + 1)) ]] || WHY+="MN migrations counter $mn0 -> $m_mn (want +1); "
  [[ $m_ha == $((ha0 + 1)) ]] || WHY+="HA migrations counter $ha0 -> $m_ha (want +1); "
  [[ $(grep -c '"migrated"' /tmp/ev.mn) == $((ev_mn + 1)) ]] ||
    WHY+="MN: $(($(grep -c '"migrated"' /tmp/ev.mn) - ev_mn)) migrated events (want 1); "
  [[ $(grep -c '"migrated"' /tmp/ev.ha) == $((ev_ha + 1)) ]] ||
    WHY+="HA: $(($(grep -c '"migrated"' /tmp/ev.ha) - ev_ha)) migrated events (want 1); "
  if [[ -n $WHY ]]; then
    fail "$name" "$WHY" "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
  else
    pass "$name"
  fi
  # a ping from the HoA still goes through the (moved) tunnel SAs
  lab_ping_check "$name-ping" mn ha
  # a CHILD_SA rekey after the first move and at home (each takes a few seconds under UML)
  [[ $name == *-2 || $name == *-3 ]] || mv_rekey "$name-rekey" "$n"
}

# mv_rekey NAME NEW: the MN rekeys its payload CHILD_SA (an IKE exchange after the move; the old
# CoA is gone, so it can only leave from NEW): new SPIs for reqids 3/4 on both sides, installed
# at NEW <-> HA, the old ones deleted (the next step's ping goes through them).
mv_rekey() {
  local name=$1 n=$2 ike old3 old4 out i new3 new4 t
  WHY=
  ike=$(mv_ike mn | awk '{ print $1; exit }')
  old3=$(lab_sa mn 3 spi)
  old4=$(lab_sa mn 4 spi)
  out=$(mv_ctl mn rekey "$ike" --child "$(mv_child mn payload spi_in)" 2>&1) ||
    WHY+="mip6-ikectl rekey: $out; "
  for i in $(seq 1 50); do
    t=$(lab_sas mn)
    new3=$(awk '$4 == 3 { print $3 }' <<<"$t")
    new4=$(awk '$4 == 4 { print $3 }' <<<"$t")
    [[ $new3 != "$old3" && $new4 != "$old4" && $(wc -l <<<"$t") == 4 &&
      $(lab_sa_count ha) == 4 ]] && break
    sleep 0.2
  done
  [[ $new3 != "$old3" && $new4 != "$old4" ]] ||
    WHY+="no new tunnel SPIs after the rekey (reqid 3 $old3 -> $new3, 4 $old4 -> $new4); "
  lab_sas mn | grep -qE "$old3|$old4" && WHY+="old SPIs $old3/$old4 still in the MN's kernel; "
  if [[ -z $WHY ]]; then
    mv_check_tunnels "$n" "$new3" "$new4"
    lab_check_peer mn ha
    [[ $(mv_child ha payload remote) == "$n" ]] ||
      WHY+="HA's payload CHILD_SA remote is '$(mv_child ha payload remote)', want $n; "
  fi
  if [[ -n $WHY ]]; then
    fail "$name" "$WHY" "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
    return 1
  fi
  pass "$name"
}

# The K-bit run: three moves and a return home, then a liveness period on the last address.
sc_move_kbit() {
  local o=$COA n s ike_mn r_mn r_ha
  mv_policies && mv_start true || {
    fail move-kbit-setup "no SAs in key_mobility mode: ${WHY:-}" "$LOGS/mn.log" "$LOGS/ha.log" \
      "$(lab_state mn; lab_state ha)"
    return 1
  }
  mv_ctl mn events >/tmp/ev.mn 2>&1 &
  MV_EV_MN=$!
  mv_ctl ha events >/tmp/ev.ha 2>&1 &
  MV_EV_HA=$!
  sleep 0.3
  pass move-kbit-setup
  s=1
  for n in $MV_COAS $HOA; do
    if [[ $n == "$HOA" ]]; then
      mv_move_k move-kbit-home "$o" "$n"
    else
      mv_move_k move-kbit-$s "$o" "$n"
    fi
    o=$n
    s=$((s + 1))
  done
  # liveness checks (3 s without hearing from the peer) now run HoA <-> HA: in 5 s neither side
  # retransmits (a check sent to a stale address is retransmitted after 1 s) and the IKE SA
  # stays; then a ping goes through the SAs rekeyed at home
  WHY=
  ike_mn=$(mv_ike mn | awk '{ print $2, $3 }')
  r_mn=$(mv_stat mn retransmissions)
  r_ha=$(mv_stat ha retransmissions)
  sleep 5
  [[ $(mv_stat mn retransmissions) == "$r_mn" ]] ||
    WHY+="MN retransmissions $r_mn -> $(mv_stat mn retransmissions); "
  [[ $(mv_stat ha retransmissions) == "$r_ha" ]] ||
    WHY+="HA retransmissions $r_ha -> $(mv_stat ha retransmissions); "
  [[ $(mv_ike mn | awk '{ print $2, $3, $4 }') == "$ike_mn [$HOA]:500" ]] ||
    WHY+="MN IKE SA after 5 s at home: '$(mv_ike mn)' (was $ike_mn); "
  [[ $(mv_ike ha | awk '{ print $2, $3, $5 }') == "$ike_mn [$HOA]:500" ]] ||
    WHY+="HA IKE SA after 5 s: '$(mv_ike ha)'; "
  if [[ -n $WHY ]]; then
    fail move-kbit-liveness-at-home "$WHY" "$LOGS/mn.log" "$LOGS/ha.log"
  else
    pass move-kbit-liveness-at-home
  fi
  lab_ping_check move-kbit-home-ping-rekeyed mn ha
  kill "$MV_EV_MN" "$MV_EV_HA" 2>/dev/null
  wait "$MV_EV_MN" "$MV_EV_HA" 2>/dev/null
}

# Without the K bit: the MN re-establishes its IKE SA from the new CoA (new IKE SPIs), the HA
# drops the old one, fresh SAs run at the new CoA and carry a ping.
sc_move_no_kbit() {
  local name=move-no-kbit n=2001:db8:2::104 old_mn old_ha got i
  WHY=
  mv_policies && mv_start false || {
    fail $name "no SAs with key_mobility = false: ${WHY:-}" "$LOGS/mn.log" "$LOGS/ha.log"
    fail $name-ping "not run"
    return 1
  }
  WHY=
  old_mn=$(mv_ike mn | awk '{ print $2, $3 }')
  old_ha=$(mv_ike ha | awk '{ print $2, $3 }')
  mv_link $COA $n
  mv_migrate_mn $COA $n
  mv_migrate_ha $COA $n
  for i in $(seq 1 75); do
    got=$(mv_ike mn)
    [[ $(echo "$got" | wc -l) == 1 && $got == *" [$n]:500 [$HA]:500 "* &&
      $got != *"$old_mn"* && $(mv_ike ha | wc -l) == 1 && $(mv_ike ha) != *"$old_ha"* &&
      $(lab_sa_count mn) == 4 && $(lab_sa_count ha) == 4 ]] && break
    sleep 0.2
  done
  [[ $(echo "$got" | awk '{ print $4, $5 }') == "[$n]:500 [$HA]:500" ]] ||
    WHY+="MN IKE SAs: '$got', want one at [$n]:500 <-> [$HA]:500; "
  [[ $(echo "$got" | awk '{ print $2, $3 }') != "$old_mn" ]] ||
    WHY+="the MN kept its IKE SA ($old_mn) instead of re-establishing it; "
  got=$(mv_ike ha)
  [[ $(echo "$got" | wc -l) == 1 && $got != *"$old_ha"* ]] ||
    WHY+="HA IKE SAs: '$got' (the old one was $old_ha); "
  [[ $(echo "$got" | awk '{ print $2, $3 }') == "$(mv_ike mn | awk '{ print $2, $3 }')" ]] ||
    WHY+="MN and HA disagree on the new IKE SA; "
  [[ $(mv_migrations mn) == 0 && $(mv_migrations ha) == 0 ]] ||
    WHY+="migrations counted without key mobility: MN $(mv_migrations mn), HA $(mv_migrations ha); "
  check_rfc4877_sas_at "$n"
  if [[ -n $WHY ]]; then
    fail $name "$WHY" "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
  else
    pass $name
  fi
  lab_ping_check $name-ping mn ha
}

# check_rfc4877_sas_at NEW: four SAs each side, tunnels at NEW, same SPIs on both ends.
check_rfc4877_sas_at() {
  [[ $(lab_sa_count mn) == 4 && $(lab_sa_count ha) == 4 ]] ||
    WHY+="SA count: MN $(lab_sa_count mn), HA $(lab_sa_count ha) (want 4); "
  mv_check_tunnels "$1" "$(lab_sa mn 3 spi)" "$(lab_sa mn 4 spi)"
  lab_check_peer mn ha
}

# mv_shutdown NAME: SIGTERM of both daemons after the moves leaves no SA in either kernel, and
# neither daemon still holds a record of an SA (its deletes and the shutdown found every SA at
# the address the kernel's MIGRATEs moved it to).
mv_shutdown() {
  local name=$1 role lines
  stop mn
  stop ha
  WHY=
  [[ $(lab_owned_sa_count mn) == 0 ]] || WHY+="MN kernel still has $(lab_owned_sa_count mn) SAs; "
  [[ $(lab_owned_sa_count ha) == 0 ]] || WHY+="HA kernel still has $(lab_owned_sa_count ha) SAs; "
  for role in mn ha; do
    [[ $role == mn ]] && lines=$MV_LINES_MN || lines=$MV_LINES_HA
    tail -n +"$((lines + 1))" "$LOGS/$role.log" | grep -q 'SAs still installed after shutdown' &&
      WHY+="$role: $(tail -n +"$((lines + 1))" "$LOGS/$role.log" | grep -o 'SAs still installed.*' | head -1); "
  done
  if [[ -n $WHY ]]; then
    fail "$name" "$WHY" "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
    return 1
  fi
  pass "$name"
}

MV_PLAN="move-kbit-setup move-kbit-1 move-kbit-1-ping move-kbit-1-rekey move-kbit-2 \
move-kbit-2-ping move-kbit-3 move-kbit-3-ping move-kbit-home \
move-kbit-home-ping move-kbit-home-rekey move-kbit-liveness-at-home move-kbit-home-ping-rekeyed \
move-kbit-shutdown move-no-kbit move-no-kbit-ping move-no-kbit-shutdown"

# sc_move_all: both runs from a clean slate; puts the lab back as it was (CoA, route, no SAs, no
# policies) for the scenarios after it.
sc_move_all() {
  local a
  ip -n mn xfrm state flush
  ip -n ha xfrm state flush
  sc_move_kbit
  mv_shutdown move-kbit-shutdown
  stop mn
  stop ha
  ip -n mn xfrm state flush
  ip -n ha xfrm state flush
  ip -n mn addr del $HOA/64 dev mn-eth0 2>/dev/null
  ip -n mn addr add $COA/64 dev mn-eth0 nodad
  ip -n ha -6 route replace $HOA/128 via $COA dev ha-eth0
  sc_move_no_kbit
  mv_shutdown move-no-kbit-shutdown
  stop mn
  stop ha
  for a in $MV_COAS 2001:db8:2::104; do ip -n mn addr del $a/64 dev mn-eth0 2>/dev/null; done
  ip -n mn addr add $COA/64 dev mn-eth0 nodad 2>/dev/null
  ip -n ha -6 route replace $HOA/128 via $COA dev ha-eth0
  ip -n mn xfrm state flush
  ip -n ha xfrm state flush
  ip -n mn xfrm policy flush
  ip -n ha xfrm policy flush
  true
}
