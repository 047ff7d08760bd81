"""A corpus of bad and odd video inputs, mixed into a small folder-per-class collection.

Import from a test module with::

    from corpus import build_corpus, BAD, ODD

:func:`build_corpus` writes good generated clips (``make_order_dataset``) and,
into the same class folders, files that must never crash a batch command:

* ``BAD``: not a readable video at all (each must be *skipped* with a reason);
* ``DAMAGED``: damaged or not really a video, yet partly decodable by FFmpeg (a
  good clip with its middle overwritten decodes up to the damage; a PNG is an
  image FFmpeg reads as one frame): *processed* over what decodes, or
  *skipped* with a reason, but always exactly one of the two;
* ``ODD``: unusual but legitimate videos (each should be *processed*);
* ``GOOD``: the plain generated clips plus a good clip under a path with a
  non-ASCII character and spaces (each must be *processed*);
* ``dir_named_mp4``: a directory called ``x.mp4`` (not a file: ignored when a
  folder is scanned, reported when named explicitly).

Items that need something this machine lacks (ffmpeg's ``lavfi`` input for the
audio-only file) are left out of the returned dict rather than failing.
Everything is generated: no network, a few seconds in all.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from activity.data.synthetic import make_order_dataset, order_clip, write_video

CLASSES = ("growing", "shrinking")
CLIPS_PER_CLASS = 3
SIZE = (64, 48)
NUM_FRAMES = 12

# name -> (class folder, file name)
_PLACES = {
    "zero_byte": ("growing", "zero_byte.mp4"),
    "truncated": ("growing", "truncated.mp4"),
    "random_bytes": ("growing", "random_bytes.mp4"),
    "text_as_avi": ("growing", "notes.avi"),
    "png_as_avi": ("shrinking", "picture.avi"),
    "no_frames": ("shrinking", "no_frames.mp4"),
    "zeroed_frames": ("shrinking", "zeroed_frames.mp4"),
    "audio_only": ("shrinking", "audio_only.mp4"),
    "one_frame": ("growing", "one_frame.mp4"),
    "large_frame": ("shrinking", "large_4000x3000.mp4"),
    "corrupt_middle": ("growing", "corrupt_middle.mp4"),
    "rotated": ("shrinking", "rotated.mp4"),
    "vfr": ("growing", "vfr.mp4"),
    "unicode_path": ("shrinking", "clip é 1.mp4"),
    "dir_named_mp4": ("growing", "x.mp4"),
}

#: Not a video: always skipped, with a reason.
BAD = frozenset({"zero_byte", "truncated", "random_bytes", "text_as_avi", "no_frames", "zeroed_frames", "audio_only"})
#: Damaged, or an image with a video's name: processed over what decodes, or skipped with a reason.
DAMAGED = frozenset({"corrupt_middle", "png_as_avi"})
#: Unusual but decodable: should be processed (a clear skip is tolerated only where a decoder truly cannot read it).
ODD = frozenset({"one_frame", "large_frame", "rotated", "vfr"})
#: A good clip whose path has a non-ASCII character and spaces: must be processed.
UNICODE = "unicode_path"
#: A directory named like a video.
DIRECTORY = "dir_named_mp4"


def ffmpeg_exe() -> str | None:
    """The static ffmpeg of imageio-ffmpeg, else one on PATH, else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return shutil.which("ffmpeg")


def _ffmpeg(*args: str) -> bool:
    exe = ffmpeg_exe()
    if exe is None:
        return False
    proc = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True)
    return proc.returncode == 0


def _lavfi_available() -> bool:
    """Whether this ffmpeg has the ``lavfi`` input (the ``sine`` audio source needs it)."""
    exe = ffmpeg_exe()
    if exe is None:
        return False
    proc = subprocess.run([exe, "-hide_banner", "-formats"], capture_output=True, text=True)
    return any("lavfi" in line.split()[:3] for line in proc.stdout.splitlines())


def _png_bytes(h: int = 48, w: int = 64) -> bytes:
    import cv2

    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (0, 128, 255)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _mp4_boxes(data: bytes) -> dict[str, tuple[int, int]]:
    """Top-level MP4 boxes: name -> (payload start, end)."""
    boxes, pos = {}, 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        name = data[pos + 4 : pos + 8].decode("latin-1")
        header = 8
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
            header = 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            break
        boxes.setdefault(name, (pos + header, pos + size))
        pos += size
    return boxes


def build_corpus(root: str | Path) -> dict[str, Path]:
    """Write the collection into ``root`` and return ``name -> path`` for every item.

    Good clips are named ``good/<class>/<i>`` in the returned dict; corpus items
    by their kind (see ``_PLACES``). Items this machine cannot make are left out.
    """
    root = Path(root)
    make_order_dataset(root, classes=CLASSES, clips_per_class=CLIPS_PER_CLASS, num_frames=NUM_FRAMES, size=SIZE)
    items: dict[str, Path] = {}
    for label in CLASSES:
        for i in range(CLIPS_PER_CLASS):
            items[f"good/{label}/{i}"] = root / label / f"{label}_{i:03d}.mp4"

    def place(name: str) -> Path:
        label, fname = _PLACES[name]
        p = root / label / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    good = items["good/growing/0"].read_bytes()
    rng = np.random.default_rng(1234)

    p = place("zero_byte")
    p.write_bytes(b"")
    items["zero_byte"] = p

    p = place("truncated")
    p.write_bytes(good[: len(good) // 3])
    items["truncated"] = p

    p = place("random_bytes")
    p.write_bytes(rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    items["random_bytes"] = p

    p = place("text_as_avi")
    p.write_text("This is a plain text file, not a video.\nIt only has a video-like name.\n" * 20, encoding="utf-8")
    items["text_as_avi"] = p

    p = place("png_as_avi")
    p.write_bytes(_png_bytes())
    items["png_as_avi"] = p

    # An OpenCV writer opened and released without a frame: a container with no video frames.
    import cv2

    p = place("no_frames")
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, SIZE)
    w.release()
    if not p.exists():  # some builds write nothing at all: an empty container then
        p.write_bytes(b"")
    items["no_frames"] = p

    # A valid container whose frame data (the whole mdat payload) is zeroed.
    p = place("zeroed_frames")
    boxes = _mp4_boxes(good)
    data = bytearray(good)
    if "mdat" in boxes:
        a, b = boxes["mdat"]
        data[a:b] = bytes(b - a)
    items["zeroed_frames"] = p
    p.write_bytes(bytes(data))

    # A good clip with the middle of the file overwritten by random bytes (the moov index stays intact).
    p = place("corrupt_middle")
    data = bytearray(good)
    a, b = boxes.get("mdat", (0, len(good)))
    mid, n = (a + b) // 2, max(64, (b - a) // 3)
    data[mid - n // 2 : mid + n // 2] = rng.integers(0, 256, n // 2 * 2, dtype=np.uint8).tobytes()
    p.write_bytes(bytes(data))
    items["corrupt_middle"] = p

    p = place("one_frame")
    write_video(p, order_clip("growing", num_frames=1, size=SIZE, seed=7))
    items["one_frame"] = p

    p = place("large_frame")
    big = np.zeros((2, 3000, 4000, 3), np.uint8)
    big[0, :, :2000] = 200
    big[1, :1500] = 90
    write_video(p, big)
    items["large_frame"] = p

    p = place("unicode_path")
    write_video(p, order_clip("shrinking", num_frames=NUM_FRAMES, size=SIZE, seed=11))
    items["unicode_path"] = p

    p = place("dir_named_mp4")
    p.mkdir(parents=True, exist_ok=True)
    items["dir_named_mp4"] = p

    # ffmpeg-made items: a display-matrix rotation, variable frame rate, audio only.
    tmp = root / ".corpus-tmp"
    tmp.mkdir(exist_ok=True)
    src = write_video(tmp / "src.mp4", order_clip("shrinking", num_frames=NUM_FRAMES, size=SIZE, seed=5))

    p = place("rotated")
    if _ffmpeg("-display_rotation:v:0", "90", "-i", str(src), "-c", "copy", str(p)) or \
            _ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(p)):
        items["rotated"] = p

    p = place("vfr")
    src_vfr = write_video(tmp / "src_vfr.mp4", order_clip("growing", num_frames=NUM_FRAMES, size=SIZE, seed=9))
    # Quadratic timestamps (0, 1, 4, 9, ... twelfths of a second): every frame has its own duration.
    if _ffmpeg("-i", str(src_vfr), "-vf", "setpts=N*N/12/TB", "-fps_mode", "vfr", "-c:v", "mpeg4", "-q:v", "5", str(p)):
        items["vfr"] = p

    p = place("audio_only")
    if _lavfi_available() and _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(p)):
        items["audio_only"] = p
    elif p.exists():
        p.unlink()

    shutil.rmtree(tmp)
    return items


def video_files(items: dict[str, Path]) -> dict[str, Path]:
    """The items that are files (everything but the directory named like a video)."""
    return {k: v for k, v in items.items() if k != DIRECTORY}


def must_process(items: dict[str, Path]) -> dict[str, Path]:
    """The good clips (plain and under a unicode path)."""
    return {k: v for k, v in items.items() if k.startswith("good/") or k == UNICODE}


def must_skip(items: dict[str, Path]) -> dict[str, Path]:
    return {k: v for k, v in items.items() if k in BAD}


def odd(items: dict[str, Path]) -> dict[str, Path]:
    return {k: v for k, v in items.items() if k in ODD}
