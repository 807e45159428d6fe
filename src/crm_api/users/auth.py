"""API key authentication: a fast hash and an in-process cache, so a request costs no slow hash
and, while cached, no database round trip."""

import hashlib
import secrets
import time
from collections.abc import Callable
from uuid import UUID

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import Database
from crm_api.core.enums import Role
from crm_api.core.errors import Unauthorized
from crm_api.core.ids import utcnow
from crm_api.core.principal import Principal
from crm_api.core.reader import Reader
from crm_api.users.repository import ApiKeyRepository

KEY_PREFIX = "crm_"
_PREFIX_SHOWN = 12


def generate_api_key() -> tuple[str, str, str]:
    """A new key as (secret, shown prefix, stored hash). 256 bits of entropy."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return secret, secret[:_PREFIX_SHOWN], hash_api_key(secret)


def hash_api_key(secret: str) -> str:
    # Keys are random 256-bit strings, so a plain SHA-256 resists guessing as well as a slow
    # password hash would, at a fraction of the cost per request.
    return hashlib.sha256(secret.encode()).hexdigest()


class Authenticator:
    """Maps `Authorization: Bearer …` to a Principal, caching verified keys for `ttl` seconds.

    The cache is per process: a revoked key or deactivated user is forgotten at once in the
    process that handled the change, and within `ttl` seconds everywhere else.
    """

    def __init__(self, db: Database, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._cache: dict[str, tuple[Principal, float]] = {}
        # Bumped on every forget: a load that overlapped one may have read what was just
        # changed, so its result is used once but not cached.
        self._generation = 0

    async def authenticate(self, authorization: str | None) -> Principal:
        secret = _bearer_token(authorization)
        key_hash = hash_api_key(secret)
        cached = self._cache.get(key_hash)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        generation = self._generation
        principal = await self._load(key_hash)
        if generation == self._generation:
            self._cache[key_hash] = (principal, now + self.ttl)
        return principal

    async def _load(self, key_hash: str) -> Principal:
        async with self.db.sessionmaker() as session:
            keys = ApiKeyRepository(session, Reader(self.db, session))
            row = await keys.principal_by_hash(key_hash)
            if row is None:
                raise Unauthorized("The API key is unknown, revoked, or its user is inactive.")
            # last_used_at is refreshed when the cache entry is, so it is accurate to `ttl`.
            await keys.touch(row["api_key_id"], utcnow())
            await session.commit()
        return Principal(
            user_id=row["user_id"],
            role=Role(row["role"]),
            api_key_id=row["api_key_id"],
            scopes=frozenset(row["scopes"]),
        )

    def forget_user(self, session: AsyncSession, user_id: UUID) -> None:
        """Drop the user's cached keys once `session` commits (so role and active changes
        apply from the next request on)."""
        self._forget_after_commit(session, lambda p: p.user_id == user_id)

    def forget_key(self, session: AsyncSession, key_id: UUID) -> None:
        self._forget_after_commit(session, lambda p: p.api_key_id == key_id)

    def _forget_after_commit(
        self, session: AsyncSession, matches: Callable[[Principal], bool]
    ) -> None:
        # Forgetting before the commit would let a concurrent request re-cache the old state.
        event.listen(
            session.sync_session, "after_commit", lambda _: self._forget(matches), once=True
        )

    def _forget(self, matches: Callable[[Principal], bool]) -> None:
        self._generation += 1
        for key_hash, (principal, _) in list(self._cache.items()):
            if matches(principal):
                del self._cache[key_hash]


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Send an API key as `Authorization: Bearer <key>`.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX) or len(token) > 200:
        raise Unauthorized("Send an API key as `Authorization: Bearer <key>`.")
    return token
