"""Customer displays: a 2×20 VFD pole display speaking ESC/POS display commands over serial, and its twin."""

from drivers.display.base import CustomerDisplay, encode_line

__all__ = ["CustomerDisplay", "encode_line"]
