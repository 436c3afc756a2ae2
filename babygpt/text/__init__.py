"""Text to token ids: corpora and their checks (``corpus``), the shipped datasets (``datasets``), the char and GPT-2
tokenizers (``tokenizers``), reading a Hugging Face folder's tokenizer files (``tokenizer_files``, a BPE's in
``bpe_files``) and writing them for an export (``tokenizer_export``), decoding a stream of ids without splitting a
character (``text_stream``), and a byte-level BPE learned from the text: trained (``bpe``, its fast path
``bpe_fast``) and used as a tokenizer (``bpe_tokenizer``), with how many a server learns at once (``bpe_gate``).
What a run measures of its validation text once and keeps (its size, the count models' levels) is ``measured``.
Imports nothing above ``babygpt.config``."""
