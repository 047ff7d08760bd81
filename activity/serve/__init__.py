"""``activity serve``: a local web page and a JSON API for a trained model (:mod:`activity.serve.app`)."""
