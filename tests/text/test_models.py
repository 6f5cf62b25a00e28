from pathlib import Path

import pytest

from sslcli.errors import SSLError
from sslcli.text.models import DEFAULT_TEXT_MODEL, resolve_text_model


def test_aliases_hub_ids_and_folders(tmp_path: Path) -> None:
    assert resolve_text_model("roberta").location == "roberta-base"
    assert resolve_text_model("bert-base-uncased").kind == "hub"
    assert resolve_text_model("someone/tiny-bert").location == "someone/tiny-bert"
    folder = resolve_text_model(str(tmp_path))
    assert (folder.kind, folder.location) == ("folder", str(tmp_path))


def test_unknown_text_model_suggests_close_names() -> None:
    with pytest.raises(SSLError, match="unknown text model 'robreta'; did you mean roberta"):
        resolve_text_model("robreta")


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(SSLError, match="does not exist"):
        resolve_text_model(str(tmp_path / "nothing") + "/")


def test_the_default_is_embedded_in_the_package() -> None:
    source = resolve_text_model(DEFAULT_TEXT_MODEL)
    assert source.kind == "embedded"
    assert Path(source.location).parent.name == "assets"
