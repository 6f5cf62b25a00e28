from pathlib import Path

import pytest

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
