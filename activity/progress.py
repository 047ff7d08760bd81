"""Progress bars that keep talking: on a terminal, and in a log file too.

Every long phase of a command (extracting, training, cross-validating,
timelines, checks) shows its progress through :func:`progress_bar`:

* stderr a terminal: a tqdm bar, redrawn at least every :data:`TTY_REFRESH`
  seconds, so its elapsed time moves even while one step (a model's fit, a
  video's first batch) takes long;
* stderr not a terminal (a log file, ``nohup``, CI): a plain line when the bar
  starts, then one every :data:`PLAIN_INTERVAL` seconds whether or not a step
  finished, and a last one when it closes, as pip and tqdm-based trainers do.
  (tqdm alone prints nothing there, so a ``make demo`` log sat for minutes
  between lines.)

Use a bar as a context manager (or close it in a ``finally``): its heartbeat
thread ends when the bar closes.
"""

from __future__ import annotations

import sys
import threading
from typing import IO, Any, Iterator

from tqdm import tqdm

PLAIN_INTERVAL = 5.0
"""Seconds between plain progress lines when stderr is not a terminal."""
TTY_REFRESH = 1.0
"""Seconds between redraws of a terminal's bar when nothing else redraws it."""

# tqdm's desc ends in ": " once set_description has run; the first one is given so too.
_PLAIN_FORMAT = "{desc}{percentage:.0f}% {n_fmt}/{total_fmt} {unit} [{elapsed} elapsed, {remaining} left, {rate_fmt}{postfix}]"
_PLAIN_FORMAT_SCALED = _PLAIN_FORMAT.replace("{n_fmt}/{total_fmt}", "{n:.1f}/{total:.1f}")  # steps shown as seconds, ...
_PLAIN_FORMAT_NO_TOTAL = "{desc}{n_fmt} {unit} [{elapsed} elapsed, {rate_fmt}{postfix}]"


class _Heartbeat(tqdm):
    """A tqdm bar redrawn by a thread of its own every ``interval`` seconds without a redraw, until closed."""

    def __init__(self, *args: Any, interval: float, **kwargs: Any) -> None:
        self._stop = threading.Event()
        super().__init__(*args, **kwargs)
        if not self.disable:
            threading.Thread(target=self._beat, args=(interval,), name=f"progress {self.desc}", daemon=True).start()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._lock:
                if self._stop.is_set() or self.disable:  # closed meanwhile: no line after the last one
                    return
                if self._time() - self._last_drawn() >= interval:
                    self.refresh(nolock=True)

    def _last_drawn(self) -> float:
        return self.last_print_t

    def close(self) -> None:
        self._stop.set()
        super().close()


class _PlainBar(_Heartbeat):
    """Whole lines (no carriage returns, no bar), for a stderr that is not a terminal. Lines come from the
    heartbeat alone (``mininterval`` is infinite), so a step never adds a line right after a beat's; the
    rate shown is then the average since the start, as a log wants it."""

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing its line: nothing to clear in a log (False: nor a carriage return after it)
            return False
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        self._drawn = self._time()
        return True

    def _last_drawn(self) -> float:
        return getattr(self, "_drawn", self.start_t)

    def __iter__(self) -> Iterator[Any]:
        # tqdm's own loop keeps the count in a local until it prints, which here it never does.
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)  # shown with the next line, not a line of its own

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        super().set_postfix_str(s, refresh=False)

    def close(self) -> None:
        if not self.disable:
            self._stop.set()
            with self._lock:
                self._ema_dt = lambda: None  # the closing line gives the overall rate
                self.display()
        super().close()  # with leave=False it writes no further line


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(*, desc: str, total: float | None = None, unit: str = "it", enabled: bool = True,
                 file: IO[str] | None = None, interval: float | None = None, **kwargs: Any) -> tqdm:
    """A progress bar on ``file`` (default: stderr, as it is at the call), or a silent one when not ``enabled``.

    Args:
        desc: the phase's name (``extract``, ``train appearance 1/3``, ``cv: fold 2/5, lstm``).
        total: steps in all (None: unknown).
        unit: what a step is (``video``, ``epoch``).
        enabled: False gives a bar that prints nothing (``--quiet``).
        file: where it writes.
        interval: seconds between heartbeat redraws (default :data:`TTY_REFRESH` on a terminal,
            :data:`PLAIN_INTERVAL` elsewhere).
        kwargs: more of tqdm's arguments (``iterable``, ``initial``, ``unit_scale``, ``bar_format``, ...).

    Returns:
        A tqdm bar: ``update``, ``set_description``, ``set_postfix`` and ``close`` as usual; a context manager.
    """
    if not enabled:
        return tqdm(total=total, desc=desc, unit=unit, disable=True, **kwargs)
    out = sys.stderr if file is None else file
    if _is_terminal(out):
        return _Heartbeat(total=total, desc=desc, unit=unit, file=out, dynamic_ncols=True,
                          interval=TTY_REFRESH if interval is None else interval, **kwargs)
    kwargs.pop("bar_format", None)  # a terminal's bar; a line in a log reads the same for every phase
    fmt = (_PLAIN_FORMAT_SCALED if isinstance(kwargs.get("unit_scale"), float) else _PLAIN_FORMAT) if total else _PLAIN_FORMAT_NO_TOTAL
    return _PlainBar(total=total, desc=f"{desc}: ", unit=unit, file=out, leave=False, mininterval=float("inf"),
                     bar_format=fmt, interval=PLAIN_INTERVAL if interval is None else interval, **kwargs)
