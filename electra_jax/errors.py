"""Errors the user can fix: the CLI prints them as one line and exits non-zero, with no traceback."""


class UserError(ValueError):
  """A bad config, bad input data or an unusable work directory; the message says what to do."""
