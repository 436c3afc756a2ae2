"""Every figure, as pure functions returning plotly figures or escaped HTML: training curves, attention maps and
tokens (``viz``), what looking inside found (``inside_figures``), the BPE lesson (``bpe_figures``) and a class
experiment's scaling law (``scaling_figures``). Computes
nothing a test could not check on the numbers it is given."""
