"""`GET /v1/exports/<resource>.csv|.ndjson`: a list's whole result, streamed as it is read.

Each export takes its list's own filter dependency, `sort` and `archived`, and walks the list
with keyset cursors (`RecordService.walk`), `CHUNK_ROWS` records per query, writing each chunk
while the next is read. The first chunk is read before the response starts, so a bad parameter
is a 422 problem, not a broken download.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response

from crm_api.companies.router import company_filters
from crm_api.companies.service import CompanyService
from crm_api.contacts.router import contact_filters
from crm_api.contacts.service import ContactService
from crm_api.core.listing import ListParams
from crm_api.core.openapi import download, problems
from crm_api.core.records import RecordService
from crm_api.core.responses import CSVDownload, NDJSONDownload
from crm_api.custom_fields.catalog import field_keys
from crm_api.deals.router import deal_filters
from crm_api.deals.service import DealService
from crm_api.deps import SortParam, streaming_service
from crm_api.exports.columns import COMPANIES, CONTACTS, DEALS, Layout
from crm_api.exports.formats import LIST_SEPARATOR, Pages, csv_body, ndjson_body
from crm_api.routing import PrefixRouter, custom_field_parameters

router = PrefixRouter(prefix="/v1/exports", tags=["exports"])

CHUNK_ROWS = 1000
"""Records per query. A chunk is encoded and sent while the next one is read, so memory holds
about two; the first bytes follow the first query."""

ERRORS = problems(403)
Archived = Annotated[bool, Query(description="Export archived records instead of live ones.")]


def _common(resource: str) -> str:
    return (
        f"The whole result of `GET /v1/{resource}` with the same filters: the same query "
        "parameters, checked the same way (`archived=true`, `custom_fields.<key>=<value>`), "
        "and any of its sorts (default `created_at`, then `id`); `limit`, `cursor` and "
        "`include_total` do not apply. An invalid parameter is a 422 problem, answered before "
        "anything is sent; the read scope suffices, as for the list.\n\n"
        f"Streamed as it is read: {CHUNK_ROWS} records per query, each query continuing after "
        "the last record of the one before (keyset, never OFFSET) and read while that one is "
        "sent, so the first bytes come at once and any size takes the same server memory. An "
        "error after the first bytes cuts the transfer (no final chunk): a client sees a broken "
        "download, never a short file that looks whole. A sort on a custom field has no index "
        "to walk: each chunk reads every matching record again, so a large export sorted that way "
        "is slow (about a second per chunk at a million records): filter it down, or sort the file."
        "\n\n"
        "**Not a snapshot.** Each chunk is read as the one before goes out, and shows its "
        "records as they are then. In the default order (`created_at`, which never "
        "changes) every record that exists throughout the export appears exactly once; one "
        "created meanwhile appears if it sorts after the point reached (at the end, ascending), "
        "one archived (or restored) before its chunk is read is left out (or in). Sorted by a "
        "value that changes (`updated_at`, `name`, `amount`, a custom field), a record changed "
        "during the export can move past the point reached and appear twice, or behind it and "
        "not at all. For a stable file, keep the default sort and set `created_before` to the "
        "export's start."
    )


def _csv_description(resource: str, layout: Layout) -> str:
    names = ", ".join(f"`{column.name}`" for column in layout.standard)
    return (
        _common(resource) + "\n\n"
        "**CSV**: UTF-8 without a byte order mark; RFC 4180: a header row, then a row per "
        "record, CRLF line ends, a field quoted when it holds a comma, a quote or a line break "
        "(quotes doubled). A header-only file when nothing matches.\n\n"
        f"Columns: {names}; then `custom_fields.<key>` for every custom field of "
        f"{layout.object_type.value}s defined when the export starts, archived ones included "
        "(their values are still stored), in key order. Nested objects are flattened "
        "(`company.name`). " + (layout.notes + " " if layout.notes else "") + "An empty cell "
        "has no value. Values read as in JSON: timestamps RFC 3339 in UTC, dates `YYYY-MM-DD`, "
        "money decimal strings with the currency's decimals, `true`/`false`, the options of a "
        f"multi_enum joined by `{LIST_SEPARATOR}`.\n\n"
        "Formula injection: a text cell that begins with `=`, `+`, `-`, `@`, a tab or a "
        "carriage return gets a leading `'`, so spreadsheet apps show it instead of running it "
        "as a formula, unless it is a plain number (`-12.5`, a phone such as `+12125550100`). "
        "Drop that `'` when reading the file as data, or use the NDJSON export, which changes "
        "nothing."
    )


def _ndjson_description(resource: str) -> str:
    singular = {"contacts": "contact", "companies": "company", "deals": "deal"}[resource]
    return (
        _common(resource) + "\n\n"
        "**NDJSON**: one JSON object per line, each ended by a line feed, each exactly the "
        f"{singular} `GET /v1/{resource}/{{id}}` returns"
        + (" (with its contacts and line items)" if resource == "deals" else "")
        + ". An empty body when nothing matches."
    )


def add_export_routes(
    router: PrefixRouter,
    *,
    resource: str,
    service: Callable[..., Awaitable[RecordService]],
    filters: Callable[..., Awaitable[dict[str, Any]]],
    layout: Layout,
) -> None:
    """`/<resource>.csv` and `/<resource>.ndjson` on `router`, taking the list's `filters`."""
    ServiceDep = Annotated[RecordService, Depends(service)]  # noqa: N806
    FiltersDep = Annotated[dict[str, Any], Depends(filters)]  # noqa: N806

    async def walk(
        request: Request,
        service: RecordService,
        filters: dict[str, Any],
        sort: str | None,
        archived: bool,
    ) -> Pages:
        params = ListParams(limit=CHUNK_ROWS, sort=sort, archived=archived)
        return await service.walk(params, filters, custom_field_parameters(request))

    @router.get(
        f"/{resource}.csv",
        operation_id=f"exports_{resource}_csv",
        response_class=CSVDownload,
        status_code=200,
        responses={**download("text/csv", f"The {resource}, a row each"), **ERRORS},
        summary=f"Export {resource} as CSV (streamed)",
        description=_csv_description(resource, layout),
    )
    async def export_csv(
        request: Request,
        service: ServiceDep,
        filters: FiltersDep,
        sort: SortParam = None,
        archived: Archived = False,
    ) -> Response:
        pages = await walk(request, service, filters, sort, archived)
        keys = await field_keys(service.reader, layout.object_type)
        return CSVDownload(csv_body(pages, layout.columns(keys)), resource)

    @router.get(
        f"/{resource}.ndjson",
        operation_id=f"exports_{resource}_ndjson",
        response_class=NDJSONDownload,
        status_code=200,
        responses={**download("application/x-ndjson", f"The {resource}, a line each"), **ERRORS},
        summary=f"Export {resource} as NDJSON (streamed)",
        description=_ndjson_description(resource),
    )
    async def export_ndjson(
        request: Request,
        service: ServiceDep,
        filters: FiltersDep,
        sort: SortParam = None,
        archived: Archived = False,
    ) -> Response:
        pages = await walk(request, service, filters, sort, archived)
        return NDJSONDownload(ndjson_body(pages), resource)


add_export_routes(
    router,
    resource="contacts",
    service=streaming_service(ContactService),
    filters=contact_filters,
    layout=CONTACTS,
)
add_export_routes(
    router,
    resource="companies",
    service=streaming_service(CompanyService),
    filters=company_filters,
    layout=COMPANIES,
)
add_export_routes(
    router,
    resource="deals",
    service=streaming_service(DealService),
    filters=deal_filters,
    layout=DEALS,
)
