#!/bin/sh
# Start mip6d on a mobile node whose home address the home agent assigns (IKEv2 configuration
# payload). mip6d needs the home address in its configuration before it can install its IPsec
# policies and send the first Binding Update, but the address only exists once the SAs are up
# (draft-patil-mext-mip6issueswithipsec, section 6.1). So: ask mip6-iked to bring up the SAs
# first, then write mip6d's configuration with the address it got, then start mip6d.
#
#   conf/mip6d-start.sh                  # uses the defaults below
#   MIP6D_TEMPLATE=/etc/mip6d.conf.in MIP6D_CONF=/run/mip6d.conf conf/mip6d-start.sh
#
# The template is mip6d's configuration with @HOME_ADDRESS@ where the home address goes (see
# conf/mip6d.conf.in). mip6-iked must be running with role = "mobile-node"; its [mobile_node]
# section says which home agent and which SA classes.
set -eu

IKECTL=${IKECTL:-mip6-ikectl}
SOCKET=${SOCKET:-/run/mip6-iked/control.sock}
MIP6D=${MIP6D:-mip6d}
MIP6D_TEMPLATE=${MIP6D_TEMPLATE:-/etc/mip6d.conf.in}
MIP6D_CONF=${MIP6D_CONF:-/run/mip6d.conf}
TIMEOUT=${TIMEOUT:-60}

# The first line of stdout is the home address (a delegated prefix, if any, is the second).
# Exit codes: 3 daemon not running, 4 permission denied, 5 negotiation failed, 6 timeout.
rc=0
out=$("$IKECTL" --socket "$SOCKET" initiate --dynamic --wait --timeout "$TIMEOUT") || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "mip6d-start: no home address from mip6-iked (mip6-ikectl exit code $rc)" >&2
    exit "$rc"
fi
hoa=$(printf '%s\n' "$out" | sed -n 1p)
case "$hoa" in
    *:*) ;;
    *) echo "mip6d-start: unexpected answer from mip6-ikectl: $out" >&2; exit 7 ;;
esac

sed "s|@HOME_ADDRESS@|$hoa|g" "$MIP6D_TEMPLATE" > "$MIP6D_CONF.tmp"
mv "$MIP6D_CONF.tmp" "$MIP6D_CONF"
echo "mip6d-start: home address $hoa; starting $MIP6D -c $MIP6D_CONF" >&2
exec "$MIP6D" -c "$MIP6D_CONF"
