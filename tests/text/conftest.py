from pathlib import Path

import pytest

from sslcli.text.models import DEFAULT_TEXT_MODEL
from sslcli.text.onnx_cache import fast_fill_mask, prepare
from tests.text.onnx_helpers import FirstUse, shared_cache_home
from tests.text.tiny_models import write_bert_tokenizer, write_tiny_bert, write_tiny_roberta


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta"))


@pytest.fixture(scope="session")
def bert_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bert_tokenizer(tmp_path_factory.mktemp("bert-tokenizer"))


@pytest.fixture(autouse=True)
def _onnx_cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test writes ONNX copies into the user's own cache; one cache serves the session."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_cache_home(tmp_path_factory)))


@pytest.fixture(scope="session")
def first_use(tmp_path_factory: pytest.TempPathFactory) -> FirstUse:
    """The embedded model's fast path asked for the first time: its ONNX copy is made then,
    into the session's cache (once a session: the export takes seconds)."""
    notes: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(shared_cache_home(tmp_path_factory)))
        filler = fast_fill_mask(DEFAULT_TEXT_MODEL, notes.append)
    assert filler is not None, notes
    return FirstUse(filler, notes)


@pytest.fixture(scope="session")
def prepared_tiny(
    tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, tiny_roberta: Path
) -> dict[str, Path]:
    """The tiny models' ONNX copies, made by ``prepare`` (``--prepare-onnx``) once a session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(shared_cache_home(tmp_path_factory)))
        return {
            name: prepare(str(folder), lambda _: None).folder
            for name, folder in (("tiny_bert", tiny_bert), ("tiny_roberta", tiny_roberta))
        }
