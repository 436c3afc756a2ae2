"""A class on one server: the scheduler that decides when each run trains and runs it in a worker process
(``scheduler``, ``worker``), and who may do what (``users``)."""
