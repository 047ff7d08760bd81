"""The registries: names listed without importing what implements them, where their providers allow it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TORCH_FREE = {"EXPLAIN_METHODS": ["attention", "occlusion"], "EXPORT_FORMATS": ["onnx", "torchscript"],
              "RESULT_FORMATS": ["csv", "json"], "TIMELINE_FORMATS": ["csv", "json"]}
"""Registries the command line can take its choices from at start-up: listing them must not import torch."""


def test_inference_registries_list_their_names_without_importing_torch():
    code = ("import sys; from activity import registry; "
            f"print([getattr(registry, n).names() for n in {sorted(TORCH_FREE)!r}]); print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # this checkout's package
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.splitlines()
    assert out == [str([TORCH_FREE[n] for n in sorted(TORCH_FREE)]), "False"]
