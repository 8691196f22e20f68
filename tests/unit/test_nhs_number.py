import pytest

from mappings import nhs_number


@pytest.mark.parametrize("value", ["9434765919", "9449305552", "9990000018", "9990000026"])
def test_valid_numbers_pass_the_modulus_11_check(value: str) -> None:
    assert nhs_number.is_valid(value)


@pytest.mark.parametrize(
    "value",
    [
        "9434765918",
        "9990000000",
        "9876544321",
        "943476591",
        "94347659I9",
        "",
        "94347659190",
        "".join(chr(0xFF10 + int(d)) for d in "9434765919"),
    ],
)
def test_invalid_numbers_fail(value: str) -> None:
    assert not nhs_number.is_valid(value)


def test_remainder_ten_has_no_check_digit() -> None:
    assert nhs_number.check_digit("999000000") is None


def test_spaces_and_hyphens_are_removed() -> None:
    assert nhs_number.normalise(" 943 476-5919 ") == "9434765919"


@pytest.mark.parametrize("value", ["0000000000", "1111111111", "3333333333"])
def test_placeholders_pass_the_check_but_are_flagged(value: str) -> None:
    assert nhs_number.is_valid(value)
    assert "NHS number is a repeated-digit placeholder" in nhs_number.warnings_for(value)


def test_test_range_is_flagged_and_issued_number_is_not() -> None:
    assert nhs_number.warnings_for("9990000018") == (
        "NHS number is in the reserved test range 999",
    )
    assert nhs_number.warnings_for("4010232137") == ()
