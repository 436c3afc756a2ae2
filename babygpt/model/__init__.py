"""The model ladder (``gpt``: bigram to GPT, in lesson order), the speed-only pieces (``kernels``), generation's
key/value cache and one-token decoder (``decode``), sizes from a config alone (``sizing``), the named hook points
of the explicit pass (``hooks``), and the same model in GPT-2's layout (``gpt2_layout``) or Llama's
(``llama_layout``). Imports nothing above ``babygpt.config``; reads no environment."""
