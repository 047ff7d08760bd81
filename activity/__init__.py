"""activity: human action recognition in video with a frozen ImageNet CNN and a bidirectional LSTM.

Data flows one way: video file -> frame sampler -> decoder -> transform ->
frozen backbone -> cached features -> temporal model -> predictions and metrics.
What a user does is in :mod:`activity.workflows`::

    from activity import ExtractOptions, load_config, load_model, workflows
"""

__version__ = "0.1.0"

# Lazy, so that `import activity` (and the CLI's start-up) does not import torch.
_EXPORTS = {
    "load_model": "activity.inference.recognizer",
    "ExtractOptions": "activity.features.extract",
    "load_config": "activity.config",
    "workflows": None,  # the submodule itself
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        module = importlib.import_module(_EXPORTS[name] or f"activity.{name}")
        return module if _EXPORTS[name] is None else getattr(module, name)
    raise AttributeError(f"module 'activity' has no attribute {name!r}")


__all__ = ["ExtractOptions", "load_config", "load_model", "workflows", "__version__"]
