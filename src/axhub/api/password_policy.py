"""What a new password must not be: too short, the e-mail (or its name part), or a common one.

Common passwords are the first thing a guesser tries, and throttling only slows guessing; a
password from the top of every leaked list falls within the free attempts. The list below is the
head of the published frequency lists (SecLists / NCSC top passwords) plus the Korean keyboard
patterns common here, restricted to what our 10-character minimum still lets through.
"""

from __future__ import annotations

import re

from axhub.core.errors import InputProblem, InputValidationError

MIN_LENGTH = 10

_COMMON = frozenset(
    [
        "1234567890",
        "0123456789",
        "12345678910",
        "123456789a",
        "1234567890a",
        "123456789q",
        "0987654321",
        "1111111111",
        "1q2w3e4r5t",
        "1q2w3e4r5t6y",
        "1q2w3e4r!@",
        "1qaz2wsx3edc",
        "q1w2e3r4t5",
        "q1w2e3r4t5y6",
        "qwer123456",
        "qwerty1234",
        "qwertyuiop",
        "qwertyuiop1",
        "qwerty123456",
        "asdfghjkl",
        "asdfghjkl1",
        "zxcvbnm123",
        "zxcvbnmasd",
        "asdf123456",
        "qwer1234!@",
        "qwer!@#$1234",
        "abcd123456",
        "abcd1234!@",
        "abcdefghij",
        "a123456789",
        "aa12345678",
        "password12",
        "password123",
        "password1234",
        "password!@#",
        "passw0rd12",
        "p@ssw0rd12",
        "p@ssword123",
        "iloveyou12",
        "iloveyou123",
        "admin12345",
        "admin123456",
        "administrator",
        "administrator1",
        "welcome123",
        "welcome1234",
        "letmein123",
        "changeme123",
        "changeme12",
        "trustno1234",
        "football123",
        "baseball123",
        "superman123",
        "sunshine123",
        "princess123",
        "dragon1234",
        "monkey12345",
        "master1234",
        "starwars123",
        "whatever123",
        "computer123",
        "internet123",
        "samsung123",
        "samsung1234",
        "korea12345",
        "korea123456",
        "seoul12345",
        "love123456",
        "sarang1234",
        "saranghae1",
        "saranghae12",
        "dkssud1234",
        "dlfdltkatk",
        "qkrwjdgns1",
        "tkfkdgo1234",
        "gkdlfn1234",
        "abc1234567",
        "abcd12345!",
        "zaq12wsx12",
        "1qaz2wsx!@",
        "q1w2e3r4!@",
        "qwe123qwe123",
        "asd123asd123",
        "123qwe123qwe",
        "123qweasd!",
        "123qweasdzxc",
        "qweasdzxc123",
        "qweasdzxc1",
        "1234qwer!@",
        "1234qwerasdf",
        "12341234aa",
        "11223344556",
        "1122334455",
    ]
)


def _simple(password: str) -> bool:
    """One repeated character, or a short pattern repeated (abcabcabca, 12121212..)."""
    for size in range(1, 5):
        unit = password[:size]
        if unit and (unit * (len(password) // size + 1))[: len(password)] == password:
            return True
    return False


def problems(password: str, email: str = "") -> list[str]:
    """Why ``password`` may not be used (empty when it may)."""
    found = []
    lowered = password.lower()
    email = email.strip().lower()
    name = email.split("@", 1)[0]
    if len(password) < MIN_LENGTH:
        found.append(f"shorter than {MIN_LENGTH} characters")
    if email and (lowered == email or (len(name) >= 4 and name in lowered and len(lowered) - len(name) < 4)):
        found.append("the e-mail address (or its name part) as password")
    if lowered in _COMMON or re.sub(r"[!@#$%^&*.]+$", "", lowered) in _COMMON or _simple(lowered):
        found.append("a common, easily guessed password")
    return found


def check(password: str, email: str = "", field: str = "password") -> None:
    """Raise a 422-style ``InputValidationError`` naming the field when the password is refused."""
    found = problems(password, email)
    if found:
        raise InputValidationError(
            [InputProblem("request", None, field, f"password refused: {p}") for p in found],
            hint="choose a longer passphrase that is not your e-mail, e.g. four unrelated words",
        )
