"""Call a compiled njit function through its machine-code address, so a parallel region
does not compile its chunk's code again.

Why: numba links the code of every njit function a kernel calls into the kernel's own
module and optimises the whole again, and a ``parallel=True`` kernel does that for its
gufunc, its wrapper and its serial twin separately. For the Winograd kernels, whose
prange body is one call to a large chunk function, that was 12-20 s of compile per
kernel on a fresh install, almost all of it LLVM re-optimising the same chunk code.
Called through an address, the chunk is compiled once, on its own (and cached on disk
like any ``cache=True`` kernel), and the region around it is a few lines of LLVM.

Use: the python driver asks ``address(chunk, *example_args)`` (the chunk compiled, or
loaded from numba's cache, for the types of those arguments) and passes the integer to
the region, which calls ``call_address(fn, *args)`` with arguments of exactly those
types. The address is that of numba's C wrapper of the compiled function (its arguments
by value, as numba's own first-class functions call it). Unlike a
``WrapperAddressProtocol`` argument (measured 25-60 us per call to unbox, as it calls
back into python twice), an integer costs nothing to pass.

The warm-up's dry run (engine/warmup.py) sees the chunk as it sees every kernel: the
first request goes through ``Dispatcher._compile_for_args``, which the dry run records
instead of compiling; ``address`` then returns 0, and ``run`` does not enter a region
with address 0 (it zeroes the region's arrays, as the dry run does for a skipped kernel).
"""

from llvmlite import ir
from numba import types
from numba._dispatcher import compute_fingerprint
from numba.extending import intrinsic

__all__ = ["address", "address_calling", "call_address", "run"]

_addresses = {}


@intrinsic
def call_address(typingctx, fn, *args):
    """call_address(fn, a, b, ...) calls the C wrapper at address fn (int64) with a, b,
    ... as its arguments; the function must return None. Valid only for an address from
    ``address(chunk, *values)`` whose values have the types of a, b, ... (the arrays are
    passed borrowed, as numba passes them to any call)."""
    if not isinstance(fn, types.Integer):
        return None
    argtypes = tuple(args)

    def codegen(context, builder, signature, llargs):
        fnty = ir.FunctionType(context.get_value_type(types.none),
                               [context.get_value_type(t) for t in argtypes])
        target = builder.inttoptr(llargs[0], fnty.as_pointer())
        builder.call(target, [builder.extract_value(llargs[1], i) for i in range(len(argtypes))])
        return context.get_dummy_value()

    return types.none(fn, types.StarArgTuple.from_types(argtypes)), codegen


def _key(dispatcher, args):
    # numba's own type fingerprint, in C (0.3 us for a dozen arguments: this runs on every
    # kernel call, single-image predictions included): dtype, ndim, layout and
    # writeability of each array. It leaves out alignment; numpy only makes a float
    # array unaligned from a raw buffer at an odd offset, which the engine never does.
    try:
        return dispatcher, compute_fingerprint(args)
    except (TypeError, ValueError):  # a value numba has no fingerprint for: type it in full
        return dispatcher, tuple(dispatcher.typeof_pyval(a) for a in args)


def address(dispatcher, *args) -> int:
    """The address of ``dispatcher``'s C wrapper compiled for the types of ``args``
    (compiled, or loaded from the on-disk cache, on first use). 0 inside the warm-up's
    dry run when it is not compiled yet (the dry run records it instead)."""
    try:
        found = _addresses.get((dispatcher, compute_fingerprint(args)))
    except (TypeError, ValueError):
        found = None
    if found is not None:
        return found
    key = _key(dispatcher, args)
    signature = tuple(dispatcher.typeof_pyval(a) for a in args)
    cres = dispatcher.overloads.get(signature)
    if cres is None:
        dispatcher._compile_for_args(*args)  # the path the dry run intercepts
        cres = dispatcher.overloads.get(signature)
        if cres is None:
            return 0
    found = cres.library.get_pointer_to_function(cres.fndesc.llvm_cfunc_wrapper_name)
    if not found:
        raise RuntimeError(f"numba built no C entry for {dispatcher.__name__}{signature}")
    _addresses[key] = found
    return found


def address_calling(callees, dispatcher, *args) -> int:
    """``address(dispatcher, *args)`` for a function that itself calls the addresses
    ``callees``: 0 unless they are all non-zero, so nothing ever calls address 0 (a dry
    run may have compiled the caller in an earlier, cancelled warm-up but not a callee)."""
    found = address(dispatcher, *args)
    return found if all(callees) else 0


def run(region, fn, *args):
    """region(fn, *args), or, when fn is 0 (a dry run met a chunk it has not compiled),
    the arrays in args zeroed instead, as the dry run does for a skipped kernel."""
    if fn:
        return region(fn, *args)
    return _dry_run(region, fn, args)


def _dry_run(region, fn, args):
    # Only the dry run gets here, and it intercepts this call too: it records the region
    # (so the warm-up compiles it) and returns its stand-in, which zeroes the arrays.
    entry = region._compile_for_args(fn, *args)
    if any(entry is cres.entry_point for cres in region.overloads.values()):
        raise RuntimeError(f"{region.__name__}: no compiled chunk to call (address 0)")
    return entry(fn, *args)
