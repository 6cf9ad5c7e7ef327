"""Codec specification strings, parsed in one place.

Grammar: ``[transform "+"]* codec`` where

* transforms: ``pca<d>`` (PCA), ``mrl<d>`` (Matryoshka prefix), ``srp<d>`` (very sparse random
  projection);
* codecs: ``fp32``, ``fp16``, ``bf16``, ``fp8`` (= ``fp8e4m3``), ``fp8e5m2``, ``int8``, ``int4``,
  ``bin`` (1-bit, asymmetric), ``bin-ham`` (1-bit, Hamming), ``bin-plain`` / ``bin-ham-plain``
  (no centring, no rotation), ``rbin<b>`` (BEBR residual binary, asymmetric), ``rbin<b>-sym``
  (symmetric), ``pq<M>``, ``opq<M>``, ``dpq<M>`` / ``dopq<M>`` (ranking-distilled PQ / OPQ).

Examples: ``"pca192+fp8"``, ``"bin"``, ``"rbin2"``, ``"pq48"``, ``"int8"``.
"""

from __future__ import annotations

import re

from heron.codecs.base import Codec
from heron.codecs.binary import BinaryCodec
from heron.codecs.distill_pq import DistilledPQCodec
from heron.codecs.float import FloatCodec
from heron.codecs.pq import PQCodec
from heron.codecs.rbin import ResidualBinaryCodec
from heron.codecs.scalar import ScalarQuantizer
from heron.codecs.transforms import TRANSFORMS, Chain

#: every accepted codec form (``<n>`` is a positive integer)
VALID_CODECS = (
    "fp32",
    "fp16",
    "bf16",
    "fp8",
    "fp8e4m3",
    "fp8e5m2",
    "int8",
    "int4",
    "bin",
    "bin-ham",
    "bin-plain",
    "bin-ham-plain",
    "rbin<b>",
    "rbin<b>-sym",
    "pq<M>",
    "opq<M>",
    "dpq<M>",
    "dopq<M>",
)
VALID_TRANSFORMS = ("pca<d>", "mrl<d>", "srp<d>")

_PQ = re.compile(r"^(d?)(o?)pq(\d+)$")
_RBIN = re.compile(r"^rbin(\d+)(-sym)?$")
_T = re.compile(r"^(pca|mrl|srp)(\d+)$")


def _bad(spec: str, part: str) -> ValueError:
    return ValueError(
        f"unknown codec spec {spec!r} (cannot parse {part!r}); valid codecs: {', '.join(VALID_CODECS)}; "
        f"optionally preceded by transforms {', '.join(VALID_TRANSFORMS)} joined with '+', e.g. 'pca192+fp8'"
    )


def _codec(part: str, spec: str) -> Codec:
    if part in ("fp32", "fp16", "bf16", "fp8e4m3", "fp8e5m2"):
        return FloatCodec(format=part)
    if part == "fp8":
        c = FloatCodec(format="fp8e4m3")
        c.spec = "fp8"
        return c
    if part in ("int8", "int4"):
        return ScalarQuantizer(bits=int(part[3:]))
    if part in ("bin", "bin-ham", "bin-plain", "bin-ham-plain"):
        plain = part.endswith("-plain")
        return BinaryCodec(
            scoring="hamming" if "-ham" in part else "asym",
            centre=not plain,
            rotation="none" if plain else "itq",
        )
    m = _RBIN.match(part)
    if m:
        return ResidualBinaryCodec(bits=int(m.group(1)), scoring="sym" if m.group(2) else "asym")
    m = _PQ.match(part)
    if m:
        M = int(m.group(3))
        if M <= 0:
            raise _bad(spec, part)
        cls = DistilledPQCodec if m.group(1) else PQCodec
        return cls(M=M, opq=bool(m.group(2)))
    raise _bad(spec, part)


def parse_spec(spec: str) -> Codec:
    """An unfitted codec from a spec string such as ``"pca192+fp8"`` (see module docstring)."""
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(
            f"a codec spec must be a non-empty string such as 'int8' or 'pca192+fp8', got {spec!r}"
        )
    parts = [p.strip().lower() for p in spec.split("+")]
    transforms = []
    for p in parts[:-1]:
        m = _T.match(p)
        if not m or int(m.group(2)) <= 0:
            raise _bad(spec, p)
        transforms.append(TRANSFORMS[m.group(1)](n_components=int(m.group(2))))
    codec = _codec(parts[-1], spec)
    return Chain(transforms, codec) if transforms else codec
