"""Classify a video with a model exported by `activity export`: needs only onnxruntime, numpy and opencv.

    python scripts/run_exported.py model.onnx clip.mp4 [--top-k 3]

Reads model.onnx.json (the sidecar) for the classes, the frame sampling and the preprocessing. A model
trained with the motion stream has a second input, the optical-flow descriptors of each sampled frame;
this script computes them as the sidecar's "motion" entry says (as activity.features.motion does).
"""
import argparse
import json
import math
import sys

import cv2
import numpy as np
import onnxruntime as ort


def centre_indices(count, num_frames):
    """The frame at the centre of each of num_frames equal segments of count frames."""
    seg = count / num_frames
    return np.minimum(np.floor(np.arange(num_frames) * seg + seg / 2).astype(int), count - 1)


def count_frames(path):
    """(frames the video decodes to, its frame rate; 0 when unknown)."""
    cap = cv2.VideoCapture(path)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    if count == 0:
        sys.exit(f"cannot read {path}")
    return count, (fps if math.isfinite(fps) else 0.0)


def read_frames(path, indices):
    """RGB frames at the given indices (the last decodable frame for any beyond it)."""
    wanted = {int(i) for i in indices}
    cap, frames = cv2.VideoCapture(path), {}
    for i in range(max(wanted) + 1):
        if not cap.grab():
            break
        if i in wanted:
            frames[i] = cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
    cap.release()
    last = frames[max(frames)]
    return [frames.get(int(i), last) for i in indices]


def sample_frames(path, num_frames):
    """RGB frames at the centres of num_frames equal segments of the video."""
    count, _ = count_frames(path)
    return read_frames(path, centre_indices(count, num_frames))


def partner_gap(gap_seconds, fps):
    """Frames between a sampled frame and its flow partner: max(1, round(gap_seconds * fps)); 3 when fps is unknown."""
    return max(1, round(gap_seconds * fps)) if fps > 0 else 3


def flow_pairs(indices, count, gap):
    """(first, second) frame indices of each sampled frame's flow, always forward in time."""
    idx = np.asarray(indices, dtype=np.int64)
    fits = idx + gap < count
    return np.where(fits, idx, np.maximum(idx - gap, 0)), np.where(fits, idx + gap, idx)


def grey(img, size):
    """uint8 RGB (H, W, 3) -> grey uint8 with short side size (INTER_AREA)."""
    h, w = img.shape[:2]
    scale = size / min(h, w)
    dsize = (max(8, round(w * scale)), max(8, round(h * scale)))
    return cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), dsize, interpolation=cv2.INTER_AREA)


def flow_histograms(flow, mo):
    """One step's descriptor (float32) of a flow field (H, W, 2): direction histograms per cell, then magnitude shares."""
    grid, bins = mo["grid"], mo["bins"]
    edges = np.log1p(np.array(mo["magnitude_edges_px"], dtype=np.float64))
    flow = flow - np.median(flow.reshape(-1, 2), axis=0)  # the camera's own motion
    mag = np.hypot(flow[..., 0], flow[..., 1])
    direction = ((np.arctan2(flow[..., 1], flow[..., 0]) + np.pi) / (2 * np.pi) * bins).astype(np.int64) % bins
    h, w = mag.shape
    rows = np.minimum(np.arange(h) * grid // h, grid - 1)
    cols = np.minimum(np.arange(w) * grid // w, grid - 1)
    cell = rows[:, None] * grid + cols[None, :]
    sums = np.bincount((cell * bins + direction).ravel(), weights=mag.ravel(), minlength=grid * grid * bins)
    pixels = np.bincount(cell.ravel(), minlength=grid * grid).repeat(bins)
    shares = np.bincount(np.searchsorted(edges, np.log1p(mag).ravel()), minlength=len(edges) + 1) / mag.size
    return np.concatenate([sums / np.maximum(pixels, 1), shares]).astype(np.float32)


def motion_features(first, second, mo):
    """(T, dim) float32: DIS (ULTRAFAST) flow from each frame of first to its pair in second, summarised."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    return np.stack([flow_histograms(dis.calc(grey(a, mo["size"]), grey(b, mo["size"]), None), mo)
                     for a, b in zip(first, second)])


def motion_input(path, meta, count, fps, indices):
    """The second input (1, T, dim): flow descriptors of each sampled frame and its partner, enhanced first."""
    mo = meta["motion"]
    first, second = flow_pairs(indices, count, partner_gap(mo["gap_seconds"], fps))
    frames = read_frames(path, np.concatenate([first, second]))
    bright = {"enhance": mo["enhance"]} if mo.get("enhance_before_flow", True) else {}
    frames = [adjust(f, bright) for f in frames]  # brightness only: no frame_fit before the flow
    t = len(indices)
    return motion_features(frames[:t], frames[t:], mo)[None]


def resize_matrix(n_in, n_out, interpolation):
    """(n_out, n_in) anti-aliased resampling weights, as torchvision's resize(antialias=True) uses."""
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    d = np.abs((np.arange(n_in) + 0.5)[None, :] - (np.arange(n_out) + 0.5)[:, None] * scale) / stretch
    if interpolation == "bilinear":
        w = np.maximum(0.0, 1.0 - d)
    else:  # bicubic, a = -0.5
        a = -0.5
        w = np.where(d < 1, ((a + 2) * d - (a + 3)) * d * d + 1, np.where(d < 2, a * (((d - 5) * d + 8) * d - 4), 0.0))
    return w / w.sum(1, keepdims=True)


def adjust(img, pre):
    """The sidecar's enhance and frame_fit steps on one uint8 RGB frame (H, W, 3)."""
    m = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean() / 255.0
    if pre.get("enhance") == "gamma" or (pre.get("enhance") == "dark" and m < 0.2):
        m = min(max(m, 1 / 255), 254 / 255)
        g = min(max(np.log(0.5) / np.log(m), 0.2), 5.0)
        img = cv2.LUT(img, np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8))
    elif pre.get("enhance") == "clahe":
        lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
        lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(np.ascontiguousarray(lab[..., 0]))
        img = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    if pre.get("frame_fit") in ("pad", "stretch"):
        h, w = img.shape[:2]
        if pre["frame_fit"] == "stretch":
            img = cv2.resize(img, (max(h, w), max(h, w)), interpolation=cv2.INTER_CUBIC)
            h = w = max(h, w)
        side = int(np.ceil(max(h, w) / (pre["crop_size"] / pre["resize_short_side"])))
        out = np.empty((side, side, 3), np.uint8)
        out[...] = [round(255 * m) for m in pre["mean"]]
        top, left = (side - h) // 2, (side - w) // 2
        out[top:top + h, left:left + w] = img
        img = out
    return img


def preprocess(img, pre):
    """uint8 RGB (H, W, 3) -> float32 (3, S, S): enhance and fit to a square if asked, resize the short side, centre-crop, normalise."""
    img = adjust(img, pre)
    h, w = img.shape[:2]
    r, s = pre["resize_short_side"], pre["crop_size"]
    nh, nw = (r, int(r * w / h)) if h <= w else (int(r * h / w), r)
    x = img.transpose(2, 0, 1).astype(np.float64)  # (3, H, W)
    x = np.clip(np.round(x @ resize_matrix(w, nw, pre["interpolation"]).T), 0, 255)  # rows, then columns,
    x = np.clip(np.round(resize_matrix(h, nh, pre["interpolation"]) @ x), 0, 255)    # rounding like uint8 images
    top, left = int(round((nh - s) / 2)), int(round((nw - s) / 2))
    x = x[:, top:top + s, left:left + s] / 255.0
    mean, std = np.array(pre["mean"])[:, None, None], np.array(pre["std"])[:, None, None]
    return ((x - mean) / std).astype(np.float32)


def probabilities(model_path, video_path):
    """(class names, probabilities (C,)) of one video."""
    with open(model_path + ".json") as f:
        meta = json.load(f)
    count, fps = count_frames(video_path)
    indices = centre_indices(count, meta["sampling"]["num_frames"])
    frames = read_frames(video_path, indices)
    inputs = {meta["input"]["name"]: np.stack([preprocess(f, meta["preprocessing"]) for f in frames])[None]}  # (1, T, 3, S, S)
    if "motion" in meta:
        inputs[meta["motion_input"]["name"]] = motion_input(video_path, meta, count, fps, indices)  # (1, T, dim)

    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    logits = session.run(None, inputs)[0][0]
    p = np.exp(logits - logits.max())
    return meta["classes"], p / p.sum()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Classify a video with an ONNX model written by `activity export`.")
    parser.add_argument("model", help="the .onnx file (its sidecar MODEL.json must be beside it)")
    parser.add_argument("video", help="the video file to classify")
    parser.add_argument("--top-k", type=int, default=3, help="how many labels to print (default: 3)")
    args = parser.parse_args(argv)
    classes, p = probabilities(args.model, args.video)
    for i in np.argsort(-p)[: max(1, args.top_k)]:
        print(f"{classes[i]:<20} {p[i]:.3f}")


if __name__ == "__main__":
    main()
