from pathlib import Path

import pytest
from pydantic import ValidationError

from station.config import StationSettings


def test_station_settings_safe_defaults(tmp_path: Path) -> None:
    settings = StationSettings(state_dir=tmp_path)

    assert settings.k_anonymity == 5
    assert settings.executor == "auto"
    assert settings.allow_unisolated is False
    assert settings.train_image == "trainyard/train-base:0.1"
    assert settings.poll_wait_s == 25


def test_station_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRAINYARD_STATION_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TRAINYARD_STATION_K_ANONYMITY", "10")
    monkeypatch.setenv("TRAINYARD_STATION_EXECUTOR", "docker")

    settings = StationSettings()

    assert settings.state_dir == tmp_path
    assert settings.k_anonymity == 10
    assert settings.executor == "docker"


@pytest.mark.parametrize(
    ("field", "value"),
    [("k_anonymity", 1), ("k_anonymity", 2), ("k_anonymity", 12), ("executor", "podman"), ("poll_wait_s", 61)],
)
def test_station_settings_rejects_unsafe_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        StationSettings.model_validate({field: value})
