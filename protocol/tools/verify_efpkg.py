#!/usr/bin/env python3
"""Independent verifier for Edgefleet `.efpkg` signed model packages.

Written from protocol/PACKAGE.md alone (format version 1). Implements the
verification procedure of PACKAGE.md section 5, step by step and in order:

  1. header            -> truncated: header / not a package / unsupported format /
                          unsupported flags / bad manifest length
  2. manifest + sig    -> truncated: manifest / truncated: signature block
  3. key lookup        -> revoked key / unknown key
  4. signature         -> bad signature
  5. decode, validate  -> malformed manifest / invalid manifest
  6. anti-rollback     -> not newer / agent too old
  7. blobs (streamed)  -> truncated: <class> variant blob / digest mismatch for variant <class>
  8. end of file       -> trailing data

Usage:
  verify_efpkg.py PACKAGE --trust PUBKEY_OR_TRUSTSTORE [--installed-seq N]
                  [--agent-version X.Y.Z] [--json]

Exit status: 0 valid, 1 rejected (``REJECTED: <reason>`` on stderr),
2 usage error or unreadable trust source / package file.

Dependencies: Python 3.11 standard library + ``cryptography``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import struct
import sys
import tomllib
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# --------------------------------------------------------------------------
# Constants (PACKAGE.md section 1 and 2)
# --------------------------------------------------------------------------

MAGIC = b"EFPKG\r\n\x1a"  # 45 46 50 4B 47 0D 0A 1A
FORMAT_VERSION = 1
HEADER_LEN = 16
MAX_MANIFEST_LEN = 1_048_576
KEY_ID_LEN = 8
SIG_LEN = 64
SIG_BLOCK_LEN = KEY_ID_LEN + SIG_LEN  # 72
SIGNING_CONTEXT = b"edgefleet/package-manifest/v1\x00"  # 29 ASCII chars + NUL = 30 bytes
assert len(SIGNING_CONTEXT) == 30
CHUNK = 64 * 1024  # streaming read size: memory use independent of blob size

# enum tables, indices from 0 (PACKAGE.md section 3)
ELEM_TYPES = ["F32", "F16", "F64", "I8", "U8", "I16", "I32", "I64", "Bool"]
HARDWARE_CLASSES = ["cpu", "gpu", "accelerator"]
PRECISIONS = ["fp32", "fp16", "bf16", "int8"]
# TensorData variants: name, element decoder name
TENSOR_DATA = ["F32", "I64", "I32", "U8", "I8", "Bool"]

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Rejected(Exception):
    """Package rejected; ``str(exc)`` is the section-5 reason (italic name)."""


class UsageError(Exception):
    """Bad invocation or unreadable trust source (exit 2)."""


def class_name(hw: str) -> str:
    """Spelling of <class> in reasons: lower-case hardware class (cpu/gpu/accelerator)."""
    return hw.lower()


# --------------------------------------------------------------------------
# Trust store (PACKAGE.md section 2, "Trust store")
# --------------------------------------------------------------------------

HEX64_RE = re.compile(r"[0-9A-Fa-f]{64}")
HEX16_RE = re.compile(r"[0-9A-Fa-f]{16}")


def key_id_of(public_key: bytes) -> bytes:
    """First 8 bytes of SHA-256 over the 32-byte public key."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_LEN]


@dataclass
class TrustStore:
    keys: dict[bytes, tuple[str, bytes]] = field(default_factory=dict)  # key id -> (name, pubkey)
    revoked: set[bytes] = field(default_factory=set)  # key ids


def load_trust(path: str) -> TrustStore:
    """Load either a public key file (64 hex digits + newline) or a TOML trust store."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MANIFEST_LEN + 1)  # trust sources are small; bound anyway
    except OSError as e:
        raise UsageError(f"cannot read trust source {path}: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"trust source {path} is not UTF-8") from e

    # A public key file: exactly 64 hex digits and a newline. A bare 64-hex line can never be
    # valid TOML (a bare key needs "="), so the two forms do not overlap. We accept a missing
    # final newline and a CRLF ending (spec does not say; see report).
    stripped = text[:-1] if text.endswith("\n") else text
    stripped = stripped[:-1] if stripped.endswith("\r") else stripped
    if HEX64_RE.fullmatch(stripped):
        pk = bytes.fromhex(stripped)
        store = TrustStore()
        store.keys[key_id_of(pk)] = ("public key file", pk)
        return store

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"trust source {path} is neither a public key file nor a TOML trust store: {e}") from e

    store = TrustStore()
    unknown = set(doc) - {"revoked", "keys"}
    if unknown:
        raise UsageError(f"trust store {path}: unknown field(s) {sorted(unknown)}")
    revoked = doc.get("revoked", [])
    if not isinstance(revoked, list):
        raise UsageError(f"trust store {path}: 'revoked' must be an array of key ids")
    for kid in revoked:
        if not isinstance(kid, str) or not HEX16_RE.fullmatch(kid):
            raise UsageError(f"trust store {path}: revoked entry {kid!r} is not 16 hex digits")
        store.revoked.add(bytes.fromhex(kid))
    keys = doc.get("keys", [])
    if not isinstance(keys, list):
        raise UsageError(f"trust store {path}: 'keys' must be an array of tables ([[keys]])")
    for i, entry in enumerate(keys):
        if not isinstance(entry, dict):
            raise UsageError(f"trust store {path}: keys[{i}] is not a table")
        unknown = set(entry) - {"name", "public_key"}
        if unknown:
            raise UsageError(f"trust store {path}: keys[{i}]: unknown field(s) {sorted(unknown)}")
        name = entry.get("name")
        if not isinstance(name, str):
            raise UsageError(f"trust store {path}: keys[{i}]: missing or non-string 'name'")
        pk_hex = entry.get("public_key")
        if not isinstance(pk_hex, str) or not HEX64_RE.fullmatch(pk_hex):
            raise UsageError(f"trust store {path}: keys[{i}]: 'public_key' must be 64 hex digits")
        pk = bytes.fromhex(pk_hex)
        store.keys[key_id_of(pk)] = (name, pk)
    return store


# --------------------------------------------------------------------------
# Strict ed25519 helpers: small-order point check (PACKAGE.md section 2 requires
# rejecting small-order keys; we check A and R explicitly rather than rely on the backend).
# --------------------------------------------------------------------------

_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_L = 2**252 + 27742317777372353535851937790883648493


def _decode_point(b: bytes):
    """Decode a 32-byte Edwards point (extended coordinates), or None if not on the curve."""
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None  # non-canonical encoding of y: reject outright
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x2 = u * pow(v, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _double(pt):
    x1, y1, z1, _ = pt
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = (a + b) % _P
    e = (h - (x1 + y1) * (x1 + y1)) % _P
    g = (a - b) % _P
    f = (c + g) % _P
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def is_small_order_or_invalid(b: bytes) -> bool:
    pt = _decode_point(b)
    if pt is None:
        return True
    for _ in range(3):  # multiply by the cofactor 8
        pt = _double(pt)
    x, y, z, _ = pt
    return x % _P == 0 and (y - z) % _P == 0  # identity


def verify_strict(public_key: bytes, signature: bytes, message: bytes) -> bool:
    if len(public_key) != 32 or len(signature) != 64:
        return False
    if is_small_order_or_invalid(public_key) or is_small_order_or_invalid(signature[:32]):
        return False
    if int.from_bytes(signature[32:], "little") >= _L:  # non-canonical S
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --------------------------------------------------------------------------
# postcard decoder for the manifest schema (PACKAGE.md section 3)
# --------------------------------------------------------------------------

class Malformed(Exception):
    pass


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise Malformed(f"input ends early at byte {self.pos} (need {n})")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self, bits: int) -> int:
        """Unsigned LEB128 as postcard decodes it: at most ceil(bits/7) bytes, and the
        final byte may not carry bits above the type's width."""
        max_bytes = (bits + 6) // 7
        out = 0
        for i in range(max_bytes):
            byte = self.u8()
            out |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if out >> bits:
                    raise Malformed(f"varint overflows u{bits} at byte {self.pos - 1}")
                return out
        raise Malformed(f"varint longer than {max_bytes} bytes for u{bits} at byte {self.pos - 1}")

    def u16(self) -> int:
        return self.varint(16)

    def u32(self) -> int:
        return self.varint(32)

    def u64(self) -> int:
        return self.varint(64)

    def _zigzag(self, bits: int) -> int:
        n = self.varint(bits)
        return (n >> 1) ^ -(n & 1)

    def i32(self) -> int:
        return self._zigzag(32)

    def i64(self) -> int:
        return self._zigzag(64)

    def i8(self) -> int:
        return struct.unpack("<b", self.take(1))[0]

    def f32(self) -> float:
        return struct.unpack("<f", self.take(4))[0]

    def f64(self) -> float:
        return struct.unpack("<d", self.take(8))[0]

    def bool(self) -> bool:
        b = self.u8()
        if b > 1:
            raise Malformed(f"bool byte {b:#04x} at byte {self.pos - 1}")
        return b == 1

    def string(self) -> str:
        n = self.varint(64)
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Malformed(f"string is not UTF-8 at byte {self.pos - n}") from e

    def seq(self, elem: Callable[[], Any]) -> list:
        n = self.varint(64)
        # every element type in this schema takes >= 1 byte, so a lying count runs out of
        # input quickly; cap pre-checks at the remaining length anyway.
        if n > len(self.data) - self.pos:
            raise Malformed(f"sequence of {n} elements cannot fit in remaining input")
        return [elem() for _ in range(n)]

    def option(self, elem: Callable[[], Any]) -> Any:
        tag = self.u8()
        if tag == 0:
            return None
        if tag == 1:
            return elem()
        raise Malformed(f"option tag {tag:#04x} at byte {self.pos - 1}")

    def enum_index(self, names: list[str], what: str) -> int:
        at = self.pos
        idx = self.varint(32)
        if idx >= len(names):
            raise Malformed(f"unknown {what} index {idx} at byte {at}")
        return idx

    def digest(self) -> bytes:
        return self.take(32)


def decode_manifest(data: bytes) -> dict:
    r = Reader(data)

    def semver():
        return {"major": r.u32(), "minor": r.u32(), "patch": r.u32()}

    def dim():
        i = r.enum_index(["Fixed", "Symbolic"], "Dim")
        return {"Fixed": r.u64()} if i == 0 else {"Symbolic": r.string()}

    def tensor_spec():
        name = r.string()
        elem = ELEM_TYPES[r.enum_index(ELEM_TYPES, "ElemType")]
        shape = r.seq(dim)
        return {"name": name, "elem": elem, "shape": shape}

    def tolerance():
        return {"abs": r.f32(), "rel": r.f32()}

    def variant():
        hw = HARDWARE_CLASSES[r.enum_index(HARDWARE_CLASSES, "HardwareClass")]
        prec = PRECISIONS[r.enum_index(PRECISIONS, "Precision")]
        accel = r.option(r.string)
        dig = r.digest()
        size = r.u64()
        tol = tolerance()
        return {"hardware": hw, "precision": prec, "accelerator_kind": accel,
                "digest": dig, "size": size, "golden_tolerance": tol}

    elem_readers = {"F32": r.f32, "I64": r.i64, "I32": r.i32, "U8": r.u8, "I8": r.i8, "Bool": r.bool}

    def tensor():
        shape = r.seq(r.u64)
        kind = TENSOR_DATA[r.enum_index(TENSOR_DATA, "TensorData")]
        values = r.seq(elem_readers[kind])
        return {"shape": shape, "data": {"kind": kind, "values": values}}

    def golden():
        return {"inputs": r.seq(tensor), "expected": r.seq(tensor)}

    def feature():
        name = r.string()
        if r.enum_index(["Numeric", "Categorical"], "Binning") == 0:
            binning = {"Numeric": {"edges": r.seq(r.f64)}}
        else:
            binning = {"Categorical": {"codes": r.seq(r.i64)}}
        return {"name": name, "binning": binning, "counts": r.seq(r.u64)}

    def lineage():
        return {
            "training_run_id": r.option(r.string),
            "dataset_digest": r.option(r.digest),
            "pipeline_spec_digest": r.option(r.digest),
            "code_revision": r.option(r.string),
            "parent_version_seq": r.option(r.u64),
            "created_at_ms": r.u64(),
        }

    m = {}
    m["format_version"] = r.u16()
    m["name"] = r.string()
    m["version_seq"] = r.u64()
    m["label"] = r.string()
    m["min_agent_version"] = semver()
    m["inputs"] = r.seq(tensor_spec)
    m["outputs"] = r.seq(tensor_spec)
    m["variants"] = r.seq(variant)
    m["golden"] = r.seq(golden)
    m["drift_reference"] = {"features": r.seq(feature), "outputs": r.seq(feature),
                            "prediction": r.option(feature), "confidence": r.option(feature)}
    m["lineage"] = lineage()
    if r.pos != len(data):
        raise Malformed(f"{len(data) - r.pos} byte(s) left after the manifest")
    return m


# --------------------------------------------------------------------------
# Validation rules (PACKAGE.md section 4)
# --------------------------------------------------------------------------

def validate_manifest(m: dict, header_version: int) -> None:
    """Raise ValueError with a detail message when a rule is broken."""
    # 1. format_version = 1 (and equal to the header's)
    if m["format_version"] != FORMAT_VERSION or m["format_version"] != header_version:
        raise ValueError(f"format_version {m['format_version']} (header says {header_version})")
    # name: 1-64 bytes of [A-Za-z0-9._-] (stated in the schema of section 3, not in section 4)
    if not NAME_RE.fullmatch(m["name"]) or len(m["name"].encode()) > 64:
        raise ValueError(f"name {m['name']!r} is not 1-64 bytes of [A-Za-z0-9._-]")
    # 2. 1 <= variants <= 8, distinct hardware classes
    vs = m["variants"]
    if not 1 <= len(vs) <= 8:
        raise ValueError(f"{len(vs)} variants (need 1..8)")
    seen = set()
    for v in vs:
        if v["hardware"] in seen:
            raise ValueError(f"two variants with hardware class {v['hardware']}")
        seen.add(v["hardware"])
    # 3. tolerances non-negative, not NaN
    for v in vs:
        for k in ("abs", "rel"):
            t = v["golden_tolerance"][k]
            if math.isnan(t) or t < 0:
                raise ValueError(f"variant {class_name(v['hardware'])}: tolerance {k} = {t}")
    # 4. inputs and outputs non-empty
    if not m["inputs"]:
        raise ValueError("no inputs")
    if not m["outputs"]:
        raise ValueError("no outputs")
    # 5. golden vectors: one tensor per input / output; shape product = data length
    for gi, g in enumerate(m["golden"]):
        if len(g["inputs"]) != len(m["inputs"]):
            raise ValueError(f"golden[{gi}]: {len(g['inputs'])} input tensors, manifest has {len(m['inputs'])} inputs")
        if len(g["expected"]) != len(m["outputs"]):
            raise ValueError(f"golden[{gi}]: {len(g['expected'])} expected tensors, manifest has {len(m['outputs'])} outputs")
        for t in g["inputs"] + g["expected"]:
            prod = math.prod(t["shape"])  # empty shape -> 1 (scalar)
            if prod != len(t["data"]["values"]):
                raise ValueError(f"golden[{gi}]: shape {t['shape']} product {prod} != data length {len(t['data']['values'])}")
    # 6. drift features: finite strictly increasing bin_edges, counts = edges + 1
    for f in m["drift_reference"]["features"]:
        e = f["bin_edges"]
        if not all(math.isfinite(x) for x in e):
            raise ValueError(f"drift feature {f['name']!r}: non-finite bin edge")
        if any(b <= a for a, b in zip(e, e[1:])):
            raise ValueError(f"drift feature {f['name']!r}: bin_edges not strictly increasing")
        if len(f["counts"]) != len(e) + 1:
            raise ValueError(f"drift feature {f['name']!r}: {len(f['counts'])} counts for {len(e)} edges")


# --------------------------------------------------------------------------
# Verification procedure (PACKAGE.md section 5)
# --------------------------------------------------------------------------

def read_exact(f: BinaryIO, n: int) -> bytes:
    """Read up to n bytes (fewer only at end of file)."""
    parts = []
    while n > 0:
        b = f.read(min(n, CHUNK))
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def parse_semver(s: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", s)
    if not m:
        raise UsageError(f"--agent-version {s!r} is not MAJOR.MINOR.PATCH")
    return tuple(int(x) for x in m.groups())  # type: ignore[return-value]


def verify(f: BinaryIO, trust: TrustStore, installed_seq: int | None,
           agent_version: tuple[int, int, int] | None) -> dict:
    """Run section 5 on an open package file. Returns a summary dict or raises Rejected."""
    # Step 1: header
    header = read_exact(f, HEADER_LEN)
    if len(header) < HEADER_LEN:
        raise Rejected("truncated: header")
    if header[0:8] != MAGIC:
        raise Rejected("not a package")
    fmt, flags, mlen = struct.unpack("<HHI", header[8:16])
    if fmt != FORMAT_VERSION:
        raise Rejected("unsupported format")
    if flags != 0:
        raise Rejected("unsupported flags")
    if not 1 <= mlen <= MAX_MANIFEST_LEN:
        raise Rejected("bad manifest length")

    # Step 2: manifest and signature block
    manifest = read_exact(f, mlen)
    if len(manifest) < mlen:
        raise Rejected("truncated: manifest")
    sig_block = read_exact(f, SIG_BLOCK_LEN)
    if len(sig_block) < SIG_BLOCK_LEN:
        raise Rejected("truncated: signature block")
    key_id, signature = sig_block[:KEY_ID_LEN], sig_block[KEY_ID_LEN:]
    package_id = hashlib.sha256(header + manifest + sig_block).hexdigest()

    # Step 3: key lookup (by id only; revocation wins over presence)
    if key_id in trust.revoked:
        raise Rejected("revoked key")
    if key_id not in trust.keys:
        raise Rejected("unknown key")
    key_name, public_key = trust.keys[key_id]

    # Step 4: signature over context || 0x00 || manifest bytes
    if not verify_strict(public_key, signature, SIGNING_CONTEXT + manifest):
        raise Rejected("bad signature")

    # Step 5: decode and validate
    try:
        m = decode_manifest(manifest)
    except Malformed as e:
        raise Rejected("malformed manifest", str(e)) from e
    try:
        validate_manifest(m, fmt)
    except ValueError as e:
        raise Rejected("invalid manifest", str(e)) from e

    # Step 6: anti-rollback, agent version
    if installed_seq is not None and not m["version_seq"] > installed_seq:
        raise Rejected("not newer", f"version_seq {m['version_seq']} <= installed {installed_seq}")
    if agent_version is not None:
        mav = m["min_agent_version"]
        need = (mav["major"], mav["minor"], mav["patch"])
        if need > agent_version:
            raise Rejected("agent too old", "needs %d.%d.%d" % need)

    # Step 7: blobs, streamed and hashed
    for v in m["variants"]:
        cls = class_name(v["hardware"])
        h = hashlib.sha256()
        remaining = v["size"]
        while remaining > 0:
            chunk = f.read(min(CHUNK, remaining))
            if not chunk:
                raise Rejected(f"truncated: {cls} variant blob")
            h.update(chunk)
            remaining -= len(chunk)
        if h.digest() != v["digest"]:
            raise Rejected(f"digest mismatch for variant {cls}")

    # Step 8: end of file
    if f.read(1):
        raise Rejected("trailing data")

    return {"package_id": package_id, "key_id": key_id.hex(), "key_name": key_name,
            "head_len": HEADER_LEN + mlen + SIG_BLOCK_LEN, "manifest": m}


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def fmt_shape(shape: list) -> str:
    return "[" + ", ".join(str(d["Fixed"]) if "Fixed" in d else d["Symbolic"] for d in shape) + "]"


def print_summary(s: dict) -> None:
    m = s["manifest"]
    mav = m["min_agent_version"]
    print(f"VALID package {s['package_id']}")
    print(f"  signed by key {s['key_id']} ({s['key_name']})")
    print(f"  name: {m['name']}  label: {m['label']}  version_seq: {m['version_seq']}  "
          f"min_agent_version: {mav['major']}.{mav['minor']}.{mav['patch']}")
    for kind in ("inputs", "outputs"):
        for t in m[kind]:
            print(f"  {kind[:-1]:6}  {t['name']}: {t['elem']} {fmt_shape(t['shape'])}")
    for v in m["variants"]:
        accel = f" ({v['accelerator_kind']})" if v["accelerator_kind"] else ""
        tol = v["golden_tolerance"]
        print(f"  variant {class_name(v['hardware'])}{accel}: {v['precision']}, {v['size']} bytes, "
              f"sha256 {v['digest'].hex()}, tolerance abs={tol['abs']:.6g} rel={tol['rel']:.6g}")
    print(f"  golden vectors: {len(m['golden'])}")
    print(f"  drift features: {len(m['drift_reference']['features'])}")
    lin = m["lineage"]
    parts = []
    for k in ("training_run_id", "dataset_digest", "pipeline_spec_digest", "code_revision", "parent_version_seq"):
        val = lin[k]
        if val is not None:
            parts.append(f"{k}={val.hex() if isinstance(val, bytes) else val}")
    parts.append(f"created_at_ms={lin['created_at_ms']}")
    print("  lineage: " + ", ".join(parts))


def to_jsonable(x: Any) -> Any:
    if isinstance(x, bytes):
        return x.hex()
    if isinstance(x, dict):
        return {k: to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [to_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    return x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Verify an Edgefleet .efpkg package (PACKAGE.md section 5).")
    ap.add_argument("package")
    ap.add_argument("--trust", required=True, help="public key file (64 hex digits) or TOML trust store")
    ap.add_argument("--installed-seq", type=int, default=None,
                    help="version_seq of the installed version of this model (anti-rollback)")
    ap.add_argument("--agent-version", default=None,
                    help="agent version MAJOR.MINOR.PATCH to check min_agent_version against")
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    if args.installed_seq is not None and args.installed_seq < 0:
        print("error: --installed-seq must be >= 0", file=sys.stderr)
        return 2
    try:
        trust = load_trust(args.trust)
        agent_version = parse_semver(args.agent_version) if args.agent_version else None
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        f = open(args.package, "rb")
    except OSError as e:
        print(f"error: cannot read package {args.package}: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        with f:
            summary = verify(f, trust, args.installed_seq, agent_version)
    except Rejected as e:
        reason = e.args[0]
        detail = e.args[1] if len(e.args) > 1 else None
        print(f"REJECTED: {reason}" + (f" ({detail})" if detail else ""), file=sys.stderr)
        if args.json:
            print(json.dumps({"valid": False, "reason": reason, "detail": detail}))
        return 1
    except OSError as e:
        print(f"error: reading package {args.package}: {e.strerror or e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"valid": True, **to_jsonable(summary)}, indent=2))
    else:
        print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
