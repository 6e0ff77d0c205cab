# shellcheck shell=bash
# The topology of the mip6d traces (reference mip6d-traces/README.md), inside User-Mode Linux,
# for the mip6d model (tests/uml/mip6d_model.py) and the scenarios of tests/uml/mip6d.sh:
#
#   link            ns ha                        ns mn / cn
#   home   2001:db8:1::/64   ha-home 2001:db8:1::1 (HA)   mn-home: HoA 2001:db8:1::1234, SLAAC ...:ff:fe00:102
#   foreign1 2001:db8:2::/64 ha-fl   2001:db8:2::1        mn-fl:  CoA 2001:db8:2::ff:fe00:202
#   foreign2 2001:db8:3::/64 ha-fl2  2001:db8:3::1        mn-fl2: CoA 2001:db8:3::ff:fe00:302
#   correspondent            ha-cn   2001:db8:100::1      cn:     2001:db8:100::2
#
# The HA forwards. The MN starts on the home link; a move brings the new link up (its address
# with DAD, as in the traces, unless ML_NODAD is set) and the old one down. There is no radvd:
# the MN's default route and its router's link-layer address (what router discovery gives
# mip6d) are set by ml_phase. The router's neighbour entry is permanent because mip6d's block
# sub-policy (priority 4) also stops the MN's Neighbour Solicitations (allowed at priority 12
# only) while a registration is outstanding; with radvd the entry would come from the RA.
# Uses lab.sh (pass/fail, lab_sas).

ML_HA=2001:db8:1::1
ML_HOA=2001:db8:1::1234
ML_SLAAC=2001:db8:1::ff:fe00:102
ML_COA1=2001:db8:2::ff:fe00:202
ML_COA2=2001:db8:3::ff:fe00:302
ML_CN=2001:db8:100::2
ML_MODEL=/job/mip6d_model.py
ML_TRACE=/job/mip6d_trace.py
ML_SCALE=${ML_SCALE:-5}

# ml_up: the three namespaces and four links; the MN on the home link (HoA placed by the model).
ml_up() {
  local ns
  for ns in ha mn cn; do
    ip netns add $ns || return 1
    ip -n $ns link set lo up
  done
  ip netns exec ha sh -c 'echo 1 >/proc/sys/net/ipv6/conf/all/forwarding;
    echo 0 >/proc/sys/net/ipv6/conf/all/accept_dad; echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad'
  ip netns exec cn sh -c 'echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad'
  ip -n ha link add ha-home type veth peer name mn-home netns mn || return 1
  ip -n ha link add ha-fl type veth peer name mn-fl netns mn || return 1
  ip -n ha link add ha-fl2 type veth peer name mn-fl2 netns mn || return 1
  ip -n ha link add ha-cn type veth peer name cn0 netns cn || return 1
  ip -n ha addr add $ML_HA/64 dev ha-home nodad
  ip -n ha addr add 2001:db8:2::1/64 dev ha-fl nodad
  ip -n ha addr add 2001:db8:3::1/64 dev ha-fl2 nodad
  ip -n ha addr add 2001:db8:100::1/64 dev ha-cn nodad
  ip -n cn addr add $ML_CN/64 dev cn0 nodad
  for ns in ha-home ha-fl ha-fl2 ha-cn; do ip -n ha link set $ns up; done
  ip -n cn link set cn0 up
  ip -n cn -6 route add default via 2001:db8:100::1
  # Kernels >= 6.7 build inbound flows without the MH type, so mip6d's inbound HAO sub-policy
  # (`proto 135 type 5`, priority 9) never matches and a BU with a Home Address option is
  # dropped after ESP (XfrmInTmplMismatch). The traces' recording added this policy on the HA
  # before mip6d started (mip6d-traces/README.md, "Kernel >= 6.7 note"); so does the lab, on
  # those kernels only. It is not the model's: it is there before the recordings start.
  local rel major minor
  rel=$(uname -r)
  major=${rel%%.*}
  minor=${rel#*.}
  minor=${minor%%.*}
  if ((major > 6 || (major == 6 && minor >= 7))); then
    ip -n ha xfrm policy add src ::/0 dst ::/0 proto 135 dir in ptype sub priority 9 \
      tmpl proto hao mode ro level use
  fi
  ml_phase home-start
}

ml_down() {
  local ns
  for ns in mn ha cn; do ip netns del $ns 2>/dev/null; done
  true
}

# ml_mac IFACE: the HA-side link-layer address of a link.
ml_mac() { ip -n ha link show "$1" | awk '/link\/ether/ { print $2 }'; }

# ml_phase home-start|foreign1|foreign2|home: the MN's links as in the traces' phases (new link
# up with its address, old link down), its default route and router neighbour entry.
ml_phase() {
  local up old addr gw hif dad=""
  [[ -n ${ML_NODAD:-} ]] && dad=nodad
  case $1 in
    home-start) up=mn-home old= addr=$ML_SLAAC gw=$ML_HA hif=ha-home ;;
    foreign1) up=mn-fl old=mn-home addr=$ML_COA1 gw=2001:db8:2::1 hif=ha-fl ;;
    foreign2) up=mn-fl2 old=mn-fl addr=$ML_COA2 gw=2001:db8:3::1 hif=ha-fl2 ;;
    home) up=mn-home old=mn-fl2 addr=$ML_SLAAC gw=$ML_HA hif=ha-home ;;
  esac
  # one `ip` process (each costs ~0.1 s under UML); the old link first: in the traces the MN's
  # BU retransmissions stop going out at the switch
  {
    [[ -n $old ]] && echo "link set $old down"
    echo "link set $up up"
    echo "addr add $addr/64 dev $up $dad"
    echo "neigh replace $gw lladdr $(ml_mac $hif) dev $up nud permanent"
    echo "route replace default via $gw dev $up"
  } | ip -n mn -batch -
}

# ml_wait_coa ADDR SECONDS: waits until ADDR is no longer tentative in ns mn (mip6d waits for
# its CoA before it moves).
ml_wait_coa() {
  local end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    ip -n mn -6 addr show | grep -q "inet6 $1/64 .*tentative" || return 0
    sleep 0.1
  done
  return 1
}

# ml_model_start ROLE LOG [ARGS...]: starts the mip6d model in ns ROLE (mn or ha); its PID goes
# to /tmp/model-ROLE.pid, its log to LOG. The MN's command FIFO is /tmp/model-mn.ctl.
ml_model_start() {
  local role=$1 log=$2
  shift 2
  rm -f /tmp/model-mn.ctl
  if [[ $role == mn ]]; then
    ip netns exec mn python3 -u $ML_MODEL mn --hoa $ML_HOA --ha $ML_HA --home-if mn-home \
      --slaac $ML_SLAAC --ctl /tmp/model-mn.ctl --scale "$ML_SCALE" "$@" >>"$log" 2>&1 &
  else
    ip netns exec ha python3 -u $ML_MODEL ha --hoa $ML_HOA --ha $ML_HA --scale "$ML_SCALE" "$@" \
      >>"$log" 2>&1 &
  fi
  echo $! >/tmp/model-"$role".pid
  local i
  for i in $(seq 1 50); do
    grep -q 'mip6d model' "$log" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ml_model_cmd LINE: one command to the MN model (move IFACE COA | home IFACE).
ml_model_cmd() { echo "$*" >/tmp/model-mn.ctl; }

# ml_model_stop ROLE: SIGINT (what the traces' mip6d got), then waits for the model to clean up.
ml_model_stop() {
  local pid i
  pid=$(cat /tmp/model-"$1".pid 2>/dev/null) || return 0
  kill -INT "$pid" 2>/dev/null
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -f /tmp/model-"$1".pid
}
