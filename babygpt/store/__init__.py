"""The run store under ``BABYGPT_HOME``: runs, their logs, the queue and users' choices (``runs`` assembles
``database``, ``queue``, ``logs``, ``choices``), checkpoint files (``checkpoints``), export and import
(``archive``), disk quotas (``quota``), and the pipeline from a corpus and settings to a recorded run
(``pipeline``)."""
