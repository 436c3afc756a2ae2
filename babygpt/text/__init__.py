"""Text to token ids: corpora and their checks (``corpus``), the shipped datasets (``datasets``), and the char and
GPT-2 tokenizers (``tokenizers``). Imports nothing above ``babygpt.config``."""
