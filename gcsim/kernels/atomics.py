"""Atomic operations on int64 array elements for numba-compiled code (sequentially
consistent), and a raw address seen as a typed pointer.

numba has no atomics of its own; these are LLVM's (`load atomic`, `store atomic`,
`cmpxchg`, `atomicrmw add`) emitted through numba's documented `@intrinsic` hook. Used by
the bank read's thread team (gcsim/kernels/bitline_threads.py) to claim units of work and
to publish a job to a thread that is already running compiled code.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _item_pointer(context, builder, aryty, ary_val, idx_val, idxty):
    ary = context.make_array(aryty)(context, builder, ary_val)
    idx = context.cast(builder, idx_val, idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [idx])


@intrinsic
def load(typingctx, arr, idx):
    """arr[idx], read atomically."""
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        return builder.load_atomic(ptr, "seq_cst", 8)
    return types.int64(arr, idx), codegen


@intrinsic
def store(typingctx, arr, idx, value):
    """arr[idx] = value, written atomically."""
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        builder.store_atomic(context.cast(builder, args[2], sig.args[2], types.int64), ptr, "seq_cst", 8)
        return context.get_dummy_value()
    return types.none(arr, idx, value), codegen


@intrinsic
def add(typingctx, arr, idx, value):
    """arr[idx] += value atomically; returns the value before."""
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        return builder.atomic_rmw("add", ptr, context.cast(builder, args[2], sig.args[2], types.int64), "seq_cst")
    return types.int64(arr, idx, value), codegen


@intrinsic
def compare_exchange(typingctx, arr, idx, expected, new):
    """If arr[idx] == expected: arr[idx] = new, True; else False (one atomic step)."""
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        cast = [context.cast(builder, v, t, types.int64) for v, t in zip(args[2:], sig.args[2:])]
        pair = builder.cmpxchg(ptr, cast[0], cast[1], "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)
    return types.boolean(arr, idx, expected, new), codegen


def _pointer_intrinsic(dtype):
    ptrty = types.CPointer(dtype)

    @intrinsic
    def as_pointer(typingctx, address):
        def codegen(context, builder, sig, args):
            return builder.inttoptr(args[0], context.get_value_type(ptrty))
        return ptrty(types.int64), codegen
    return as_pointer


# an address (int64, e.g. arr.ctypes.data) as a pointer that numba.carray takes
float32_pointer = _pointer_intrinsic(types.float32)
float64_pointer = _pointer_intrinsic(types.float64)
uint8_pointer = _pointer_intrinsic(types.uint8)


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (llvm.readcyclecounter: the TSC on x86): a clock for spins."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@intrinsic
def yield_cpu(typingctx):
    """sched_yield(): let another runnable thread have this core (a spinning thread's manners)."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(), codegen

__all__ = ["load", "store", "add", "compare_exchange", "float32_pointer", "float64_pointer", "uint8_pointer",
           "cycles", "yield_cpu"]
