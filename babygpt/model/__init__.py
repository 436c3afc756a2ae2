"""The model ladder (``gpt``: bigram to GPT, in lesson order), the speed-only pieces (``kernels``), generation's
key/value cache and one-token decoder (``decode``) and sizes from a config alone (``sizing``). Imports nothing above
``babygpt.config``; reads no environment."""
