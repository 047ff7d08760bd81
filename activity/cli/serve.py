"""``activity serve``: start the server of :mod:`activity.serve.app` with uvicorn and say where it is."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

#: Hosts that only this machine can reach.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def run_server(model: Path, *, host: str, port: int, reports: Path | None, max_concurrent: int, max_queue: int,
               max_upload_mb: float, device: str = "cpu", quiet: bool = False) -> int:
    """Load ``model`` once, then serve the page and the API on ``host:port`` until interrupted (exit code 0)."""
    try:
        import uvicorn

        from activity.serve.app import create_app
    except ImportError as e:
        from activity.workflows import ActivityError

        raise ActivityError(f"activity serve needs the serve extra ({e.name} is missing): pip install 'activity[serve]'") from None
    from activity.workflows import ExtractOptions

    app = create_app(model, reports=reports, max_concurrent=max_concurrent, max_queue=max_queue, max_upload_mb=max_upload_mb,
                     options=ExtractOptions(progress=False, cache_dir=False, device=device))
    if host not in LOCAL_HOSTS:
        print(f"warning: serving on {host}, reachable from other machines; the server has no authentication: anyone who "
              "can reach it can upload videos and read the evaluation report", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {model} at http://{shown}:{port}/" + (f" (evaluation: http://{shown}:{port}/reports)" if reports else "")
          + "; Ctrl-C stops it", file=sys.stderr, flush=True)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=not quiet)
    return 0
