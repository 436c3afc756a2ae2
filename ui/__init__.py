"""Streamlit glue shared by the pages: session keys, the process-wide job registry, cached loads."""
