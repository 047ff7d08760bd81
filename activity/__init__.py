"""activity: human action recognition in video with a frozen ImageNet CNN and a bidirectional LSTM.

Data flows one way: video file -> frame sampler -> decoder -> transform ->
frozen backbone -> cached features -> temporal model -> predictions and metrics.
"""

__version__ = "0.1.0"
