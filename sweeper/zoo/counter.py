"""One process's meta-device counter: builds pairs without weights and traces their FLOPs.

A module on the meta device has shapes but no storage, so a 800M-parameter encoder costs the same
few milliseconds as a small one. What keeps the whole catalogue fast (see ``benchmarks/zoo.py``
for the figures):

* an encoder is built once and shared by every decoder that asks for it; smp's own encoder
  classes serve every depth and output stride from one module (:func:`encoder_variant`),
  timm-built ones are built once per (depth, stride);
* builds skip weight initialisation, and a forward replaces torch's Python meta kernels for the
  common ops by exact shape stand-ins (``meta.shape_handler``);
* the encoder's forward is traced once per variant for its FLOPs and feature shapes; each
  decoder then runs on empty meta features of those shapes;
* an encoder whose own parameters exceed the budget rules out all its pairs before any forward.

A row is a plain dict, the disk cache's format (see :mod:`sweeper.zoo.counting`).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass

from sweeper.errors import one_line
from sweeper.zoo import meta
from sweeper.zoo.catalogue import import_smp


def _encoder_settings(arch_cls) -> tuple[int, int]:
    """The encoder depth and output stride an architecture asks for by default."""
    import inspect

    params = inspect.signature(arch_cls.__init__).parameters
    depth = params["encoder_depth"].default if "encoder_depth" in params else 5
    stride = params["encoder_output_stride"].default if "encoder_output_stride" in params else 32
    return int(depth), int(stride or 32)


def _meta_input(in_channels: int, image_size: int):
    import torch

    return torch.empty(1, in_channels, image_size, image_size, device="meta")


def _n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass
class EncoderInfo:
    """One encoder as built for counting: its module (shared between pairs) or the build error,
    and, once traced, its FLOPs and the shapes of the features it hands to a decoder."""

    module: object = None
    params: int = 0
    error: str | None = None
    built_on: str = "meta"
    flops: int | None = None
    shapes: list | None = None
    forward_error: str | None = None
    depth: int | None = None  # set on a shared native module by encoder_variant
    stride: int = 32


@contextmanager
def encoder_variant(info: EncoderInfo):
    """Give a shared native encoder the depth and output stride of ``info`` for a while.

    This repeats what smp's ``get_encoder`` does after construction (``make_dilated``) and
    undoes it on exit, so the stride-32 module stays intact for the next pair; dilation
    changes strides, dilations and paddings only, never a parameter.
    """
    module = info.module
    if info.depth is None:
        yield module
        return
    import torch.nn as nn

    saved = (module._depth, module._output_stride)
    convs = []
    if info.stride != 32:
        convs = [(m, m.stride, m.dilation, m.padding, m._modules.get("static_padding"))
                 for m in module.modules() if isinstance(m, nn.Conv2d)]
    try:
        module._depth, module._output_stride = info.depth, info.stride
        if info.stride != 32:
            module.make_dilated(info.stride)
        yield module
    finally:
        module._depth, module._output_stride = saved
        for m, stride, dilation, padding, static in convs:
            m.stride, m.dilation, m.padding = stride, dilation, padding
            if static is not None:
                m.static_padding = static


class PairCounter:
    """Per-process state: encoders built so far, keyed by everything that changes them."""

    def __init__(self, classes: int, in_channels: int, image_size: int):
        self.classes = classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.smp = import_smp()
        self.encoders: dict[tuple, EncoderInfo] = {}
        self._real_get_encoder = self.smp.encoders.get_encoder

    def _timm_routed(self, name: str) -> bool:
        """Encoders smp builds through timm, which takes the output stride at construction."""
        routed = getattr(self.smp.encoders, "is_equivalent_to_timm_universal", lambda n: False)
        return name.startswith("tu-") or routed(name)

    def encoder(self, name: str, depth: int, output_stride: int) -> EncoderInfo:
        key = (name, depth, output_stride)
        info = self.encoders.get(key)
        if info is not None:
            return info
        if self._timm_routed(name):
            info = self._build_encoder(name, depth, output_stride)
        else:
            # smp's own encoder classes read the depth only in forward and get dilated after
            # construction, so one module per name serves every (depth, stride), set in place
            # by encoder_variant while a pair uses it.
            base = self.encoders.get((name, None, None))
            if base is None:
                base = self.encoders[(name, None, None)] = self._build_encoder(name, 5, 32)
            info = EncoderInfo(module=base.module, params=base.params, error=base.error,
                               built_on=base.built_on, depth=depth, stride=output_stride)
            if info.error is None:
                try:
                    with encoder_variant(info):
                        pass
                except Exception as exc:  # noqa: BLE001 - e.g. DenseNet refuses to dilate
                    info.module, info.error = None, one_line(exc)
        self.encoders[key] = info
        return info

    def _build_encoder(self, name: str, depth: int, output_stride: int) -> EncoderInfo:
        info = EncoderInfo()
        try:
            info.module, info.built_on = meta.build_on_meta(
                lambda: self._real_get_encoder(
                    name, in_channels=self.in_channels, depth=depth, weights=None, output_stride=output_stride,
                )
            )
            info.module.eval()
            info.params = _n_params(info.module)
        except Exception as exc:  # noqa: BLE001
            info.error = one_line(exc)
        return info

    def trace_encoder(self, info: EncoderInfo) -> None:
        """FLOPs and output shapes of the encoder's forward, once per encoder key."""
        if info.flops is not None or info.forward_error is not None:
            return
        import torch

        try:
            with torch.no_grad(), meta.flop_trace() as counter:
                feats = info.module(_meta_input(self.in_channels, self.image_size))
            info.flops = counter.total
            info.shapes = [tuple(f.shape) for f in feats]
        except Exception as exc:  # noqa: BLE001
            info.forward_error = one_line(exc)

    def count_pair(self, arch: str, encoder: str, budget: int | None, weights: tuple[str, ...]) -> dict:
        """One catalogue row as a plain dict (the cache's format)."""
        cls = self.smp.MODEL_ARCHITECTURES_MAPPING[arch]
        depth, stride = _encoder_settings(cls)
        module = sys.modules[cls.__module__]
        shares_encoder = hasattr(module, "get_encoder") and cls.forward is self.smp.base.SegmentationModel.forward
        if not shares_encoder:
            return self._count_model(arch, encoder, budget, weights, None)
        enc = self.encoder(encoder, depth, stride)
        if enc.error:
            return {"arch": arch, "encoder": encoder, "invalid": enc.error}
        if budget is not None and enc.params > budget:
            return {"arch": arch, "encoder": encoder, "over_budget": enc.params}
        original = module.get_encoder
        module.get_encoder = lambda *a, **k: enc.module
        try:
            with encoder_variant(enc):
                return self._count_model(arch, encoder, budget, weights, enc)
        finally:
            module.get_encoder = original

    def _count_model(self, arch, encoder, budget, weights, enc: EncoderInfo | None) -> dict:
        """Build the whole model (around a shared encoder when ``enc`` is given) and trace it."""
        import torch

        def build():
            return self.smp.create_model(arch, encoder_name=encoder, encoder_weights=None,
                                         classes=self.classes, in_channels=self.in_channels)

        try:
            model, built_on = meta.build_on_meta(build)
        except Exception as exc:  # noqa: BLE001
            return {"arch": arch, "encoder": encoder, "invalid": one_line(exc)}
        if enc is None or getattr(model, "encoder", None) is not enc.module:
            model.eval()
            enc_params = _n_params(model.encoder)
            params = _n_params(model)
        else:
            # The shared encoder is in eval mode and counted already; walking its thousands of
            # modules again per decoder would cost more than the decoder.
            model.training = False
            rest = [child for child in model.children() if child is not enc.module]
            for child in rest:
                child.eval()
            enc_params = enc.params
            seen: set[int] = set()
            params = enc_params + sum(
                p.numel() for p in [*model._parameters.values(), *(q for c in rest for q in c.parameters())]
                if p is not None and id(p) not in seen and not seen.add(id(p))
            )
        how = enc.built_on if enc else built_on
        row = {
            "arch": arch, "encoder": encoder, "params": params, "encoder_params": enc_params,
            "decoder_params": params - enc_params, "weights": list(weights), "gflops": None,
            "runs": None, "note": "" if how == "meta" else f"counted via {how} build",
        }
        if budget is not None and params > budget:
            return row  # no forward for pairs over the budget; a larger budget completes the row
        x = _meta_input(self.in_channels, self.image_size)
        try:
            if enc is not None:
                self.trace_encoder(enc)
                if enc.forward_error:
                    raise RuntimeError(enc.forward_error)
                shapes = enc.shapes
                enc.module.forward = lambda _x: [torch.empty(s, device="meta") for s in shapes]
                try:
                    with torch.no_grad(), meta.flop_trace() as counter:
                        model(x)
                finally:
                    del enc.module.forward
                flops = counter.total + enc.flops
            else:
                with torch.no_grad(), meta.flop_trace() as counter:
                    model(x)
                flops = counter.total
            row["gflops"], row["runs"] = flops / 1e9, True
        except Exception as exc:  # noqa: BLE001
            row["runs"] = False
            row["note"] = one_line(exc)
        return row
