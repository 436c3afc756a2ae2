"""Persistence only, under ``BABYGPT_HOME``: the run table and its SQLite database (``runs`` assembles ``database``,
``records``, ``queue``, ``logs``, ``choices``, ``classroom``), a run's config.json read once into a typed record
(``run_record``), checkpoint files (``checkpoints``) and
the earlier copies of a run's weights it keeps (``kept``), the texts runs train on (``corpora``), export and import of
run archives (``archive``) and of Hugging Face folders (``huggingface`` exports with its card from ``model_card``,
``hf_import`` imports), the one rule that picks the importer for a file or folder (``importing``), the rules every
untrusted file is read under (``safe_zip`` for zips, ``untrusted`` for JSON and sizes), disk quotas (``quota``),
the sparse autoencoders trained on a run (``features``) and a class experiment's points (``experiments``)."""
