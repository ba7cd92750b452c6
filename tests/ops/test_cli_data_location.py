"""Admin commands run outside the service's folder: one line saying what to set, never a traceback or a
new empty database; with VLMQ_DATA_DIR they work from anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.migrate import upgrade_to_head
from vlmq import cli


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder that is not where `vlmq up` ran, and no VLMQ_* settings."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in ("VLMQ_DATA_DIR", "VLMQ_DATABASE_URL", "VLMQ_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.mark.parametrize(
    "argv",
    [["keys", "list"], ["keys", "create", "--tenant", "shop"], ["webhooks", "secret"]],
    ids=["keys-list", "keys-create", "webhooks-secret"],
)
def test_no_database_here_says_what_to_set(
    argv: list[str], elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"no vlmq database at {elsewhere / '.vlmq' / 'vlmq.db'}" in err and "set VLMQ_DATA_DIR" in err
    assert not (elsewhere / ".vlmq").exists()  # no empty database the service would never read


def test_the_data_dir_setting_finds_it_from_anywhere(
    elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "service" / ".vlmq"
    data_dir.mkdir(parents=True)
    upgrade_to_head(f"sqlite:///{data_dir / 'vlmq.db'}")
    monkeypatch.setenv("VLMQ_DATA_DIR", str(data_dir))
    assert cli.main(["keys", "create", "--tenant", "shop"]) == 0
    assert cli.main(["keys", "list"]) == 0
    assert "shop" in capsys.readouterr().out
