"""A class on one server, or on a Ray cluster: the scheduler that decides when each run trains (``scheduler``) and
the settings the teacher gives it (``settings``); the read model of live progress and time left (``progress``);
where runs train — the interface (``backend``), worker processes on this machine (``local``, running ``worker``),
actors on a Ray cluster (``ray_backend``, streaming back through ``relay``) — and the GPUs local jobs share
(``gpus``); who may do what (``users``), which key a browser keeps when a link carries another (``browser_key``)
and how the admin token resists guessing (``admin_guard``); the class board with the teacher's controls
(``classroom``); the class experiment handed out and kept going (``laboratory``); and sparse
autoencoders trained as jobs beside the runs (``sae_jobs``, each in a ``sae_worker`` process)."""
