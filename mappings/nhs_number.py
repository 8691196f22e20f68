"""NHS number checks: the modulus-11 check digit, placeholders and issued ranges.

Only a number that passes `is_valid` may ever be used as a patient's NHS number. Range and
placeholder findings are warnings, not rejections: cross-border patients (Scottish CHI,
Northern Ireland) are real, and test-range numbers are legitimate in test environments.

`not_real_reason` says when a valid number cannot be a real patient's: a repeated-digit
placeholder (0000000000, 3333333333), the 999 range reserved for testing, or a number outside
the ranges issued to patients (England 300-399, 400-499, 600-799 million by the first nine
digits; Northern Ireland 320-399; Scottish CHI 010-311: domain brief section 2). Such a number is
still read and still keys the patient's history, but is never sent on as a verified NHS
number, and the clinician is told (docs/mapping.md, "NHS numbers that are not real"). A feed
profile in a test environment (``nhs_numbers: test``) accepts test-range and unissued numbers
as real; a repeated-digit placeholder is never one.
"""

from __future__ import annotations

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def normalise(raw: str) -> str:
    """Strip the spaces and hyphens people and systems put in (``943 476 5919``)."""
    return raw.replace(" ", "").replace("-", "").strip()


def check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit for nine digits; None where none can exist (remainder 10)."""
    if len(first_nine) == 9 and first_nine.isascii() and first_nine.isdigit():
        digit = 11 - _weighted_sum(first_nine) % 11
    else:  # raises ValueError, as for any string that is not nine digits
        total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
        digit = 11 - total % 11
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def _weighted_sum(digits: str) -> int:
    """The modulus-11 sum of the first nine of `digits` (ASCII digits: checked by the caller).

    Every intake of an NHS number comes here several times, so it reads the digits' bytes
    instead of nine `int` calls: each byte is the digit plus 48, and the weights add to 54.
    """
    d = digits.encode("ascii")
    return (
        10 * d[0] + 9 * d[1] + 8 * d[2] + 7 * d[3] + 6 * d[4] + 5 * d[5] + 4 * d[6] + 3 * d[7]
        + 2 * d[8] - 54 * 48
    )  # fmt: skip


def is_valid(value: str) -> bool:
    """True for exactly ten ASCII digits whose last digit is the modulus-11 check digit."""
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return False
    digit = 11 - _weighted_sum(value) % 11
    return (0 if digit == 11 else digit) == ord(value[9]) - 48


def warnings_for(value: str) -> tuple[str, ...]:
    """Reasons a valid-looking NHS number still deserves an operator's eye."""
    if not is_valid(value):
        return ("NHS number fails the modulus-11 check",)
    found: list[str] = []
    if len(set(value)) == 1:
        found.append("NHS number is a repeated-digit placeholder")
    if value.startswith("999"):
        found.append("NHS number is in the reserved test range 999")
    elif not _issued(value):
        found.append("NHS number is outside the issued ranges")
    return tuple(found)


def _issued(value: str) -> bool:
    """True when the first nine digits of a valid number are in a range issued to patients."""
    prefix = int(value[:9])
    return (
        400_000_000 <= prefix <= 499_999_999
        or 600_000_000 <= prefix <= 799_999_999
        or 300_000_000 <= prefix <= 399_999_999
        or 10_100_000 <= prefix <= 311_299_999
    )


def not_real_reason(value: str, *, test_environment: bool = False) -> str | None:
    """Why a valid NHS number cannot be a real patient's, or None when it can be.

    `test_environment` accepts the 999 test range and unissued ranges (test systems use them);
    a repeated-digit placeholder is refused everywhere.
    """
    if not is_valid(value):
        return None  # not an NHS number at all: handled as unverified
    if len(set(value)) == 1:
        return "a repeated-digit placeholder"
    if test_environment:
        return None
    if value.startswith("999"):
        return "in the 999 range reserved for testing"
    if not _issued(value):
        return "outside the ranges issued to patients"
    return None
