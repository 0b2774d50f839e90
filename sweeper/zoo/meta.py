"""Work on the meta device at the speed of Python's cheapest path: builds and FLOP traces.

A module built on the meta device has shapes and no storage, so its size does not matter; what
costs is Python. Two modes keep that small for the catalogue (:mod:`sweeper.zoo.counting`):
:func:`meta_build` (a meta device context that skips weight initialisation) and
:func:`flop_trace` (a forward that sums torch's flop_counter formulas and answers the common ops
with exact shape stand-ins instead of torch's Python meta kernels). Both are defined on first
use so that importing this module does not import torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable


class _Modes:
    """The two torch modes of the catalogue, defined on first use so importing this module stays light."""

    build_cls = None
    trace_cls = None


def meta_build(cpu_ranges: bool = False):
    """A ``torch.device("meta")`` context that also skips weight initialisation.

    A meta tensor has no values to initialise and an in-place op never changes a shape, so the
    initialisers become no-ops on meta tensors, at two levels: the ``torch.nn.init`` functions
    (their fan and gain arithmetic is a third of a build) and the tensor ops under them
    (``normal_``, ``uniform_``, ``fill_``...) for code that holds its own references. One mode
    does both the device and the ops because every torch call inside a mode pays a Python round
    trip per mode on the stack. The ``torch.nn.init`` functions stay patched only while the
    context is open, and even then pass any non-meta tensor to the original, so a thread that
    initialises real weights meanwhile is unaffected.
    ``cpu_ranges=True`` runs the index factories (linspace, arange) on CPU: smp's
    MixVisionTransformer reads a Python float from ``torch.linspace(...)`` while constructing,
    a value the meta device does not have. Stray CPU buffers are moved to meta after the build.
    """
    if _Modes.build_cls is None:
        import torch
        from torch.utils._device import DeviceContext, _device_constructors

        constructors = _device_constructors()
        ranges = {torch.linspace, torch.arange, torch.logspace}

        class MetaBuild(DeviceContext):
            def __init__(self, cpu_ranges: bool):
                super().__init__("meta")
                self.cpu_ranges = cpu_ranges

            def __enter__(self):
                self.saved_inits = _skip_meta_inits(torch.nn.init)
                return super().__enter__()

            def __exit__(self, *exc):
                try:
                    return super().__exit__(*exc)
                finally:
                    for name, original in self.saved_inits.items():
                        setattr(torch.nn.init, name, original)

            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func in constructors:
                    if kwargs.get("device") is None:
                        kwargs["device"] = "cpu" if self.cpu_ranges and func in ranges else self.device
                elif args and getattr(func, "__name__", "") in _INIT_OPS and getattr(args[0], "is_meta", False):
                    return args[0]
                return func(*args, **kwargs)

        _Modes.build_cls = MetaBuild
    return _Modes.build_cls(cpu_ranges)


def _skip_meta_inits(init_module) -> dict:
    """Wrap the public in-place initialisers of ``torch.nn.init``; returns the originals."""
    import functools

    saved = {}
    for name in dir(init_module):
        original = getattr(init_module, name)
        if (name.startswith("_") or not name.endswith("_") or not callable(original)
                or hasattr(original, "__meta_skip__")):
            continue

        def make(original):
            @functools.wraps(original)
            def init(tensor, *args, **kwargs):
                if getattr(tensor, "is_meta", False):
                    return tensor
                return original(tensor, *args, **kwargs)

            init.__meta_skip__ = True
            return init

        saved[name] = original
        setattr(init_module, name, make(original))
    return saved


def _is_meta_artifact(exc: BaseException) -> bool:
    return "meta" in str(exc).lower()


def build_on_meta(build: Callable[[], object]):
    """Build with no storage; fall back to CPU range factories, then to a real CPU build.

    Returns ``(module_on_meta, how)`` where ``how`` is ``"meta"``, ``"meta+cpu-ranges"`` or
    ``"cpu"``. Only failures that mention the meta device are retried: a real incompatibility
    fails the same way on every device and is reported as is.
    """
    try:
        with meta_build():
            return build(), "meta"
    except Exception as exc:  # noqa: BLE001 - smp raises many types for incompatibilities
        if not _is_meta_artifact(exc):
            raise
    try:
        with meta_build(cpu_ranges=True):
            return build().to("meta"), "meta+cpu-ranges"
    except Exception as exc:  # noqa: BLE001
        if not _is_meta_artifact(exc):
            raise
    return build().to("meta"), "cpu"


_INIT_OPS = {
    "normal_", "uniform_", "fill_", "zero_", "bernoulli_", "exponential_", "random_", "log_normal_", "geometric_",
    "cauchy_", "erfinv_", "clamp_", "mul_", "add_", "copy_", "sqrt_",
}

#: Pointwise ops whose result is not of the inputs' dtype; they take the exact kernel.
_PREDICATES = {
    "eq", "ne", "lt", "gt", "le", "ge", "isnan", "isinf", "isfinite", "isneginf", "isposinf", "signbit",
    "logical_and", "logical_or", "logical_xor", "logical_not",
}


def shape_handler(func):
    """A fast stand-in for ``func`` on meta tensors, or None to run torch's own meta kernel.

    Many meta kernels are Python (type promotion, stride propagation, decompositions): 0.1 to
    0.8 ms a call, most of a meta forward. A handler returns empty tensors of the exact output
    shape for the common case (float32, contiguous inputs, the only layout a catalogue forward
    makes) and ``None`` for anything else, which then runs the real kernel; that kernel also
    raises the real errors (a too-small output, a channel mismatch). FLOPs are unaffected:
    flop_counter's formulas read shapes only, and count none for these ops but convolution.
    """
    import torch

    name = func.__name__.split(".")[0]
    if name in ("native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training"):
        return _batch_norm
    if name == "native_layer_norm":
        return _layer_norm
    if name == "native_group_norm":
        return _group_norm
    if name.startswith("upsample_") and not name.endswith("backward"):
        return _upsample
    if name == "convolution":
        return _convolution
    if name in ("mean", "sum") and func._overloadname in ("dim", "dim_IntList"):
        return _reduction
    if name == "cat" and func._overloadname == "default":
        return _cat
    if name in ("mm", "addmm", "bmm") and func._overloadname == "default":
        return _matmul
    if torch.Tag.pointwise in func.tags and name.rstrip("_") not in _PREDICATES:
        return _inplace_pointwise if torch.Tag.inplace in func.tags else _pointwise
    return None


def _dense_float(tensors) -> bool:
    first = tensors[0]
    return first.dtype.is_floating_point and all(t.dtype == first.dtype and t.is_contiguous() for t in tensors)


def _same_layout(x):
    """An empty tensor laid out like ``x`` (``empty_like`` costs four times a plain ``new_empty``)."""
    import torch

    return x.new_empty(x.shape) if x.is_contiguous() else torch.empty_like(x)


def _batch_norm(args, kwargs):
    x = args[0]
    stats = x.new_empty((0,))
    return _same_layout(x), stats, stats


def _layer_norm(args, kwargs):
    x, shape = args[0], args[1]
    lead = tuple(x.shape[: x.dim() - len(shape)]) + (1,) * len(shape)
    return x.new_empty(x.shape), x.new_empty(lead), x.new_empty(lead)  # torch makes it contiguous


def _group_norm(args, kwargs):
    x, n, groups = args[0], args[3], args[6]
    return x.new_empty(x.shape), x.new_empty((n, groups)), x.new_empty((n, groups))


def _upsample(args, kwargs):
    x, size = args[0], args[1]
    spatial = x.dim() - 2
    if size is None:  # the .vec overloads: scale factors come last
        scales = args[-1]
        size = [math.floor(x.shape[2 + i] * float(scales[i])) for i in range(spatial)]
    if any(int(s) < 1 for s in size):
        return None
    return x.new_empty((*x.shape[:2], *[int(s) for s in size]))


def _convolution(args, kwargs):
    x, weight, bias, stride, padding, dilation, transposed, _, groups = args[:9]
    if transposed or x.dim() != weight.dim() or x.dim() < 3 or not _dense_float([x, weight]):
        return None
    if x.shape[1] != weight.shape[1] * groups or weight.shape[0] % groups:
        return None
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        return None
    spatial = x.dim() - 2
    expand = lambda v: list(v) * spatial if len(v) == 1 else list(v)  # noqa: E731
    stride, padding, dilation = expand(stride), expand(padding), expand(dilation)
    size = [
        (x.shape[2 + i] + 2 * padding[i] - dilation[i] * (weight.shape[2 + i] - 1) - 1) // stride[i] + 1
        for i in range(spatial)
    ]
    if any(s < 1 for s in size):
        return None
    return x.new_empty((x.shape[0], weight.shape[0], *size))


def _reduction(args, kwargs):
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    if (kwargs.get("dtype") is not None or (len(args) > 3 and args[3] is not None) or not _dense_float([x])
            or x.dim() == 0):
        return None
    dims = range(x.dim()) if not dims else [d % x.dim() for d in dims]
    if keepdim:
        shape = [1 if i in dims else s for i, s in enumerate(x.shape)]
    else:
        shape = [s for i, s in enumerate(x.shape) if i not in dims]
    return x.new_empty(shape)


def _cat(args, kwargs):
    tensors = list(args[0])
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not tensors or not _dense_float(tensors) or any(t.dim() != tensors[0].dim() or t.dim() == 0 for t in tensors):
        return None
    dim %= tensors[0].dim()
    rest = [s for i, s in enumerate(tensors[0].shape) if i != dim]
    if any([s for i, s in enumerate(t.shape) if i != dim] != rest for t in tensors):
        return None
    shape = list(tensors[0].shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return tensors[0].new_empty(shape)


def _matmul(args, kwargs):
    """mm, addmm (bias first) and bmm: their outputs are always contiguous."""
    import torch

    bias, a, b = (None, *args[:2]) if len(args) == 2 or not isinstance(args[2], torch.Tensor) else args[:3]
    if (not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.dtype != b.dtype
            or not a.dtype.is_floating_point):
        return None
    if (a.dim() != b.dim() or a.dim() not in (2, 3) or a.shape[-1] != b.shape[-2]
            or (a.dim() == 3 and a.shape[0] != b.shape[0])):
        return None
    shape = (*a.shape[:-1], b.shape[-1])
    if bias is not None:
        if bias.dtype != a.dtype:
            return None
        try:
            if torch.broadcast_shapes(bias.shape, shape) != shape:
                return None
        except RuntimeError:
            return None
    return a.new_empty(shape)


def _pointwise_operands(args, kwargs):
    import torch

    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if (not tensors or not isinstance(args[0], torch.Tensor)
            or any(isinstance(v, torch.Tensor) for v in kwargs.values())):
        return None
    if not _dense_float(tensors):
        return None
    shape = tensors[0].shape
    if any(t.shape != shape for t in tensors[1:]):
        try:
            shape = torch.broadcast_shapes(*(t.shape for t in tensors))
        except RuntimeError:
            return None
    return tensors, shape


_LAYOUT_KWARGS = {"memory_format", "dtype", "layout", "device", "pin_memory"}


def _pointwise(args, kwargs):
    import torch

    x = args[0]
    if _LAYOUT_KWARGS.intersection(kwargs):
        return None  # e.g. clone(memory_format=...) picks its own layout
    if isinstance(x, torch.Tensor) and x.dtype.is_floating_point and not any(
        isinstance(v, torch.Tensor) for v in (*args[1:], *kwargs.values())
    ):
        return _same_layout(x)  # one operand: the output keeps its layout, as in torch
    found = _pointwise_operands(args, kwargs)
    return None if found is None else x.new_empty(found[1])


def _inplace_pointwise(args, kwargs):
    found = _pointwise_operands(args, kwargs)
    return None if found is None or found[1] != args[0].shape else args[0]


def count_flops(formula, args, kwargs, out) -> int:
    """``formula(*args, out_val=out)`` without flop_counter's pytree pass over the arguments.

    The registered formulas are wrapped to turn every tensor into its shape with ``tree_map``,
    which costs more than the formula; flat arguments (all a forward here passes) are mapped
    directly and anything nested goes through the wrapper.
    """
    import torch

    raw = getattr(formula, "__wrapped__", None)
    nested = any(isinstance(a, (list, tuple)) and any(isinstance(t, torch.Tensor) for t in a) for a in args)
    if raw is None or nested or any(isinstance(v, (list, tuple, torch.Tensor)) for v in kwargs.values()):
        return formula(*args, **kwargs, out_val=out)
    shapes = [a.shape if isinstance(a, torch.Tensor) else a for a in args]
    if isinstance(out, torch.Tensor):
        out_shape = out.shape
    elif isinstance(out, (list, tuple)) and all(isinstance(o, torch.Tensor) for o in out):
        out_shape = type(out)(o.shape for o in out)
    else:
        return formula(*args, **kwargs, out_val=out)
    return raw(*shapes, out_shape=out_shape, **kwargs)


def flop_trace():
    """A dispatch mode that sums torch's flop_counter formulas over a meta forward.

    The same totals as ``FlopCounterMode`` (2 FLOPs per multiply-add, matmul/conv/attention),
    without its module tracking, and with the fast shape stand-ins of :func:`shape_handler`.
    """
    if _Modes.trace_cls is None:
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry

        handlers: dict = {}

        class FlopTrace(TorchDispatchMode):
            def __init__(self):
                super().__init__()
                self.total = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                try:
                    handler = handlers[func]
                except KeyError:
                    handler = handlers[func] = shape_handler(func)
                out = handler(args, kwargs) if handler is not None else None
                if out is None:
                    out = func(*args, **kwargs)
                formula = flop_registry.get(func._overloadpacket)
                if formula is not None:
                    self.total += count_flops(formula, args, kwargs, out)
                return out

        _Modes.trace_cls = FlopTrace
    return _Modes.trace_cls()
