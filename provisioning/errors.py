"""`joyprov`'s exception root. Each class carries the exit code a script can rely on (README)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and its check failed (e.g. read-back verification mismatch)
EXIT_USAGE = 2  # bad command line (argparse)
EXIT_BAD_INPUT = 3  # an input file or value is missing or malformed
EXIT_REFUSED = 4  # refused for safety: mounted/system disk, existing key; --force or a fix is needed
EXIT_IO = 5  # reading or writing the target failed (permissions, device gone, disk full)
EXIT_NOT_FOUND = 6  # discovery found fewer devices than --count asked for
EXIT_INTERRUPTED = 130


class ProvisioningError(Exception):
    """Root of every error `joyprov` raises on purpose."""

    exit_code = EXIT_BAD_INPUT


class BadInput(ProvisioningError):
    """An image, key, file or value given by the user is missing or malformed."""

    exit_code = EXIT_BAD_INPUT


class Refused(ProvisioningError):
    """The target is not safe to touch (mounted, system disk, in use) without --force."""

    exit_code = EXIT_REFUSED


class VerifyFailed(ProvisioningError):
    """What was read back differs from what was written."""

    exit_code = EXIT_FAILED


class TargetIOError(ProvisioningError):
    """The target could not be opened, read or written."""

    exit_code = EXIT_IO


class NotFound(ProvisioningError):
    """Discovery did not see the devices asked for."""

    exit_code = EXIT_NOT_FOUND
