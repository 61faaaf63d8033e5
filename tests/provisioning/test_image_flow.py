"""Acceptance: a disk image with a partition table and a FAT32 first partition is flashed with --verify,
configured, and the first-boot config is read back from the FAT partition by mtools."""

from __future__ import annotations

import hashlib
import json
import lzma
from pathlib import Path

import pytest

from api.firstboot import FILENAME, parse
from provisioning import errors
from provisioning.cli import main
from provisioning.configure import read_config
from provisioning.fat32 import Fat32
from provisioning.partitions import find_boot_partition
from tests.provisioning.conftest import BOOT_START, CONFIG_TXT, fsck_boot, make_image, mtype


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("table,compressed", [("dos", False), ("gpt", True)])
def test_flash_verify_then_configure_and_read_back(tmp_path, capsys, psk_file, table, compressed):
    """GIVEN an MBR (raw) or GPT (.xz) image WHEN flashed with --verify and configured
    THEN the target equals the image and mtools reads back the config we wrote; the FS stays clean."""
    img = make_image(tmp_path / "os.img", table)
    src = img
    if compressed:
        src = tmp_path / "os.img.xz"
        src.write_bytes(lzma.compress(img.read_bytes(), preset=1))
    card = tmp_path / "card.img"
    assert main(["flash", str(src), str(card), "--verify", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["verified"] is True
    assert result["sha256"] == _sha(img) == _sha(card)
    assert "verifying" in err and "100.0%" in err  # the progress bar went to stderr

    assert main(["configure", str(card), "--profile", "mirror", "--cloud", "cloud.joy.example:50052",
                 "--claim-token", "claim-abcdef-123456", "--wifi-ssid", "Mall-Staff",
                 "--wifi-psk-file", str(psk_file), "--hostname", "mirror-07"]) == 0
    assert "next:" in capsys.readouterr().out
    cfg = parse(mtype(card, FILENAME).decode())
    assert (cfg.profile, cfg.cloud, cfg.claim_token, cfg.hostname, cfg.wifi_ssid, cfg.wifi_psk) == (
        "mirror", "cloud.joy.example:50052", "claim-abcdef-123456", "mirror-07", "Mall-Staff", "Mall-Staff-Pass-2026")
    assert mtype(card, "config.txt") == CONFIG_TXT  # the firmware's files are untouched
    fsck_boot(card, tmp_path)


def test_psk_never_on_the_command_line_and_inspect_hides_secrets(image, capsys, psk_file):
    assert main(["configure", str(image), "--profile", "pos-mobile", "--cloud", "10.0.0.1:443",
                 "--claim-token", "tok-secret-987654", "--wifi-ssid", "S", "--wifi-psk-file", str(psk_file)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["configure", str(image), "--profile", "mirror", "--cloud", "h:1", "--claim-token", "t" * 10,
              "--wifi-psk", "inline-secret"])
    capsys.readouterr()
    assert main(["inspect", str(image), "--json"]) == 0
    shown = capsys.readouterr().out
    doc = json.loads(shown)
    assert doc["firstboot"]["claim_token_present"] and doc["firstboot"]["wifi_psk_present"]
    assert "tok-secret-987654" not in shown and "Mall-Staff-Pass-2026" not in shown
    assert [p["number"] for p in doc["partitions"]] == [1, 2] and doc["boot_partition"] == 1


def test_configure_again_replaces_the_file_and_wipes_the_old_token(image, tmp_path, capsys):
    """Re-configuring a card leaves one config, and the old claim token is nowhere on the disk."""
    for token in ("first-token-AAAAAAAA", "second-token-BBBBBBBB"):
        assert main(["configure", str(image), "--profile", "mirror", "--cloud", "c:1", "--claim-token", token]) == 0
    raw = image.read_bytes()
    assert b"first-token-AAAAAAAA" not in raw
    assert raw.count(b"second-token-BBBBBBBB") == 1
    assert parse(mtype(image, FILENAME).decode()).claim_token == "second-token-BBBBBBBB"
    fsck_boot(image, tmp_path)


def test_fat_writer_long_names_many_files_and_a_growing_root(image, tmp_path):
    """Enough long-named files to fill the first root cluster: the root directory grows a cluster,
    mtools lists every name, and fsck finds nothing wrong."""
    with open(image, "r+b") as f:
        fs = Fat32(f, find_boot_partition(f).offset)
        names = [f"overlay-{i:03d}-with-a-long-name.dtbo" for i in range(30)]
        for i, name in enumerate(names):
            fs.write_file(name, bytes([i]) * (700 * i + 1))  # 1 byte .. several clusters
        fs.delete_file(names[3])
        fs.write_file("README.TXT", b"plain 8.3 name\n")
        assert len(fs.chain(fs.root_cluster)) > 1
    for i, name in enumerate(names):
        if i != 3:
            assert mtype(image, name) == bytes([i]) * (700 * i + 1)
    assert mtype(image, "README.TXT") == b"plain 8.3 name\n"
    fsck_boot(image, tmp_path)


@pytest.mark.parametrize("argv_tail,code,words", [
    (["--profile", "kiosk"], errors.EXIT_BAD_INPUT, "choose one of"),
    (["--cloud", "no-port"], errors.EXIT_BAD_INPUT, "HOST:PORT"),
    (["--claim-token", "short"], errors.EXIT_BAD_INPUT, "claim_token"),
    (["--wifi-ssid", "S", "--wifi-psk-file", "/nonexistent/psk"], errors.EXIT_BAD_INPUT, "does not exist"),
    (["--hostname", "Bad_Host"], errors.EXIT_BAD_INPUT, "hostname"),
])
def test_configure_bad_input_is_refused_and_the_card_is_untouched(image, capsys, argv_tail, code, words):
    before = _sha(image)
    base = {"--profile": "mirror", "--cloud": "c.example:1", "--claim-token": "good-token-1234"}
    for k, v in zip(argv_tail[::2], argv_tail[1::2], strict=True):
        base[k] = v
    argv = ["configure", str(image)] + [x for kv in base.items() for x in kv]
    assert main(argv) == code
    assert words in capsys.readouterr().err
    assert _sha(image) == before


def test_configure_needs_a_partition_table_and_a_fat_partition(tmp_path, capsys):
    blank = tmp_path / "blank.img"
    blank.write_bytes(b"\0" * (1 << 20))
    assert main(["configure", str(blank), "--profile", "mirror", "--cloud", "c:1", "--claim-token", "x" * 10]) == 3
    assert "no partition table" in capsys.readouterr().err
    linux_only = tmp_path / "linux.img"
    with open(linux_only, "wb") as f:
        f.truncate(4 << 20)
    from tests.provisioning.conftest import need, run
    run(need("sfdisk"), "-q", str(linux_only), input=b"label: dos\nstart=2048, type=83\n")
    assert main(["configure", str(linux_only), "--profile", "mirror", "--cloud", "c:1", "--claim-token", "x" * 10]) == 3
    assert "no FAT boot partition" in capsys.readouterr().err
    assert main(["configure", str(tmp_path / "nope.img"), "--profile", "mirror", "--cloud", "c:1",
                 "--claim-token", "x" * 10]) == 3


def test_flash_bad_images(tmp_path, capsys):
    card = tmp_path / "card.img"
    assert main(["flash", str(tmp_path / "missing.img"), str(card)]) == errors.EXIT_BAD_INPUT
    assert "does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.img.xz"
    broken.write_bytes(lzma.compress(b"x" * 100000)[:-40])
    assert main(["flash", str(broken), str(card), "--quiet"]) == errors.EXIT_BAD_INPUT
    assert "damaged .xz" in capsys.readouterr().err
    same = tmp_path / "same.img"
    same.write_bytes(b"y" * 4096)
    assert main(["flash", str(same), str(same)]) == errors.EXIT_REFUSED
    assert same.read_bytes() == b"y" * 4096


def test_flash_over_a_longer_file_leaves_no_tail_and_read_config_sees_it(image, tmp_path, capsys):
    card = tmp_path / "card.img"
    card.write_bytes(b"\xff" * (100 << 20))
    assert main(["flash", str(image), str(card), "--verify", "--quiet"]) == 0
    assert card.stat().st_size == image.stat().st_size
    part, cfg, problem = read_config(card)
    assert part.number == 1 and cfg is None and FILENAME in problem
    assert f"{part.offset}" == str(BOOT_START * 512)
