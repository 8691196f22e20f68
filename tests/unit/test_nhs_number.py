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


def _reference_is_valid(value: str) -> bool:
    """The modulus-11 rule as the NHS Data Dictionary words it, digit by digit."""
    if len(value) != 10 or not all("0" <= c <= "9" for c in value):
        return False
    remainder = sum(int(d) * (10 - i) for i, d in enumerate(value[:9])) % 11
    check = 11 - remainder
    return check != 10 and (0 if check == 11 else check) == int(value[9])


def test_the_check_agrees_with_the_rule_on_every_check_digit_of_many_numbers() -> None:
    # Every tenth digit of 2,000 spread first-nines (each remainder and each leading digit),
    # so any slip in the arithmetic shows as a number wrongly valid or wrongly refused.
    valid = 0
    for n in range(0, 1_000_000_000, 499_979):
        first_nine = f"{n:09d}"
        expected = nhs_number.check_digit(first_nine)
        for last in "0123456789":
            value = first_nine + last
            assert nhs_number.is_valid(value) is _reference_is_valid(value), value
            assert (expected is not None and int(last) == expected) is _reference_is_valid(value)
            valid += _reference_is_valid(value)
    assert valid > 1_500  # about ten in eleven first-nines have a check digit


@pytest.mark.parametrize("value", ["12345678", "1234567890", "12345678x"])
def test_check_digit_refuses_anything_but_nine_digits(value: str) -> None:
    with pytest.raises(ValueError, match=r"zip|invalid literal"):
        nhs_number.check_digit(value)
