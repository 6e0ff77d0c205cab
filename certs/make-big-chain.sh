#!/bin/sh
# Writes a deliberately large certificate chain into DIR (default: this directory), for the
# interop lab's IKE fragmentation scenario: an RSA-4096 root and three RSA-4096 intermediate CAs,
# and RSA-4096 end entities for the home agent and mn1 (same subjects as certs/make-certs.sh).
# Each end entity's chain file (leaf + intermediates, about 6 KB in DER) makes an IKE_AUTH far
# larger than a 1280-byte path carries whole. Not committed: interop/run makes it fresh.
#
# Output: ca-big.pem (root, the trust anchor), ca-big-im1.pem .. ca-big-im3.pem (intermediates,
# for strongSwan's x509ca directory), {ha,mn1}-big.pem (leaf), {ha,mn1}-big.key (PKCS#8),
# {ha,mn1}-big-chain.pem (leaf first, then im3, im2, im1: what our daemon sends).
# These keys are PUBLIC TEST KEYS.
set -eu

OUT=${1:-$(dirname "$0")}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
O="mip6-ike test"

cat > "$WORK/ext.cnf" <<'CNF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ha_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:ha.example.net, IP:2001:db8:1::1

[mn1_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = email:mn1@example.net, DNS:mn1.example.net
CNF

key() {
    openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$OUT/$1.key"
    chmod 600 "$OUT/$1.key"
}

# sign <name> <CN> <issuer name|self> <ext section>
sign() {
    openssl req -new -key "$OUT/$1.key" -subj "/C=CH/O=$O/CN=$2" -out "$WORK/$1.csr"
    if [ "$3" = self ]; then
        openssl x509 -req -in "$WORK/$1.csr" -signkey "$OUT/$1.key" -days 3650 -sha256 \
            -extfile "$WORK/ext.cnf" -extensions "$4" -out "$OUT/$1.pem" 2> "$WORK/$1.log"
    else
        openssl x509 -req -in "$WORK/$1.csr" -CA "$OUT/$3.pem" -CAkey "$OUT/$3.key" \
            -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
            -extfile "$WORK/ext.cnf" -extensions "$4" -out "$OUT/$1.pem" 2> "$WORK/$1.log"
    fi || { cat "$WORK/$1.log"; exit 1; }
}

key ca-big
sign ca-big "mip6-ike big-chain root CA" self ca_ext
prev=ca-big
for i in 1 2 3; do
    key "ca-big-im$i"
    sign "ca-big-im$i" "mip6-ike big-chain intermediate CA $i" "$prev" ca_ext
    prev=ca-big-im$i
done
for ee in ha:ha.example.net mn1:mn1@example.net; do
    name=${ee%%:*}
    key "$name-big"
    sign "$name-big" "${ee#*:}" ca-big-im3 "${name}_ext"
    cat "$OUT/$name-big.pem" "$OUT/ca-big-im3.pem" "$OUT/ca-big-im2.pem" "$OUT/ca-big-im1.pem" \
        > "$OUT/$name-big-chain.pem"
done
# The CA keys are not needed by anyone once the chain exists.
rm -f "$OUT"/ca-big*.key
bytes=0
for c in ha-big ca-big-im3 ca-big-im2 ca-big-im1; do
    bytes=$((bytes + $(openssl x509 -in "$OUT/$c.pem" -outform DER | wc -c)))
done
echo "big chain written to $OUT: $bytes bytes of DER per end entity's chain"
