"""Numeric precision of encoder inference: CPU feature detection and the ``"auto"`` choice.

An encoder's ``precision`` is one of

* ``"float32"`` — the exact reference path;
* ``"bfloat16"`` — PyTorch (or OpenVINO) with the model's weights and activations in bfloat16 (Kalamkar et al.,
  "A Study of BFLOAT16 for Deep Learning Training", arXiv 1905.12322, 2019). Fast only where the
  CPU multiplies bfloat16 natively (AVX512_BF16 or AMX-BF16, Intel Cooper Lake / Sapphire Rapids
  and later, AMD Zen 4 and later); elsewhere oneDNN emulates it and it is slower than float32;
* ``"int8"`` — ONNX Runtime with weights quantised to int8 and activations quantised per batch
  at run time (dynamic quantisation; Jacob et al., "Quantization and Training of Neural Networks
  for Efficient Integer-Arithmetic-Only Inference", CVPR 2018), using VNNI where present;
* ``"auto"`` — the fastest of these measured to lose at most 0.003 nDCG@10 (docs/encoding.md) that
  this CPU runs natively: ``"bfloat16"`` on a CPU with bfloat16 arithmetic and the torch or
  OpenVINO backend, ``"float32"`` otherwise (ONNX Runtime's int8 is opt-in: it moves vectors
  further, cosine about 0.99 to float32, and is slower than bfloat16 where bfloat16 is native).

Two environment variables steer ``"auto"`` without code changes: ``HERON_ENCODER_PRECISION``
(``float32``, ``bfloat16`` or ``int8``) replaces the automatic choice, and ``HERON_NO_BF16=1``
makes the detection report no bfloat16 support (the fallback a CPU without it takes).
"""

from __future__ import annotations

import functools
import logging
import os

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "bfloat16", "int8")
#: Which backends run each explicit precision.
_BACKENDS_OF = {
    "float32": ("torch", "onnx", "openvino"),
    "bfloat16": ("torch", "openvino"),
    "int8": ("onnx",),
}
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
ENV_PRECISION = "HERON_ENCODER_PRECISION"
ENV_NO_BF16 = "HERON_NO_BF16"


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (``avx512_bf16`` or ``amx_bf16`` flag).

    Reads ``/proc/cpuinfo`` (Linux); ``False`` where it cannot tell, and always ``False`` when
    the environment variable ``HERON_NO_BF16`` is set to a non-empty value other than ``0``.
    """
    if os.environ.get(ENV_NO_BF16, "") not in ("", "0"):
        return False
    return bool(cpu_flags() & set(_BF16_FLAGS))


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of the first processor in ``/proc/cpuinfo`` (empty off Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def resolve_precision(precision: object, *, backend: str, device: str = "cpu") -> str:
    """The concrete precision (``"float32"``, ``"bfloat16"`` or ``"int8"``) an encoder runs at.

    Parameters
    ----------
    precision:
        One of :data:`PRECISIONS`.
    backend:
        ``"torch"`` or ``"onnx"``.
    device:
        Torch device; ``"auto"`` picks a reduced precision only on ``"cpu"``.

    Raises
    ------
    ValueError
        An unknown precision, or one the backend does not run (bfloat16 is torch's, int8 ONNX
        Runtime's).
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {PRECISIONS}, got {precision!r}; "
            "pass precision='float32' for the exact path"
        )
    if precision == "auto":
        forced = os.environ.get(ENV_PRECISION, "")
        if forced and forced != "auto":
            if forced not in _BACKENDS_OF:
                raise ValueError(
                    f"{ENV_PRECISION}={forced!r} is not a precision; use one of {tuple(_BACKENDS_OF)}"
                )
            if backend in _BACKENDS_OF[forced]:
                return forced
            logger.info(
                "%s=%s does not apply to backend %r; using float32", ENV_PRECISION, forced, backend
            )
            return "float32"
        if backend in ("torch", "openvino") and str(device).startswith("cpu") and cpu_has_bf16():
            return "bfloat16"
        return "float32"
    if backend not in _BACKENDS_OF[str(precision)]:
        raise ValueError(
            f"precision={precision!r} is not available with backend={backend!r}; it runs on "
            f"backend={_BACKENDS_OF[str(precision)][0]!r} (or pass precision='auto')"
        )
    if precision == "bfloat16" and str(device).startswith("cpu") and not cpu_has_bf16():
        logger.warning(
            "this CPU has no native bfloat16 arithmetic (avx512_bf16/amx_bf16); bfloat16 encoding "
            "is emulated and likely slower than precision='float32'"
        )
    return str(precision)


# ------------------------------------------------------------------ what a collection records
def field_record(encoder: object) -> dict[str, str]:
    """What a collection stores in its dense field spec about ``encoder``'s numerics.

    ``{"precision": ...}`` for an encoder that reports one, else ``{}``.
    """
    p = getattr(encoder, "precision", None)
    out = {"precision": str(p)} if isinstance(p, str) else {}
    pooling = getattr(encoder, "pooling", None)
    if isinstance(pooling, str):  # a pooling other than the model's own (see heron.encoders.dense)
        out["pooling"] = pooling
    return out


def recorded_precision(field_spec: dict) -> str:
    """The precision a collection's vectors were encoded at; ``"float32"`` for collections made
    before it was recorded (float32 was then the only path)."""
    return str(field_spec.get("precision", "float32"))


def encoder_kwargs(field_spec: dict) -> dict[str, str]:
    """Keyword arguments for :func:`heron.encoders.load_encoder` that reproduce the recorded
    precision (int8 is ONNX Runtime's, so it brings ``backend="onnx"``)."""
    p = recorded_precision(field_spec)
    out = {"precision": p, "backend": "onnx"} if p == "int8" else {"precision": p}
    if field_spec.get("pooling"):
        out["pooling"] = str(field_spec["pooling"])
    return out


def check_encoder_precision(encoder: object, field_spec: dict) -> None:
    """Warn (``logging``) when ``encoder`` runs at another precision than the collection's vectors
    were encoded at: its queries and new documents would not match the stored ones exactly."""
    p = getattr(encoder, "precision", None)
    want = recorded_precision(field_spec)
    if isinstance(p, str) and p != want:
        logger.warning(
            "encoder precision %r differs from the collection's %r: queries and new documents "
            "will be encoded at %s, its stored vectors at %s; pass an encoder built with "
            "precision=%r to keep them alike",
            p,
            want,
            p,
            want,
            want,
        )
