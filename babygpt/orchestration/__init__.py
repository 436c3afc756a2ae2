"""A run from plan to record, above the store and below the server: the plan validated before a folder exists
(``plan``), what a trainer writes into the store as it trains (``recorder``), the trainer assembled for a new, a
queued or a resumed run in one place (``runs``), the ladder race's runs and what they read back (``race``), the
tokenizer race's (``tokenizer_race``), a class challenge from its rules to its frozen board (``challenge``), and a class
experiment's points from plan to scaling law (``experiment``).
The CLI, the server's workers and Ray actors all start and resume runs here.
What the Inside page writes on a loaded run with a head knocked out is ``inside``'s."""
