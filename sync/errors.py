"""The sync package's exception root; gRPC and SQLite errors become these at one boundary."""


class SyncError(Exception):
    """Root of every error the sync engine raises on purpose."""


class CloudUnavailableError(SyncError):
    """The cloud could not be reached or did not answer in time; retry later."""


class ReplicaError(SyncError):
    """The local SQLite replica could not be opened or written (full disk, corrupt file, locked)."""


class KeyError_(SyncError):
    """Key material is missing or does not open the data (wrong device, crypto-erased)."""


class SnapshotUnsupportedError(SyncError):
    """The cloud does not serve `Sync.Snapshot` (an older cloud): the device pulls from 0 instead."""
