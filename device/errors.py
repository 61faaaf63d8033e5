"""The device application's exception root. Library errors become these at one boundary."""


class DeviceError(Exception):
    """Root of every error the device application raises on purpose."""


class ConfigError(DeviceError):
    """A config file or profile is missing, malformed or names an unknown key."""
