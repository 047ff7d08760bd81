"""Progress where nobody watches a terminal: plain lines, at the start, every few seconds, and at the end.

The heartbeat's intervals here are long against the steps around them (0.5 s and up), and the counts
asserted are bounds an extra beat cannot break, so a loaded machine does not fail them.
"""

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
    bar = progress_bar(desc="extract", total=4, unit="video", file=out, interval=0.5)
    assert lines(out)[0] == "extract: 0% 0/4 video [00:00 elapsed, ? left, ?video/s]"  # named before any step ends
    time.sleep(1.3)  # one long step: the heartbeat speaks meanwhile
    assert len(lines(out)) >= 2 and all(line.startswith("extract: 0% 0/4 video") for line in lines(out))
    bar.update(4)
    bar.set_postfix(loss="0.123")  # no line of its own: it goes with the next one
    assert "loss" not in out.getvalue()
    bar.close()
    assert lines(out)[-1].startswith("extract: 100% 4/4 video [") and lines(out)[-1].endswith(", loss=0.123]")
    n = len(lines(out))
    time.sleep(1.2)
    assert len(lines(out)) == n  # closed: the heartbeat has stopped


def test_steps_do_not_add_lines_between_heartbeats():
    out = io.StringIO()
    with progress_bar(desc="extract", total=1000, unit="video", file=out, interval=60) as bar:
        for _ in range(1000):  # a thousand quick steps: no line each
            bar.update(1)
        assert len(lines(out)) == 1
    assert len(lines(out)) == 2 and lines(out)[-1].startswith("extract: 100% 1000/1000 video")


def test_an_iterated_bar_counts_as_it_goes():
    out = io.StringIO()
    seen = []
    for item in progress_bar(iterable=range(3), total=3, desc="check", unit="video", file=out, interval=0.4):
        seen.append(item)
        time.sleep(0.6)  # each step longer than a beat: a beat falls after the first step at the latest
    assert seen == [0, 1, 2]
    counts = [line.split()[2] for line in lines(out)]  # "check: 33% 1/3 video [...]"
    assert counts[0] == "0/3" and counts[-1] == "3/3" and {"1/3", "2/3"} & set(counts[1:-1])


def test_a_new_description_names_the_next_phase_at_once_and_unknown_totals_count():
    out = io.StringIO()
    with progress_bar(desc="cv", total=2, unit="model", file=out, interval=60) as bar:
        bar.set_description("cv: fold 1/2, lstm")
        assert lines(out)[-1].startswith("cv: fold 1/2, lstm: 0% 0/2 model")
    out = io.StringIO()
    with progress_bar(desc="overlay", unit="frame", file=out, interval=60) as bar:
        bar.update(7)
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
