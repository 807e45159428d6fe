"""Canonical forms of emails, phones, domains and names (crm_api.core.normalize)."""

import pytest

from crm_api.core.normalize import (
    collapse_whitespace,
    normalize_domain,
    normalize_email,
    normalize_phone,
)


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
