"""Training and sampling, independent of any UI: the loop with callbacks (``trainer``), the step in the form a CUDA
graph records and the batches drawn ahead (``step``), generation (``sample``), devices, precision and threads
(``devices``), and torchrun plumbing (``distributed``). Never imports the store, the server or the lessons: the CLI,
the app's workers, the race and a notebook all drive the same loop."""
