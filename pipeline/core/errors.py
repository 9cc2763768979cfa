"""User-facing errors: one clear sentence naming the problem and the fix.

The CLI catches :class:`UserError` and prints only its message (no traceback).
"""


class UserError(Exception):
    """An error the user can fix (bad params, missing data, unreadable file, bad checkpoint)."""
