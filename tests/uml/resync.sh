# shellcheck shell=bash
# Resynchronisation scenario (issue 11), sourced by tests/uml/scenarios.sh inside User-Mode
# Linux: mip6d's start-up at home registers a transient home-link address as care-of address,
# and both daemons negotiate their CHILD_SAs there. mip6d's tunnel templates start at HoA <-> HA,
# so the MIGRATEs of the next move name HoA <-> HA as the tunnel's old endpoints and the kernel
# moves none of our tunnel SAs: the daemons must put them at the new care-of address themselves
# (same SPIs, same keys, no renegotiation), a ping must pass, and shutdown must leave no SA.
# Uses lab.sh, and from scenarios.sh: conf, start, stop, wait_both, pass, fail.

RS_MIGRATE=/job/xfrm-migrate.py
# the transient address (a home-link SLAAC address in mip6d's traces; here on the MN's link)
RS_T=2001:db8:2::ff:fe00:102
RS_PLAN="resync-transient-setup resync-transient-move resync-transient-ping \
resync-acquire-lost-sa resync-acquire-lost-sa-ping resync-transient-shutdown"

# rs_send NS ARGS...: MIGRATEs from NS as mip6d sends them; a refusal goes to WHY.
rs_send() {
  local ns=$1 out
  shift
  out=$(ip netns exec "$ns" python3 "$RS_MIGRATE" "$@" 2>&1) || WHY+="$ns MIGRATE $*: ${out:-failed}; "
}

# rs_policies: mip6d's policies with its tunnel templates as it creates them (HoA <-> HA),
# and the HA's FWD tunnel policy.
rs_policies() {
  ip -n mn xfrm policy flush
  ip -n ha xfrm policy flush
  lab_mip6d_policies mn mn && lab_mip6d_policies ha ha &&
    ip -n mn xfrm policy update src $HOA/128 dst ::/0 dir out priority 13 \
      tmpl src $HOA dst $HA proto esp mode tunnel reqid 3 &&
    ip -n mn xfrm policy update src ::/0 dst $HOA/128 dir in priority 13 \
      tmpl src $HA dst $HOA proto esp mode tunnel reqid 4 &&
    ip -n ha xfrm policy update src $HOA/128 dst ::/0 dir in priority 13 \
      tmpl src $HOA dst $HA proto esp mode tunnel reqid 3 &&
    ip -n ha xfrm policy add src $HOA/128 dst ::/0 dir fwd priority 13 \
      tmpl src $HOA dst $HA proto esp mode tunnel reqid 3 &&
    ip -n ha xfrm policy update src ::/0 dst $HOA/128 dir out priority 13 \
      tmpl src $HA dst $HOA proto esp mode tunnel reqid 4
}

# rs_tunnels_at ADDR SPI3 SPI4: on both sides the SAs with these SPIs run ADDR <-> HA.
rs_tunnels_at() {
  local ns t
  for ns in mn ha; do
    t=$(lab_sas $ns)
    [[ $(awk -v s="$2" '$3 == s { print $1, $2 }' <<<"$t") == "$1 $HA" &&
      $(awk -v s="$3" '$3 == s { print $1, $2 }' <<<"$t") == "$HA $1" ]] || return 1
  done
}

# rs_log_since ROLE LINES: the daemon's log after its first LINES lines.
rs_log_since() { tail -n +"$(($2 + 1))" "$LOGS/$1.log"; }

sc_resync_transient() {
  local s3 s4 lines_mn lines_ha i role got
  WHY=
  ip -n mn xfrm state flush
  ip -n ha xfrm state flush
  # at "home": the transient address instead of the CoA; the HA reaches the HoA through it
  ip -n mn addr del $COA/64 dev mn-eth0 2>/dev/null
  ip -n mn addr add $RS_T/64 dev mn-eth0 nodad
  ip -n ha -6 route replace $HOA/128 via $RS_T dev ha-eth0
  conf ha ha mip6d
  conf mn mn mip6d
  sed -i "1a key_mobility = true" /job/ha.toml /job/mn.toml
  sed -i "s/^care_of_address = .*/care_of_address = \"$RS_T\"/" /job/mn.toml
  echo "=== resync: start-up at a transient address" | tee -a "$LOGS/ha.log" >>"$LOGS/mn.log"
  lines_mn=$(wc -l <"$LOGS/mn.log")
  lines_ha=$(wc -l <"$LOGS/ha.log")
  if rs_policies; then
    start ha ha ha
    sleep 0.5
    start mn mn mn
    wait_both 40 || WHY+="no 4 SAs on each side; "
  else
    WHY+="policies could not be installed; "
  fi
  s3=$(lab_sa mn 3 spi)
  s4=$(lab_sa mn 4 spi)
  [[ -z $WHY ]] && { rs_tunnels_at $RS_T "$s3" "$s4" || WHY+="tunnel SAs not at $RS_T; "; }
  if [[ -n $WHY ]]; then
    fail resync-transient-setup "$WHY" "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
    for i in resync-transient-move resync-transient-ping resync-acquire-lost-sa \
      resync-acquire-lost-sa-ping resync-transient-shutdown; do
      fail $i "not run: resync-transient-setup failed"
    done
    rs_cleanup
    return 1
  fi
  pass resync-transient-setup
  # the move: the CoA comes, the transient address goes; mip6d's MIGRATEs name its templates'
  # endpoints (HoA <-> HA) as the tunnel's old ones, so the kernel moves no SA of ours
  ip -n mn addr add $COA/64 dev mn-eth0 nodad
  ip -n ha -6 route replace $HOA/128 via $COA dev ha-eth0
  ip -n mn addr del $RS_T/64 dev mn-eth0
  rs_send mn --sel $HOA/128 $HA/128 --proto 135 --dir out --reqid 1 --mode transport \
    --old :: :: --new $HOA $HA --km $COA $HA + \
    --sel $HA/128 $HOA/128 --proto 135 --dir in --reqid 2 --mode transport \
    --old :: :: --new $HA $HOA --km $COA $HA + \
    --sel $HOA/128 ::/0 --dir out --reqid 3 --mode tunnel \
    --old $HOA $HA --new $COA $HA --km $COA $HA + \
    --sel ::/0 $HOA/128 --dir in --reqid 4 --mode tunnel \
    --old $HA $HOA --new $HA $COA --km $COA $HA
  rs_send ha --sel $HOA/128 $HA/128 --proto 135 --dir in --reqid 1 --mode transport \
    --old :: :: --new $HOA $HA --km $HA $COA + \
    --sel $HA/128 $HOA/128 --proto 135 --dir out --reqid 2 --mode transport \
    --old :: :: --new $HA $HOA --km $HA $COA + \
    --sel $HOA/128 ::/0 --dir in --reqid 3 --mode tunnel \
    --old $HOA $HA --new $COA $HA --km $HA $COA + \
    --sel $HOA/128 ::/0 --dir fwd --reqid 3 --mode tunnel \
    --old $HOA $HA --new $COA $HA --km $HA $COA + \
    --sel ::/0 $HOA/128 --dir out --reqid 4 --mode tunnel \
    --old $HA $HOA --new $HA $COA --km $HA $COA
  for i in $(seq 1 25); do
    rs_tunnels_at $COA "$s3" "$s4" && break
    sleep 0.2
  done
  rs_tunnels_at $COA "$s3" "$s4" ||
    WHY+="tunnel SAs $s3/$s4 not at $COA <-> $HA on both sides; "
  [[ $(lab_sa_count mn) == 4 && $(lab_sa_count ha) == 4 ]] ||
    WHY+="SA count: MN $(lab_sa_count mn), HA $(lab_sa_count ha) (want 4: no renegotiation); "
  # the daemons did it (the kernel's MIGRATE could not): their logs say so
  for role in mn ha; do
    [[ $role == mn ]] && i=$lines_mn || i=$lines_ha
    rs_log_since $role "$i" | grep -q 'resync: SA was at other endpoints; moved' ||
      WHY+="$role: no 'resync: SA was at other endpoints; moved' in its log; "
  done
  if [[ -n $WHY ]]; then
    fail resync-transient-move "$WHY" "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
  else
    pass resync-transient-move
  fi
  lab_ping_check resync-transient-ping mn ha
  rs_acquire_lost_sa "$lines_mn"
  # shutdown: no SA left, no daemon with a record of one
  stop mn
  stop ha
  WHY=
  [[ $(lab_owned_sa_count mn) == 0 ]] || WHY+="MN kernel still has $(lab_owned_sa_count mn) SAs; "
  [[ $(lab_owned_sa_count ha) == 0 ]] || WHY+="HA kernel still has $(lab_owned_sa_count ha) SAs; "
  for role in mn ha; do
    [[ $role == mn ]] && i=$lines_mn || i=$lines_ha
    got=$(rs_log_since $role "$i" | grep -o 'SAs still installed after shutdown.*' | head -1)
    [[ -z $got ]] || WHY+="$role: $got; "
  done
  if [[ -n $WHY ]]; then
    fail resync-transient-shutdown "$WHY" "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
  else
    pass resync-transient-shutdown
  fi
  rs_cleanup
}

# rs_acquire_lost_sa LINES: the MN's kernel loses the outbound tunnel SA (deleted by hand); the
# next packet raises an ACQUIRE for a CHILD_SA the record holds. It must not be ignored: the MN
# renegotiates the CHILD_SA (an outbound SA cannot be restored: its sequence number is gone),
# new SPIs sit at the CoA on both sides, the ACQUIRE's larval state (SPI 0) is gone (the new
# outbound SA replaced it), and a ping passes.
rs_acquire_lost_sa() {
  local lines=$1 old3 old4 new3 new4 t i
  WHY=
  old3=$(lab_sa mn 3 spi)
  old4=$(lab_sa mn 4 spi)
  ip -n mn xfrm state delete src $COA dst $HA proto esp spi "$old3"
  ip netns exec mn ping -6 -c 1 -W 1 -I $HOA $CN >/dev/null 2>&1
  for i in $(seq 1 40); do
    t=$(lab_sas mn)
    new3=$(awk '$4 == 3 { print $3 }' <<<"$t")
    new4=$(awk '$4 == 4 { print $3 }' <<<"$t")
    [[ -n $new3 && $new3 != "$old3" && $new3 != 0x00000000 && $new4 != "$old4" &&
      $(lab_sa_count mn) == 4 && $(lab_sa_count ha) == 4 && $(lab_acquire_count mn) == 0 ]] && break
    sleep 0.25
  done
  [[ -n $new3 && $new3 != "$old3" && $new3 != 0x00000000 && -n $new4 && $new4 != "$old4" ]] ||
    WHY+="no new tunnel SPIs (reqid 3 $old3 -> '$new3', 4 $old4 -> '$new4'); "
  [[ $(lab_sa_count mn) == 4 && $(lab_sa_count ha) == 4 ]] ||
    WHY+="keyed SA count: MN $(lab_sa_count mn), HA $(lab_sa_count ha) (want 4); "
  [[ $(lab_acquire_count mn) == 0 ]] ||
    WHY+="the MN's kernel keeps $(lab_acquire_count mn) ACQUIRE larval state(s) (SPI 0); "
  [[ -z $WHY ]] && { rs_tunnels_at $COA "$new3" "$new4" || WHY+="new tunnel SAs not at $COA; "; }
  rs_log_since mn "$lines" | grep -q 'ACQUIRE for a CHILD_SA the record holds' ||
    WHY+="mn: the ACQUIRE was not checked against the kernel; "
  if [[ -n $WHY ]]; then
    fail resync-acquire-lost-sa "$WHY" "$LOGS/mn.log" "$LOGS/ha.log" "$(lab_state mn; lab_state ha)"
  else
    pass resync-acquire-lost-sa
  fi
  lab_ping_check resync-acquire-lost-sa-ping mn ha
}

# rs_cleanup: the lab as it was (CoA on the link, the HA's route through it, no SA, no policy).
rs_cleanup() {
  stop mn
  stop ha
  ip -n mn addr del $RS_T/64 dev mn-eth0 2>/dev/null
  ip -n mn addr add $COA/64 dev mn-eth0 nodad 2>/dev/null
  ip -n ha -6 route replace $HOA/128 via $COA dev ha-eth0
  ip -n mn xfrm state flush
  ip -n ha xfrm state flush
  ip -n mn xfrm policy flush
  ip -n ha xfrm policy flush
  true
}
