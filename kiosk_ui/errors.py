"""The one exception root of kiosk_ui: every error it raises is a KioskError."""

from __future__ import annotations


class KioskError(Exception):
    """A kiosk screen problem, worded as what happened and what to do about it."""
