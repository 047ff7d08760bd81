"""Classify a video with a model exported by `activity export`: needs only onnxruntime, numpy and opencv."""
import json
import sys

import cv2
import numpy as np
import onnxruntime as ort


def centre_indices(count, num_frames):
    """The frame at the centre of each of num_frames equal segments of count frames."""
    seg = count / num_frames
    return np.minimum(np.floor(np.arange(num_frames) * seg + seg / 2).astype(int), count - 1)


def sample_frames(path, num_frames):
    """RGB frames at the centres of num_frames equal segments of the video."""
    cap = cv2.VideoCapture(path)
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    if count == 0:
        sys.exit(f"cannot read {path}")
    indices = centre_indices(count, num_frames)
    cap, frames = cv2.VideoCapture(path), {}
    for i in range(indices.max() + 1):
        if not cap.grab():
            break
        if i in indices:
            frames[i] = cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
    cap.release()
    last = frames[max(frames)]
    return [frames.get(i, last) for i in indices]


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


def main(model_path, video_path):
    with open(model_path + ".json") as f:
        meta = json.load(f)
    frames = sample_frames(video_path, meta["sampling"]["num_frames"])
    x = np.stack([preprocess(f, meta["preprocessing"]) for f in frames])[None]  # (1, T, 3, S, S)

    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    logits = session.run(None, {meta["input"]["name"]: x})[0][0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    for i in np.argsort(-p)[:3]:
        print(f"{meta['classes'][i]:<20} {p[i]:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
