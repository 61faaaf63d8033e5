"""Acceptance: `joyprov discover --json` finds two devices advertised by the test over mDNS on loopback
(sockets bound to 127.0.0.1 only: nothing leaves this machine)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from device.advertise import Advertiser
from provisioning import errors

LOOPBACK = "127.0.0.1"
# mDNS on loopback is shared by every test run on this machine: ids and the site are unique per run.
RUN = uuid.uuid4().hex[:8]
SITE = f"site-test-{RUN}"


def _discover(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provisioning.cli", "discover", "--interface", LOOPBACK,
                           "--site", SITE, *extra],
                          capture_output=True, text=True, timeout=60)


def test_discover_json_finds_two_advertised_devices():
    """GIVEN a mirror and a π-POS advertising WHEN `joyprov discover --json --count 2` THEN both, with TXT data."""
    with Advertiser(device_id=f"mirror-07-{RUN}", profile="mirror", version="0.1.0", site=SITE,
                    port=50443, interfaces=[LOOPBACK]), \
         Advertiser(device_id=f"pos-12-{RUN}", profile="pos-flagship", version="0.1.1", site=SITE,
                    port=50444, interfaces=[LOOPBACK]):
        done = _discover("--json", "--count", "2", "--timeout", "20")
        assert done.returncode == 0, done.stderr
        devices = json.loads(done.stdout)
        got = {d["id"]: (d["profile"], d["version"], d["site"], d["port"], d["addresses"]) for d in devices}
        assert got == {
            f"mirror-07-{RUN}": ("mirror", "0.1.0", SITE, 50443, [LOOPBACK]),
            f"pos-12-{RUN}": ("pos-flagship", "0.1.1", SITE, 50444, [LOOPBACK]),
        }
        table = _discover("--count", "2", "--timeout", "20")
        assert table.returncode == 0
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["ID", "PROFILE", "SITE", "VERSION", "ADDRESS", "HOST"]
        assert any(line.startswith(f"mirror-07-{RUN}") and "127.0.0.1:50443" in line for line in lines)
        # fewer devices than asked for: a script gets exit 6 and the ones that were seen
        short = _discover("--json", "--count", "3", "--timeout", "1")
        assert short.returncode == errors.EXIT_NOT_FOUND
        assert len(json.loads(short.stdout)) == 2 and "saw 2 of 3" in short.stderr


def test_a_second_device_with_the_same_id_is_refused():
    """mDNS probing (RFC 6762 §8) finds the name taken: two devices must never share an id on a LAN."""
    import pytest

    from device.errors import DeviceError

    with Advertiser(device_id=f"mirror-dup-{RUN}", profile="mirror", version="0.1.0", site="s", port=1,
                    interfaces=[LOOPBACK]):
        twin = Advertiser(device_id=f"mirror-dup-{RUN}", profile="mirror", version="0.1.0", site="s", port=2,
                          interfaces=[LOOPBACK])
        with pytest.raises(DeviceError, match="already advertises"):
            twin.start()
