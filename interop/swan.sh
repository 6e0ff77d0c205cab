# shellcheck shell=bash
# strongSwan instances for the interop lab (inside User-Mode Linux, sourced after tests/uml/lab.sh).
# One charon per network namespace: STRONGSWAN_CONF and SWANCTL_DIR select its configuration,
# its vici socket lives in its own directory, and it gets a private /run because charon's pid file
# (/var/run/charon.pid) is compiled in. swanctl wants its command first, then --uri.

SWAN=/tmp/swan

# The plugins every lab charon loads, each with the Debian package that ships it. interop/run
# checks on the host that each is installed and listed in .ci/packages; swan_start checks that
# charon loaded each one (a plugin that fails to load makes charon run without it, silently).
SWAN_PLUGINS=(
  random=libstrongswan nonce=libstrongswan pem=libstrongswan pkcs1=libstrongswan
  pkcs8=libstrongswan x509=libstrongswan constraints=libstrongswan pubkey=libstrongswan
  sha1=libstrongswan sha2=libstrongswan hmac=libstrongswan aes=libstrongswan kdf=libstrongswan
  attr=libstrongswan kernel-netlink=libstrongswan
  openssl=libstrongswan-standard-plugins gcm=libstrongswan-standard-plugins
  socket-default=strongswan-libcharon vici=strongswan-swanctl
)

# swan_plugin_specs: FILE=PACKAGE for each plugin (for uml_check).
swan_plugin_specs() {
  local p
  for p in "${SWAN_PLUGINS[@]}"; do echo "/usr/lib/ipsec/plugins/libstrongswan-${p%%=*}.so=${p#*=}"; done
}

# swan_conf NODE ROLE(ha|mn): strongswan.conf and swanctl.conf for the charon in namespace NODE,
# from these variables:
#   SW_IKE, SW_ESP   proposals (strongSwan syntax)
#   SW_KEYS          ecdsa|rsa (the certs/ pair)   SW_AUTH  pubkey|pubkey-sha256|psk|...
#   SW_PSK, SW_ID    PSK and the MN's identity for PSK
#   SW_SIGAUTH       yes|no: charon.signature_authentication (RFC 7427)
#   SW_VIPS          MN: vips (e.g. ::) to ask for a home address; SW_POOL: HA: the pool address
#   SW_MN_HOA        the home address in the MN's selectors (default $HOA)
#   SW_CHILD_EXTRA, SW_IKE_EXTRA  extra lines in each child / the connection (lifetimes, dpd)
#   SW_COA           the MN's local address when it differs from TUN_COA (behind a NAT, where
#                    TUN_COA is what the HA sees)
#   SW_KEEPALIVE     charon.keep_alive, NAT keepalive interval (strongSwan's default 20s)
#   SW_MOBIKE        the connection's mobike: yes (strongSwan's default; a strongSwan initiator
#                    then moves IKE to UDP 4500 in IKE_AUTH, NAT or not) or no (IKE stays on 500)
swan_conf() {
  local node=$1 role=$2 d=$SWAN/$1 keys=${SW_KEYS:-ecdsa} auth=${SW_AUTH:-pubkey}
  local mnhoa=${SW_MN_HOA:-$HOA} mnid="C=CH, O=mip6-ike test, CN=mn1@example.net"
  local haid="C=CH, O=mip6-ike test, CN=ha.example.net"
  [[ -n ${SW_PSK:-} ]] && mnid=$SW_ID
  rm -rf "$d"
  mkdir -p "$d/run" "$d/swanctl/x509" "$d/swanctl/x509ca" "$d/swanctl/private"
  cp "/job/certs/ca-$keys.pem" "$d/swanctl/x509ca/"
  # intermediate CAs of a longer chain (certs/make-big-chain.sh), which charon sends along
  if [[ -f /job/certs/ca-$keys-im1.pem ]]; then cp /job/certs/ca-"$keys"-im*.pem "$d/swanctl/x509ca/"; fi
  if [[ $role == ha ]]; then
    cp "/job/certs/ha-$keys.pem" "$d/swanctl/x509/"
    cp "/job/certs/ha-$keys.key" "$d/swanctl/private/"
  else
    cp "/job/certs/mn1-$keys.pem" "$d/swanctl/x509/"
    cp "/job/certs/mn1-$keys.key" "$d/swanctl/private/"
  fi
  cat >"$d/strongswan.conf" <<EOF
charon {
  load_modular = no
  load = ${SWAN_PLUGINS[*]%%=*}
  signature_authentication = ${SW_SIGAUTH:-yes}
  # the lab is fast; under emulation a little more patience than strongSwan's 4 s x 5
  retransmit_tries = ${SW_RETRANSMIT_TRIES:-4}
  retransmit_timeout = ${SW_RETRANSMIT_TIMEOUT:-2.0}
  install_routes = ${SW_INSTALL_ROUTES:-yes}
  keep_alive = ${SW_KEEPALIVE:-20s}
  plugins {
    vici {
      socket = unix://$d/charon.vici
    }
  }
  filelog {
    lab {
      path = $d/charon.log
      append = no
      flush_line = yes
      ike_name = yes
      time_format = %T
      default = 1
      ike = 2
      cfg = 2
      chd = 2
      knl = 2
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
}
swanctl {
  load = pem pkcs1 pkcs8 x509 openssl
}
EOF
  local me peer lts_mh rts_mh lts_tun rts_tun laddr raddr lid rid lauth rauth lcert=
  if [[ $role == ha ]]; then
    laddr=${TUN_HA:-$HA} raddr=%any lid=$haid rid=$mnid
    lts_mh="$HA/128[135]" rts_mh="$mnhoa/128[135]" lts_tun=::/0 rts_tun=$mnhoa/128
    [[ -n ${SW_POOL:-} ]] && rts_mh="dynamic[135]" rts_tun=dynamic
    lcert="ha-$keys.pem"
  else
    laddr=${SW_COA:-${TUN_COA:-$COA}} raddr=${TUN_HA:-$HA} lid=$mnid rid=$haid
    lts_mh="$mnhoa/128[135]" rts_mh="$HA/128[135]" lts_tun=$mnhoa/128 rts_tun=::/0
    [[ -n ${SW_VIPS:-} ]] && lts_mh="dynamic[135]" lts_tun=dynamic
    lcert="mn1-$keys.pem"
  fi
  if [[ $auth == psk ]]; then
    lauth=psk rauth=psk
  else
    lauth=$auth rauth=$auth
  fi
  {
    echo "connections {"
    echo "  mip6 {"
    echo "    version = 2"
    echo "    local_addrs = $laddr"
    echo "    remote_addrs = $raddr"
    echo "    proposals = ${SW_IKE:-aes128-sha256-x25519}"
    echo "    mobike = ${SW_MOBIKE:-yes}"
    [[ $role == mn && -n ${SW_VIPS:-} ]] && echo "    vips = $SW_VIPS"
    [[ $role == ha && -n ${SW_POOL:-} ]] && echo "    pools = hoa"
    echo "    ${SW_IKE_EXTRA:-}"
    echo "    local {"
    echo "      auth = $lauth"
    echo "      id = \"$lid\""
    [[ $lauth != psk ]] && echo "      certs = $lcert"
    echo "    }"
    echo "    remote {"
    echo "      auth = $rauth"
    echo "      id = \"$rid\""
    [[ $rauth != psk ]] && echo "      cacerts = ca-$keys.pem"
    echo "    }"
    echo "    children {"
    echo "      mh {"
    echo "        mode = transport_proxy"
    echo "        local_ts = $lts_mh"
    echo "        remote_ts = $rts_mh"
    echo "        esp_proposals = ${SW_ESP:-aes128-sha256}"
    echo "        ${SW_CHILD_EXTRA:-}"
    echo "      }"
    echo "      tun {"
    echo "        mode = tunnel"
    echo "        local_ts = $lts_tun"
    echo "        remote_ts = $rts_tun"
    echo "        esp_proposals = ${SW_ESP:-aes128-sha256}"
    echo "        ${SW_CHILD_EXTRA:-}"
    echo "      }"
    echo "    }"
    echo "  }"
    echo "}"
    if [[ -n ${SW_POOL:-} ]]; then
      echo "pools {"
      echo "  hoa {"
      echo "    addrs = $SW_POOL"
      echo "  }"
      echo "}"
    fi
    if [[ $auth == psk ]]; then
      echo "secrets {"
      echo "  ike-mn {"
      echo "    id-mn = \"$mnid\""
      echo "    id-ha = \"$haid\""
      echo "    secret = \"$SW_PSK\""
      echo "  }"
      echo "}"
    fi
  } >"$d/swanctl/swanctl.conf"
}

# swan_start NODE: starts charon in namespace NODE and loads its configuration.
swan_start() {
  local node=$1 d=$SWAN/$1 i
  STRONGSWAN_CONF=$d/strongswan.conf ip netns exec "$node" \
    sh -c "mount --bind $d/run /run && exec /usr/lib/ipsec/charon" >"$d/charon.stdout" 2>&1 &
  echo $! >"$d/charon.pid"
  for i in $(seq 1 100); do
    [[ -S $d/charon.vici ]] && break
    sleep 0.1
  done
  [[ -S $d/charon.vici ]] || return 1
  # charon starts without a plugin it failed to load; say which package is missing instead of
  # failing later with "no proposal chosen"
  local bad
  bad=$(grep -o "plugin '[^']*': failed to load" "$d/charon.log" "$d/charon.stdout" 2>/dev/null | cut -d"'" -f2 | sort -u)
  if [[ -n $bad ]]; then
    local p pkgs=
    for p in "${SWAN_PLUGINS[@]}"; do
      [[ " $(echo $bad) " == *" ${p%%=*} "* ]] && pkgs+=" ${p#*=}"
    done
    echo "charon in $node failed to load plugin(s) $(echo $bad): install$pkgs" >&2
    return 1
  fi
  sw "$node" --load-all --noprompt >"$d/load.out" 2>&1
}

# swan_stop NODE: stops that charon (it deletes its SAs and policies).
swan_stop() {
  local d=$SWAN/$1 pid i
  pid=$(cat "$d/charon.pid" 2>/dev/null) || return 0
  kill -CONT "$pid" 2>/dev/null
  kill "$pid" 2>/dev/null
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -f "$d/charon.pid" "$d/charon.vici"
}

# sw NODE COMMAND [ARGS]: swanctl against that instance (command first, then --uri).
sw() {
  local node=$1 op=$2
  shift 2
  STRONGSWAN_CONF=$SWAN/$node/strongswan.conf SWANCTL_DIR=$SWAN/$node/swanctl \
    swanctl "$op" --uri "unix://$SWAN/$node/charon.vici" "$@"
}
