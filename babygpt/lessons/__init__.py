"""What the lessons compute, from a model, a config or rows of metrics: the ladder race's verdicts (``race``), the
numbers behind the Lessons tabs (``tabs``), where a model is surprised (``surprise``), the levels to beat
(``baselines``), counterfactuals (``counterfactuals``), lesson links (``links``), which loss scale runs compared on
one chart share (``comparing``), watching a BPE learn (``bpe_lesson``), which tokenizer suits a text
(``tokenizer_race``) and the scaling law fitted to a class experiment (``scaling_law``). Looking inside is
``babygpt.interpret``, the figures ``babygpt.figures``, the class's scoring
``babygpt.scoring``. Reads no store: the layers above hand it rows."""
