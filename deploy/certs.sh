#!/usr/bin/env bash
# deploy/certs.sh DIR - a development certificate authority and the
# certificates of one shouwen installation, for tls+tcp:// bus and REP
# endpoints and for PostgreSQL over TLS (what `make certs` runs).
#
#   ca.crt ca.key           "shouwen dev CA" (10 years); give ca.crt to every peer (SHOUWEN_TLS_CA)
#   server.crt server.key   CN=shouwen, DNS:shouwen, DNS:*.shouwen, DNS:localhost, IP:127.0.0.1
#                           (serverAuth and clientAuth: one identity per process suffices)
#   client.crt client.key   CN=shouwen (clientAuth): also a PostgreSQL client certificate for
#                           the login role "shouwen" (pg_hba.conf method cert)
#   rogue-ca.crt rogue.crt rogue.key   signed by another CA: what a peer must refuse
#
# Safe to run twice: existing files are kept (delete DIR to start over).
# These are for development and tests; a real site uses its own CA and
# keeps ca.key off the machines (deploy/README.md, "Rotating TLS certificates").
set -euo pipefail

dir=${1:?usage: deploy/certs.sh DIR}
days=${SHOUWEN_CERT_DAYS:-825}
command -v openssl >/dev/null || { echo "certs.sh: openssl not found (make bootstrap installs it)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
umask 077

# ca NAME SUBJECT: a self-signed CA
ca() {
    [ -s "$1.crt" ] && return 0
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key" -out "$1.crt" -days 3650 -subj "$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    echo "certs: $dir/$1.crt"
}

# leaf NAME CA CN EXT: a certificate signed by CA
leaf() {
    [ -s "$1.crt" ] && return 0
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "/O=shouwen/CN=$3" 2>/dev/null
    printf '%s\n' "$4" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
        -out "$1.crt" -days "$days" -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
    echo "certs: $dir/$1.crt"
}

ca ca "/O=shouwen/CN=shouwen dev CA"
leaf server ca shouwen "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:shouwen,DNS:*.shouwen,DNS:localhost,IP:127.0.0.1"
leaf client ca shouwen "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
ca rogue-ca "/O=not shouwen/CN=rogue CA"
leaf rogue rogue-ca shouwen "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:shouwen,DNS:*.shouwen,DNS:localhost,IP:127.0.0.1"
# certificates are public; keys stay readable by their owner only
chmod 644 ./*.crt
chmod 600 ./*.key
