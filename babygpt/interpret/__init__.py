"""Looking inside a trained model, one mechanism and its readings: the explicit pass with TransformerLens's named
hook points, run with a cache or with hooks (``hooked``); the trace, knocking parts out, head types and the logit
lens built on it (``inside``); what those say about heads, layers and parts in sentences (``looking``); attention
and embeddings read off a model for the lessons (``attention``). Reads no store and draws nothing: the figures
live in ``babygpt.figures``."""
