"""LLVM intrinsics for heron's numba kernels (imported lazily, only with numba).

One home for the low-level operations several kernels share: population count (Hamming
scans), software prefetch (streaming scans over codes and sparse forward vectors) and IEEE
half -> float32 conversion (numba has no float16 type; float16 stores are read as their uint16
bit patterns), alone or as :func:`value_f32` for arrays stored in either precision; and typed
pointers from raw addresses (:data:`u8_pointer`, :data:`i64_pointer`) to read a library's memory
in place; the index of a mask's lowest set bit (:func:`trailing_zeros64`); and the 4-bit
fast-scan block (:func:`lut16_block64`: AVX-512 VBMI vector code, compiled only where
:func:`lut16_available`).
"""

from __future__ import annotations

import functools
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


@intrinsic
def trailing_zeros64(typingctx, x):  # pragma: no cover - compiled
    """Index of the lowest set bit of a uint64 (``llvm.cttz``; one ``tzcnt``); 64 for zero."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [i64, ir.IntType(1)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.cttz.i64")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 0)])

    return sig, codegen


def lut16_available() -> bool:
    """Whether :func:`lut16_block64` compiles here: numba targets this host (no
    ``NUMBA_CPU_NAME``) and its CPU has AVX-512 BW, VBMI (``vpermb``) and VNNI (``vpdpbusd``)."""
    from numba.core import config

    return not (config.CPU_NAME or config.CPU_FEATURES) and _host_has_vbmi()


@functools.cache
def _host_has_vbmi() -> bool:
    from llvmlite import binding

    feats = binding.get_host_cpu_features()  # ~0.4 ms: asked once
    return all(feats.get(f) for f in ("avx512bw", "avx512vbmi", "avx512vnni"))


_V64 = ir.VectorType(ir.IntType(8), 64)
_V32 = ir.VectorType(ir.IntType(16), 32)
_V16 = ir.VectorType(ir.IntType(32), 16)


@intrinsic
def lut16_block64(typingctx, codes, base, luts, lbase, ndw, out, floor):  # pragma: no cover
    """Sums of 4-bit table look-ups for one block of 64 interleaved codes (AVX-512 VBMI, VNNI).

    ``codes`` (uint8, 1-d) holds the block at ``base``: for each 4-byte word ``j < ndw`` of the
    codes, four 64-byte rows, row ``s`` holding word ``j`` of codes ``16 s .. 16 s + 15`` (4
    bytes each). ``luts`` (uint8, 1-d) holds at ``lbase`` the query's tables, 128 bytes per word:
    64 for the low nibbles, 64 for the high ones, each the four 16-entry tables of the word's
    bytes ``4 j .. 4 j + 3`` side by side.

    Writes the 64 sums (uint32, code order) to ``out[:64]`` and returns the mask of the sums
    ``>= floor``, bit ``j`` for ``out[j]``.

    One ``vpermb`` looks up a nibble of all 64 bytes of a row: its 6-bit index is the nibble
    with the byte's place in its word above it (bits 4-5), so each byte reads its own table.
    One ``vpdpbusd`` then adds each code's four looked-up bytes into its 32-bit sum. Per row and
    nibble that is an and-or (one ``vpternlog``), the look-up and the add, where 16-entry tables
    repeated across the register (one byte position of 64 codes per row) needed a look-up and
    three instructions to widen and add 8-bit results into 16-bit pairs (faiss' fast scan,
    André, Kermarrec & Le Scouarnec, VLDB 2015): 22 % fewer vector instructions, 13-20 % less
    time. Compile only where :func:`lut16_available`.
    """
    sig = types.uint64(codes, base, luts, lbase, ndw, out, floor)

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        i32, i64 = ir.IntType(32), ir.IntType(64)
        data = [
            context.make_array(signature.args[j])(context, builder, args[j]).data for j in (0, 2, 5)
        ]
        cptr = builder.gep(builder.bitcast(data[0], i8p), [args[1]])
        lptr = builder.gep(builder.bitcast(data[1], i8p), [args[3]])
        vperm = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V64, [_V64, _V64]), "llvm.x86.avx512.permvar.qi.512"
        )
        vdot = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V16, [_V16, _V16, _V16]), "llvm.x86.avx512.vpdpbusd.512"
        )

        def load(off):
            return builder.load(builder.bitcast(builder.gep(cptr, [off]), _V64.as_pointer()), align=1)

        def table(off):
            return builder.load(builder.bitcast(builder.gep(lptr, [off]), _V64.as_pointer()), align=1)

        nibble = _V64([0x0F] * 64)
        place = _V64([(i % 4) << 4 for i in range(64)])
        ones = builder.bitcast(_V64([1] * 64), _V16)
        pre = builder.block
        loop = builder.append_basic_block("lut16.loop")
        done = builder.append_basic_block("lut16.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        j = builder.phi(i64)
        j.add_incoming(ir.Constant(i64, 0), pre)
        accs = []
        for _ in range(4):
            acc = builder.phi(_V16)
            acc.add_incoming(ir.Constant(_V16, None), pre)
            accs.append(acc)
        toff = builder.mul(j, i64(128))
        t_lo, t_hi = table(toff), table(builder.add(toff, i64(64)))
        rows = builder.mul(j, i64(256))
        nxt = []
        for s, acc in enumerate(accs):
            c = load(builder.add(rows, i64(64 * s)))
            hi = builder.bitcast(builder.lshr(builder.bitcast(c, _V32), _V32([4] * 32)), _V64)
            i_lo = builder.or_(builder.and_(c, nibble), place)
            i_hi = builder.or_(builder.and_(hi, nibble), place)
            r_lo = builder.bitcast(builder.call(vperm, [t_lo, i_lo]), _V16)
            r_hi = builder.bitcast(builder.call(vperm, [t_hi, i_hi]), _V16)
            nxt.append(builder.call(vdot, [builder.call(vdot, [acc, r_lo, ones]), r_hi, ones]))
        j1 = builder.add(j, i64(1))
        j.add_incoming(j1, loop)
        for acc, v in zip(accs, nxt):
            acc.add_incoming(v, loop)
        builder.cbranch(builder.icmp_unsigned("<", j1, args[4]), loop, done)
        builder.position_at_end(done)
        optr = builder.bitcast(data[2], _V16.as_pointer())
        fl = args[6] if args[6].type.width == 32 else builder.zext(args[6], i32)  # uint32 floor
        lim = builder.insert_element(ir.Constant(_V16, None), fl, i32(0))
        lim = builder.shuffle_vector(
            lim, ir.Constant(_V16, None), ir.Constant(ir.VectorType(i32, 16), [0] * 16)
        )
        mask = ir.Constant(i64, 0)
        for s, v in enumerate(nxt):
            builder.store(v, builder.gep(optr, [i32(s)]), align=4)
            m = builder.zext(builder.bitcast(builder.icmp_unsigned(">=", v, lim), ir.IntType(16)), i64)
            mask = builder.or_(mask, builder.shl(m, i64(16 * s)))
        return mask

    return sig, codegen
