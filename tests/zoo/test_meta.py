"""sweeper.zoo.meta, the meta-device machinery under the catalogue: builds, fast shape stand-ins.

The end-to-end guarantee (counts and FLOPs equal to real builds and torch's FlopCounterMode) is
in test_counting.py; these tests pin the pieces, so that a torch upgrade that changes a kernel shows
up as a named op rather than as one wrong catalogue row.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sweeper.zoo import meta  # noqa: E402

aten = torch.ops.aten


def empty(*shape, channels_last: bool = False):
    t = torch.empty(*shape, device="meta")
    return t.to(memory_format=torch.channels_last) if channels_last else t


def _layout(t):
    """Shape, dtype and the strides that matter (a size-1 dim's stride never does)."""
    return tuple(t.shape), t.dtype, tuple(s for s, n in zip(t.stride(), t.shape) if n > 1)


CASES = {
    "add broadcast": (aten.add.Tensor, lambda: (empty(2, 8, 5, 5), empty(2, 8, 1, 1))),
    "mul scalar": (aten.mul.Tensor, lambda: (empty(2, 8, 5, 5), 0.5)),
    "gelu transposed": (aten.gelu.default, lambda: (empty(1, 32, 64).transpose(1, 2),)),
    "relu channels_last": (aten.relu.default, lambda: (empty(2, 8, 5, 5, channels_last=True),)),
    "hardtanh_ in place": (aten.hardtanh_.default, lambda: (empty(2, 8, 5, 5), 0.0, 6.0)),
    "mean keepdim": (aten.mean.dim, lambda: (empty(2, 8, 5, 5), [2, 3], True)),
    "sum negative dim": (aten.sum.dim_IntList, lambda: (empty(2, 8, 5, 5), [-1])),
    "cat channels": (aten.cat.default, lambda: ([empty(2, 3, 4, 4), empty(2, 5, 4, 4)], 1)),
    "conv strided dilated grouped": (
        aten.convolution.default,
        lambda: (empty(2, 8, 33, 31), empty(16, 4, 3, 3), empty(16), [2, 1], [2, 2], [2, 2], False, [0, 0], 2),
    ),
    "addmm transposed weight": (aten.addmm.default, lambda: (empty(32), empty(64, 16), empty(32, 16).t())),
    "bmm": (aten.bmm.default, lambda: (empty(3, 4, 5), empty(3, 5, 6))),
    "layer norm": (aten.native_layer_norm.default, lambda: (empty(1, 64, 32), [32], empty(32), empty(32), 1e-5)),
    "batch norm eval": (
        aten.native_batch_norm.default,
        lambda: (empty(2, 8, 5, 5), empty(8), empty(8), empty(8), empty(8), False, 0.1, 1e-5),
    ),
    "upsample to size": (aten.upsample_bilinear2d.default, lambda: (empty(1, 4, 8, 8), [17, 16], False, None, None)),
}


@pytest.mark.parametrize("name", CASES)
def test_fast_stand_in_matches_torchs_meta_kernel(name):
    op, make_args = CASES[name]
    handler = meta.shape_handler(op)
    assert handler is not None, f"{op} lost its fast path"
    args = make_args()
    fast = handler(args, {})
    assert fast is not None, f"{name}: the fast path refused a case it should take"
    real = op(*make_args())
    first_fast = fast[0] if isinstance(fast, tuple) else fast
    first_real = real[0] if isinstance(real, tuple) else real
    assert _layout(first_fast) == _layout(first_real)


#: bias, stride, padding, dilation, transposed, output_padding, groups of a plain 3x3 convolution.
_CONV_ARGS = (None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)


@pytest.mark.parametrize(
    "op, make_args, error",
    [
        # The real kernel must run to raise the real error: PAN at 64 px fails this way.
        (aten.convolution.default, lambda: (empty(1, 8, 2, 2), empty(4, 8, 3, 3), *_CONV_ARGS), "Kernel size"),
        (aten.convolution.default, lambda: (empty(1, 8, 9, 9), empty(4, 3, 3, 3), *_CONV_ARGS), "channel"),
        (aten.cat.default, lambda: ([empty(2, 3, 4, 4), empty(2, 3, 5, 4)], 1), "Sizes of tensors must match"),
        (aten.mm.default, lambda: (empty(4, 5), empty(6, 7)), "reduction dim"),
        (aten.add.Tensor, lambda: (empty(2, 3), empty(4, 3)), "broadcast"),
    ],
)
def test_fast_stand_in_leaves_errors_to_torch(op, make_args, error):
    assert meta.shape_handler(op)(make_args(), {}) is None
    with torch.no_grad(), meta.flop_trace(), pytest.raises(RuntimeError, match=error):
        op(*make_args())


def test_layout_changing_copies_take_the_real_kernel():
    x = empty(1, 8, 4, 4, channels_last=True)
    handler = meta.shape_handler(aten.clone.default)
    assert handler is None or handler((x,), {"memory_format": torch.contiguous_format}) is None
    with meta.flop_trace():
        assert x.contiguous().is_contiguous()


def test_flop_trace_counts_what_flop_counter_mode_counts():
    from torch.utils.flop_counter import FlopCounterMode

    layer = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(8 * 7 * 7, 10),
    ).to("meta").eval()
    x = empty(2, 3, 16, 16)
    with torch.no_grad(), FlopCounterMode(display=False) as reference:
        layer(x)
    with torch.no_grad(), meta.flop_trace() as ours:
        out = layer(x)
    assert ours.total == reference.get_total_flops() > 0
    assert tuple(out.shape) == (2, 10)


def test_meta_build_allocates_nothing_and_restores_the_default_device():
    with meta.meta_build():
        conv = torch.nn.Conv2d(3, 8, 3)
    assert conv.weight.is_meta and conv.bias.is_meta
    assert torch.empty(1).device.type == "cpu"


def test_meta_build_still_initialises_real_tensors_and_unpatches_init():
    originals = {name: getattr(torch.nn.init, name) for name in ("kaiming_uniform_", "ones_", "normal_")}
    with meta.meta_build():
        assert torch.nn.init.kaiming_uniform_ is not originals["kaiming_uniform_"]
        real = torch.zeros(4, 4, device="cpu")
        torch.nn.init.ones_(real)  # e.g. another thread building a real model meanwhile
        assert real.sum().item() == 16
    assert {name: getattr(torch.nn.init, name) for name in originals} == originals
