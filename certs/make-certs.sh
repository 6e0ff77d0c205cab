#!/bin/sh
# Regenerates the mip6-ike test PKI in this directory (OpenSSL 3.0 or later).
# Every run makes new keys: commit the output together with any code that pins its hashes.
# These keys are PUBLIC TEST KEYS: never use them outside tests and demos.
set -eu

cd "$(dirname "$0")"
OUT=$(pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Validity: 2025-01-01 for 30 years. `openssl ca` is used because OpenSSL 3.0 has no
# -not_before for `req`/`x509`.
START=20250101000000Z
END=20550101000000Z
O="mip6-ike test"

cat > "$WORK/ext.cnf" <<'CNF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ee_common]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
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

[mn2_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = email:mn2@example.net, DNS:mn2.example.net

[mn3_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = email:mn3@example.net, DNS:mn3.example.net

# mn4: like mn3, with a CRL distribution point on the loopback (tests serve the CA's CRL there).
[mn4_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = email:mn4@example.net, DNS:mn4.example.net
crlDistributionPoints = URI:http://127.0.0.1:8480/ca-ecdsa.crl

# Extended key usage variants, to test the EKU policy.
[eku_none_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = email:mn1@example.net, DNS:mn1.example.net

[eku_ipsecike_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = 1.3.6.1.5.5.7.3.17
subjectAltName = email:mn1@example.net, DNS:mn1.example.net

[eku_email_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = emailProtection
subjectAltName = email:mn1@example.net, DNS:mn1.example.net
CNF

# genkey <name> <ec|ec384|ec521|rsa>: PKCS#8 PEM ("BEGIN PRIVATE KEY"); ec is P-256.
genkey() {
    case "$2" in
        ec|ec384|ec521)
            case "$2" in ec) curve=P-256 ;; ec384) curve=P-384 ;; ec521) curve=P-521 ;; esac
            openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:$curve \
                -pkeyopt ec_param_enc:named_curve -out "$OUT/$1.key" ;;
        rsa) openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$OUT/$1.key" ;;
    esac
    chmod 600 "$OUT/$1.key"
}

# A minimal `openssl ca` setup per CA, in the scratch directory; the CA signs with SHA-256,
# or with the hash in $CA_MD (the P-384 and P-521 CAs: ecdsa-with-SHA384 / SHA512).
ca_conf() {
    d="$WORK/$1"
    mkdir -p "$d/new"
    : > "$d/index.txt"
    openssl rand -hex 16 > "$d/serial"
    cat > "$d/ca.cnf" <<CNF
[ca]
default_ca = this_ca
[this_ca]
dir = $d
database = $d/index.txt
new_certs_dir = $d/new
serial = $d/serial
certificate = $OUT/$1.pem
private_key = $OUT/$1.key
default_md = ${CA_MD:-sha256}
policy = any_policy
unique_subject = no
email_in_dn = yes
copy_extensions = none
[any_policy]
countryName = optional
organizationName = optional
commonName = supplied
CNF
}

# make_ca <name> <ec|rsa> <CN>: self-signed CA.
make_ca() {
    genkey "$1" "$2"
    ca_conf "$1"
    openssl req -new -key "$OUT/$1.key" -subj "/C=CH/O=$O/CN=$3" -out "$WORK/$1.csr"
    openssl ca -batch -notext -config "$WORK/$1/ca.cnf" -selfsign -preserveDN \
        -startdate "$START" -enddate "$END" -extfile "$WORK/ext.cnf" -extensions ca_ext \
        -in "$WORK/$1.csr" -out "$OUT/$1.pem" 2> "$WORK/$1.log" || { cat "$WORK/$1.log"; exit 1; }
}

# make_ee <ca> <name> <ec|rsa> <CN> <ext section>
make_ee() {
    genkey "$2" "$3"
    openssl req -new -key "$OUT/$2.key" -subj "/C=CH/O=$O/CN=$4" -out "$WORK/$2.csr"
    openssl ca -batch -notext -config "$WORK/$1/ca.cnf" -preserveDN \
        -startdate "$START" -enddate "$END" -extfile "$WORK/ext.cnf" -extensions "$5" \
        -in "$WORK/$2.csr" -out "$OUT/$2.pem" 2> "$WORK/$2.log" || { cat "$WORK/$2.log"; exit 1; }
}

# Revocation fixtures (`make-certs.sh revocation` makes only these, with the CAs already here):
# mn3 and mn4 (ECDSA CA; mn4 with a CRL distribution point) and ha-revoked (RSA CA) are revoked; each CA's CRL lists them, the -empty CRLs
# are from before the revocation. A CRL with the
# ECDSA CA's name signed by the rogue CA lists mn1 (it must be refused: wrong signer).
make_revocation() {
    ca_conf ca-ecdsa
    ca_conf ca-rsa
    ca_conf rogue-ca
    make_ee ca-ecdsa mn3-ecdsa ec mn3@example.net mn3_ext
    make_ee ca-ecdsa mn4-ecdsa ec mn4@example.net mn4_ext
    make_ee ca-rsa ha-revoked-rsa rsa ha.example.net ha_ext
    openssl ca -config "$WORK/ca-ecdsa/ca.cnf" -gencrl -crldays 10950 \
        -out "$OUT/crl-ecdsa-empty.pem" 2> "$WORK/crl.log" || { cat "$WORK/crl.log"; exit 1; }
    openssl ca -config "$WORK/ca-ecdsa/ca.cnf" -revoke "$OUT/mn3-ecdsa.pem" \
        -crl_reason keyCompromise 2> "$WORK/crl.log" || { cat "$WORK/crl.log"; exit 1; }
    openssl ca -config "$WORK/ca-ecdsa/ca.cnf" -revoke "$OUT/mn4-ecdsa.pem" \
        2> "$WORK/crl.log" || { cat "$WORK/crl.log"; exit 1; }
    openssl ca -config "$WORK/ca-ecdsa/ca.cnf" -gencrl -crldays 10950 \
        -out "$OUT/crl-ecdsa.pem" 2> "$WORK/crl.log" || { cat "$WORK/crl.log"; exit 1; }
    openssl ca -config "$WORK/ca-rsa/ca.cnf" -gencrl -crldays 10950 \
        -out "$OUT/crl-rsa-empty.pem" 2> "$WORK/crl.log" || { cat "$WORK/crl.log"; exit 1; }
    openssl ca -config "$WORK/ca-rsa/ca.cnf" -revoke "$OUT/ha-revoked-rsa.pem" \
        2> "$WORK/crl.log" || { cat "$WORK/crl.log"; exit 1; }
    openssl ca -config "$WORK/ca-rsa/ca.cnf" -gencrl -crldays 10950 \
        -out "$OUT/crl-rsa.pem" 2> "$WORK/crl.log" || { cat "$WORK/crl.log"; exit 1; }
    # The rogue CA "revokes" mn1: its index learns mn1's serial, then it signs a CRL.
    serial=$(openssl x509 -in "$OUT/mn1-ecdsa.pem" -noout -serial | cut -d= -f2)
    printf 'R\t20550101000000Z\t250101000000Z\t%s\tunknown\t/CN=mn1@example.net\n' \
        "$serial" > "$WORK/rogue-ca/index.txt"
    openssl ca -config "$WORK/rogue-ca/ca.cnf" -gencrl -crldays 10950 \
        -out "$OUT/crl-rogue.pem" 2> "$WORK/crl.log" || { cat "$WORK/crl.log"; exit 1; }
    for c in crl-ecdsa crl-ecdsa-empty crl-rsa crl-rsa-empty crl-rogue; do
        openssl crl -in "$OUT/$c.pem" -outform DER -out "$OUT/$c.der"
    done
}

if [ "${1:-}" = revocation ]; then
    make_revocation
    echo "revocation fixtures written to $OUT"
    exit 0
fi

make_ca ca-ecdsa ec "mip6-ike ECDSA CA"
make_ee ca-ecdsa ha-ecdsa ec ha.example.net ha_ext
make_ee ca-ecdsa mn1-ecdsa ec mn1@example.net mn1_ext
make_ee ca-ecdsa mn2-ecdsa ec mn2@example.net mn2_ext

# mn1 again with other extended key usages: none, id-kp-ipsecIKE (RFC 4945), emailProtection.
make_ee ca-ecdsa eku-none-ecdsa ec mn1@example.net eku_none_ext
make_ee ca-ecdsa eku-ipsecike-ecdsa ec mn1@example.net eku_ipsecike_ext
make_ee ca-ecdsa eku-email-ecdsa ec mn1@example.net eku_email_ext

make_ca ca-rsa rsa "mip6-ike RSA CA"
make_ee ca-rsa ha-rsa rsa ha.example.net ha_ext
make_ee ca-rsa mn1-rsa rsa mn1@example.net mn1_ext
make_ee ca-rsa mn2-rsa rsa mn2@example.net mn2_ext

# Untrusted: a CA with the same name as the ECDSA CA (an impostor, so that only the signature
# tells them apart) and an end entity with mn1's name and SANs.
make_ca rogue-ca ec "mip6-ike ECDSA CA"
make_ee rogue-ca rogue-mn1-ecdsa ec mn1@example.net mn1_ext

make_revocation
# ECDSA P-384 (AUTH method 10, RFC 7427 with SHA-384): a P-384 CA signing with SHA-384, the HA
# and mn1 with P-384 keys, and mn1 with a P-521 key (method 11) certified by that CA, whose
# chain webpki on ring can check (ring verifies P-384 signatures, not P-521 ones).
CA_MD=sha384
make_ca ca-ecdsa384 ec384 "mip6-ike ECDSA P-384 CA"
make_ee ca-ecdsa384 ha-ecdsa384 ec384 ha.example.net ha_ext
make_ee ca-ecdsa384 mn1-ecdsa384 ec384 mn1@example.net mn1_ext
make_ee ca-ecdsa384 mn1-ecdsa521 ec521 mn1@example.net mn1_ext
make_ee ca-ecdsa384 ha-ecdsa521 ec521 ha.example.net ha_ext
# The "ecdsa521" set (the interop lab's *-$keys names) is these P-521 end entities; its CA is
# the P-384 CA under a second name, because a CA with a P-521 key makes P-521 signatures.
cp "$OUT/ca-ecdsa384.pem" "$OUT/ca-ecdsa521.pem"
# A P-521 CA: its certificates carry P-521 signatures, which webpki on ring cannot verify (the
# tests show that such a chain is refused, as the README says).
CA_MD=sha512
make_ca p521-ca ec521 "mip6-ike ECDSA P-521 CA"
make_ee p521-ca mn1-by-p521-ca ec mn1@example.net mn1_ext
unset CA_MD

# The same keys in the legacy encodings, to test loading them: SEC1 ("EC PRIVATE KEY") and
# PKCS#1 ("RSA PRIVATE KEY").
openssl ec -in "$OUT/mn1-ecdsa.key" -out "$OUT/mn1-ecdsa-sec1.key" 2> /dev/null
openssl rsa -traditional -in "$OUT/mn1-rsa.key" -out "$OUT/mn1-rsa-pkcs1.key" 2> /dev/null
openssl ec -in "$OUT/mn1-ecdsa384.key" -out "$OUT/mn1-ecdsa384-sec1.key" 2> /dev/null
openssl ec -in "$OUT/mn1-ecdsa521.key" -out "$OUT/mn1-ecdsa521-sec1.key" 2> /dev/null
chmod 600 "$OUT/mn1-ecdsa-sec1.key" "$OUT/mn1-rsa-pkcs1.key" "$OUT/mn1-ecdsa384-sec1.key" \
    "$OUT/mn1-ecdsa521-sec1.key"

# Signatures made by OpenSSL over a fixed text, to check our verification against another
# implementation: RSA PKCS#1 v1.5 SHA-1 (AUTH method 1), RSASSA-PSS SHA-256 salt 32, and ECDSA
# with SHA-256, P-384 with SHA-384 and P-521 with SHA-512 (DER ECDSA-Sig-Value).
printf 'mip6-ike signed octets' > "$WORK/octets"
openssl dgst -sha1 -sign "$OUT/mn1-rsa.key" -out "$OUT/mn1-rsa-sha1.sig" "$WORK/octets"
openssl dgst -sha256 -sign "$OUT/mn1-rsa.key" -sigopt rsa_padding_mode:pss \
    -sigopt rsa_pss_saltlen:32 -out "$OUT/mn1-rsa-pss-sha256.sig" "$WORK/octets"
openssl dgst -sha256 -sign "$OUT/mn1-ecdsa.key" -out "$OUT/mn1-ecdsa-sha256.sig" "$WORK/octets"
openssl dgst -sha384 -sign "$OUT/mn1-ecdsa384.key" -out "$OUT/mn1-ecdsa384-sha384.sig" "$WORK/octets"
openssl dgst -sha512 -sign "$OUT/mn1-ecdsa521.key" -out "$OUT/mn1-ecdsa521-sha512.sig" "$WORK/octets"

# SHA-1 of each CA's SubjectPublicKeyInfo (RFC 7296 3.7 CERTREQ), for the unit tests.
for ca in ca-ecdsa ca-rsa rogue-ca; do
    printf '%s ' "$ca"
    openssl x509 -in "$OUT/$ca.pem" -noout -pubkey | openssl pkey -pubin -outform DER |
        openssl dgst -sha1 -r | cut -d' ' -f1
done > "$OUT/certreq-sha1.txt"

echo "test PKI written to $OUT"
