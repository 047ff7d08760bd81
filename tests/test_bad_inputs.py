"""Every batch command over a corpus of bad and odd inputs mixed with good clips.

The corpus (see ``corpus.py``) sits inside the class folders of a small
folder-per-class collection. For each command: nothing escapes, the exit code
follows the one rule (0 when anything was processed; 1 with ``--strict`` when
anything was skipped, or when nothing was processed), every unreadable file is
named on exactly one ``skipped PATH: reason`` line, every good file is
processed, and a skipped file never shifts a label or a row.

All commands run in-process on one shared feature cache and one trained
checkpoint, with a cheap configuration of the real backbone.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from corpus import (
    BAD,
    DIRECTORY,
    UNICODE,
    build_corpus,
    ffmpeg_exe,
    must_process,
    must_skip,
    odd,
    video_files,
)
from utils import SUMMARY, CliResult, make_video

FAST = ["features.image_size=64", "features.num_frames=8", "train.epochs=3"]
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*File \".*\", line \d+", re.M)
PY_EXCEPTION = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|has no attribute")


# ---------------------------------------------------------------- running the CLI


# ``cli`` (conftest.py): ``main(argv)`` in-process with fds 1 and 2 captured, as a shell redirect would.


def parse_skips(run: CliResult, known: list[Path]) -> dict[Path, list[str]]:
    """``path -> [reason, ...]`` from the ``skipped PATH: reason`` lines; every line must name a known path."""
    found: dict[Path, list[str]] = {}
    for line in run.skip_lines():
        # Exactly one known path must start the line (no input path here is a prefix of another followed by ": ").
        hits = [p for p in known if line.startswith(f"skipped {p}: ")]
        assert len(hits) == 1, f"skip line names no known input (or several): {line!r}\n{run.err}"
        p = hits[0]
        found.setdefault(p, []).append(line[len(f"skipped {p}: "):])
    return found


# ---------------------------------------------------------------- the workspace


class Workspace:
    """The corpus, a bad-only twin of it, one cache, one trained run, and memoised command runs."""

    def __init__(self, root: Path, cli: Callable[[list], CliResult]) -> None:
        self.root = root
        self.cli = cli
        self.data = root / "data"
        self.items = build_corpus(self.data)
        self.files = video_files(self.items)  # name -> path, every file the commands see
        self.good = must_process(self.items)
        self.bad = must_skip(self.items)
        self.odd = odd(self.items)
        self.cache = root / "cache"
        # Only bad files, in the same two class folders.
        self.badonly = root / "badonly"
        for name, p in self.bad.items():
            dst = self.badonly / p.parent.name / p.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dst)
        self.badonly_files = sorted(f for f in self.badonly.rglob("*") if f.is_file())
        self._runs: dict[str, CliResult] = {}
        self.run_dir = root / "run"
        self.train = self.run("train-False", COMMANDS["train"](self, strict=False))
        assert self.train.code == 0, self.train.err
        self.ckpt = self.run_dir / "model.pt"

    def run(self, key: str, argv: list) -> CliResult:
        if key not in self._runs:
            self._runs[key] = self.cli(argv)
        return self._runs[key]

    def label_of(self, path: Path) -> str:
        return path.relative_to(self.data).parts[0]

    def predict_order(self) -> list[Path]:
        """Every file of the corpus, bad and readable interleaved, in a fixed unsorted order."""
        bad = [p for k, p in self.files.items() if k in BAD]
        rest = [p for k, p in self.files.items() if k not in BAD]
        return [p for pair in itertools.zip_longest(rest, bad) for p in pair if p is not None][::-1]


def _common(ws: Workspace, strict: bool) -> list:
    return ["--cache", ws.cache, "--quiet", *(["--strict"] if strict else [])]


COMMANDS = {
    "extract": lambda ws, strict, data=None: ["extract", "--data", data or ws.data, *_common(ws, strict), *FAST[:2]],
    "train": lambda ws, strict, data=None: ["train", "--data", data or ws.data, "--out",
                                            ws.root / ("run" if data is None and not strict else f"run-{strict}-{data is None}"),
                                            *_common(ws, strict), *FAST],
    "evaluate": lambda ws, strict, data=None: ["evaluate", ws.ckpt, "--data", data or ws.data,
                                               "--out", ws.root / f"eval-{strict}-{data is None}", *_common(ws, strict)],
    "predict_files": lambda ws, strict, data=None: ["predict", ws.ckpt, *(ws.badonly_files if data else ws.predict_order()),
                                                    "--json", *_common(ws, strict)],
    "predict_folder": lambda ws, strict, data=None: ["predict", ws.ckpt, data or ws.data, "--json", *_common(ws, strict)],
    "timeline": lambda ws, strict, data=None: ["predict", ws.ckpt, data or ws.data, "--timeline", "--window", "0.5",
                                               "--stride", "0.25", "--json", *_common(ws, strict)],
    "cv": lambda ws, strict, data=None: ["cv", "--data", data or ws.data, "--folds", "2", "--temporal", "lstm",
                                         "--results-dir", ws.root / f"cv-{strict}-{data is None}", *_common(ws, strict), *FAST],
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, one_torch_thread, cli) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("bad-inputs"), cli)


def command_run(ws: Workspace, command: str, strict: bool = False) -> CliResult:
    return ws.run(f"{command}-{strict}", COMMANDS[command](ws, strict))


def processed_from_outputs(ws: Workspace, command: str, run: CliResult) -> tuple[int, list[Path] | None, set[Path]]:
    """``(count, paths in output order or None, skipped paths)`` as the command's own outputs tell them."""
    argv = COMMANDS[command](ws, False)
    if command == "extract":
        m = re.search(r"^(\d+) videos with features", run.out, re.M)
        assert m, run.out
        return int(m.group(1)), None, set()
    if command == "train":
        summary = json.loads((ws.run_dir / "train_summary.json").read_text())
        return summary["train_clips"] + summary["val_clips"], None, {Path(p) for p in summary["skipped"]}
    if command == "evaluate":
        out = Path(argv[argv.index("--out") + 1])
        rows = list(csv.DictReader(open(out / "predictions.csv", newline="", encoding="utf-8")))
        skipped = json.loads((out / "metrics.json").read_text())["skipped_files"]
        return len(rows), [Path(r["path"]) for r in rows], {Path(p) for p in skipped}
    if command == "timeline":
        result = json.loads(run.out)
        assert all(t["windows"] and t["segments"] for t in result["timelines"])
        return len(result["timelines"]), [Path(t["path"]) for t in result["timelines"]], {Path(p) for p in result["skipped"]}
    if command.startswith("predict"):
        result = json.loads(run.out)  # nothing but the JSON on stdout, even from the decoders' C libraries
        return len(result["predictions"]), [Path(p["path"]) for p in result["predictions"]], {Path(p) for p in result["skipped"]}
    if command == "cv":
        result = json.loads((Path(argv[argv.index("--results-dir") + 1]) / "cv.json").read_text())
        return result["clips"], None, {Path(p) for p in result["skipped"]}
    raise AssertionError(command)


# ---------------------------------------------------------------- 1. every command over the corpus


@pytest.mark.parametrize("command", list(COMMANDS))
def test_command_skips_each_bad_file_once_and_processes_every_good_one(ws, command):
    run = command_run(ws, command)
    assert run.code == 0, run.err
    assert not TRACEBACK.search(run.err), run.err
    assert not [l for l in run.err.splitlines() if l.startswith("error:")], run.err

    inputs = list(ws.files.values())
    skips = parse_skips(run, inputs)
    assert {p: len(r) for p, r in skips.items() if len(r) != 1} == {}, "a file reported more than once"
    for p, (reason,) in skips.items():
        assert reason.strip(), f"empty reason for {p}"
    skipped = set(skips)
    assert skipped >= set(ws.bad.values()), f"bad files not reported: {set(ws.bad.values()) - skipped}"
    assert not skipped & set(ws.good.values()), f"good files skipped: {({p: skips[p] for p in skipped & set(ws.good.values())})}"
    assert not skipped & set(ws.odd.values()), f"odd but decodable files skipped: {({p: skips[p] for p in skipped & set(ws.odd.values())})}"

    (summary,) = run.summaries()
    n_processed, n_skipped = int(summary.group(1)), int(summary.group(2))
    assert n_skipped == len(skipped)
    assert n_processed == len(inputs) - len(skipped)

    count, paths, skipped_in_output = processed_from_outputs(ws, command, run)
    assert count == n_processed
    if command != "extract":
        assert skipped_in_output == skipped
    if paths is not None:
        assert len(paths) == len(set(paths))
        assert set(paths) == set(inputs) - skipped
        assert set(paths) >= set(ws.good.values()) | set(ws.odd.values())


@pytest.mark.parametrize("command", list(COMMANDS))
def test_strict_run_exits_1_when_anything_was_skipped(ws, command):
    run = command_run(ws, command, strict=True)
    assert run.code == 1, run.err
    assert not TRACEBACK.search(run.err), run.err
    (summary,) = run.summaries()
    assert int(summary.group(1)) > 0 and int(summary.group(2)) >= len(ws.bad)
    assert set(parse_skips(run, list(ws.files.values()))) >= set(ws.bad.values())


@pytest.mark.parametrize("command", list(COMMANDS))
def test_only_bad_files_exit_nonzero_naming_each_file(ws, command):
    run = ws.run(f"{command}-badonly", COMMANDS[command](ws, False, data=ws.badonly))
    assert run.code != 0, run.err
    assert not TRACEBACK.search(run.err), run.err
    skips = parse_skips(run, ws.badonly_files)
    assert set(skips) == set(ws.badonly_files)
    assert all(len(r) == 1 and r[0].strip() for r in skips.values())
    errors = [l for l in run.err.splitlines() if l.startswith("error:")]
    summaries = run.summaries()
    # Either one clear error line (nothing readable) or the summary with nothing processed.
    assert (len(errors) == 1 and "no readable video" in errors[0]) or \
           (not errors and len(summaries) == 1 and summaries[0].group(1) == "0"), run.err


def test_every_command_agrees_on_what_is_skipped(ws):
    outcome = {c: set(parse_skips(command_run(ws, c), list(ws.files.values()))) for c in COMMANDS}
    # Each skips exactly the corpus's bad files (not merely the same files as the others).
    assert {c: sorted(p.name for p in s ^ set(ws.bad.values())) for c, s in outcome.items()} == {c: [] for c in COMMANDS}


# ---------------------------------------------------------------- 2. skipped files never shift labels or rows


def test_evaluate_rows_keep_their_own_labels(ws):
    run = command_run(ws, "evaluate")
    _, paths, skipped = processed_from_outputs(ws, "evaluate", run)
    argv = COMMANDS["evaluate"](ws, False)
    out = Path(argv[argv.index("--out") + 1])
    rows = list(csv.DictReader(open(out / "predictions.csv", newline="", encoding="utf-8")))
    assert rows and all(r["true_label"] == ws.label_of(Path(r["path"])) for r in rows), rows
    assert not {Path(r["path"]) for r in rows} & skipped
    # Per-class support counts only readable clips of that class.
    support = Counter(r["true_label"] for r in rows)
    expected = Counter(ws.label_of(p) for p in set(ws.files.values()) - skipped)
    assert support == expected


def test_predict_keeps_the_input_order_of_readable_files(ws):
    run = command_run(ws, "predict_files")
    _, paths, skipped = processed_from_outputs(ws, "predict_files", run)
    order = ws.predict_order()
    assert paths == [p for p in order if p not in skipped]
    assert not set(paths) & set(ws.bad.values())
    assert {Path(p) for p in paths} >= set(ws.good.values())


def test_predict_folder_lists_readable_files_in_sorted_order(ws):
    run = command_run(ws, "predict_folder")
    _, paths, skipped = processed_from_outputs(ws, "predict_folder", run)
    assert paths == sorted(set(ws.files.values()) - skipped)


def test_unicode_path_is_processed_and_printed_intact(ws):
    p = ws.items[UNICODE]
    assert "é" in p.name and " " in p.name
    _, paths, _ = processed_from_outputs(ws, "predict_files", command_run(ws, "predict_files"))
    assert p in paths
    run = ws.run("predict-table-unicode", ["predict", ws.ckpt, p, "--top-k", "1", "--cache", ws.cache, "--quiet"])
    assert run.code == 0 and str(p) in run.out, run.err


# ---------------------------------------------------------------- 3. explicit paths that are not video files


def test_predict_reports_a_missing_path(ws, cli):
    missing = ws.data / "growing" / "gone.mp4"
    good = ws.good["good/growing/0"]
    run = cli(["predict", ws.ckpt, missing, good, "--json", "--cache", ws.cache, "--quiet"])
    assert run.code == 0, run.err
    assert parse_skips(run, [missing, good]) == {missing: ["no such file"]}
    assert [p["path"] for p in json.loads(run.out)["predictions"]] == [str(good)]
    assert run.summaries()[0].group(0).startswith("1 processed, 1 skipped")


def test_predict_reports_a_directory_named_like_a_video(ws, cli):
    directory = ws.items[DIRECTORY]
    good = ws.good["good/growing/0"]
    run = cli(["predict", ws.ckpt, directory, good, "--json", "--cache", ws.cache, "--quiet"])
    assert run.code == 0, run.err
    skips = parse_skips(run, [directory, good])
    assert list(skips) == [directory] and skips[directory][0].strip(), run.err
    assert str(directory) in json.loads(run.out)["skipped"]


def test_directory_named_like_a_video_inside_a_class_folder_is_not_a_clip(ws):
    """Scanning a class folder lists files only: the directory is neither processed nor reported."""
    directory = ws.items[DIRECTORY]
    run = command_run(ws, "extract")
    assert not [l for l in run.skip_lines() if l.startswith(f"skipped {directory}:")]
    _, paths, _ = processed_from_outputs(ws, "evaluate", command_run(ws, "evaluate"))
    assert directory not in paths


# ---------------------------------------------------------------- 4. an unreadable file


def test_unreadable_file_is_skipped_with_permission_denied(ws, tmp_path, cli):
    data = tmp_path / "data"
    (data / "growing").mkdir(parents=True)
    good = shutil.copy2(ws.good["good/growing/1"], data / "growing" / "ok.mp4")
    locked = shutil.copy2(ws.good["good/growing/2"], data / "growing" / "locked.mp4")
    os.chmod(locked, 0)
    try:
        if os.geteuid() == 0 or os.access(locked, os.R_OK):
            pytest.skip("running as root (or on a filesystem without permissions): a chmod 000 file is still readable")
        run = cli(["extract", "--data", data, "--cache", ws.cache, "--quiet", *FAST[:2]])
        assert run.code == 0, run.err
        assert parse_skips(run, [Path(good), Path(locked)]) == {Path(locked): ["permission denied"]}
    finally:
        os.chmod(locked, 0o644)


# ---------------------------------------------------------------- reasons, and the corpus itself


def test_skip_reasons_name_the_problem_not_a_python_exception(ws):
    skips = parse_skips(command_run(ws, "extract"), list(ws.files.values()))
    leaked = {str(p): r for p, (r,) in skips.items() if PY_EXCEPTION.search(r)}
    assert leaked == {}


def test_corpus_is_what_it_claims(ws):
    """The odd files really are odd, so a pass above means something."""
    from activity.data.decoders import open_video

    with open_video(ws.items["one_frame"], "opencv") as r:
        assert r.frame_count == 1
    with open_video(ws.items["large_frame"], "opencv") as r:
        assert (r.width, r.height) == (4000, 3000) and r.frame_count == 2
    for name in BAD - {"zero_byte"}:
        if name in ws.items:
            assert ws.items[name].stat().st_size > 0, name
    assert ws.items["zero_byte"].stat().st_size == 0
    assert ws.items[DIRECTORY].is_dir()

    exe = ffmpeg_exe()
    if exe is None:
        pytest.skip("no ffmpeg")
    for name, needle in [("rotated", "rotation of"), ("audio_only", "Audio:")]:
        if name in ws.items:
            info = subprocess.run([exe, "-hide_banner", "-i", str(ws.items[name])], capture_output=True, text=True).stderr
            assert needle in info, info
    if "audio_only" in ws.items:
        assert "Video:" not in subprocess.run([exe, "-hide_banner", "-i", str(ws.items["audio_only"])],
                                              capture_output=True, text=True).stderr
    if "vfr" in ws.items:
        info = subprocess.run([exe, "-hide_banner", "-i", str(ws.items["vfr"]), "-vf", "showinfo", "-f", "null", "-"],
                              capture_output=True, text=True).stderr
        pts = [float(x) for x in re.findall(r"pts_time:([0-9.]+)", info)]
        gaps = {round(b - a, 3) for a, b in zip(pts, pts[1:])}
        assert len(pts) >= 2 and len(gaps) > 1, pts  # frame durations differ


def test_console_stderr_holds_only_skip_lines_and_the_summary(ws):
    """The real console command (fresh process, so no test state decides what OpenCV logs)."""
    proc = subprocess.run([sys.executable, "-m", "activity", "extract", "--data", str(ws.data), "--cache", str(ws.cache),
                           "--quiet", *FAST[:2]], capture_output=True, text=True, encoding="utf-8")
    assert proc.returncode == 0, proc.stderr
    assert not TRACEBACK.search(proc.stderr), proc.stderr
    other = [l for l in proc.stderr.splitlines() if not (l.startswith("skipped ") or SUMMARY.match(l))]
    assert other == []


def test_console_stderr_is_clean_for_truncated_mp4s(tmp_path):
    """A clip cut anywhere (some cuts leave a container OpenCV opens with no codec, where its own
    "[ERROR:0@...] ... Failed to initialize VideoCapture" lines used to come out) and random bytes named .mp4,
    with either decoder: each is one ``skipped`` line, and nothing else reaches stderr."""
    data = tmp_path / "data"
    good = [make_video(data / label / f"{label}_{i}.mp4", seed=i)[0] for label in ("a", "b") for i in range(2)]
    whole = good[0].read_bytes()
    bad = []
    for percent in (33, 50, 85, 90, 95):
        bad.append(data / "a" / f"truncated_{percent}.mp4")
        bad[-1].write_bytes(whole[: len(whole) * percent // 100])
    bad.append(data / "b" / "random_bytes.mp4")
    bad[-1].write_bytes(os.urandom(20_000))
    for decoder in ("auto", "decord"):
        proc = subprocess.run([sys.executable, "-m", "activity", "extract", "--data", str(data),
                               "--cache", str(tmp_path / f"cache-{decoder}"), "--quiet", *FAST[:2],
                               f"features.decoder={decoder}"], capture_output=True, text=True, encoding="utf-8")
        if decoder == "decord" and "decord is not installed" in proc.stderr:
            continue
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.splitlines()
        assert [l for l in lines if not (l.startswith("skipped ") or SUMMARY.match(l))] == [], proc.stderr
        assert len([l for l in lines if l.startswith("skipped ")]) >= 3, proc.stderr  # the early cuts and the random bytes


# ---------------------------------------------------------------- the real basketball clips


def test_real_basketball_clips_are_all_processed(shared_data, tmp_path, cli):
    data = shared_data / "basketball"
    if not data.is_dir():
        pytest.skip(f"{data} not found")
    n = sum(1 for f in data.rglob("*.mp4") if f.is_file())
    run = cli(["extract", "--data", data, "--cache", tmp_path / "cache", "--quiet",
               "features.image_size=64", "features.num_frames=4"])
    assert run.code == 0, run.err
    assert not run.skip_lines(), run.err
    assert not TRACEBACK.search(run.err), run.err
    (summary,) = run.summaries()
    assert (int(summary.group(1)), int(summary.group(2))) == (n, 0)
    assert n == 283
