"""Training and sampling, independent of any UI: the loop with callbacks (``trainer``), which receives a model built
and placed by ``placement`` (the process's device, precision, threads and seed), the loss estimate as a plain
function (``evaluation``), the step in the form a CUDA graph records and the batches drawn ahead (``step``),
generation (``sample``), the Muon optimizer for the hidden matrices (``muon``), devices, precision and threads
(``devices``), and torchrun plumbing (``distributed``).
Never imports the store, the server or the lessons: the CLI, the app's workers, the race and a notebook all drive
the same loop."""
