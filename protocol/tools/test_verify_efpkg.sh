#!/usr/bin/env bash
# Tests for protocol/tools/verify_efpkg.py against the fixture package and tampered copies.
# Usage: bash protocol/tools/test_verify_efpkg.sh   (from any directory)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

VERIFY="protocol/tools/verify_efpkg.py"
PKG="fixtures/packages/vibration-mlp-1.efpkg"
PUB="fixtures/packages/fixture.pub"
PY="${PYTHON:-python3}"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0

# Manifest length M from header bytes 12..16 (u32 LE) and total size.
M="$("$PY" -c 'import struct,sys; print(struct.unpack("<I", open(sys.argv[1],"rb").read()[12:16])[0])' "$PKG")"
SIZE="$(wc -c <"$PKG" | tr -d ' ')"
FIRST_BLOB=$((88 + M))

# copy PKG to $TMP/$1 and apply an edit with python: xor (offset mask) / set (offset value) /
# truncate (len) / append (hexbytes)
mutate() {
    local name="$1" op="$2" a="$3" b="${4:-}"
    cp "$PKG" "$TMP/$name"
    "$PY" - "$TMP/$name" "$op" "$a" "$b" <<'PYEOF'
import sys
path, op, a, b = sys.argv[1:5]
data = bytearray(open(path, "rb").read())
if op == "xor":
    off = int(a)
    if off < 0:
        off += len(data)
    data[off] ^= int(b, 0)
elif op == "set":
    data[int(a)] = int(b, 0)
elif op == "truncate":
    del data[int(a):]
elif op == "append":
    data += bytes.fromhex(a)
else:
    sys.exit(f"bad op {op}")
open(path, "wb").write(data)
PYEOF
}

# expect NAME EXPECTED_RC EXPECTED_SUBSTRING -- verifier args...
expect() {
    local name="$1" want_rc="$2" want="$3"
    shift 4
    local out rc=0
    out="$("$PY" "$VERIFY" "$@" 2>&1)" || rc=$?
    if [[ "$rc" == "$want_rc" && "$out" == *"$want"* ]]; then
        printf 'PASS  %-40s rc=%s  %s\n' "$name" "$rc" "$(head -n1 <<<"$out")"
        passed=$((passed + 1))
    else
        printf 'FAIL  %-40s rc=%s (want %s, %q)\n' "$name" "$rc" "$want_rc" "$want"
        printf '      | %s\n' "${out//$'\n'/$'\n      | '}"
        failed=$((failed + 1))
    fi
}

# 1. the untouched fixture verifies
expect "fixture is valid" 0 "VALID" -- "$PKG" --trust "$PUB"
expect "fixture is valid (--json)" 0 '"valid": true' -- "$PKG" --trust "$PUB" --json
expect "fixture with --installed-seq 0" 0 "VALID" -- "$PKG" --trust "$PUB" --installed-seq 0

# 2. tampered copies
mutate manifest.efpkg xor 100 0x01
expect "manifest byte flipped (offset 100)" 1 "REJECTED: bad signature" -- "$TMP/manifest.efpkg" --trust "$PUB"

mutate sig.efpkg xor $((16 + M + 8 + 5)) 0x01
expect "signature byte flipped" 1 "REJECTED: bad signature" -- "$TMP/sig.efpkg" --trust "$PUB"

mutate keyid.efpkg xor $((16 + M)) 0x01
expect "key id byte flipped" 1 "REJECTED: unknown key" -- "$TMP/keyid.efpkg" --trust "$PUB"

mutate last.efpkg xor $((SIZE - 1)) 0x01
expect "last byte flipped (gpu blob)" 1 "REJECTED: digest mismatch for variant gpu" -- "$TMP/last.efpkg" --trust "$PUB"

mutate firstblob.efpkg xor "$FIRST_BLOB" 0x01
expect "first blob byte flipped (cpu blob)" 1 "REJECTED: digest mismatch for variant cpu" -- "$TMP/firstblob.efpkg" --trust "$PUB"

mutate trunc.efpkg truncate 3000
expect "truncated to 3000 bytes" 1 "REJECTED: truncated" -- "$TMP/trunc.efpkg" --trust "$PUB"

mutate trailing.efpkg append 00
expect "one byte appended" 1 "REJECTED: trailing data" -- "$TMP/trailing.efpkg" --trust "$PUB"

mutate fmt.efpkg set 8 2
expect "format version set to 2" 1 "REJECTED: unsupported format" -- "$TMP/fmt.efpkg" --trust "$PUB"

expect "--installed-seq 1 (anti-rollback)" 1 "REJECTED: not newer" -- "$PKG" --trust "$PUB" --installed-seq 1

# trust store listing the fixture key but revoking its key id
PUBHEX="$(tr -d '\r\n' <"$PUB")"
KEYID="$("$PY" -c 'import hashlib,sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest()[:16])' "$PUBHEX")"
cat >"$TMP/revoked.toml" <<TOML
revoked = ["$KEYID"]

[[keys]]
name = "fixture"
public_key = "$PUBHEX"
TOML
expect "trust store revokes the fixture key" 1 "REJECTED: revoked key" -- "$PKG" --trust "$TMP/revoked.toml"

# the same trust store without the revocation accepts
cat >"$TMP/store.toml" <<TOML
[[keys]]
name = "fixture"
public_key = "$PUBHEX"
TOML
expect "trust store trusting the fixture key" 0 "VALID" -- "$PKG" --trust "$TMP/store.toml"

# a different random public key
"$PY" - "$TMP/other.pub" <<'PYEOF'
import sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
pk = Ed25519PrivateKey.generate().public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)
open(sys.argv[1], "w").write(pk.hex() + "\n")
PYEOF
expect "different random public key" 1 "REJECTED: unknown key" -- "$PKG" --trust "$TMP/other.pub"

# 3. re-signed packages (own key): exercise signing message, decoder and validation paths.
# resign NAME MANIFEST_OP [ARGS]: rebuild the package with an edited manifest, signed by a
# fresh key whose public key file is written to $TMP/NAME.pub. Manifest offsets below are
# for the fixture (checked against the expected old byte).
resign() {
    local name="$1"; shift
    "$PY" - "$PKG" "$TMP/$name.efpkg" "$TMP/$name.pub" "$@" <<'PYEOF'
import hashlib, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
src, dst, pubout, op, *args = sys.argv[1:]
data = open(src, "rb").read()
m = struct.unpack("<I", data[12:16])[0]
manifest = bytearray(data[16:16 + m])
blobs = data[88 + m:]
if op == "same":
    pass
elif op == "set":                      # set OFFSET OLD NEW
    off, old, new = int(args[0]), int(args[1], 0), int(args[2], 0)
    assert manifest[off] == old, f"manifest[{off}] = {manifest[off]:#x}, expected {old:#x}"
    manifest[off] = new
elif op == "append":
    manifest += bytes.fromhex(args[0])
else:
    sys.exit(f"bad op {op}")
sk = Ed25519PrivateKey.generate()
pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
sig = sk.sign(b"edgefleet/package-manifest/v1\x00" + bytes(manifest))
head = data[:12] + struct.pack("<I", len(manifest)) + bytes(manifest) + hashlib.sha256(pk).digest()[:8] + sig
open(dst, "wb").write(head + blobs)
open(pubout, "w").write(pk.hex() + "\n")
PYEOF
}

resign resigned same
expect "re-signed with another key, unchanged" 0 "VALID" -- "$TMP/resigned.efpkg" --trust "$TMP/resigned.pub"
resign extra append 00
expect "manifest with a byte left over" 1 "REJECTED: malformed manifest" -- "$TMP/extra.efpkg" --trust "$TMP/extra.pub"
resign badenum set 66 0x00 0x05
expect "unknown HardwareClass index" 1 "REJECTED: malformed manifest" -- "$TMP/badenum.efpkg" --trust "$TMP/badenum.pub"
resign dupclass set 111 0x01 0x00
expect "two Cpu variants" 1 "REJECTED: invalid manifest" -- "$TMP/dupclass.efpkg" --trust "$TMP/dupclass.pub"
resign fv2 set 0 0x01 0x02
expect "manifest format_version 2" 1 "REJECTED: invalid manifest" -- "$TMP/fv2.efpkg" --trust "$TMP/fv2.pub"

# small-order (identity) public key with R = identity, S = 0: passes the cofactorless
# equation for any message, so strict RFC 8032 verification must refuse it.
"$PY" - "$PKG" "$TMP/weak.efpkg" <<'PYEOF'
import hashlib, struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
m = struct.unpack("<I", data[12:16])[0]
ident = bytes([1]) + bytes(31)
data[16 + m:88 + m] = hashlib.sha256(ident).digest()[:8] + ident + bytes(32)
open(sys.argv[2], "wb").write(data)
PYEOF
printf '0100000000000000000000000000000000000000000000000000000000000000\n' >"$TMP/weak.pub"
expect "small-order public key" 1 "REJECTED: bad signature" -- "$TMP/weak.efpkg" --trust "$TMP/weak.pub"

# usage / unreadable trust source -> exit 2
expect "missing trust source" 2 "error" -- "$PKG" --trust "$TMP/does-not-exist.pub"
printf 'bogus = 1\n' >"$TMP/unknown-field.toml"
expect "trust store with unknown field" 2 "unknown field" -- "$PKG" --trust "$TMP/unknown-field.toml"

echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
