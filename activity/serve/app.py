"""``activity serve``: a trained model behind a local web page and a JSON API (Starlette, run by uvicorn).

The model is loaded once. Every piece of model work (a prediction, a timeline) runs on a worker thread,
at most ``max_concurrent`` at a time, with at most ``max_queue`` more waiting; a request beyond that is
answered 503 at once rather than held. Uploads are copied into a fresh temporary folder under
``upload_root`` and removed when answered; no path from a request reaches the file system (the
evaluation viewer's videos are addressed by their row in the report).

Endpoints (JSON; errors are ``{"error": "..."}`` with a 4xx status, never a traceback):

* ``GET /api/health``: ``{"status": "ok", "busy", "waiting"}``.
* ``GET /api/model``: the model's card (classes, backbone, streams, frames per clip, training metrics).
* ``POST /api/predict`` (multipart field ``video``; query ``top_k``): ``{"top_k": [{"label", "probability"}], ...}``.
* ``POST /api/timeline`` (multipart ``video``; query ``window``, ``stride``, ``top_k``): the timeline
  (``windows`` with per-window probabilities, ``segments``), as ``activity predict --timeline --json``.
* ``POST /api/jobs`` (multipart ``video``; query ``kind=analyze|predict|timeline`` and their parameters):
  the same work in the background: ``{"id"}``; ``GET /api/jobs/{id}``: ``{"state", "message", "result"}``
  (what the page polls to show "encoding 256 of 960 frames").
* With ``reports``: ``GET /api/reports`` (metrics, per-class table, confusion matrix),
  ``GET /api/reports/clips?true=A&predicted=B`` (the clips of one cell), ``GET /api/reports/videos/{row}``.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from activity import workflows
from activity.serve.reports import EvaluationReport

if TYPE_CHECKING:
    from activity.workflows import ActionRecognizer

STATIC = Path(__file__).parent / "static"
#: Finished background jobs kept for their results to be fetched.
JOBS_KEPT = 64
#: Limits of the request parameters: (smallest, largest).
LIMITS = {"top_k": (1, 1000), "window": (0.1, 600.0), "stride": (0.05, 600.0)}


@dataclass
class Job:
    """A piece of model work run in the background for the page: its state and what it says."""

    id: str
    kind: str
    state: str = "queued"  # queued, running, done, error
    message: str = "waiting for the model"
    result: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    history: list[str] = field(default_factory=list)  # every message, in order (the page sees the latest)

    def say(self, message: str) -> None:
        self.message = message
        self.history.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state, "message": self.message,
                "result": self.result, "error": self.error}


class Queue:
    """At most ``max_concurrent`` pieces of model work on worker threads, ``max_queue`` more waiting."""

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent, self.max_queue = max_concurrent, max_queue
        self.busy = 0  # running or waiting
        self._slots: asyncio.Semaphore | None = None  # made on the server's event loop

    @property
    def waiting(self) -> int:
        return max(0, self.busy - self.max_concurrent)

    def check(self) -> None:
        """Raise a 503 where the queue is full (before an upload is read: a busy server does not take it in)."""
        if self.busy >= self.max_concurrent + self.max_queue:
            raise HTTPException(503, f"the server is busy ({self.max_concurrent} running, {self.waiting} waiting; "
                                f"--max-concurrent {self.max_concurrent}, --max-queue {self.max_queue}): try again shortly")

    def admit(self) -> None:
        """Count one more piece of work in, or raise a 503 where the queue has filled meanwhile."""
        self.check()
        self.busy += 1

    async def run(self, fn: Callable[..., Any], *args: Any, on_start: Callable[[], None] | None = None) -> Any:
        """Run ``fn(*args)`` on a worker thread once a slot is free (after :meth:`admit`)."""
        from starlette.concurrency import run_in_threadpool

        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent)
        try:
            async with self._slots:
                if on_start is not None:
                    on_start()
                return await run_in_threadpool(fn, *args)
        finally:
            self.busy -= 1


def model_card(model: ActionRecognizer, source: str) -> dict[str, Any]:
    """What ``GET /api/model`` says: the classes, how features are made, and the metrics training recorded."""
    spec, ckpt = model.spec, model.checkpoint
    return {"checkpoint": source, "classes": list(model.classes), "backbone": spec.backbone,
            "streams": list(ckpt.config.features.streams),
            "frames_per_clip": spec.num_frames, "image_size": spec.preprocess.crop_size,
            "temporal_model": ckpt.config.model.temporal, "metrics": ckpt.metrics, "version": ckpt.version}


def _number(request: Request, name: str, default: float, kind: type = float) -> Any:
    """Query parameter ``name`` as ``kind`` within :data:`LIMITS`, or ``default``; a 400 naming it otherwise."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    low, high = LIMITS[name]
    try:
        value = kind(text)
    except ValueError:
        raise HTTPException(400, f"{name} must be a number, got {text!r}") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name} must be between {low:g} and {high:g}, got {text}")
    return value


class Server:
    """The app's state: the model, the queue, the background jobs and where uploads go."""

    def __init__(self, model: ActionRecognizer, source: str, *, reports: EvaluationReport | None, max_concurrent: int,
                 max_queue: int, max_upload_mb: float, upload_root: Path | None) -> None:
        self.model, self.source, self.reports = model, source, reports
        self.queue = Queue(max_concurrent, max_queue)
        self.max_upload, self.max_upload_mb = int(max_upload_mb * 2**20), max_upload_mb
        self.upload_root = upload_root
        self.jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------ uploads

    async def receive(self, request: Request) -> tuple[Path, str]:
        """The request's ``video`` field copied into a fresh temporary folder: ``(file, name as uploaded)``.

        Raises:
            HTTPException: 411 without a length, 413 over the limit, 400 without the field or with an empty file.
        """
        length = request.headers.get("content-length")
        if length is None:
            raise HTTPException(411, "send the upload with a Content-Length")
        if not length.isdigit() or int(length) > self.max_upload:
            raise HTTPException(413, f"the upload is larger than the server's limit of {self.max_upload_mb:g} MB "
                                "(--max-upload-mb)")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HTTPException(400, "send the video as multipart/form-data in a field named 'video'")
        try:
            form = await request.form(max_files=1, max_fields=8)
        except Exception as e:  # a malformed body: the parser's own message, in one line
            raise HTTPException(400, f"cannot read the upload ({workflows.first_line(e) or type(e).__name__})") from None
        try:
            upload = form.get("video")
            if upload is None or isinstance(upload, str):
                raise HTTPException(400, "no file in a field named 'video'")
            name = Path(upload.filename or "upload").name
            suffix = Path(name).suffix.lower()
            folder = Path(tempfile.mkdtemp(prefix="activity-upload-", dir=self.upload_root))
            path = folder / ("upload" + (suffix if suffix in workflows.VIDEO_EXTENSIONS else ".bin"))
            try:
                with open(path, "wb") as out:
                    await asyncio.to_thread(shutil.copyfileobj, upload.file, out, 2**20)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        finally:
            await form.close()
        if path.stat().st_size == 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(400, f"{name}: the uploaded file is empty")
        return path, name

    # ------------------------------------------------------------ model work (on a worker thread)

    def predict(self, path: Path, name: str, top_k: int, _report: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Top-k of one uploaded video; an unreadable one is a 422."""
        if _report is not None:
            _report("decoding and encoding the sampled frames")
        r = workflows.predict(self.model, [path], workflows.ExtractOptions(progress=False), top_k=top_k)
        if r.skipped:
            raise HTTPException(422, f"{name}: {next(iter(r.skipped.values()))}")
        p = r.predictions[0].as_dict()
        return {"video": name, "top_k": p["top_k"]}

    def timeline(self, path: Path, name: str, window: float, stride: float, top_k: int,
                 _report: Callable[[str], None] | None = None) -> dict[str, Any]:
        """The timeline of one uploaded video, with per-window probabilities; an unreadable one is a 422."""
        def progress(_: Path, done: int, total: int) -> None:
            if _report is not None:
                _report(f"encoding {done} of {total} frames")

        if _report is not None:
            _report("decoding")
        r = workflows.timelines(self.model, [path], workflows.ExtractOptions(progress=False), window=window, stride=stride,
                                top_k=top_k, on_progress=progress)
        if r.skipped:
            raise HTTPException(422, f"{name}: {next(iter(r.skipped.values()))}")
        tl = r.timelines[0].as_dict()
        tl["path"] = name  # never the server's temporary path
        return tl

    def analyze(self, path: Path, name: str, window: float, stride: float, top_k: int,
                _report: Callable[[str], None] | None = None) -> dict[str, Any]:
        """What the page shows: the video's top-k and, when it is longer than one window, its timeline (a clip of
        one window is decoded once, for its top-k)."""
        out = self.predict(path, name, top_k, _report)
        tl = self.timeline(path, name, window, stride, top_k, _report) if workflows.video_seconds(path) > window else None
        out["timeline"] = tl if tl is not None and len(tl["windows"]) > 1 else None
        return out

    # ------------------------------------------------------------ background jobs (the page)

    def start_job(self, kind: str, work: Callable[..., dict[str, Any]], path: Path, *args: Any) -> Job:
        self.queue.admit()
        job = Job(f"{next(self._ids)}", kind)
        self.jobs[job.id] = job
        for old in sorted((j for j in self.jobs.values() if j.state in ("done", "error")), key=lambda j: j.created)[:-JOBS_KEPT]:
            del self.jobs[old.id]

        def started() -> None:
            job.state = "running"
            job.say("starting")

        async def run() -> None:
            try:
                job.result = await self.queue.run(work, path, *args, job.say, on_start=started)
                job.state, job.message = "done", "done"
            except HTTPException as e:
                job.state, job.error, job.message = "error", e.detail, e.detail
            except Exception as e:  # reported to the page, and the server keeps serving
                job.state, job.error = "error", workflows.describe(e)
                job.message = job.error
            finally:
                shutil.rmtree(path.parent, ignore_errors=True)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job


def create_app(model: str | Path | ActionRecognizer, *, reports: str | Path | None = None, max_concurrent: int = 1,
               max_queue: int = 4, max_upload_mb: float = 500.0, upload_root: str | Path | None = None,
               options: Any = None) -> Starlette:
    """The ASGI app serving ``model`` (a checkpoint, a run folder or a loaded recognizer).

    Args:
        model: what to serve; loaded here, once.
        reports: a folder written by ``activity evaluate``: adds the evaluation viewer.
        max_concurrent: pieces of model work at once.
        max_queue: further pieces waiting; beyond that, 503.
        max_upload_mb: largest upload (413 above it).
        upload_root: where uploads' temporary folders go (None: the system's temporary folder).
        options: :class:`~activity.features.extract.ExtractOptions` for loading the model.
    """
    if max_concurrent < 1 or max_queue < 0 or max_upload_mb <= 0:
        raise workflows.ActivityError("--max-concurrent must be at least 1, --max-queue at least 0 and --max-upload-mb positive")
    source = "" if not isinstance(model, (str, Path)) else str(model)
    if isinstance(model, (str, Path)):
        model = workflows.load_model(model, options or workflows.ExtractOptions(progress=False, cache_dir=False))
    report = EvaluationReport.read(reports) if reports is not None else None
    server = Server(model, source, reports=report, max_concurrent=max_concurrent, max_queue=max_queue,
                    max_upload_mb=max_upload_mb, upload_root=None if upload_root is None else Path(upload_root))
    return _routes(server)


class Handlers:
    """The endpoints, one method each, over one :class:`Server`."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def health(self, request: Request) -> Response:
        queue = self.server.queue
        return JSONResponse({"status": "ok", "busy": queue.busy, "waiting": queue.waiting})

    async def card(self, request: Request) -> Response:
        return JSONResponse(model_card(self.server.model, self.server.source) | {"reports": self.server.reports is not None})

    @staticmethod
    def params(request: Request, kind: str) -> tuple:
        """The work's parameters from the query, checked before the upload is read."""
        top_k = _number(request, "top_k", 5, int)
        if kind == "predict":
            return (top_k,)
        return _number(request, "window", 2.0), _number(request, "stride", 1.0), top_k

    async def answer(self, request: Request, kind: str) -> Response:
        args = self.params(request, kind)
        self.server.queue.check()
        path, name = await self.server.receive(request)
        try:
            self.server.queue.admit()
            result = await self.server.queue.run(getattr(self.server, kind), path, name, *args)
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
        return JSONResponse(result)

    async def predict(self, request: Request) -> Response:
        return await self.answer(request, "predict")

    async def timeline(self, request: Request) -> Response:
        return await self.answer(request, "timeline")

    async def start_job(self, request: Request) -> Response:
        kind = request.query_params.get("kind", "analyze")
        if kind not in ("analyze", "predict", "timeline"):
            raise HTTPException(400, f"kind must be analyze, predict or timeline, got {kind!r}")
        args = self.params(request, kind)
        self.server.queue.check()
        path, name = await self.server.receive(request)
        try:
            job = self.server.start_job(kind, getattr(self.server, kind), path, name, *args)
        except BaseException:
            shutil.rmtree(path.parent, ignore_errors=True)
            raise
        return JSONResponse({"id": job.id}, status_code=202)

    async def job_state(self, request: Request) -> Response:
        job = self.server.jobs.get(request.path_params["id"])
        if job is None:
            raise HTTPException(404, f"no job {request.path_params['id']!r}")
        return JSONResponse(job.as_dict())

    def _reports(self) -> EvaluationReport:
        if self.server.reports is None:
            raise HTTPException(404, "no evaluation reports: start the server with --reports DIR")
        return self.server.reports

    async def reports(self, request: Request) -> Response:
        return JSONResponse(self._reports().summary())

    async def clips(self, request: Request) -> Response:
        q = request.query_params
        return JSONResponse({"clips": self._reports().clips(q.get("true"), q.get("predicted"))})

    async def video(self, request: Request) -> Response:
        try:
            return FileResponse(self._reports().video(request.path_params["row"]))
        except LookupError as e:
            raise HTTPException(404, str(e)) from None

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / ("reports.html" if request.url.path == "/reports" else "index.html"))


async def _http_error(request: Request, e: Exception) -> Response:
    """``{"error": message}`` with the status: the server's own message, or for a route or method Starlette
    itself found missing (its detail is the bare status phrase) one that names the path."""
    status, detail = getattr(e, "status_code", 500), str(getattr(e, "detail", e))
    routing = {404: f"no such page: {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    if status in routing and detail == HTTPStatus(status).phrase:
        detail = routing[status]
    return JSONResponse({"error": detail}, status_code=status)


async def _any_error(request: Request, e: Exception) -> Response:
    return JSONResponse({"error": f"internal error ({workflows.describe(e)})"}, status_code=500)


def _routes(server: Server) -> Starlette:
    h = Handlers(server)
    routes = [
        Route("/", h.page), Route("/reports", h.page),
        Route("/api/health", h.health), Route("/api/model", h.card),
        Route("/api/predict", h.predict, methods=["POST"]), Route("/api/timeline", h.timeline, methods=["POST"]),
        Route("/api/jobs", h.start_job, methods=["POST"]), Route("/api/jobs/{id}", h.job_state),
        Route("/api/reports", h.reports), Route("/api/reports/clips", h.clips),
        Route("/api/reports/videos/{row:int}", h.video),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _any_error})
    app.state.server = server
    return app
