"""Canonical forms of emails, phones, domains and names (crm_api.core.normalize)."""

import random

import pytest
from email_validator import EmailNotValidError, validate_email

from crm_api.core.normalize import (
    _plain_email,
    collapse_whitespace,
    normalize_domain,
    normalize_email,
    normalize_phone,
)


def _full_check(value: str) -> str | None:
    """What email_validator alone makes of `value` (None: invalid)."""
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return None
    return (result.ascii_email or result.normalized).lower()


def _address_like(rng: random.Random) -> str:
    """Mostly plain addresses, with pieces that sit on the plain shape's edges mixed in: odd
    characters, dots, dashes, long parts, reserved domains, Punycode and R-LDH labels."""
    plain = ["a", "Z", "0", "_", "+", "-", "jo", "x" * 20]
    odd = [".", "..", "--", "xn--", "ab--", "!", "'", "é", " ", "@", "x" * 63, "y" * 64,
           "local", "test", "arpa", "onion", "1", "9", "-"]  # fmt: skip

    def part(most: int) -> str:
        count = rng.randint(0 if rng.random() < 0.05 else 1, most)
        return "".join(rng.choice(odd if rng.random() < 0.08 else plain) for _ in range(count))

    local = ".".join(part(3) for _ in range(rng.randint(1, 3)))
    labels = [part(3) for _ in range(rng.randint(1, 4))]
    tld = rng.choice(["com", "de", "c0m", "x", "COM", "local", "test", part(2)])
    return f"{local}@{'.'.join([*labels, tld])}"


class TestCollapseWhitespace:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("  Mary   Ann  ", "Mary Ann"),
            ("a\t b\n\r c", "a b c"),
            ("a\u00a0b", "a b"),
            ("single", "single"),
            ("", ""),
            (" \t\n ", ""),
        ],
    )
    def test_collapses_and_trims(self, given: str, expected: str) -> None:
        assert collapse_whitespace(given) == expected


class TestNormalizeEmail:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("jane@example.com", "jane@example.com"),
            ("  Jane.Doe@Example.COM ", "jane.doe@example.com"),
            ("JANE+CRM@example.com", "jane+crm@example.com"),
            ("jane+tag+more@sub.example.co.uk", "jane+tag+more@sub.example.co.uk"),
        ],
    )
    def test_trims_lower_cases_and_keeps_plus_tags(self, given: str, expected: str) -> None:
        assert normalize_email(given) == expected

    def test_is_idempotent(self) -> None:
        once = normalize_email(" Jane+X@Example.com")

        assert normalize_email(once) == once

    @pytest.mark.parametrize(
        "given",
        [
            "",
            "   ",
            "jane",
            "jane@",
            "@example.com",
            "jane@localhost",
            "two@@example.com",
            "a b@example.com",
            "jane@exa mple.com",
            "jane@example..com",
        ],
    )
    def test_rejects_invalid_addresses(self, given: str) -> None:
        with pytest.raises(ValueError, match="not a valid email"):
            normalize_email(given)

    def test_the_fast_path_agrees_with_email_validator(self) -> None:
        rng = random.Random(20261206)
        taken = 0
        for _ in range(30_000):
            value = _address_like(rng)
            plain = _plain_email(value)
            if plain is not None:
                taken += 1
                assert plain == _full_check(value), value
            assert normalize_email_or_none(value) == _full_check(value.strip()), value
        assert taken > 1000  # the shape is common enough that the comparison means something

    @pytest.mark.parametrize(
        "given",
        ["jane@mail.local", "jane@x.onion", "a@b.test", "a@xn--bcher-kva.de", "a@ab--cd.com",
         "a.@example.com", "a@-example.com", "a@example-.com", "a@example.c0m",
         f"{'a' * 65}@example.com", f"a@{'b' * 64}.com", "Jane.O'Hara@example.com"],
    )  # fmt: skip
    def test_the_fast_path_leaves_the_unusual_to_the_full_check(self, given: str) -> None:
        assert _plain_email(given) is None
        assert normalize_email_or_none(given) == _full_check(given)


def normalize_email_or_none(value: str) -> str | None:
    try:
        return normalize_email(value)
    except ValueError:
        return None


class TestNormalizePhone:
    @pytest.mark.parametrize(
        ("given", "region", "expected"),
        [
            ("(415) 555-2671", "US", "+14155552671"),
            ("415.555.2671", "US", "+14155552671"),
            ("415 555 2671", "us", "+14155552671"),
            ("+1 415 555 2671", "GB", "+14155552671"),
            ("+44 20 7946 0958", "US", "+442079460958"),
            ("020 7946 0958", "GB", "+442079460958"),
            ("+14155552671", "DE", "+14155552671"),
        ],
    )
    def test_formats_as_e164(self, given: str, region: str, expected: str) -> None:
        assert normalize_phone(given, region) == expected

    def test_the_region_decides_how_a_national_number_is_read(self) -> None:
        assert normalize_phone("020 7946 0958", "GB") == "+442079460958"
        with pytest.raises(ValueError, match="region US"):
            normalize_phone("020 7946 0958", "US")

    @pytest.mark.parametrize("given", ["", "not a phone", "12345", "555-0100", "+999 123"])
    def test_rejects_invalid_numbers(self, given: str) -> None:
        with pytest.raises(ValueError, match="phone number"):
            normalize_phone(given, "US")


class TestNormalizeDomain:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("example.com", "example.com"),
            ("EXAMPLE.com", "example.com"),
            ("  Example.COM  ", "example.com"),
            ("example.com.", "example.com"),
            ("example.com:8080", "example.com"),
            ("www.example.com", "example.com"),
            ("https://www.Example.com:8080/path?q=1#top", "example.com"),
            ("http://user:secret@example.com/", "example.com"),
            ("user@example.com", "example.com"),
            ("User@Sub.Example.com", "sub.example.com"),
            ("shop.example.co.uk", "shop.example.co.uk"),
            ("bücher.de", "xn--bcher-kva.de"),
            ("https://BÜCHER.de/kontakt", "xn--bcher-kva.de"),
            ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ],
    )
    def test_reduces_to_the_bare_ascii_host(self, given: str, expected: str) -> None:
        assert normalize_domain(given) == expected

    def test_is_idempotent(self) -> None:
        once = normalize_domain("https://www.Bücher.de:443/x")

        assert normalize_domain(once) == once

    @pytest.mark.parametrize("given", ["localhost", "com", "LOCALHOST:8080", "user@localhost"])
    def test_rejects_a_domain_without_a_dot(self, given: str) -> None:
        with pytest.raises(ValueError, match="two labels"):
            normalize_domain(given)

    @pytest.mark.parametrize(
        "given",
        ["", "   ", "http://", "exa mple.com", "example..com", "-bad-.com", f"{'a' * 64}.com"],
    )
    def test_rejects_what_is_not_a_domain(self, given: str) -> None:
        with pytest.raises(ValueError, match="domain"):
            normalize_domain(given)
