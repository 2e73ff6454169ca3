#!/usr/bin/env python3
"""Export tiny image classifiers to ONNX and record onnxruntime golden outputs.

Every architecture is built from the real torchvision / timm classes (narrowed),
seeded, put in eval mode, with BatchNorm running stats and affine parameters
(and other constant-initialised parameters) randomised so nothing is an identity.
Each one is exported four ways:

    <arch>_ts13   TorchScript exporter (dynamo=False), opset 13
    <arch>_ts17   TorchScript exporter (dynamo=False), opset 17
    <arch>_dyn18  dynamo exporter (dynamo=True), opset 18
    <arch>_dynNN  dynamo exporter at the highest opset in HIGH_OPSETS that the
                  exporter really writes and onnxruntime loads and runs correctly

For each exported model the golden values come from onnxruntime (CPU, graph
optimisations disabled): the final logits plus a few intermediate tensors,
located by module scope and cross-checked against PyTorch forward hooks.

Output: Fixtures/models/<name>.onnx, Fixtures/models/<name>/*.npy (goldens),
Fixtures/models/inputs/<arch>.npy (the seeded input, shared by every export of
one architecture) and Fixtures/models/manifest.json.  The directory is
regenerated from scratch.

Run with tools/.venv/bin/python tools/export_fixtures.py [--only ARCH ...]
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import shutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvcompat import torchvision  # noqa: E402  (must precede other torchvision users)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx.numpy_helper  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from timm.models.deit import VisionTransformerDistilled  # noqa: E402
from timm.models.vision_transformer import VisionTransformer as TimmViT  # noqa: E402
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402
from torchvision.models.vgg import VGG, make_layers  # noqa: E402

import fixturelib as fl  # noqa: E402

OUT_DIR = fl.REPO_DIR / "Fixtures" / "models"
INPUTS_DIR = "inputs"  # Fixtures/models/inputs/<arch>.npy, one per architecture
HIGH_OPSETS = (25, 24, 23)  # tried in this order for the "highest" dynamo export
EXTERNAL_DATA_SOURCE = "densenet_dyn18"  # re-saved with all tensors as external data
# Node metadata_props the dynamo exporter writes: Python stack traces (absolute
# paths of this machine), FX node dumps, and module class names ("namespace",
# "class_hierarchy") that repeat what name_scopes says.  They are stripped to
# keep the fixtures small (up to ~40% of a tiny model) and machine-independent;
# "pkg.torch.onnx.name_scopes" (node -> nn.Module path) and the rewriter's
# "pkg.onnxscript.rewriter.rule_name" are kept.
STRIP_METADATA_KEYS = (
    "pkg.torch.onnx.stack_trace",
    "pkg.torch.onnx.fx_node",
    "namespace",
    "pkg.torch.onnx.class_hierarchy",
)


# --------------------------------------------------------------------------- models


class NarrowResNet(ResNet):
    """torchvision ResNet with configurable (small) stage widths.

    Builds the stock ResNet, then rebuilds the stem, the four stages and the fc
    with the given widths using ResNet's own ``_make_layer``; ``forward`` is
    ResNet's, unchanged.
    """

    def __init__(self, block, layers, widths, num_classes=10):
        super().__init__(block, layers, num_classes=num_classes)
        norm_layer = self._norm_layer
        self.inplanes = widths[0]
        self.dilation = 1
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def build_resnet_basic():
    return NarrowResNet(BasicBlock, [1, 1, 1, 1], widths=(8, 16, 24, 32), num_classes=10)


def build_resnet_bottleneck():
    return NarrowResNet(Bottleneck, [1, 1, 1, 1], widths=(4, 8, 12, 16), num_classes=10)


VGG_CFG = [8, "M", 16, "M", 16, 16, "M", 24, 24]


def _small_vgg(batch_norm: bool):
    model = VGG(make_layers(VGG_CFG, batch_norm=batch_norm), num_classes=10, init_weights=True)
    # 32x32 input -> 4x4 feature map; (2, 2) adaptive pooling exports as a real
    # pooling op (the stock (7, 7) would need non-integral windows).
    model.avgpool = nn.AdaptiveAvgPool2d((2, 2))
    model.classifier = nn.Sequential(
        nn.Linear(24 * 2 * 2, 32),
        nn.ReLU(True),
        nn.Dropout(p=0.5),
        nn.Linear(32, 32),
        nn.ReLU(True),
        nn.Dropout(p=0.5),
        nn.Linear(32, 10),
    )
    return model


def build_vgg():
    return _small_vgg(False)


def build_vgg_bn():
    return _small_vgg(True)


def build_vit():
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    )


DEIT_KW = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, num_classes=10)


def build_deit():
    return TimmViT(**DEIT_KW)


def build_deit_distilled():
    return VisionTransformerDistilled(**DEIT_KW)


MOBILENET_SETTING = [
    # t, c, n, s  (torchvision's table with one block per stage)
    [1, 16, 1, 1],
    [6, 24, 1, 2],
    [6, 32, 1, 2],
    [6, 64, 1, 2],
    [6, 96, 1, 1],
    [6, 160, 1, 2],
    # the stock table's last row [6, 320, 1, 1] is dropped: at width 0.25 it
    # alone holds ~31k weights
]


def build_mobilenet():
    from torchvision.ops.misc import Conv2dNormActivation

    model = torchvision.models.MobileNetV2(
        width_mult=0.25, num_classes=10, inverted_residual_setting=MOBILENET_SETTING
    )
    # The stock head is a 1x1 conv to 1280 channels (~0.4 MB of weights on its
    # own); use the same building block with 64 channels.
    last_in = model.features[-1][0].in_channels
    model.features[-1] = Conv2dNormActivation(
        last_in, 64, kernel_size=1, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU6
    )
    model.last_channel = 64
    model.classifier[1] = nn.Linear(64, 10)
    return model


def build_densenet():
    return torchvision.models.DenseNet(
        growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2, num_classes=10
    )


CONVNEXT_STAGES = [(8, 16, 1), (16, None, 1)]  # (input channels, output channels, blocks) per stage


def build_convnext():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    return ConvNeXt([CNBlockConfig(*stage) for stage in CONVNEXT_STAGES], num_classes=10)


SWIN_CONFIG = dict(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[1, 2], window_size=[4, 4], mlp_ratio=2.0)


def build_swin():
    # swin_t's architecture (patch embedding, shifted-window blocks, patch merging, channels-last
    # stages and norm) at a tiny width: 32x32 input, an 8x8 then 4x4 grid of 16 then 32 channels.
    from torchvision.models.swin_transformer import SwinTransformer

    return SwinTransformer(**SWIN_CONFIG, stochastic_depth_prob=0.0, num_classes=10)


@dataclass
class Arch:
    name: str
    build: Callable[[], nn.Module]
    source: str
    hw: int
    # (module path, "output" | "input") pairs whose tensors are recorded
    targets: list
    seed: int
    notes: list = field(default_factory=list)


def _vgg_last_relu(model) -> str:
    idx = max(i for i, m in enumerate(model.features) if isinstance(m, nn.ReLU))
    return f"features.{idx}"


ARCHS = [
    Arch(
        "resnet_basic",
        build_resnet_basic,
        "NarrowResNet(torchvision.models.resnet.ResNet)(BasicBlock, [1, 1, 1, 1], widths=(8, 16, 24, 32), "
        "num_classes=10): stock ResNet with stem/layer1..4/fc rebuilt by ResNet._make_layer at these widths; "
        "64x64 input so layer4 is 2x2",
        64,
        [("layer2", "output"), ("layer3", "output"), ("layer4", "output"), ("fc", "input")],
        101,
    ),
    Arch(
        "resnet_bottleneck",
        build_resnet_bottleneck,
        "NarrowResNet(torchvision.models.resnet.ResNet)(Bottleneck, [1, 1, 1, 1], widths=(4, 8, 12, 16), "
        "num_classes=10)",
        32,
        [("layer1", "output"), ("layer3", "output"), ("layer4", "output"), ("fc", "input")],
        102,
    ),
    Arch(
        "vgg",
        build_vgg,
        f"torchvision.models.vgg.VGG(make_layers({VGG_CFG}, batch_norm=False), num_classes=10); "
        "avgpool=AdaptiveAvgPool2d((2, 2)); classifier=Linear(96,32)/ReLU/Dropout/Linear(32,32)/ReLU/Dropout/Linear(32,10)",
        32,
        [("features.5", "output"), ("@last_relu", "output"), ("avgpool", "output"), ("classifier", "input"),
         ("classifier.1", "output")],
        103,
    ),
    Arch(
        "vgg_bn",
        build_vgg_bn,
        f"torchvision.models.vgg.VGG(make_layers({VGG_CFG}, batch_norm=True), num_classes=10); "
        "avgpool=AdaptiveAvgPool2d((2, 2)); classifier=Linear(96,32)/ReLU/Dropout/Linear(32,32)/ReLU/Dropout/Linear(32,10)",
        32,
        [("features.7", "output"), ("@last_relu", "output"), ("avgpool", "output"), ("classifier", "input"),
         ("classifier.1", "output")],
        104,
    ),
    Arch(
        "vit",
        build_vit,
        "torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, "
        "hidden_dim=32, mlp_dim=64, num_classes=10)",
        32,
        [("encoder.layers.encoder_layer_0", "output"), ("encoder.layers.encoder_layer_1.ln_1", "output"),
         ("encoder.layers.encoder_layer_1", "output"), ("encoder.ln", "output"), ("heads.head", "input")],
        105,
    ),
    Arch(
        "deit",
        build_deit,
        "timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, "
        "num_heads=2, mlp_ratio=2.0, num_classes=10)",
        32,
        [("blocks.0", "output"), ("blocks.1.norm1", "output"), ("blocks.1", "output"), ("norm", "output"),
         ("head", "input")],
        106,
    ),
    Arch(
        "deit_distilled",
        build_deit_distilled,
        "timm.models.deit.VisionTransformerDistilled(img_size=32, patch_size=8, embed_dim=32, depth=2, "
        "num_heads=2, mlp_ratio=2.0, num_classes=10) (cls + dist tokens; eval output = (head + head_dist) / 2)",
        32,
        [("blocks.0", "output"), ("blocks.1.norm1", "output"), ("blocks.1", "output"), ("norm", "output"),
         ("head", "input"), ("head_dist", "input")],
        107,
    ),
    Arch(
        "mobilenet",
        build_mobilenet,
        "torchvision.models.MobileNetV2(width_mult=0.25, num_classes=10, inverted_residual_setting=<stock table "
        "rows 1-6, n=1 per stage>); features[-1]=Conv2dNormActivation(40, 64, 1, ReLU6); classifier[1]=Linear(64, 10)",
        32,
        [("features.2", "output"), ("features.4", "output"), ("features.7", "output"), ("classifier", "input")],
        108,
    ),
    Arch(
        "densenet",
        build_densenet,
        "torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2, "
        "num_classes=10)",
        32,
        [("features.denseblock1.denselayer2", "output"), ("features.transition1", "output"), ("features.norm5", "output"),
         ("classifier", "input")],
        109,
    ),
    Arch(
        "convnext",
        build_convnext,
        f"torchvision.models.convnext.ConvNeXt([CNBlockConfig(*s) for s in {CONVNEXT_STAGES}], num_classes=10): "
        "patchify stem, one CNBlock per stage (7x7 depthwise conv, channels-last LayerNorm and MLP, layer scale), "
        "LayerNorm2d downsampling, LayerNorm2d/Flatten/Linear head",
        32,
        [("features.1", "output"), ("features.3", "output"), ("classifier.2", "input")],
        110,
    ),
    Arch(
        "swin",
        build_swin,
        f"torchvision.models.swin_transformer.SwinTransformer(**{SWIN_CONFIG}, stochastic_depth_prob=0, "
        "num_classes=10): swin_t's blocks (shifted 4x4 windows in stage 1, PatchMerging); every stage, "
        "the final norm and the 'features' output are channels-last [N, H, W, C]",
        32,
        [("features.1", "output"), ("features.3", "output"), ("norm", "output"), ("head", "input")],
        111,
    ),
]


# --------------------------------------------------------------------------- export


class ExportSkipped(Exception):
    pass


def export_torchscript(model, x, path: Path, opset: int) -> list:
    notes = []
    kwargs = dict(
        dynamo=False,
        opset_version=opset,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True,
    )
    try:
        with fl.captured_output():
            torch.onnx.export(model, (x,), str(path), **kwargs)
    except Exception as first:  # noqa: BLE001
        timm_attn = [m for m in model.modules() if hasattr(m, "fused_attn") and m.fused_attn]
        if not timm_attn or "scaled_dot_product_attention" not in str(first):
            raise ExportSkipped(_short(first)) from first
        # timm's own switch between F.scaled_dot_product_attention and the
        # explicit q@k^T softmax path; SDPA has no TorchScript symbolic < opset 14.
        for m in timm_attn:
            m.fused_attn = False
        try:
            with fl.captured_output():
                torch.onnx.export(model, (x,), str(path), **kwargs)
        finally:
            for m in timm_attn:
                m.fused_attn = True
        notes.append(
            "timm Attention.fused_attn=False for this export (aten::scaled_dot_product_attention has no "
            f"TorchScript ONNX symbolic at opset {opset})"
        )
    return notes


def export_dynamo(model, x, opset: int) -> onnx.ModelProto:
    batch = torch.export.Dim("batch")
    with fl.captured_output():
        prog = torch.onnx.export(
            model,
            (x,),
            dynamo=True,
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            external_data=False,
            optimize=True,
        )
    proto = prog.model_proto
    got = fl.opset_imports(proto).get("", None)
    if got != opset:
        raise ExportSkipped(f"exporter wrote default-domain opset {got} when asked for {opset}")
    return proto


def _short(exc: BaseException, limit: int = 400) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return text[:limit]


def strip_metadata(proto: onnx.ModelProto) -> int:
    removed = 0

    def walk(graph):
        nonlocal removed
        for node in graph.node:
            keep = [p for p in node.metadata_props if p.key not in STRIP_METADATA_KEYS]
            if len(keep) != len(node.metadata_props):
                removed += len(node.metadata_props) - len(keep)
                del node.metadata_props[:]
                node.metadata_props.extend(keep)
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(proto.graph)
    return removed


# --------------------------------------------------------------------------- scopes


def node_scopes(proto: onnx.ModelProto, exporter: str, module_names: set) -> list:
    """For every node, the chain of nn.Module qualified names it was emitted under."""
    out = []
    for node in proto.graph.node:
        chain: list = []
        if exporter == "dynamo":
            meta = {p.key: p.value for p in node.metadata_props}
            raw = meta.get("pkg.torch.onnx.name_scopes")
            if raw:
                try:
                    chain = [s for s in ast.literal_eval(raw) if s in module_names and s != ""]
                except (ValueError, SyntaxError):
                    chain = []
        else:
            # TorchScript names nodes "/layer1/layer1.0/relu_1/Relu": components are
            # attribute names or qualified names, "_N" marks the N-th reuse.
            if node.name.startswith("/"):
                path = ""
                for comp in node.name.split("/")[1:-1]:
                    cands = [comp]
                    m = re.fullmatch(r"(.+)_(\d+)", comp)
                    if m:
                        cands.append(m.group(1))
                    resolved = None
                    for cand in cands:
                        for q in ((f"{path}.{cand}" if path else cand), cand):
                            if q in module_names:
                                resolved = q
                                break
                        if resolved:
                            break
                    if resolved is None:
                        break
                    path = resolved
                    chain.append(resolved)
        out.append(chain)
    return out


def float_value_names(proto: onnx.ModelProto) -> dict:
    """name -> ValueInfoProto for every float tensor that shape inference can type."""
    inferred = onnx.shape_inference.infer_shapes(proto)
    infos = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            infos[vi.name] = vi
    return infos


def with_extra_outputs(proto: onnx.ModelProto, names: list, infos: dict) -> onnx.ModelProto:
    m = copy.deepcopy(proto)
    existing = {o.name for o in m.graph.output}
    for n in names:
        if n in existing:
            continue
        vi = onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
        if n in infos:
            vi = copy.deepcopy(infos[n])
        m.graph.output.append(vi)
        existing.add(n)
    return m


def torch_reference(model, x, targets):
    """Values of each (module, output|input) target from PyTorch hooks."""
    mods = dict(model.named_modules())
    store: dict = {}
    handles = []
    for path, kind in targets:
        mod = mods[path]

        def post(_m, _inp, out, key=(path, kind)):
            store.setdefault(key, []).append(out.detach().clone())

        def pre(_m, inp, key=(path, kind)):
            store.setdefault(key, []).append(inp[0].detach().clone())

        handles.append(mod.register_forward_hook(post) if kind == "output" else mod.register_forward_pre_hook(pre))
    with torch.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    for key, vals in store.items():
        if len(vals) != 1:
            raise RuntimeError(f"module {key} ran {len(vals)} times; pick a module that runs once")
    return logits.detach().numpy(), {k: v[0].numpy() for k, v in store.items()}


def _close(a: np.ndarray, ref: np.ndarray) -> bool:
    if a.shape != ref.shape:
        return False
    scale = max(1.0, float(np.abs(ref).max()))
    return bool(np.allclose(a, ref, rtol=1e-3, atol=1e-4 * scale))


def locate_targets(proto, exporter, model, targets, refs, x_np):
    """Map each module target onto an exact ONNX tensor name (verified by value)."""
    module_names = set(dict(model.named_modules()).keys()) - {""}
    scopes = node_scopes(proto, exporter, module_names)
    infos = float_value_names(proto)
    producers = {}
    for i, node in enumerate(proto.graph.node):
        for o in node.output:
            producers[o] = i
    initializers = {t.name for t in proto.graph.initializer}
    graph_inputs = {i.name for i in proto.graph.input}

    candidates = [
        o for node in proto.graph.node for o in node.output
        if o and o in infos and o not in initializers
    ]
    probe = with_extra_outputs(proto, candidates, infos)
    sess = fl.ort_session(probe.SerializeToString())
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(None, {"input": x_np})))

    found = {}
    for path, kind in targets:
        ref = refs[(path, kind)]
        in_scope = [i for i, ch in enumerate(scopes) if path in ch]
        pick = None
        if kind == "output":
            for i in reversed(in_scope):
                for o in proto.graph.node[i].output:
                    if o in values and _close(values[o], ref):
                        pick = o
                        break
                if pick:
                    break
        else:
            scope_set = set(in_scope)
            for i in in_scope:
                for inp in proto.graph.node[i].input:
                    if not inp or inp in initializers:
                        continue
                    outside = inp in graph_inputs or producers.get(inp) not in scope_set
                    if outside and inp in values and _close(values[inp], ref):
                        pick = inp
                        break
                if pick:
                    break
        if pick is None:
            raise RuntimeError(f"could not locate {kind} of module {path!r} ({len(in_scope)} nodes in scope)")
        found[(path, kind)] = pick
    return found


# --------------------------------------------------------------------------- main


def describe_graph(proto: onnx.ModelProto) -> dict:
    return {
        "opset_imports": fl.opset_imports(proto),
        "ir_version": int(proto.ir_version),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "ops": fl.op_histogram(proto),
    }


def process_export(arch, model, x, name, exporter, opset, proto, notes, manifest_models, model_path=None):
    """Run ORT (plain + with intermediates), save .npy files, append the manifest entry."""
    model_dir = OUT_DIR / name
    model_dir.mkdir(parents=True, exist_ok=True)
    x_np = x.numpy()
    input_rel = f"{INPUTS_DIR}/{arch.name}.npy"
    if not np.array_equal(np.load(OUT_DIR / input_rel), x_np):
        raise RuntimeError(f"{name}: input differs from the shared {input_rel}")

    targets = [((_vgg_last_relu(model) if p == "@last_relu" else p), k) for p, k in arch.targets]
    torch_logits, refs = torch_reference(model, x, targets)

    # exact final output from the model as written
    if model_path is not None:
        # onnx.load resolves the external data (offset/length) into raw_data; the
        # session then runs exactly the tensors stored in the .weights file.
        sess = fl.ort_session(onnx.load(str(model_path)).SerializeToString())
    else:
        sess = fl.ort_session(proto.SerializeToString())
    input_name = sess.get_inputs()[0].name
    out_name = sess.get_outputs()[0].name
    (logits,) = sess.run([out_name], {input_name: x_np})
    diff = float(np.abs(logits - torch_logits).max())
    scale = float(np.abs(torch_logits).max())
    if diff > 1e-3 * max(scale, 1.0):
        raise RuntimeError(f"{name}: ORT vs torch max abs diff {diff:.3g} (max |logit| {scale:.3g})")

    # dynamic batch really works
    with torch.no_grad():
        for b in (1, 5):
            xb = torch.cat([x] * 3)[:b]
            (yb,) = sess.run([out_name], {input_name: xb.numpy()})
            if yb.shape[0] != b or not _close(yb, model(xb).numpy()):
                raise RuntimeError(f"{name}: batch {b} run does not match torch")

    located = locate_targets(proto, exporter, model, targets, refs, x_np)
    probe = with_extra_outputs(proto, list(located.values()), float_value_names(proto))
    psess = fl.ort_session(probe.SerializeToString())
    wanted = [out_name] + list(dict.fromkeys(located.values()))
    vals = dict(zip(wanted, psess.run(wanted, {input_name: x_np})))
    if not np.array_equal(vals[out_name], logits):
        raise RuntimeError(f"{name}: logits differ once intermediates are exposed")

    outputs = []
    fname = fl.sanitize(out_name) + ".npy"
    fl.save_npy(model_dir / fname, logits)
    outputs.append({"tensor": out_name, "file": f"{name}/{fname}", "role": "output", "shape": list(logits.shape)})
    used = {fname}
    for (path, kind), tensor in located.items():
        fname = fl.sanitize(tensor) + ".npy"
        if fname in used:
            continue
        used.add(fname)
        fl.save_npy(model_dir / fname, vals[tensor])
        outputs.append({
            "tensor": tensor,
            "file": f"{name}/{fname}",
            "role": "intermediate",
            "module": path,
            "module_side": kind,
            "shape": list(vals[tensor].shape),
        })

    onnx_file = model_path if model_path is not None else OUT_DIR / f"{name}.onnx"
    entry = {
        "name": name,
        "arch": arch.name,
        "file": onnx_file.name,
        "exporter": exporter,
        "opset": opset,
        "source": arch.source,
        "seed": arch.seed,
        "input_name": input_name,
        "input": input_rel,
        "input_shape": list(x_np.shape),
        "outputs": outputs,
        "external_data": fl.uses_external_data(onnx.load(str(onnx_file), load_external_data=False)),
        **describe_graph(proto),
        "file_bytes": onnx_file.stat().st_size,
        "torch_vs_ort_max_abs_diff": diff,
        "max_abs_logit": float(np.abs(logits).max()),
        "dynamic_batch_checked": [1, 2, 5],
        "notes": notes,
    }
    manifest_models.append(entry)
    print(f"  {name:28s} {exporter:11s} opset {opset:2d}  {entry['file_bytes'] / 1024:7.1f} KB  "
          f"|ort-torch| {diff:.2e}  ops {len(entry['ops'])}")
    return entry


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="architectures to export (default all); keeps other files")
    args = ap.parse_args()
    fl.quiet_warnings()
    torch.set_num_threads(1)

    archs = [a for a in ARCHS if not args.only or a.name in args.only]
    if not args.only and OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    manifest_path = OUT_DIR / "manifest.json"
    models: list = []
    skipped: list = []
    if args.only and manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        models = [m for m in old["models"] if m["arch"] not in args.only]
        skipped = [s for s in old.get("skipped", []) if s["arch"] not in args.only]
        # drop the previous files of the re-exported architectures (goldens, .onnx, external data)
        for m in old["models"]:
            if m["arch"] in args.only:
                shutil.rmtree(OUT_DIR / m["name"], ignore_errors=True)
                for f in [m["file"], *m.get("external_data_files", [])]:
                    (OUT_DIR / f).unlink(missing_ok=True)

    attention_report = {}
    for arch in archs:
        print(f"{arch.name}:")
        torch.manual_seed(arch.seed)
        model = arch.build().eval()
        fl.randomize(model, torch.Generator().manual_seed(arch.seed + 1000))
        rng = np.random.default_rng(arch.seed)
        x = torch.from_numpy(rng.standard_normal((2, 3, arch.hw, arch.hw)).astype(np.float32))
        fl.save_npy(OUT_DIR / INPUTS_DIR / f"{arch.name}.npy", x.numpy())

        for opset in (13, 17):
            name = f"{arch.name}_ts{opset}"
            path = OUT_DIR / f"{name}.onnx"
            try:
                notes = export_torchscript(model, x, path, opset)
            except ExportSkipped as e:
                print(f"  {name:28s} SKIPPED: {e}")
                skipped.append({"name": name, "arch": arch.name, "exporter": "torchscript", "opset": opset,
                                "reason": str(e)})
                path.unlink(missing_ok=True)
                continue
            proto = onnx.load(str(path))
            process_export(arch, model, x, name, "torchscript", opset, proto, notes, models)

        dyn_opsets = [18]
        high_tried = []
        for opset in HIGH_OPSETS:
            try:
                proto = export_dynamo(model, x, opset)
                fl.ort_session(proto.SerializeToString())  # loads?
            except Exception as e:  # noqa: BLE001
                high_tried.append({"opset": opset, "result": _short(e)})
                continue
            high_tried.append({"opset": opset, "result": "ok"})
            dyn_opsets.append(opset)
            break
        for opset in dyn_opsets:
            name = f"{arch.name}_dyn{opset}"
            proto = export_dynamo(model, x, opset)
            removed = strip_metadata(proto)
            if fl.uses_external_data(proto):
                raise RuntimeError(f"{name}: dynamo export unexpectedly uses external data")
            notes = [f"stripped {removed} node metadata_props entries ({', '.join(STRIP_METADATA_KEYS)})"]
            if opset != 18:
                notes.append(f"highest opset probe: {high_tried}")
            onnx.save_model(proto, str(OUT_DIR / f"{name}.onnx"))
            entry = process_export(arch, model, x, name, "dynamo", opset, proto, notes, models)
            if arch.name in ("vit", "deit", "deit_distilled"):
                attention_report[name] = {k: v for k, v in entry["ops"].items()
                                          if k in ("Attention", "Softmax", "MatMul")}

        if arch.name == EXTERNAL_DATA_SOURCE.rsplit("_", 1)[0]:
            src_name = EXTERNAL_DATA_SOURCE
            name = f"{src_name}_extdata"
            proto = onnx.load(str(OUT_DIR / f"{src_name}.onnx"))
            weights = OUT_DIR / f"{name}.weights"
            weights.unlink(missing_ok=True)  # onnx appends to an existing file
            onnx.save_model(
                copy.deepcopy(proto),
                str(OUT_DIR / f"{name}.onnx"),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                size_threshold=0,
                convert_attribute=True,
                location=f"{name}.weights",
            )
            ext_loaded = onnx.load(str(OUT_DIR / f"{name}.onnx"))
            for a, b in zip(ext_loaded.graph.initializer, proto.graph.initializer):
                if a.name != b.name or onnx.numpy_helper.to_array(a).tobytes() != onnx.numpy_helper.to_array(b).tobytes():
                    raise RuntimeError(f"{name}: external tensor {a.name} differs from the embedded model")
            try:
                fl.ort_session(OUT_DIR / f"{name}.onnx")
                ort_by_path = "onnxruntime loads this file by path"
            except Exception as e:  # noqa: BLE001
                ort_by_path = ("onnxruntime cannot load this file by path: "
                               + _short(e, 400).replace(str(fl.REPO_DIR) + "/", "")
                               + " -- goldens were computed by ORT on onnx.load(path) (external data read by onnx "
                               "into raw_data), i.e. on exactly the bytes in the .weights file")
            print(f"  {name}: {ort_by_path[:150]}")
            entry = process_export(
                arch, model, x, name, "dynamo", 18, proto,
                [ort_by_path, f"{src_name}.onnx re-saved by onnx.save_model(save_as_external_data=True, "
                 f"all_tensors_to_one_file=True, size_threshold=0, convert_attribute=True, "
                 f"location='{name}.weights'): every initializer is external"],
                models, model_path=OUT_DIR / f"{name}.onnx",
            )
            entry["external_data_files"] = [weights.name]
            entry["external_data_bytes"] = weights.stat().st_size

    order = {a.name: i for i, a in enumerate(ARCHS)}
    models.sort(key=lambda m: (order.get(m["arch"], 99), m["name"]))
    manifest = {
        "tools": fl.tool_versions(),
        "generated": fl.now_iso(),
        "generator": "tools/export_fixtures.py",
        "onnxruntime_settings": {"providers": ["CPUExecutionProvider"], "graph_optimization_level": "ORT_DISABLE_ALL",
                                 "intra_op_num_threads": 1},
        "models": models,
        "skipped": skipped,
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")

    total = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    print(f"\nwrote {len(models)} models ({len(skipped)} skipped) to {OUT_DIR}  total {total / 1e6:.2f} MB")
    if attention_report:
        print("attention-related ops in dynamo exports:", json.dumps(attention_report))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        sys.exit(1)
