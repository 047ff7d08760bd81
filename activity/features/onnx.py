"""ONNX Runtime as the backbone runtime on the CPU: the backbone exported once to an ``.onnx`` file
(float32, dynamic batch axis) cached under the feature cache root, run with an
``onnxruntime.InferenceSession`` of one thread per loader worker, as the torch path runs."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from activity.io import atomic_path

#: ONNX opset the backbones are exported with.
OPSET = 17


def model_key(backbone: nn.Module, name: str, size: int) -> str:
    """The cached model's file stem: the backbone's name and input size, then a hash of its class and
    weights (so that two different modules under one name never share a file)."""
    h = hashlib.sha1(f"{type(backbone).__module__}.{type(backbone).__qualname__}:{size}:{OPSET}".encode())
    for k, v in backbone.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return f"{safe}-{size}-{h.hexdigest()[:12]}"


def export_backbone(backbone: nn.Module, path: Path, size: int) -> None:
    """Write ``backbone`` (float32, input ``(N, 3, size, size)``, batch axis dynamic) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(2, 3, size, size)
    with atomic_path(path) as tmp, torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # Padding computed from the input's size is traced as constants: right, the size is part of the key.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter announcing its end
        torch.onnx.export(backbone.float().eval(), (dummy,), str(tmp), input_names=["frames"],
                          output_names=["features"], dynamic_axes={"frames": {0: "n"}, "features": {0: "n"}},
                          opset_version=OPSET, dynamo=False)


class OnnxBackbone:
    """Callable like the backbone (float32 ``(N, 3, S, S)`` -> ``(N, D)``), run by onnxruntime.

    The session is made lazily in the process that calls it (a loader worker after the fork), with
    as many intra-op threads as torch has there (one in the workers), and never pickled.

    Args:
        path: the exported model.
        feature_dim: features per frame.
    """

    def __init__(self, path: Path, feature_dim: int) -> None:
        self.path = Path(path)
        self.feature_dim = feature_dim
        self._session = None
        self._pid: int | None = None

    def session(self):  # noqa: ANN201 - onnxruntime.InferenceSession (an optional import)
        """This process's session (made on the first call in each process)."""
        if self._session is None or self._pid != os.getpid():
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
            self._pid = os.getpid()
        return self._session

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(N, D)`` float32 of preprocessed float frames ``(N, 3, S, S)``."""
        frames = np.ascontiguousarray(x.detach().float().cpu().numpy())
        return torch.from_numpy(self.session().run(None, {"frames": frames})[0])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_session": None, "_pid": None}

    def drop_session(self) -> None:
        """Forget this process's session (before forking workers: each makes its own)."""
        self._session = None
        self._pid = None


def export_failure(path: Path) -> str | None:
    """Why exporting to ``path`` failed before, with the torch and onnxruntime installed now
    (:func:`remember_export_failure`), or None."""
    try:
        versions, _, why = path.with_suffix(".failed").read_text().partition("\n")
    except OSError:
        return None
    return (why.strip() or "failed") if versions == _runtime_versions() else None


def remember_export_failure(path: Path, why: str) -> None:
    """Record beside ``path`` that exporting there failed (and why), for the installed torch and
    onnxruntime; best effort. :func:`onnx_backbone` clears it once an export succeeds."""
    marker = path.with_suffix(".failed")
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{_runtime_versions()}\n{why}\n")
    except OSError:
        pass


def _runtime_versions() -> str:
    """What an export's success depends on besides the weights: the torch and onnxruntime versions."""
    import importlib.metadata as md

    try:
        ort = md.version("onnxruntime")
    except md.PackageNotFoundError:
        ort = "none"
    return f"torch {torch.__version__} onnxruntime {ort}"


def onnx_backbone(backbone: nn.Module, path: Path, size: int) -> tuple[OnnxBackbone, bool]:
    """The backbone as an :class:`OnnxBackbone`, exported to ``path`` unless already there
    (:meth:`~activity.features.encoder.FrameEncoder.onnx_path`: ``<root>/onnx/<model_key>.onnx``).

    A model exported here is checked against ``backbone`` on a few random frames before it is
    returned (and left on disk only where it agrees); a cached one is opened once (a damaged file is
    exported and checked again), which costs milliseconds instead of a forward pass in each runtime.

    Returns:
        ``(model, exported)``: ``exported`` is False where the cached file was reused.

    Raises:
        ImportError: onnxruntime is not installed.
        Exception: whatever exporting or loading raises, or ``ValueError`` where the outputs disagree.
    """
    import onnxruntime  # noqa: F401 - fail before exporting when it cannot run

    path = Path(path)
    model = OnnxBackbone(path, int(getattr(backbone, "feature_dim", 0)))
    made = reuse_or_make(model, lambda: export_backbone(backbone, path, size), lambda: _check(model, backbone, size))
    if made:
        path.with_suffix(".failed").unlink(missing_ok=True)  # works now: auto may use it again
    return model, made


def reuse_or_make(model: OnnxBackbone, make: Callable[[], None], check: Callable[[], None]) -> bool:
    """Open ``model``'s cached file once (it loads: reused), or else ``make`` it and ``check`` it, keeping the
    file only where the check passes (a damaged file, or one from an incompatible onnxruntime, is made again).
    What the float32 export (:func:`onnx_backbone`) and its int8 copy
    (:func:`~activity.features.quantize.int8_backbone`) share.

    Returns:
        True where the file was made here, False where the cached one was reused.

    Raises:
        Exception: whatever ``make`` or ``check`` raises (the file is removed first).
    """
    if model.path.exists():
        try:
            model.session()
            return False
        except Exception:  # damaged or from an incompatible onnxruntime: make it again
            pass
        finally:
            model.drop_session()
    make()
    try:
        check()
    except Exception:
        model.path.unlink(missing_ok=True)
        raise
    finally:
        model.drop_session()
    return True


def _check(model: OnnxBackbone, backbone: nn.Module, size: int) -> None:
    """Raise ``ValueError`` where ``model`` and ``backbone`` disagree on a few random frames (float16 rounding allowed)."""
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = backbone(x.contiguous(memory_format=torch.channels_last)).float()
    got = model(x)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=2**-10, atol=1e-4):
        raise ValueError(f"onnxruntime's features differ from torch's (max {(got - want).abs().max().item():.2g})")
