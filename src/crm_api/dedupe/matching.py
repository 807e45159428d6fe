"""How duplicates are recognized: comparable forms of names, emails and domains, blocks that
keep fuzzy comparisons near-linear, and the grouping of evidence into scored groups.

Pure functions over plain values; the SQL that feeds them is in `repository`.

- **Exact evidence** (score 100): records sharing a key. Emails compare without a `+tag` in the
  local part (`ann+news@x.com` is `ann@x.com`, as the data-quality metric counts them), phones
  as stored (E.164), company domains as their registrable domain (`eu.acme.com` is `acme.com`).
  A key shared by more than `MAX_SHARING` records is something shared, not a duplicate.
- **Fuzzy evidence**: names compared with rapidfuzz (0-100: the normalized Indel similarity
  1 - distance / total length, `ratio`, of the names as written and, `token_sort_ratio`, with
  their words sorted, whichever is higher, so word order does not matter) after folding
  case, accents and punctuation (and, for companies, a leading "the" and trailing legal forms
  such as "Inc" or "GmbH"). Pairs scoring at least `NAME_THRESHOLD` are evidence. Only records
  sharing a *block* are compared: a word prefix (contacts: a word's initial, within one company;
  companies: a word's first three letters). A block larger than `MAX_BLOCK` is split by longer
  prefixes; one still too large at whole words is too common a word to be evidence and is
  skipped (its records still meet through their other words).
- **Groups** are the connected components of the evidence. A group's score is its weakest link:
  the lowest score among the evidence that joins its records (a maximum spanning tree's
  smallest edge), so every record is tied to the others at least that strongly.
"""

import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from rapidfuzz import fuzz, process

EXACT = 100.0
NAME_THRESHOLD = 90.0
"""The least similarity of two names that counts as evidence: "Jon Smith" and
"John Smith" score 94.7, "Ann Smith" and "Dan Smith" 88.9."""
MAX_BLOCK = 500
MAX_SHARING = 20
"""A key shared by more records than this is not evidence of duplicates but of something
shared: a switchboard's phone, a team inbox, a hosting platform's domain (`myshopify.com`)."""
SCORERS = (fuzz.ratio, fuzz.token_sort_ratio)
"""Two names' similarity is the better of the two: as written, and with their words sorted
(a swap of first and last name scores 100; a typo that reorders sorted words does not hurt)."""

LEGAL_FORMS = frozenset((
    "ab", "ag", "as", "bv", "co", "company", "corp", "corporation", "gmbh", "inc",
    "incorporated", "kg", "kk", "limited", "llc", "llp", "lp", "ltd", "nv", "oy", "plc",
    "pty", "sa", "sarl", "sas", "se", "spa", "srl",
))  # fmt: skip


class DuplicateReasonKind(StrEnum):
    email = "email"
    phone = "phone"
    domain = "domain"
    name_and_company = "name_and_company"
    company_name = "company_name"


@dataclass(frozen=True, slots=True)
class Evidence:
    """Records that look like one: all of `record_ids` share the key (exact evidence) or the
    two of them have similar names (fuzzy evidence, `score` below 100 or equal names)."""

    kind: DuplicateReasonKind
    detail: str
    record_ids: tuple[UUID, ...]
    score: float


@dataclass(frozen=True, slots=True)
class Group:
    record_ids: tuple[UUID, ...]
    """Sorted: the oldest record first (ids are time-ordered)."""
    score: float
    reasons: tuple[Evidence, ...]

    @property
    def anchor(self) -> UUID:
        return self.record_ids[0]


# -- comparable forms ----------------------------------------------------------------------------


_ASCII_FOLD = str.maketrans({chr(code): chr(code).lower() if chr(code).isalnum() else " "
                             for code in range(128)})  # fmt: skip


def fold(text: str | None) -> str:
    """Lower-case words without accents or punctuation: "José  O'Neil" → "jose o neil"."""
    if not text:
        return ""
    if text.isascii():  # the same, for most names, several times faster
        return " ".join(text.translate(_ASCII_FOLD).split())
    decomposed = unicodedata.normalize("NFKD", text)
    kept = (
        char if char.isalnum() else " " for char in decomposed if not unicodedata.combining(char)
    )
    return " ".join("".join(kept).casefold().split())


def person_name(first_name: str | None, last_name: str | None) -> str:
    return fold(f"{first_name or ''} {last_name or ''}")


def company_name(name: str | None) -> str:
    """The words of a company name that tell it apart: no leading "the", no trailing legal
    forms ("The Acme Co., Inc." → "acme")."""
    words = fold(name).split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    while len(words) > 1 and words[-1] in LEGAL_FORMS:
        words.pop()
    return " ".join(words)


def email_key(email: str) -> str:
    """The address without a `+tag` in its local part (stored emails are lower-cased)."""
    local, at, domain = email.rpartition("@")
    base = local.partition("+")[0]
    return f"{base}{at}{domain}" if base else email


def has_tag(email: str) -> bool:
    return email_key(email) != email


_SECOND_LEVEL = frozenset({"ac", "co", "com", "edu", "gov", "ne", "net", "or", "org"})


def domain_key(domain: str | None) -> str | None:
    """The registrable part of a (normalized) domain, by a rule of thumb rather than the public
    suffix list: the last two labels, or three under a country's second level
    (`shop.acme.co.uk` → `acme.co.uk`)."""
    if not domain:
        return None
    labels = domain.split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


# -- evidence ------------------------------------------------------------------------------------


def shared_keys(
    kind: DuplicateReasonKind, keyed: Iterable[tuple[UUID, str | None]]
) -> list[Evidence]:
    """Exact evidence: one per key that two to `MAX_SHARING` records share."""
    by_key: dict[str, set[UUID]] = defaultdict(set)
    for record_id, key in keyed:
        if key:
            by_key[key].add(record_id)
    return [
        Evidence(kind, key, tuple(sorted(ids)), EXACT)
        for key, ids in sorted(by_key.items())
        if 1 < len(ids) <= MAX_SHARING
    ]


def similar_names(
    kind: DuplicateReasonKind, named: Iterable[tuple[UUID, str]], prefix_length: int
) -> list[Evidence]:
    """Fuzzy evidence among records whose folded names share a block (see the module)."""
    by_name: dict[str, list[UUID]] = defaultdict(list)
    for record_id, name in named:
        if name:
            by_name[name].append(record_id)
    evidence = [
        Evidence(kind, name, tuple(sorted(ids)), EXACT)
        for name, ids in by_name.items()
        if len(ids) > 1
    ]
    if len(by_name) < 2:
        return evidence
    oldest = {name: min(ids) for name, ids in by_name.items()}
    names = sorted(by_name)
    scores: dict[tuple[int, int], float] = {}
    for block in token_blocks(names, prefix_length):
        for position, first in enumerate(block[:-1]):
            others = [names[index] for index in block[position + 1 :]]
            for scorer in SCORERS:
                for _, score, offset in process.extract_iter(
                    names[first],
                    others,
                    scorer=scorer,
                    processor=None,
                    score_cutoff=NAME_THRESHOLD,
                ):
                    pair = (first, block[position + 1 + offset])
                    scores[pair] = max(score, scores.get(pair, 0.0))
    for (first, second), score in scores.items():
        # Named in the order of their records (the oldest first), as `record_ids`.
        a, b = sorted((names[first], names[second]), key=oldest.__getitem__)
        ids = (oldest[a], oldest[b])
        evidence.append(Evidence(kind, f"{a} ~ {b}", ids, round(score, 1)))
    return evidence


def token_blocks(texts: Sequence[str], length: int) -> Iterator[list[int]]:
    """Indexes (ascending) of the texts sharing a word prefix of `length` characters, block by
    block; oversized blocks are split by longer prefixes (see the module)."""
    words = [frozenset(text.split()) for text in texts]
    yield from _sized(words, _by_prefix(words, range(len(texts)), "", length), length)


def _by_prefix(
    words: Sequence[frozenset[str]], indexes: Iterable[int], within: str, length: int
) -> dict[str, list[int]]:
    blocks: dict[str, list[int]] = defaultdict(list)
    for index in indexes:
        for prefix in {word[:length] for word in words[index] if word.startswith(within)}:
            blocks[prefix].append(index)
    return blocks


def _sized(
    words: Sequence[frozenset[str]], blocks: dict[str, list[int]], length: int
) -> Iterator[list[int]]:
    for prefix in sorted(blocks):
        members = blocks[prefix]
        if len(members) < 2:
            continue
        if len(members) <= MAX_BLOCK:
            yield members
            continue
        # Words no longer than the prefix cannot be told apart further: too common to count.
        longer = _by_prefix(words, members, prefix, length + 1)
        longer.pop(prefix, None)
        yield from _sized(words, longer, length + 1)


# -- groups --------------------------------------------------------------------------------------


def group(evidence: Iterable[Evidence]) -> list[Group]:
    """The connected components of the evidence, by ascending anchor (oldest record).

    Evidence is taken strongest first (Kruskal): exact evidence is always a reason; fuzzy
    evidence only when it joins records not already joined, so a group lists at most one
    fuzzy reason per record it adds. Reasons are listed strongest first, then by kind and ids."""
    parent: dict[UUID, UUID] = {}

    def root(record_id: UUID) -> UUID:
        parent.setdefault(record_id, record_id)
        while parent[record_id] != record_id:
            parent[record_id] = parent[parent[record_id]]
            record_id = parent[record_id]
        return record_id

    exact: list[Evidence] = []
    fuzzy: list[Evidence] = []
    for item in evidence:
        if len(item.record_ids) > 1:
            (exact if item.score == EXACT and item.kind in EXACT_KINDS else fuzzy).append(item)
    kept: list[Evidence] = []
    # Exact evidence joins in any order; fuzzy evidence in a fixed one, strongest first.
    for item in [*exact, *sorted(fuzzy, key=_strongest_first)]:
        roots = {root(record_id) for record_id in item.record_ids}
        if len(roots) > 1 or item.score == EXACT:
            first, *rest = sorted(roots)
            for other in rest:
                parent[other] = first
            kept.append(item)
    members: dict[UUID, list[UUID]] = defaultdict(list)
    for record_id in parent:
        members[root(record_id)].append(record_id)
    reasons: dict[UUID, list[Evidence]] = defaultdict(list)
    for item in kept:
        reasons[root(item.record_ids[0])].append(item)
    groups = [
        Group(
            record_ids=tuple(sorted(ids)),
            score=min(item.score for item in reasons[key]),
            reasons=tuple(sorted(reasons[key], key=_strongest_first)),
        )
        for key, ids in members.items()
        if len(ids) > 1
    ]
    return sorted(groups, key=lambda found: found.anchor)


EXACT_KINDS = frozenset(
    {DuplicateReasonKind.email, DuplicateReasonKind.phone, DuplicateReasonKind.domain}
)


def _strongest_first(item: Evidence) -> tuple[float, str, tuple[UUID, ...]]:
    return (-item.score, item.kind.value, item.record_ids)
