"""Linux input devices (evdev): event sources for HID-wedge scanners and physical buttons."""
