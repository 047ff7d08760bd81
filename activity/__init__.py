"""activity: human action recognition in video with a frozen ImageNet CNN and a bidirectional LSTM.

Data flows one way: video file -> frame sampler -> decoder -> transform ->
frozen backbone -> cached features -> temporal model -> predictions and metrics.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `import activity` (and the CLI's start-up) does not import torch.
    if name == "load_model":
        from activity.inference.recognizer import load_model

        return load_model
    raise AttributeError(f"module 'activity' has no attribute {name!r}")


__all__ = ["load_model", "__version__"]
