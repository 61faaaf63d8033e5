"""The kiosk screens: a local web server that pushes the device's view models to pages in Chromium."""

from kiosk_ui.contract import validate_mirror_model
from kiosk_ui.errors import KioskError
from kiosk_ui.server import KEEPALIVE_S, VIEWS, KioskServer

__all__ = ["KEEPALIVE_S", "VIEWS", "KioskError", "KioskServer", "validate_mirror_model"]
