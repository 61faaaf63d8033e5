"""The drivers' exception root: hardware and library errors become these at one boundary."""


class DriverError(Exception):
    """Root of every error a driver raises on purpose."""


class CameraError(DriverError):
    """A camera could not be opened or stopped delivering frames."""


class DriverUnavailableError(DriverError):
    """An optional library a backend needs is not installed; the message says how to install it."""


class PeripheralMissingError(DriverError):
    """A peripheral is not connected (no device node, no answer, unplugged)."""


class PrinterError(DriverError):
    """A receipt printer refused or lost a job."""


class PrinterNotReadyError(PrinterError):
    """The printer answered but cannot print now (paper out, cover open); `state` says which."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


class ScannerError(DriverError):
    """A barcode scanner could not be opened or read."""


class DisplayError(DriverError):
    """A customer display could not be opened or written."""


class InputError(DriverError):
    """An input device (buttons, touch keys) could not be opened or read."""
