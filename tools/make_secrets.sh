#!/usr/bin/env bash
# Makes the secrets docker-compose.yml mounts, in deploy/secrets/ (git-ignored, mode 600): the MinIO
# credentials, Triton's restricted-protocol key, the services' own bearer token, the users' tokens
# with roles, a CA and the services' TLS certificate (one certificate whose names are every service
# of the stack, localhost and 127.0.0.1), a client certificate for pipelines (mutual TLS), and
# Grafana's admin password. Existing files are kept; delete one to make it anew.
#   usage: bash tools/make_secrets.sh [EXTRA_DNS_NAME ...]   (names clients dial the host by)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${FAILURELENS_SECRETS_DIR:-deploy/secrets}
mkdir -p "$out"
chmod 700 "$out"
umask 077
rand() { openssl rand -hex 24; }
for name in s3_secret_key triton_key auth_token grafana_admin_password; do
  [ -s "$out/$name" ] || rand > "$out/$name"
done
[ -s "$out/s3_access_key" ] || echo "failurelens" > "$out/s3_access_key"
if [ ! -s "$out/auth_tokens" ]; then
  {
    echo "# ROLE TOKEN: read may call Get*/List*/WatchRun, write may call everything"
    echo "write $(rand)"
    echo "read $(rand)"
  } > "$out/auth_tokens"
fi
if [ ! -s "$out/tls_ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 -subj "/CN=failurelens CA" \
    -keyout "$out/tls_ca.key" -out "$out/tls_ca.pem" 2>/dev/null
fi
sans="DNS:localhost,IP:127.0.0.1"
for s in registry embedding slice_discovery captioning generation retraining pipeline "$@"; do sans="$sans,DNS:$s"; done
leaf() {  # leaf NAME CN EXTENSIONS
  [ -s "$out/$1.pem" ] && return
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" -keyout "$out/$1_key.pem" -out "$out/$1.csr" 2>/dev/null
  openssl x509 -req -in "$out/$1.csr" -CA "$out/tls_ca.pem" -CAkey "$out/tls_ca.key" -CAcreateserial -days 825 \
    -extfile <(printf '%s\n' "$3") -out "$out/$1.pem" 2>/dev/null
  rm -f "$out/$1.csr"
}
leaf tls_cert "failurelens services" "subjectAltName=$sans
extendedKeyUsage=serverAuth,clientAuth"
[ -s "$out/tls_key.pem" ] || mv "$out/tls_cert_key.pem" "$out/tls_key.pem"
leaf client "failurelens client" "extendedKeyUsage=clientAuth"
# the containers run as another user and compose mounts these files as they are: readable files in a
# folder only its owner may enter (the CA's key is not mounted and stays private)
chmod 644 "$out"/*
chmod 600 "$out/tls_ca.key"
echo "secrets in $out: give clients tls_ca.pem, client.pem + client_key.pem (mutual TLS) and a token of auth_tokens"
