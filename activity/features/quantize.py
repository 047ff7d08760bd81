"""The int8 backbone (``features.precision: int8``): a statically quantised copy of the ONNX export, run by
ONNX Runtime's integer kernels on the CPU (AVX-512 VNNI / AVX-VNNI where the CPU has them).

* **Format**: ONNX Runtime's QOperator graph (``QLinearConv`` and friends), weights int8 per output
  channel, activations uint8 per tensor. The QDQ form of the same quantisation (:data:`FORMAT`) gave the same
  features at 1.44x float32's forward rate instead of 2.11x (``scripts/benchmark_int8.py``, one thread).
* **Where it stays float32**: the input and the first :data:`FLOAT_CONVS` convolutions (EfficientNet-Lite's
  stem and first block). Quantising them too lowered the agreement with float32 on real clips' frames
  (``scripts/benchmark_int8.py``: mean cosine per source 0.967 to 0.993 instead of 0.988 to 0.995, least 0.904
  instead of 0.952) for no measurable speed (2.10x against 2.11x float32 on one thread): their activations
  are where a dark or flat frame's few grey levels are.
* **Calibration**: activation ranges from :func:`calibration_frames`, a fixed set of frames the package
  makes itself (no network, nothing shipped): coloured noise with the 1/f spectrum of natural images, and
  frames of the generated clips of :mod:`activity.data.synthetic`, each through the spec's own frame
  adjustments and preprocessing.
* **Cached** beside the float32 export, ``<root>/onnx/<key>.int8-<recipe>.onnx``, where ``<recipe>``
  hashes the settings above (a new recipe makes a new file). Int8 features are not float32 features: the
  precision is part of the feature cache key (:meth:`~activity.features.spec.FeatureSpec.key`).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from activity.data.quiet import quiet_logger
from activity.io import atomic_path

if TYPE_CHECKING:
    from activity.features.onnx import OnnxBackbone

#: ONNX Runtime's quantised graph form: ``QOperator`` (``QLinearConv`` and friends) or ``QDQ``.
FORMAT = "QOperator"
#: Convolutions, counted from the input, that stay float32 (with every node before the last of them).
FLOAT_CONVS = 3
#: Frames the activation ranges are calibrated on (half coloured noise, half generated clips).
CALIBRATION_FRAMES = 64
#: Least cosine similarity to float32 a freshly quantised model must reach on its check frames.
CHECK_MIN_COSINE = 0.95
#: Changes whenever what :func:`quantize` writes changes (the cached file's name carries it).
RECIPE = hashlib.sha1(f"{FORMAT.lower()} u8/s8 per-channel minmax float{FLOAT_CONVS} "
                      f"calib{CALIBRATION_FRAMES} pink+synthetic v1".encode()).hexdigest()[:8]


def int8_path(float_path: Path) -> Path:
    """Where the int8 copy of the float32 export ``float_path`` is cached: beside it, named by :data:`RECIPE`."""
    float_path = Path(float_path)
    return float_path.with_name(f"{float_path.stem}.int8-{RECIPE}.onnx")


def pink_noise(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` uint8 RGB images ``(n, size, size, 3)`` of coloured noise with a 1/f amplitude spectrum (the
    spectrum of natural images), a random mean brightness and contrast each; the colour channels share most
    of their structure, as in photographs."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0

    def field() -> np.ndarray:
        spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f
        return np.fft.irfft2(spectrum, s=(size, size))

    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        shared = field()
        x = np.stack([0.7 * shared + 0.3 * field() for _ in range(3)], -1)
        x = (x - x.mean()) / (x.std() + 1e-9)
        out[i] = np.clip(rng.uniform(0.3, 0.7) * 255 + x * rng.uniform(30, 70), 0, 255).astype(np.uint8)
    return out


def calibration_frames(prepare, size: int, n: int = CALIBRATION_FRAMES) -> np.ndarray:  # noqa: ANN001
    """The fixed calibration set: ``n`` float32 backbone inputs ``(n, 3, S, S)``.

    Args:
        prepare: decoded uint8 RGB frames ``(T, H, W, 3)`` -> backbone input ``(T, 3, S, S)``
            (:meth:`~activity.features.spec.FeatureSpec.prepare`: the spec's adjustments and preprocessing).
        size: side of the noise images (the backbone's crop size).
        n: frames; half coloured noise (:func:`pink_noise`), half frames of generated clips.
    """
    from activity.data.synthetic import order_clip

    clips = np.concatenate([order_clip(kind, num_frames=8, size=(320, 240), seed=i)
                            for i, kind in enumerate(("moving_right", "moving_left", "growing", "shrinking"))])
    picked = clips[np.linspace(0, len(clips) - 1, n - n // 2).astype(int)]
    parts = [np.asarray(prepare(pink_noise(n // 2, size)), np.float32), np.asarray(prepare(picked), np.float32)]
    return np.ascontiguousarray(np.concatenate(parts))


def quantize(float_path: Path, out_path: Path, frames: np.ndarray) -> None:
    """Write the int8 copy of the float32 export ``float_path`` to ``out_path`` (atomically), its activation
    ranges calibrated on ``frames`` (float32 ``(N, 3, S, S)``, :func:`calibration_frames`).

    Raises:
        ImportError: onnxruntime's quantisation tools are missing.
        Exception: whatever they raise on this model.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(frames, max(1, len(frames) // 8)))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {"frames": np.ascontiguousarray(batch)}

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # The tools log a warning per tensor they leave in float (the padding's shape arithmetic) on the root logger.
    with tempfile.TemporaryDirectory(prefix="activity-int8-") as work, quiet_logger():
        pre = Path(work) / "pre.onnx"
        quant_pre_process(str(float_path), str(pre))  # shape inference and graph fusions, as the tools advise
        keep = _leading_nodes(onnx.load(str(pre)), FLOAT_CONVS)
        with atomic_path(out_path) as tmp:
            quantize_static(str(pre), str(tmp), Reader(), quant_format=getattr(QuantFormat, FORMAT), per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep)


def int8_backbone(model: "OnnxBackbone", prepare, size: int) -> tuple["OnnxBackbone", bool]:  # noqa: ANN001
    """The int8 copy of the float32 ONNX backbone ``model``, quantised unless already cached beside it.

    A copy made here is checked against ``model`` on frames it was not calibrated on (every frame's features
    at least :data:`CHECK_MIN_COSINE` cosine-similar to float32's) and kept on disk only where it passes; a
    cached one is opened once (a damaged file is made again).

    Args:
        model: the float32 export (:func:`~activity.features.onnx.onnx_backbone`).
        prepare: decoded uint8 RGB frames -> backbone input, as for :func:`calibration_frames`.
        size: the backbone's crop size.

    Returns:
        ``(int8 model, made)``: ``made`` is False where the cached file was reused.

    Raises:
        ImportError: onnxruntime's quantisation tools are missing.
        Exception: whatever quantising raises, or ``ValueError`` where the copy disagrees with float32.
    """
    import torch

    from activity.features.onnx import OnnxBackbone, reuse_or_make

    out = OnnxBackbone(int8_path(model.path), model.feature_dim)

    def check() -> None:
        x = torch.from_numpy(np.asarray(prepare(pink_noise(4, size, seed=1)), np.float32))
        try:
            want, got = model(x), out(x)
        finally:
            model.drop_session()  # the float32 session: not needed once the int8 copy is in use
        cos = torch.nn.functional.cosine_similarity(want, got, dim=1)
        if got.shape != want.shape or float(cos.min()) < CHECK_MIN_COSINE:
            raise ValueError(f"the int8 backbone's features differ from float32's (cosine {float(cos.min()):.3f} "
                             f"< {CHECK_MIN_COSINE})")

    made = reuse_or_make(out, lambda: quantize(model.path, out.path, calibration_frames(prepare, size)), check)
    return out, made


def _leading_nodes(model, convs: int) -> list[str]:  # noqa: ANN001 - onnx.ModelProto
    """The names of the graph's nodes (in their topological order) up to and including its ``convs``-th Conv."""
    names, seen = [], 0
    for node in model.graph.node:
        if seen >= convs:
            break
        names.append(node.name)
        seen += node.op_type == "Conv"
    return names
