"""Token records for the server's auth. Kept apart from the Store protocol: only the server and the
`runyard token` commands manage tokens, and never over HTTP."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from runyard.errors import NotFoundError
from runyard.store import schema as t
from runyard.store.records import TokenRecord
from runyard.store.sql_base import SqlBase


class SqlTokens(SqlBase):
    @staticmethod
    def _to_token(row: Any) -> TokenRecord:
        return TokenRecord(
            token_id=row.token_id,
            scope=row.scope,
            secret_hash=row.secret_hash,
            created_time=row.created_time,
            name=row.name,
            run_id=row.run_id,
            expires_time=row.expires_time,
            revoked_time=row.revoked_time,
            compute=tuple(c for c in (row.compute or "").split(",") if c),
        )

    def create_token(self, token: TokenRecord) -> None:
        with self._write() as conn:
            conn.execute(
                t.tokens.insert().values(
                    token_id=token.token_id,
                    name=token.name,
                    secret_hash=token.secret_hash,
                    scope=token.scope,
                    run_id=token.run_id,
                    created_time=token.created_time,
                    expires_time=token.expires_time,
                    revoked_time=None,
                    compute=",".join(token.compute) or None,
                )
            )

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(t.tokens).where(t.tokens.c.token_id == token_id)).first()
        return None if row is None else self._to_token(row)

    def list_tokens(self, include_run_tokens: bool = False) -> list[TokenRecord]:
        query = sa.select(t.tokens).order_by(t.tokens.c.created_time)
        if not include_run_tokens:
            query = query.where(t.tokens.c.scope != "run")
        with self._read() as conn:
            return [self._to_token(r) for r in conn.execute(query)]

    def revoke_token(self, token_id: str) -> None:
        with self._write() as conn:
            done = conn.execute(
                t.tokens.update()
                .where(t.tokens.c.token_id == token_id, t.tokens.c.revoked_time.is_(None))
                .values(revoked_time=time.time())
            ).rowcount
        if not done and self.get_token(token_id) is None:
            raise NotFoundError(f"No token {token_id!r}. List tokens with `runyard token list`.")
