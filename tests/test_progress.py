"""Progress where nobody watches a terminal: plain lines, at the start, every few seconds, and at the end."""

from __future__ import annotations

import io
import time

import numpy as np
import torch

from activity.progress import progress_bar


def lines(out: io.StringIO) -> list[str]:
    text = out.getvalue()
    assert "\r" not in text  # whole lines, for a log file
    return text.splitlines()


def test_a_log_gets_a_line_at_the_start_while_a_step_runs_and_at_the_end():
    out = io.StringIO()
    bar = progress_bar(desc="extract", total=4, unit="video", file=out, interval=0.05)
    assert lines(out) == ["extract: 0% 0/4 video [00:00 elapsed, ? left, ?video/s]"]  # named before any step ends
    time.sleep(0.3)  # one long step: the heartbeat speaks meanwhile
    assert len(lines(out)) >= 3 and all(line.startswith("extract: 0% 0/4 video") for line in lines(out))
    bar.update(4)
    bar.set_postfix(loss="0.123")  # no line of its own: it goes with the next one
    n = len(lines(out))
    bar.close()
    assert len(lines(out)) == n + 1 and lines(out)[-1].startswith("extract: 100% 4/4 video [")
    assert lines(out)[-1].endswith(", loss=0.123]")
    time.sleep(0.2)
    assert len(lines(out)) == n + 1  # closed: the heartbeat has stopped


def test_a_new_description_names_the_next_phase_at_once_and_unknown_totals_count():
    out = io.StringIO()
    bar = progress_bar(desc="cv", total=2, unit="model", file=out, interval=60)
    bar.set_description("cv: fold 1/2, lstm")
    assert lines(out)[-1].startswith("cv: fold 1/2, lstm: 0% 0/2 model")
    bar.close()
    out = io.StringIO()
    bar = progress_bar(desc="overlay", unit="frame", file=out, interval=60)
    bar.update(7)
    bar.close()
    assert lines(out)[-1].startswith("overlay: 7 frame [")


def test_quiet_prints_nothing_and_iterates():
    out = io.StringIO()
    assert list(progress_bar(iterable=[1, 2], desc="check", file=out, enabled=False)) == [1, 2]
    assert out.getvalue() == ""


def test_cross_validation_names_each_model_before_it_is_fitted(capsys):
    from activity.evaluation.cv import cross_validate
    from activity.temporal.baselines import LogisticBaseline

    y = np.arange(12) % 2
    cross_validate({"mean_lr": LogisticBaseline("pooled_lr")}, torch.randn(12, 4, 8), y, ["a", "b"], None, folds=2,
                   progress=True)
    err = capsys.readouterr().err.splitlines()
    first = err.index(next(line for line in err if line.startswith("cv: fold 1/2, mean_lr: 0% 0/2 model")))
    assert any(line.startswith("cv: fold 2/2, mean_lr: 50% 1/2 model") for line in err[first:])
    assert err[-1].startswith("cv: fold 2/2, mean_lr: 100% 2/2 model")


def test_steps_do_not_add_lines_between_heartbeats():
    out = io.StringIO()
    bar = progress_bar(desc="extract", total=1000, unit="video", file=out, interval=0.2)
    for _ in range(1000):  # a thousand quick steps within one interval: no line each
        bar.update(1)
    assert len(lines(out)) <= 2
    time.sleep(0.5)
    beats = len(lines(out))
    assert 2 <= beats <= 5 and lines(out)[-1].startswith("extract: 100% 1000/1000 video")
    bar.close()
