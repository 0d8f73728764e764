#!/usr/bin/env bash
# Interim bundle verifier (the Rust one comes later):
#   1. checksums/SHA256SUMS.sig is a valid ed25519 signature of checksums/SHA256SUMS
#      by checksums/public.key (both base64 of raw bytes), checked with openssl;
#   2. every line of SHA256SUMS matches its file (sha256sum -c);
#   3. every file outside checksums/ is listed in SHA256SUMS, and no path leaves the bundle.
# usage: verify.sh DIR     exit 0 = valid, 1 = invalid (reason on stderr)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$(cd "$1" && pwd)
fail() { echo "verify: FAIL: $*" >&2; exit 1; }
C="$DIR/checksums"
for f in SHA256SUMS SHA256SUMS.sig public.key; do [ -s "$C/$f" ] || fail "missing checksums/$f"; done
command -v openssl >/dev/null || fail "openssl not found"

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
base64 -d "$C/public.key" >"$tmp/pub.raw" 2>/dev/null || fail "public.key is not base64"
base64 -d "$C/SHA256SUMS.sig" >"$tmp/sig.raw" 2>/dev/null || fail "SHA256SUMS.sig is not base64"
[ "$(stat -c %s "$tmp/pub.raw")" -eq 32 ] || fail "public.key is not a raw 32-byte ed25519 key"
[ "$(stat -c %s "$tmp/sig.raw")" -eq 64 ] || fail "SHA256SUMS.sig is not a raw 64-byte ed25519 signature"
# DER SubjectPublicKeyInfo for ed25519 = fixed 12-byte prefix + the raw key.
{ printf '\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00'; cat "$tmp/pub.raw"; } >"$tmp/pub.der"
openssl pkeyutl -verify -pubin -inkey "$tmp/pub.der" -keyform DER -rawin \
  -in "$C/SHA256SUMS" -sigfile "$tmp/sig.raw" >/dev/null 2>&1 || fail "signature of SHA256SUMS does not verify"

cut -c67- "$C/SHA256SUMS" >"$tmp/listed"
grep -vE '^[0-9a-f]{64}  [^/].*$' "$C/SHA256SUMS" && fail "malformed SHA256SUMS line(s) above"
grep -E '(^|/)\.\.(/|$)' "$tmp/listed" && fail "path leaves the bundle"
( cd "$DIR" && sha256sum --quiet --strict -c checksums/SHA256SUMS ) >&2 || fail "checksum mismatch"
( cd "$DIR" && find . -type f ! -path './checksums/*' -printf '%P\n' | LC_ALL=C sort ) >"$tmp/present"
LC_ALL=C sort "$tmp/listed" >"$tmp/listed.sorted"
extra=$(comm -23 "$tmp/present" "$tmp/listed.sorted")
[ -z "$extra" ] || fail "files not covered by SHA256SUMS: $extra"
echo "verify: OK: $DIR ($(wc -l <"$C/SHA256SUMS") files, signature valid)"
