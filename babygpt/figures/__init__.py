"""Every figure, as pure functions returning plotly figures or escaped HTML: training curves, attention maps and
tokens (``viz``), what looking inside found (``inside_figures``) and the BPE lesson (``bpe_figures``). Computes
nothing a test could not check on the numbers it is given."""
