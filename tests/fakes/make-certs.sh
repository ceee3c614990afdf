#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Throwaway PKI for the fake API server: a CA, a server certificate for 127.0.0.1,
# a node client certificate (CN=system:node:<node>, O=system:nodes), and a second CA
# with its own client and server certificates for the TLS-failure tests.
# Usage: make-certs.sh DIR [NODE]
set -eu
dir=$1
node=${2:-node1}
mkdir -p "$dir"
cd "$dir"
ossl() { openssl "$@" 2>/dev/null; }

mkca() {  # name cn
        ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
                -subj "/CN=$2" -keyout "$1.key" -out "$1.crt"
}
mkcert() {  # name ca subject ext
        ossl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$3" \
                -keyout "$1.key" -out "$1.csr"
        printf '%s\n' "$4" > "$1.ext"
        ossl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 2 \
                -extfile "$1.ext" -out "$1.crt"
        rm -f "$1.csr" "$1.ext"
}

mkca ca fake-kubernetes-ca
mkca other-ca some-other-ca
mkcert server ca /CN=kube-apiserver \
        "subjectAltName=DNS:localhost,DNS:kubernetes,IP:127.0.0.1
extendedKeyUsage=serverAuth"
mkcert client ca "/O=system:nodes/CN=system:node:$node" "extendedKeyUsage=clientAuth"
mkcert other-client other-ca "/O=system:nodes/CN=system:node:$node" "extendedKeyUsage=clientAuth"
mkcert other-server other-ca /CN=kube-apiserver \
        "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"
chmod 600 ./*.key
