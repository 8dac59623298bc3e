#!/usr/bin/env bash
# A SELF-SIGNED stand-in certificate for PDAS's nginx site (deploy/nginx/pdas.conf), until the
# hospital's own certificate arrives. docs/operations.md, "TLS and the reverse proxy".
#
#   deploy/selfsigned-cert.sh [--dir DIR] [--days N] [--force] HOST [NAME...]
#
# Writes DIR/pdas.crt and DIR/pdas.key (default DIR /etc/pdas/tls, the paths the nginx site names):
# a key that only its owner may read, and a certificate for HOST and each NAME (DNS names or IP
# addresses, all in subjectAltName). An existing pair is kept unless --force. Needs openssl.
#
# Browsers WILL warn about this certificate: nobody they trust signed it. Replace it with the
# hospital's certificate (signed by the hospital's CA, which its workstations trust) before users log in.
set -euo pipefail

die() { printf 'selfsigned-cert.sh: %s\n' "$*" >&2; exit 2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

dir=/etc/pdas/tls
days=365
force=0
names=()
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) [ $# -ge 2 ] || die "--dir needs a folder"; dir="$2"; shift 2 ;;
        --days) [ $# -ge 2 ] || die "--days needs a number"; days="$2"; shift 2 ;;
        --force) force=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) names+=("$1"); shift ;;
    esac
done
[ ${#names[@]} -gt 0 ] || { usage >&2; exit 2; }
case "$days" in ''|*[!0-9]*) die "--days must be a whole number, not '$days'" ;; esac
command -v openssl >/dev/null 2>&1 || die "openssl is not installed (Debian package openssl)"

crt="$dir/pdas.crt"
key="$dir/pdas.key"
if [ "$force" -ne 1 ] && { [ -e "$crt" ] || [ -e "$key" ]; }; then
    die "$crt or $key exists already; nothing written (--force replaces them)"
fi

san=""
for name in "${names[@]}"; do
    case "$name" in
        *:*) san+="IP:$name," ;;  # IPv6
        *[!0-9.]*) san+="DNS:$name," ;;
        *) san+="IP:$name," ;;  # IPv4: digits and dots only
    esac
done
san="${san%,}"

mkdir -p "$dir"
# Written next to the final names, then moved: an interrupted run never leaves half a pair in place.
umask 077
tmp_key="$(mktemp "$dir/.pdas.key.XXXXXX")"
tmp_crt="$(mktemp "$dir/.pdas.crt.XXXXXX")"
trap 'rm -f "$tmp_key" "$tmp_crt"' EXIT
openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days "$days" \
    -subj "/CN=${names[0]}/O=PDAS self-signed stand-in" \
    -addext "subjectAltName=$san" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
    -addext "extendedKeyUsage=serverAuth" \
    -keyout "$tmp_key" -out "$tmp_crt" 2>/dev/null \
    || die "openssl failed to make the certificate"
chmod 600 "$tmp_key"
chmod 644 "$tmp_crt"
mv -f "$tmp_key" "$key"
mv -f "$tmp_crt" "$crt"
trap - EXIT

cat >&2 <<EOF

  ************************************************************************************
  *  WARNING: $crt is SELF-SIGNED.
  *  Every browser will warn that the connection is not trusted, and users would learn
  *  to click the warning away. Use it only until the hospital's certificate arrives:
  *  put that certificate (with its chain) in $crt and its key in $key,
  *  then run: nginx -t && systemctl reload nginx
  ************************************************************************************

EOF
echo "$crt"
echo "$key"
