"""The drivers' exception root: hardware and library errors become these at one boundary."""


class DriverError(Exception):
    """Root of every error a driver raises on purpose."""


class CameraError(DriverError):
    """A camera could not be opened or stopped delivering frames."""


class DriverUnavailableError(DriverError):
    """An optional library a backend needs is not installed; the message says how to install it."""
