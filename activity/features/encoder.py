"""The frame encoder: preprocessed uint8 frames in, backbone features out, in batches on one
device (autocast on GPUs; ``torch.compile`` or ONNX Runtime on CPUs where
:mod:`activity.features.runtime` chooses them; ONNX Runtime's int8 kernels for precision ``int8``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from activity.data.quiet import quiet_logger
from activity.errors import ActivityError, describe
from activity.features.backbones import Backbone
from activity.features.spec import FeatureSpec


class FrameEncoder:
    """Preprocessed uint8 frames in, backbone features out, in batches on one device.

    Frames arrive resized and cropped but still uint8 ``(N, 3, S, S)`` (a quarter of
    the float32 bytes to move between processes and to the device); scaling and
    normalisation happen on the device, in the batch. On CUDA, ``precision``
    ``"bfloat16"`` or ``"float16"`` runs the backbone under autocast; ``"int8"`` runs
    only after :meth:`use_onnxruntime` (CPU), on a quantised copy (:mod:`activity.features.quantize`).

    Args:
        backbone: the frozen backbone (moved to ``device`` here).
        spec: the features wanted: frame adjustments, preprocessing and ``precision``
            (``"float32"``, ``"bfloat16"``/``"float16"`` autocast, or ``"int8"``: ONNX Runtime only).
        device: where the backbone runs.
        batch_size: frames per forward pass.
    """

    def __init__(self, backbone: Backbone, spec: "FeatureSpec", device: str | torch.device = "cpu", *,
                 batch_size: int = 32) -> None:
        self.device = torch.device(device)
        self.backbone = backbone.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels once
        self.spec = spec
        self.batch_size = batch_size
        self.dtype = {"float32": None, "int8": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[spec.precision]
        self._onnx_file: str | None = None  # the export's file name (a hash of the weights: computed once)

    @property
    def int8(self) -> bool:
        """Precision ``int8``: only ONNX Runtime runs this backbone (:meth:`use_onnxruntime`)."""
        return self.spec.precision == "int8"

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Features ``(N, D)`` float32 on the CPU for uint8 frames ``(N, 3, S, S)``."""
        out = []
        for chunk in frames.split(self.batch_size):
            x = self.spec.preprocess.normalize(chunk.to(self.device, non_blocking=True))
            x = x.contiguous(memory_format=torch.channels_last)  # for the convolutions
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
                out.append(self.backbone(x).float())
        return torch.cat(out).cpu() if out else torch.zeros(0, self.backbone.feature_dim)

    def compile(self, frames: int, threads: int | None = None) -> str | None:
        """Run the backbone through ``torch.compile`` for calls of exactly ``frames`` frames.

        Compiles at once with a warm-up call, so that loader workers forked
        afterwards inherit the compiled code instead of each compiling again.
        Features agree with the eager backbone's to float rounding (about 1e-6).

        Args:
            frames: frames per call.
            threads: the torch threads the compiled code will run with (the CPU
                kernels are generated for a thread count); None: the current one.

        Returns:
            None, or why the backbone stays eager (no C++ compiler, an
            unsupported platform, ...): compiling is only ever an optimisation.
        """
        eager = self.backbone
        size = self.spec.preprocess.crop_size
        before = torch.get_num_threads()
        # The C++ toolchain lookup warns "No CUDA runtime is found" on CPU-only machines: not news here.
        with quiet_logger("torch.utils.cpp_extension"):
            try:
                torch.set_num_threads(threads or before)
                self.backbone = torch.compile(eager, dynamic=False)  # type: ignore[assignment]
                self(torch.zeros(frames, 3, size, size, dtype=torch.uint8))
            except Exception as e:  # anything the compiler stack raises: stay eager
                self.backbone = eager
                return describe(e)
            finally:
                torch.set_num_threads(before)
        return None

    def use_onnxruntime(self, root: str | Path) -> str | None:
        """Run the backbone with ONNX Runtime instead of torch (CPU, float32 or int8).

        The backbone is exported once to ``root/onnx/<key>.onnx`` (see
        :func:`~activity.features.onnx.onnx_backbone`) and reused afterwards; for precision
        ``int8``, so is its quantised copy beside it (:func:`~activity.features.quantize.int8_backbone`).
        Loader workers forked after this call each open their own one-thread session.

        Returns:
            None, or why the backbone stays on torch (onnxruntime missing, the export failed,
            a GPU, reduced precision): for float32 the runtime is only ever an optimisation.

        Raises:
            ActivityError: precision ``int8`` and the quantised backbone cannot run here (nothing
                else computes int8 features).
        """
        why = self._onnxruntime_problem(root)
        if why is None:
            return None
        if self.int8:
            raise ActivityError(f"features.precision=int8 runs on ONNX Runtime on the CPU only, and cannot here: {why}")
        return f"{why}; encoding with torch"

    def _onnxruntime_problem(self, root: str | Path) -> str | None:
        """Switch the backbone to ONNX Runtime, or say why it cannot be (and leave it as it is)."""
        if self.device.type != "cpu":
            return f"onnxruntime is used only on the CPU (here: {self.device.type})"
        if self.dtype is not None:
            return f"onnxruntime runs float32 and int8 only (precision: {self.spec.precision})"
        from activity.features.onnx import OnnxBackbone, onnx_backbone

        if isinstance(self.backbone, OnnxBackbone):  # already switched (an encoder used again)
            return None
        size = self.spec.preprocess.crop_size
        try:
            model, _ = onnx_backbone(self.backbone, self.onnx_path(root), size)
            if self.int8:
                from activity.features.quantize import int8_backbone

                model, _ = int8_backbone(model, self.spec.prepare, size)
        except Exception as e:  # missing package, exporter, quantiser or runtime errors: stay on torch
            return f"onnxruntime unavailable ({describe(e)})"
        self.backbone = model  # type: ignore[assignment]
        return None

    def onnxruntime_applies(self) -> bool:
        """ONNX Runtime could run this backbone here: a CPU, float32 or int8, onnxruntime installed."""
        if self.device.type != "cpu" or self.dtype is not None:
            return False
        import importlib.util

        return importlib.util.find_spec("onnxruntime") is not None

    def onnx_path(self, root: str | Path) -> Path:
        """Where the backbone's float32 export is cached under ``root``: ``root/onnx/<key>.onnx``
        (:func:`~activity.features.onnx.model_key`; the weights are hashed once per encoder). Call it
        before :meth:`use_onnxruntime` switches the backbone (as that does)."""
        from activity.features.onnx import OnnxBackbone, model_key

        if self._onnx_file is None:
            self._onnx_file = (self.backbone.path.name if isinstance(self.backbone, OnnxBackbone) else
                               f"{model_key(self.backbone, self.spec.backbone, self.spec.preprocess.crop_size)}.onnx")
        return Path(root) / "onnx" / self._onnx_file

    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """Features ``(T, D)`` float32 of decoded uint8 RGB frames ``(T, H, W, 3)``."""
        return self(self.spec.crop(frames))

