"""What the lessons compute and draw, from a model, a config or rows of metrics: the ladder race's verdicts
(``race``), attention and embeddings read off a model (``attention``), one explicit pass that looks inside a model
(``inside``) and what it says about heads, layers and parts (``looking``), the numbers behind the Lessons tabs
(``tabs``), where a model is surprised (``surprise``), the levels to beat (``baselines``), counterfactuals
(``counterfactuals``), lesson links (``links``), a challenge's measurement, ranks and exported board
(``leaderboard``), which loss scale runs compared on one chart share (``comparing``), watching a BPE learn
(``bpe_lesson``) and every figure (``viz`` and ``inside_figures``, pure functions returning plotly figures).
Reads no store: the layers above hand it rows."""
