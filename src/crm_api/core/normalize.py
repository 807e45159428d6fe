"""Canonical forms for emails, phones, domains and names, shared by every slice."""

import ipaddress
import re
from urllib.parse import urlsplit

import email_validator
import idna
import phonenumbers
from email_validator import EmailNotValidError, validate_email


def collapse_whitespace(value: str) -> str:
    return " ".join(value.split())


def sort_key_text(text: str, max_length: int) -> str:
    """A case-insensitive sort and search key. Case folding can lengthen text ("ß" → "ss"), so
    it is cut to the column's length: the order of very long names is approximate."""
    return text.casefold()[:max_length]


# The everyday shape of an address: a dot-atom of letters, digits and `_+-` before the @, and
# after it LDH labels (no `--`, so no Punycode) ending in an alphabetic TLD, within the lengths
# RFC 5321 sets. Every address of this shape is valid as written, so it skips email_validator's
# full check (Unicode, quoting, IDNA), which costs more than the rest of a create.
_PLAIN_EMAIL = re.compile(
    r"(?=.{1,254}\Z)(?=[^@]{1,64}@)[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
    r"@(?=.{1,253}\Z)(?:(?!-)(?!.*--)[A-Za-z0-9-]{1,63}(?<!-)\.)+[A-Za-z]{2,63}\Z",
    re.ASCII,
)
_RESERVED_DOMAINS = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)


def _plain_email(value: str) -> str | None:
    """`value` lower-cased if it has the plain shape and no reserved domain; else None."""
    if not _PLAIN_EMAIL.match(value):
        return None
    lowered = value.lower()
    domain = lowered.rpartition("@")[2]
    if any(domain == name or domain.endswith("." + name) for name in _RESERVED_DOMAINS):
        return None
    return lowered


def normalize_email(value: str) -> str:
    """Trimmed, validated (syntax only, no DNS) and lower-cased."""
    value = value.strip()
    plain = _plain_email(value)
    if plain is not None:
        return plain
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(f"not a valid email address: {error}") from None
    # The ASCII (punycode) form, where there is one, so one mailbox has one spelling.
    return (result.ascii_email or result.normalized).lower()


def normalize_phone(value: str, default_region: str) -> str:
    """E.164; numbers without a leading + are read in `default_region`."""
    try:
        number = phonenumbers.parse(value, default_region.upper())
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"not a valid phone number for region {default_region.upper()}")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def normalize_domain(value: str) -> str:
    """The bare host of a domain, URL or email: no scheme, `www.`, port or path; IDNA-encoded."""
    text = value.strip().lower()
    if "://" not in text and "@" in text:
        text = text.rsplit("@", 1)[1]
    try:
        host = urlsplit(text if "://" in text else f"//{text}").hostname
    except ValueError:
        host = None
    if not host:
        raise ValueError("not a domain")
    host = host.rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise ValueError("not a valid domain name") from None
    if _is_ip_address(ascii_host):
        raise ValueError("a company domain must be a name, not an IP address")
    if "." not in ascii_host or len(ascii_host) > 253:
        raise ValueError("a domain needs at least two labels, e.g. example.com")
    return ascii_host
