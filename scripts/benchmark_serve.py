#!/usr/bin/env python3
"""Load on ``activity serve``: latency, errors and the server's memory over rounds of requests, localhost only.

    python scripts/benchmark_serve.py [--model RUN] [--clip VIDEO] [--predictions 100] [--concurrency 8]
        [--timelines 4] [--minutes 2] [--rounds 2] [--json-file FILE]

Starts ``activity serve MODEL`` (``--max-concurrent 1``, a queue as deep as ``--concurrency``) on a free local
port and, each round, sends ``--predictions`` predictions of ``--clip``, ``--concurrency`` at a time, then
``--timelines`` timelines of a generated ``--minutes``-minute video one after the other. Then a deliberate
overload: ``2 * --concurrency + 4`` predictions at once, which a full queue answers with 503 at once. Prints
p50/p95 latency, errors (none but the deliberate 503s), and the server's resident memory after the warm-up
and after each round, with its peak (flat from round to round: no growth per request).

Without ``--model`` a model is trained first on generated clips (the default backbone, 16 frames);
``--clip`` defaults to a VioPeru clip where ``../shared/data`` is present, else a generated 4 s clip.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from activity.evaluation.reports import format_table
from activity.io import write_json


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory(pid: int) -> tuple[float, float]:
    """``(resident, peak resident)`` MB of process ``pid`` (Linux: /proc/PID/status)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _model(work: Path) -> Path:
    """A model trained on generated clips (the default backbone and features, 16 frames, a few epochs)."""
    from activity.data.synthetic import make_order_dataset

    data = make_order_dataset(work / "clips", clips_per_class=8, num_frames=24, size=(160, 120))
    run = work / "run"
    subprocess.run([sys.executable, "-m", "activity", "train", "--data", str(data), "--out", str(run), "--cache",
                    str(work / "cache"), "--quiet", "train.epochs=5", "model.ensemble=1"], check=True)
    return run


def _clip(work: Path) -> Path:
    shared = Path(os.environ.get("ACTIVITY_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    real = sorted((shared / "vioperu" / "Fight").glob("*.mp4")) if shared.is_dir() else []
    if real:
        return real[0]
    from activity.data.synthetic import order_clip, write_video

    return write_video(work / "clip.mp4", order_clip("growing", num_frames=48, size=(320, 240), seed=0), 12.0)


def _long_video(work: Path, minutes: float) -> Path:
    out = work / "long.mp4"
    subprocess.run([sys.executable, str(Path(__file__).parent / "make_long_video.py"), "--out", str(out), "--minutes",
                    str(minutes)], check=True, stdout=subprocess.DEVNULL)
    return out


class Client:
    """Requests to the server, each timed: ``(seconds, status)``."""

    def __init__(self, base: str) -> None:
        import httpx

        self.base = base
        self.http = httpx.Client(timeout=3600)

    def post(self, endpoint: str, video: Path, **params: object) -> tuple[float, int]:
        t0 = time.perf_counter()
        with open(video, "rb") as f:
            r = self.http.post(f"{self.base}{endpoint}", params=params, files={"video": (video.name, f, "video/mp4")})
        return time.perf_counter() - t0, r.status_code

    def wait_ready(self, proc: subprocess.Popen, seconds: float = 300) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with code {proc.returncode}")
            try:
                if self.http.get(f"{self.base}/api/health").status_code == 200:
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise SystemExit("the server did not answer /api/health")


def _burst(client: Client, video: Path, n: int, at_once: int) -> list[tuple[float, int]]:
    with ThreadPoolExecutor(at_once) as pool:
        return list(pool.map(lambda _: client.post("/api/predict", video, top_k=5), range(n)))


def _stats(results: list[tuple[float, int]], ok: int = 200) -> dict[str, float | int]:
    good = [t for t, s in results if s == ok]
    return {"requests": len(results), "ok": len(good), "errors": sum(s not in (ok, 503) for _, s in results),
            "busy_503": sum(s == 503 for _, s in results),
            "p50_s": float(np.percentile(good, 50)) if good else float("nan"),
            "p95_s": float(np.percentile(good, 95)) if good else float("nan")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="a run folder or checkpoint (default: one trained on generated clips)")
    p.add_argument("--clip", type=Path, default=None, help="the video to predict")
    p.add_argument("--predictions", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--timelines", type=int, default=4)
    p.add_argument("--minutes", type=float, default=2.0, help="length of the timelines' generated video")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json-file", type=Path, default=None, metavar="FILE")
    args = p.parse_args(argv)
    command = shlex.join(["python", "scripts/benchmark_serve.py", *(sys.argv[1:] if argv is None else argv)])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or _model(work)
        clip, long_video = args.clip or _clip(work), _long_video(work, args.minutes)
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "activity", "serve", str(model), "--port", str(port), "--quiet",
                                 "--max-concurrent", "1", "--max-queue", str(args.concurrency)])
        try:
            out = _run(Client(f"http://127.0.0.1:{port}"), proc, clip, long_video, args)
        finally:
            proc.terminate()
            proc.wait(30)
    rows = [[name, str(s["requests"]), f"{s['p50_s']:.2f}", f"{s['p95_s']:.2f}", str(s["errors"]), str(s["busy_503"])]
            for name, s in out["latency"].items()]
    print(f"$ {command}")
    print(f"clip: {clip.name}; timelines: a {args.minutes:g}-minute generated video; server: --max-concurrent 1 "
          f"--max-queue {args.concurrency}; {os.cpu_count()} cores")
    print(format_table(rows, ["requests", "n", "p50 s", "p95 s", "errors", "503 (busy)"]))
    print(format_table([[k, f"{v[0]:.0f}", f"{v[1]:.0f}"] for k, v in out["memory_mb"].items()],
                       ["server memory", "resident MB", "peak MB"]))
    if args.json_file:
        write_json(args.json_file, {"command": command, **out})
    errors = sum(s["errors"] for s in out["latency"].values())
    return 1 if errors else 0


def _run(client: Client, proc: subprocess.Popen, clip: Path, long_video: Path, args: argparse.Namespace) -> dict:
    client.wait_ready(proc)
    client.post("/api/predict", clip)  # warm-up: the first prediction builds the backbone
    client.post("/api/timeline", long_video)  # and the first timeline exports it for ONNX Runtime
    latency: dict[str, dict] = {}
    mem = {"after the warm-up": memory(proc.pid)}
    for r in range(1, args.rounds + 1):
        latency[f"round {r}: predict, {args.concurrency} at a time"] = _stats(_burst(client, clip, args.predictions, args.concurrency))
        latency[f"round {r}: timeline, one at a time"] = _stats([client.post("/api/timeline", long_video) for _ in range(args.timelines)])
        mem[f"after round {r}"] = memory(proc.pid)
    over = 2 * args.concurrency + 4
    burst = _burst(client, clip, over, over)
    latency[f"overload: {over} predictions at once"] = _stats(burst)
    busy = [t for t, s in burst if s == 503]
    latency[f"overload: {over} predictions at once"]["p50_503_s"] = float(np.percentile(busy, 50)) if busy else float("nan")
    return {"latency": latency, "memory_mb": mem}


if __name__ == "__main__":
    sys.exit(main())
