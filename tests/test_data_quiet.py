"""Silencing descriptor 2: what C/C++ libraries print inside the block is dropped, nothing else is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import activity


def test_quiet_native_stderr_silences_descriptor_2_and_restores_it(tmp_path):
    """What C/C++ libraries write to descriptor 2 inside the block is dropped (nested, and from several
    threads at once); what Python wrote before it, and everything after it, comes out."""
    script = (
        "import os, sys, threading\n"
        "from activity.data.quiet import quiet_native_stderr\n"
        "sys.stderr.write('before\\n')\n"  # buffered in Python: flushed before the redirect, not lost
        "def noisy():\n"
        "    with quiet_native_stderr():\n"
        "        os.write(2, b'library noise\\n')\n"
        "with quiet_native_stderr():\n"
        "    with quiet_native_stderr():\n"
        "        os.write(2, b'nested noise\\n')\n"
        "    threads = [threading.Thread(target=noisy) for _ in range(4)]\n"
        "    [t.start() for t in threads]; [t.join() for t in threads]\n"
        "    os.write(2, b'outer noise\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(activity.__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["before", "after"]


def test_quiet_logger_keeps_errors_only_for_the_block_and_restores_the_level(caplog):
    import logging

    from activity.data.quiet import quiet_logger

    log = logging.getLogger("activity.test.noisy")
    log.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger="activity.test.noisy"), quiet_logger("activity.test.noisy"):
        log.warning("not news")
        log.error("news")
    assert [r.getMessage() for r in caplog.records] == ["news"]
    assert log.level == logging.INFO
