"""The features of a trained model's layer, found by a sparse autoencoder (SAE), read through the one explicit pass
(``babygpt.interpret.hooked``):

* ``sae``: the TopK SAE, its config and its training loop on a tensor of activations;
* ``collect``: the activations of a run's layer over its own text; ``fit``: collect, train and measure in one call;
* ``metrics``: variance explained, L0, dead and dense features, loss recovered (docs/features.md);
* ``browser``: per feature its top passages, frequency, promoted and suppressed tokens, label; features on a prompt;
* ``steering``: text written with a feature added beside the text without it, from the same seed;
* ``over_training``: a feature's best match in SAEs of the run's earlier checkpoints, and when it appeared;
* ``truth``: planted sparse directions an SAE must give back;
* ``saelens``: export (and import) in SAELens's folder format;
* ``cost``: memory and time estimated before training, and the limits that refuse it with the reason.

Reads no store and draws nothing: ``babygpt.store.features`` keeps SAEs with their run."""
