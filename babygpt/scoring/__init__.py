"""A class challenge's measurement and ranks: the held-out loss every entry is scored on, the check that a model
cannot see the future, the seed spread, the board and its CSV and SVG (``leaderboard``). Reads no store: the
orchestration hands it entries."""
