"""``activity serve``'s API through Starlette's test client: every endpoint, every bad input, the queue, temp files."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")  # the test client

from starlette.testclient import TestClient  # noqa: E402

from activity.data.synthetic import order_clip, write_video  # noqa: E402
from activity.serve.app import create_app  # noqa: E402

FPS = 12.0


@pytest.fixture(scope="module")
def served(trained_run, tmp_path_factory, cli):
    """A trained run, its evaluation report, a 6 s video of three actions, and the app over them."""
    run = trained_run()
    root = tmp_path_factory.mktemp("serve")
    result = cli(["evaluate", run.ckpt, "--data", run.data, "--out", root / "eval", "--cache", run.cache, "--quiet"])
    assert result.code == 0, result.err
    parts = [order_clip(c, num_frames=24, size=(64, 48), seed=i) for i, c in enumerate(["growing", "moving_right", "growing"])]
    long = write_video(root / "long.webm", np.concatenate(parts), FPS)
    return {"run": run, "root": root, "eval": root / "eval", "long": long,
            "clip": sorted((run.data / "moving_right").iterdir())[0]}


@pytest.fixture
def client(served, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    app = create_app(served["run"].ckpt, reports=served["eval"], upload_root=uploads)
    with TestClient(app) as c:
        c.uploads = uploads
        yield c
    assert list(uploads.iterdir()) == []  # every upload removed once answered, whatever the answer


def post(client, url, path=None, *, content=None, name=None, field="video"):
    data = Path(path).read_bytes() if content is None else content
    return client.post(url, files={field: (name or (Path(path).name if path else "clip.mp4"), data, "video/mp4")})


def test_health_and_model_card(client, served):
    assert client.get("/api/health").json() == {"status": "ok", "busy": 0, "waiting": 0}
    card = client.get("/api/model").json()
    from activity.temporal.checkpoint import load_checkpoint

    ckpt = load_checkpoint(served["run"].ckpt)
    assert card["classes"] == ckpt.classes and card["backbone"] == ckpt.config.features.backbone
    assert card["streams"] == list(ckpt.config.features.streams) and card["frames_per_clip"] == 8
    assert card["metrics"]["val_accuracy"] == ckpt.metrics["val_accuracy"] and card["reports"] is True


def test_predict_answers_what_the_command_line_answers(client, served, cli):
    r = post(client, "/api/predict?top_k=2", served["clip"])
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["video"] == served["clip"].name and len(got["top_k"]) == 2
    run = served["run"]
    want = json.loads(cli(["predict", run.ckpt, served["clip"], "--top-k", "2", "--json", "--cache", run.cache, "--quiet"]).out)
    want = want["predictions"][0]["top_k"]
    assert [t["label"] for t in got["top_k"]] == [t["label"] for t in want]
    assert [t["probability"] for t in got["top_k"]] == pytest.approx([t["probability"] for t in want], abs=1e-4)


def test_timeline_answers_what_the_command_line_answers(client, served, cli):
    r = post(client, "/api/timeline?window=1&stride=0.5&top_k=3", served["long"])
    assert r.status_code == 200, r.text
    tl = r.json()
    assert tl["path"] == "long.webm" and tl["duration"] == pytest.approx(6.0, abs=0.1)
    assert len(tl["windows"]) > 4 and all(len(w["labels"]) == len(w["probabilities"]) == 3 for w in tl["windows"])
    run = served["run"]
    want = json.loads(cli(["predict", run.ckpt, served["long"], "--timeline", "--window", "1", "--stride", "0.5", "--top-k", "3",
                           "--json", "--cache", run.cache, "--quiet"]).out)["timelines"][0]
    assert [s["label"] for s in tl["segments"]] == [s["label"] for s in want["segments"]]
    assert [w["start"] for w in tl["windows"]] == [w["start"] for w in want["windows"]]


@pytest.mark.parametrize("url, kwargs, status, message", [
    ("/api/predict", {"content": b"this is not a video", "name": "notes.mp4"}, 422, "notes.mp4: not a readable video"),
    ("/api/predict", {"content": b"", "name": "empty.mp4"}, 400, "empty.mp4: the uploaded file is empty"),
    ("/api/predict", {"content": b"abc", "field": "file"}, 400, "no file in a field named 'video'"),
    ("/api/predict?top_k=0", {"content": b"abc"}, 400, "top_k must be between 1 and 1000, got 0"),
    ("/api/predict?top_k=two", {"content": b"abc"}, 400, "top_k must be a number, got 'two'"),
    ("/api/timeline?window=-1", {"content": b"abc"}, 400, "window must be between 0.1 and 600, got -1"),
    ("/api/timeline?stride=1e9", {"content": b"abc"}, 400, "stride must be between 0.05 and 600, got 1e9"),
    ("/api/jobs?kind=explain", {"content": b"abc"}, 400, "kind must be analyze, predict or timeline, got 'explain'"),
])
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_keeps_serving(client, served, url, kwargs, status, message):
    r = post(client, url, **kwargs)
    assert r.status_code == status and r.json() == {"error": r.json()["error"]} and r.json()["error"].startswith(message), r.text
    assert post(client, "/api/predict?top_k=1", served["clip"]).status_code == 200


def test_a_truncated_upload_is_a_422_where_nothing_decodes_and_the_part_that_does_otherwise(client, served):
    clip = served["clip"].read_bytes()  # MPEG-4 from OpenCV: its index is at the end
    r = post(client, "/api/predict", content=clip[: len(clip) // 2], name="cut.mp4")
    assert r.status_code == 422 and r.json()["error"].startswith("cut.mp4: "), r.text
    data = served["long"].read_bytes()  # WebM: the first third still decodes, and is what the timeline covers
    r = post(client, "/api/timeline?window=1", content=data[: len(data) // 3], name="cut.webm")
    assert r.status_code == 200 and 0.5 < r.json()["duration"] < 4.0, r.text


def test_other_bodies_and_methods(client):
    r = client.post("/api/predict", content=b"raw bytes", headers={"content-type": "application/octet-stream"})
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]
    r = client.post("/api/predict", content=iter([b"--x\r\n"]), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 411 and "Content-Length" in r.json()["error"]  # chunked: no length to check
    assert client.get("/api/predict").json() == {"error": "GET is not allowed on /api/predict"}
    r = client.get("/api/nothing")
    assert r.status_code == 404 and r.json() == {"error": "no such page: /api/nothing"}


def test_an_upload_over_the_limit_is_a_413(served, tmp_path):
    app = create_app(served["run"].ckpt, max_upload_mb=0.001, upload_root=tmp_path)
    with TestClient(app) as c:
        r = post(c, "/api/predict", served["long"])
    assert r.status_code == 413 and "limit of 0.001 MB (--max-upload-mb)" in r.json()["error"]
    assert list(tmp_path.iterdir()) == []


def test_a_full_queue_answers_503_at_once_and_work_resumes_after(served, tmp_path):
    app = create_app(served["run"].ckpt, max_concurrent=1, max_queue=0, upload_root=tmp_path)
    server = app.state.server
    release, started = threading.Event(), threading.Event()
    real = server.predict

    def held(*args):
        started.set()
        release.wait(30)
        return real(*args)

    server.predict = held
    with TestClient(app) as c:
        job = post(c, "/api/jobs?kind=predict", served["clip"]).json()["id"]
        assert started.wait(30)
        t0 = time.perf_counter()
        r = post(c, "/api/predict", served["clip"])
        assert r.status_code == 503 and "busy" in r.json()["error"] and time.perf_counter() - t0 < 5
        assert c.get("/api/health").json()["busy"] == 1
        receive, read = server.receive, []
        server.receive = lambda request: read.append(request) or receive(request)
        for url in ("/api/predict", "/api/jobs?kind=timeline"):
            assert post(c, url, served["clip"]).status_code == 503
        assert read == []  # refused before the upload was read
        server.receive = receive
        release.set()
        state = _wait(c, job)
        assert state["state"] == "done" and state["result"]["top_k"]
        assert post(c, "/api/predict", served["clip"]).status_code == 200
    assert list(tmp_path.iterdir()) == []


def _wait(client, job: str, seconds: float = 120) -> dict:
    messages = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = client.get(f"/api/jobs/{job}").json()
        messages.append(state["message"])
        if state["state"] in ("done", "error"):
            state["messages"] = messages
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job} still {state['state']} after {seconds} s: {messages[-3:]}")


def test_a_job_says_what_it_is_doing_and_gives_the_top_k_and_the_timeline(client, served):
    r = post(client, "/api/jobs?kind=analyze&window=1&stride=0.5", served["long"])
    assert r.status_code == 202
    state = _wait(client, r.json()["id"])
    assert state["state"] == "done", state
    assert state["result"]["top_k"] and state["result"]["timeline"]["segments"]
    said = client.app.state.server.jobs[r.json()["id"]].history  # what the page could have shown, in order
    assert said[:3] == ["starting", "decoding and encoding the sampled frames", "decoding"], said
    assert said[3:] == ["encoding 48 of 48 frames"] and state["message"] == "done", said  # 6 s, a frame every 1/8 s
    server, timelines = client.app.state.server, []
    real = server.timeline
    server.timeline = lambda *args: timelines.append(args) or real(*args)
    short = _wait(client, post(client, "/api/jobs?kind=analyze", served["clip"]).json()["id"])
    assert short["state"] == "done" and short["result"]["timeline"] is None  # one window: no timeline to draw,
    assert timelines == []  # and none computed: a clip of one window is decoded once, for its top-k
    bad = _wait(client, post(client, "/api/jobs", content=b"junk", name="junk.mp4").json()["id"])
    assert bad["state"] == "error" and bad["error"].startswith("junk.mp4: not a readable video")
    r = client.get("/api/jobs/999")  # the server's own 404 keeps its message
    assert r.status_code == 404 and r.json() == {"error": "no job '999'"}


def test_the_evaluation_viewer_reads_the_report_and_serves_only_its_videos(client, served):
    import csv

    report = client.get("/api/reports").json()
    rows = list(csv.reader(open(served["eval"] / "confusion_matrix.csv")))
    assert report["classes"] == rows[0][1:] and report["confusion"] == [[int(x) for x in r[1:]] for r in rows[1:]]
    assert report["metrics"]["top1"] == json.loads((served["eval"] / "metrics.json").read_text())["top1"]
    cell = client.get("/api/reports/clips", params={"true": "growing", "predicted": "growing"}).json()["clips"]
    assert len(cell) == report["confusion"][0][0] and all(c["true"] == c["predicted"] == "growing" for c in cell)
    predictions = list(csv.DictReader(open(served["eval"] / "predictions.csv")))
    row = cell[0]["row"]
    r = client.get(f"/api/reports/videos/{row}")
    assert r.status_code == 200 and r.content == Path(predictions[row]["path"]).read_bytes()
    assert client.get(f"/api/reports/videos/{len(predictions)}").status_code == 404
    for attempt in ("/api/reports/videos/..%2F..%2Fetc%2Fpasswd", "/api/reports/videos/-1", "/static/..%2F..%2Fapp.py"):
        r = client.get(attempt)
        assert r.status_code == 404 and "error" in r.json(), attempt


def test_without_reports_the_viewer_says_how_to_get_one(served, tmp_path):
    with TestClient(create_app(served["run"].ckpt, upload_root=tmp_path)) as c:
        r = c.get("/api/reports")
    assert r.status_code == 404 and r.json()["error"] == "no evaluation reports: start the server with --reports DIR"


def test_the_pages_work_offline(client):
    for url in ("/", "/reports", "/static/app.js", "/static/reports.js", "/static/common.js", "/static/style.css"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert "http://" not in r.text and "https://" not in r.text, f"{url} loads something from the network"


def test_the_command_warns_off_localhost_and_names_a_bad_report_folder(served, tmp_path, monkeypatch, cli, capsys):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    from activity.cli import main

    assert main(["serve", str(served["run"].ckpt), "--host", "0.0.0.0", "--port", "8123"]) == 0
    assert calls == [{"host": "0.0.0.0", "port": 8123, "log_level": "warning", "access_log": True}]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: serving on 0.0.0.0") and "no authentication" in err[0]
    assert err[1] == f"serving {served['run'].ckpt} at http://0.0.0.0:8123/; Ctrl-C stops it"
    assert main(["serve", str(served["run"].ckpt)]) == 0  # this machine only: no warning
    assert not capsys.readouterr().err.startswith("warning")
    r = cli(["serve", served["run"].ckpt, "--reports", tmp_path])
    assert r.code == 1 and r.err.strip().splitlines() == [
        f"error: {tmp_path}: not an evaluation report folder (no metrics.json, per_class.csv, confusion_matrix.csv, "
        "predictions.csv; write one with activity evaluate)"]
    r = cli(["serve", served["run"].ckpt, "--port", "70000"])
    assert r.code == 2 and "must be a port number from 1 to 65535" in r.err
