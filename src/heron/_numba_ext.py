"""LLVM intrinsics for heron's numba kernels (imported lazily, only with numba).

One home for the low-level operations several kernels share: population count (Hamming
scans), software prefetch (streaming scans over codes and sparse forward vectors) and IEEE
half -> float32 conversion (numba has no float16 type; float16 stores are read as their uint16
bit patterns), alone or as :func:`value_f32` for arrays stored in either precision; and typed
pointers from raw addresses (:data:`u8_pointer`, :data:`i64_pointer`) to read a library's memory
in place.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def popcount64(typingctx, x):  # pragma: no cover - compiled
    """Number of set bits of a uint64 (``llvm.ctpop``; one ``popcnt`` instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [args[0].type])
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
    """Hint the CPU to fetch ``arr[idx]`` (1-d array) into cache (``llvm.prefetch``, read, high locality).

    The scans read rows with a short dot product each; on this class of machine the hardware
    prefetcher alone left the int8 scan at half the bandwidth of a plain streaming read
    (measured: 27 ms vs 13 ms over 77 MB); asking for a row a few rows ahead closes most of it.
    """
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i32 = ir.IntType(32)
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def half_bits_to_f32(typingctx, bits):  # pragma: no cover - compiled
    """IEEE half (given as its uint16 bits) to float32, exactly (``fpext``; ``vcvtph2ps`` with F16C)."""
    sig = types.float32(types.uint16)

    def codegen(context, builder, signature, args):
        h = builder.bitcast(args[0], ir.HalfType())
        return builder.fpext(h, ir.FloatType())

    return sig, codegen


@intrinsic
def value_f32(typingctx, x):  # pragma: no cover - compiled
    """A stored value as float32: ``float32`` as is, ``uint16`` read as IEEE half bits.

    For arrays that hold either precision (a Seismic forward index keeps ``float16`` values,
    passed to numba as their ``uint16`` bits, or ``float32``): one kernel body serves both, each
    compiled for its own type. Any other type is a typing error, never a numeric cast.
    """
    if x == types.float32:
        sig = types.float32(types.float32)

        def codegen(context, builder, signature, args):
            return args[0]

    elif x == types.uint16:
        sig = types.float32(types.uint16)

        def codegen(context, builder, signature, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    else:
        return None
    return sig, codegen


def _pointer_from_address(item: Any) -> Any:
    def impl(typingctx, addr):  # pragma: no cover - compiled
        if not isinstance(addr, types.Integer):
            return None
        sig = types.CPointer(item)(addr)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(item).as_pointer())

        return sig, codegen

    return intrinsic(impl)


#: ``u8_pointer(addr)`` / ``i64_pointer(addr)``: a raw address (an int) as a typed pointer, for
#: ``numba.carray(ptr, shape)`` views of memory owned by a library (faiss' inverted lists, whose
#: addresses heron reads once and passes as an int64 array). The owner must outlive the call and
#: not reallocate during it.
u8_pointer = _pointer_from_address(types.uint8)
i64_pointer = _pointer_from_address(types.int64)
