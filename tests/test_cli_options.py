"""Every CLI refuses abbreviated options: a technician's typo must not silently pick another option."""

from __future__ import annotations

import pytest

from cloud_stub.cli import build_parser as cloud_parser
from device.cli import build_parser as device_parser
from provisioning.cli import build_parser as prov_parser


@pytest.mark.parametrize(("build", "full", "abbreviated"), [
    (device_parser, ["selftest", "all", "--profile", "pos-flagship"], ["selftest", "all", "--prof", "pos-flagship"]),
    (cloud_parser, ["serve", "--insecure", "--port", "0"], ["serve", "--insecure", "--po", "0"]),
    (prov_parser, ["discover", "--timeout", "1"], ["discover", "--time", "1"]),
])
def test_abbreviated_options_are_refused(build, full, abbreviated, capsys) -> None:
    option = full[-2]
    parsed = build().parse_args(full)
    assert getattr(parsed, option.lstrip("-").replace("-", "_")) is not None
    with pytest.raises(SystemExit) as exc:
        build().parse_args(abbreviated)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
