import pytest

from sandboxd import ids
from sandboxd.errors import InvalidRequest


@pytest.mark.parametrize("prefix", [ids.SANDBOX, ids.TENANT, ids.KEY, ids.PROCESS, ids.SNAPSHOT])
def test_new_id_has_prefix_and_20_base32_chars(prefix: str) -> None:
    value = ids.new_id(prefix)
    head, _, tail = value.partition("_")
    assert head == prefix
    assert len(tail) == 20
    assert set(tail) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert ids.parse_id(prefix, value) == value


def test_new_ids_do_not_repeat() -> None:
    assert len({ids.new_id(ids.SANDBOX) for _ in range(10_000)}) == 10_000


def test_new_id_refuses_a_bad_prefix() -> None:
    with pytest.raises(ValueError):
        ids.new_id("SBX")


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "sbx_",
        "sbx_ABCDEFGHIJKLMNOPQRST",
        "sbx_abcdefghijklmnopqrs",  # 19
        "sbx_abcdefghijklmnopqrstu",  # 21
        "sbx_abcdefghijklmnopqr01",  # 0 and 1 are not base32
        "tnt_abcdefghijklmnopqrst",  # another kind
        " sbx_abcdefghijklmnopqrst",
        "sbx_abcdefghijklmnopqrst\n",
        "",
    ],
)
def test_parse_id_refuses_malformed_ids(value: str) -> None:
    with pytest.raises(InvalidRequest):
        ids.parse_id(ids.SANDBOX, value)


def test_parse_id_message_says_what_was_expected() -> None:
    with pytest.raises(InvalidRequest) as caught:
        ids.parse_id(ids.SANDBOX, "abc")
    assert caught.value.message == (
        "'abc' is not a valid sandbox id (expected sbx_ followed by 20 lowercase letters/digits)"
    )


def test_parse_id_names_the_kind_and_cuts_long_values() -> None:
    with pytest.raises(InvalidRequest) as caught:
        ids.parse_id(ids.SNAPSHOT, "x" * 1000)
    assert "snapshot id" in caught.value.message
    assert "snp_" in caught.value.message
    assert len(caught.value.message) < 200


def test_parse_id_refuses_non_strings() -> None:
    with pytest.raises(InvalidRequest, match="type int"):
        ids.parse_id(ids.SANDBOX, 42, what="sandbox")


def test_is_id() -> None:
    assert ids.is_id(ids.KEY, ids.new_id(ids.KEY))
    assert not ids.is_id(ids.KEY, ids.new_id(ids.SANDBOX))
    assert not ids.is_id(ids.KEY, None)
