"""Looking inside a trained model, one mechanism and its readings: the explicit pass with named hook points and what
is built on it (``inside``: caching, knocking parts out, head types, the logit lens), what those say about heads,
layers and parts in sentences (``looking``), and attention and embeddings read off a model for the lessons
(``attention``). Reads no store and draws nothing: the figures live in ``babygpt.figures``."""
