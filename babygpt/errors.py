"""The one exception type for mistakes a user can make.

Pages catch it and show ``st.error``; the CLI prints it and exits non-zero. Anything
else escaping the library is a bug, not a user error, and keeps its traceback.
"""


class BabyGPTError(ValueError):
    """A problem with the user's input or environment, with a message that says what to do."""
