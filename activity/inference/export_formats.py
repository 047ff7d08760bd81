"""How an exported model is written to a file: one writer per format, by name in :data:`~activity.registry.EXPORT_FORMATS`.

>>> from activity.registry import EXPORT_FORMATS
>>> EXPORT_FORMATS.names()
['onnx', 'torchscript']

Each entry is an :class:`ExportFormat`: the writer, and a check that what it needs is installed
(run before the model is built). :func:`~activity.inference.export.export_model` builds the model
and the sidecar; the writers only turn a built module into a file. torch is imported when a writer
runs, so that the names can be listed (the command line's choices) without it.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from activity.errors import ActivityError
from activity.registry import EXPORT_FORMATS

if TYPE_CHECKING:
    import torch

ONNX_OPSET = 18
INPUT_NAME = "frames"
MOTION_INPUT_NAME = "motion"
OUTPUT_NAME = "logits"

Writer = Callable[["torch.nn.Module", "tuple[torch.Tensor, ...]", Path], None]
"""``(model, example inputs, path)``: trace ``model`` on the example ``(frames,)`` or ``(frames, motion)``
and write the graph, with a free batch axis, to ``path``."""


def _nothing_to_check() -> None:
    return None


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        write: the :data:`Writer`.
        check: raises :class:`~activity.errors.ActivityError` (one line, saying what to install) when a
            package the writer needs is missing; called before anything is loaded or built.
    """

    write: Writer
    check: Callable[[], None] = _nothing_to_check


def _require_onnx_exporter() -> None:
    try:
        for name in ("onnx", "onnxscript"):
            importlib.import_module(name)
    except ImportError:
        raise ActivityError("ONNX export needs the packages onnx and onnxscript (pip install onnx onnxscript)") from None


def _export_onnx(model: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    # torch.onnx's exporter built on torch.export (the default since PyTorch 2.9); opset 18, one file
    # (the weights are inside it, no external data), a dynamic batch axis named "batch" on every input.
    import torch

    if example[0].shape[0] == 1:
        # torch.export fixes a dimension whose example size is 1; any other example size keeps the batch dynamic.
        example = tuple(x.expand(2, *x.shape[1:]).contiguous() for x in example)
    names = [INPUT_NAME, MOTION_INPUT_NAME][: len(example)]
    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and buffer-assignment notices are not the user's problem
        torch.onnx.export(
            model, example, str(path),
            input_names=names, output_names=[OUTPUT_NAME],
            opset_version=ONNX_OPSET, dynamo=True, external_data=False,
            dynamic_shapes={name: {0: batch} for name in names}, verbose=False,
        )


def _export_torchscript(model: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    # Traced, not scripted (the backbone's third-party modules do not all script). Sizes are read
    # from the input inside the graph, so the traced module accepts any batch size.
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings, and torch.jit's own deprecation notice
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))


EXPORT_FORMATS.add("onnx", ExportFormat(_export_onnx, check=_require_onnx_exporter))
EXPORT_FORMATS.add("torchscript", ExportFormat(_export_torchscript))
