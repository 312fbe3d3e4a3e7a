#!/bin/sh
# One-shot (docker-compose's `secrets` service): the NATS users' NKeys and
# auth.conf (gridwatch-admin nats-auth), and a private CA with a certificate
# for the NATS servers. Made once into the `secrets` volume and kept; safe
# to run again.
set -eu
S="${SECRETS_DIR:-/secrets}"
gridwatch-admin nats-auth --dir "$S/nats" >/dev/null
mkdir -p "$S/tls"
cd "$S/tls"
if [ ! -f server.pem ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=gridwatch-ca" \
    -keyout ca-key.pem -out ca.pem 2>/dev/null
  openssl req -newkey rsa:3072 -nodes -subj "/CN=nats" \
    -keyout server-key.pem -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days 825 -extfile ext.cnf -out server.pem 2>/dev/null
  rm -f server.csr ext.cnf ca-key.pem
fi
# nats-server and the services run as other users in their images: they
# read the files, nobody else is in the containers.
chmod 0644 "$S"/nats/* "$S"/tls/*
echo "secrets ready in $S"
