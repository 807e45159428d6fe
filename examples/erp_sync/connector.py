"""A reference ERP connector: turns every won deal into exactly one order.

    python examples/erp_sync/connector.py --api http://127.0.0.1:8000 --key crm_… \
        --erp erp.sqlite3 [--once]

It follows `GET /v1/events?types=deal.won` from a cursor it keeps in its own SQLite "ERP", and
for each won deal, in order:

1. creates the order and its lines from the event alone (`deal.won` carries the line items and
   the company), in one ERP transaction, unless the deal already has an order;
2. writes the order number back as the deal's `external_id`, with `If-Match` (the version it
   read) and an `Idempotency-Key` naming the order, so a retry after a crash replays instead of
   writing twice; a stale version (412) is re-read and retried;
3. only then moves its cursor past the event.

Killed at any moment (SIGKILL included) and restarted, it re-reads from its cursor: step 1
finds the order it made, step 2 finds the number already written or replays, so every won deal
ends with exactly one order, and carries its number.
"""

import argparse
import sqlite3
import sys
import time
from typing import Any

import httpx

SCHEMA = """
CREATE TABLE IF NOT EXISTS feed (id INTEGER PRIMARY KEY CHECK (id = 1), cursor TEXT);
CREATE TABLE IF NOT EXISTS orders (
    number TEXT PRIMARY KEY,
    deal_id TEXT NOT NULL UNIQUE,
    customer TEXT,
    currency TEXT NOT NULL,
    total TEXT NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS order_lines (
    order_number TEXT NOT NULL REFERENCES orders (number),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    quantity TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    total TEXT NOT NULL,
    PRIMARY KEY (order_number, position)
);
"""


class Erp:
    """The connector's own database: orders, their lines, and the feed cursor."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def cursor(self) -> str | None:
        row = self.db.execute("SELECT cursor FROM feed WHERE id = 1").fetchone()
        return row[0] if row else None

    def save_cursor(self, cursor: str) -> None:
        self.db.execute(
            "INSERT INTO feed (id, cursor) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor",
            (cursor,),
        )

    def order_for(self, deal: dict[str, Any]) -> str:
        """The deal's order number: the existing order's, or a new order's, made atomically."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute(
                "SELECT number FROM orders WHERE deal_id = ?", (deal["id"],)
            ).fetchone()
            if row:
                self.db.execute("COMMIT")
                return str(row[0])
            (count,) = self.db.execute("SELECT count(*) FROM orders").fetchone()
            number = f"SO-{count + 1:06d}"
            company = deal.get("company") or {}
            self.db.execute(
                "INSERT INTO orders (number, deal_id, customer, currency, total) "
                "VALUES (?, ?, ?, ?, ?)",
                (number, deal["id"], company.get("name"), deal["currency"], deal["amount"]),
            )
            for position, line in enumerate(deal["line_items"]):
                self.db.execute(
                    "INSERT INTO order_lines VALUES (?, ?, ?, ?, ?, ?)",
                    (number, position, line["name"], line["quantity"], line["unit_price"],
                     line["amount"]),
                )  # fmt: skip
            self.db.execute("COMMIT")
            return number
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def mark_synced(self, number: str) -> None:
        self.db.execute("UPDATE orders SET synced = 1 WHERE number = ?", (number,))


class Crm:
    def __init__(self, api: str, key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        self.http = httpx.Client(base_url=api, headers=headers, timeout=30)

    def won_deals(self, cursor: str | None) -> tuple[list[dict[str, Any]], str]:
        params = {"types": "deal.won", "limit": "50"}
        if cursor:
            params["after"] = cursor
        response = self.http.get("/v1/events", params=params)
        response.raise_for_status()
        page = response.json()
        return page["data"], page["next_cursor"]

    def write_order_number(self, deal_id: str, number: str) -> None:
        """Sets the deal's external_id to `number`; safe to repeat."""
        path = f"/v1/deals/{deal_id}"
        while True:
            current = self.http.get(path)
            current.raise_for_status()
            if current.json()["external_id"] == number:
                return
            response = self.http.patch(
                path,
                json={"external_id": number},
                headers={"If-Match": current.headers["etag"], "Idempotency-Key": f"order-{number}"},
            )
            if response.status_code == 412:  # changed since we read it: read again
                continue
            if response.status_code == 409 and "Idempotency-Key" in response.text:
                time.sleep(0.2)  # our earlier attempt is still running
                continue
            response.raise_for_status()
            return


def sync(erp: Erp, crm: Crm) -> int:
    """Handles every won deal the feed has now; returns how many events it handled."""
    handled = 0
    while True:
        events, next_cursor = crm.won_deals(erp.cursor())
        for event in events:
            deal = event["data"]
            number = erp.order_for(deal)
            crm.write_order_number(deal["id"], number)
            erp.mark_synced(number)
            handled += 1
        erp.save_cursor(next_cursor)
        if not events:
            return handled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--erp", required=True, help="the ERP's SQLite file")
    parser.add_argument("--once", action="store_true", help="sync what is there, then exit")
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    erp, crm = Erp(args.erp), Crm(args.api, args.key)
    while True:
        try:
            sync(erp, crm)
        except httpx.HTTPError as error:  # the API is down or busy: try again
            print(f"sync failed, retrying: {error}", file=sys.stderr)
        if args.once:
            return
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
