import pytest

from sslcli.errors import SSLError
from sslcli.registry import Registry


def _registry() -> Registry[str]:
    registry: Registry[str] = Registry("colour")
    registry.add("red", lambda shade="": f"red{shade}", "warm")
    registry.add("green", lambda: "green", "calm")
    return registry


def test_lookup_create_and_listing() -> None:
    registry = _registry()
    assert registry.create("red", shade="dish") == "reddish"
    assert registry.get("green").description == "calm"
    assert registry.names() == ["red", "green"]
    assert "red" in registry and "blue" not in registry and len(registry) == 2


def test_unknown_names_list_close_matches() -> None:
    with pytest.raises(SSLError, match="unknown colour 'gren'; did you mean green") as raised:
        _registry().get("gren")
    assert raised.value.exit_code == 2
    assert "known colours: red, green" in raised.value.hint


def test_unknown_name_without_close_match_lists_all() -> None:
    with pytest.raises(SSLError) as raised:
        _registry().get("ultraviolet")
    assert "did you mean" not in raised.value.message
    assert "red, green" in raised.value.hint


def test_registering_a_name_twice_is_a_bug() -> None:
    registry = _registry()
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("red", lambda: "again", "dup")
