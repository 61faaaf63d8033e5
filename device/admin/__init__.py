"""The device admin API (issue 8): gRPC over mTLS for field technicians.

- `server.py` — `AdminServer`: TLS with the device's own certificate (reloaded after a rotation),
  client certificates required and chained to the cloud CA; zeroconf advertisement.
- `service.py` — `DeviceAdminServicer`: the role check (technician of this site), the audit of
  every call (log line + outbox event for the cloud), and the calls.
- `actions.py` — what the calls do that is more than reading: config set, factory reset.
- `logfile.py` — the rotating log files under `<data_dir>/logs` and reading them back.
"""
