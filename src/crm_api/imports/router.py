"""`/v1/imports`: upload a CSV file, follow the job, read its failed rows, cancel it."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Form, Request
from starlette.responses import Response, StreamingResponse

from crm_api.core.openapi import READ, problems
from crm_api.core.responses import JSONBody
from crm_api.core.schemas import page_of
from crm_api.custom_fields.models import ObjectType
from crm_api.deps import ContextDep, ListParamsDep
from crm_api.imports.models import ImportStatus
from crm_api.imports.schemas import ImportRead, ImportUpload
from crm_api.imports.service import ImportService
from crm_api.routing import PrefixRouter, page_response

PREFIX = "/v1/imports"
router = PrefixRouter(prefix=PREFIX, tags=["imports"])


def _service(request: Request, context: ContextDep) -> ImportService:
    settings = request.app.state.settings
    return ImportService(context.session, context.reader, context.principal, settings)


Service = Annotated[ImportService, Depends(_service)]
Upload = Annotated[ImportUpload, Form(media_type="multipart/form-data")]

CREATE_DESCRIPTION = """\
Uploads a CSV file and queues a job that writes its rows; the worker (`crm-api worker`, or the
one inside `crm-api serve`) runs it in chunks, each chunk in its own transaction. Follow it with
`GET /v1/imports/{import_id}`.

**The file**: UTF-8 (a byte order mark is fine); the first non-blank row is the header; `,`, `;`,
tab or `|` between cells (see `delimiter`); quoted cells may hold delimiters, quotes (`""`) and
line breaks. Blank rows are not rows: they are neither counted nor imported. At most
`CRM_IMPORT_MAX_BYTES` (default 50 MiB: the whole upload, else 413) and `CRM_IMPORT_MAX_ROWS`
data rows (default 1,000,000). The file is checked, counted (`total_rows`) and stored in the
database now: 422 names `body.file` for a file that is not UTF-8, not readable CSV (an
unterminated quote, say) or has no header row or too many rows.

**Rows**: each row becomes the body `POST /v1/<things>` takes, through `mapping`: a cell is
trimmed, an empty cell sets nothing, custom field cells are converted to the field's type
(numbers; `true`/`false`/`yes`/`no`/`1`/`0`; dates `YYYY-MM-DD`; multi_enum options separated by
`;`). A row is written exactly when the single-record endpoint would accept it (schema, custom
field rules, references, roles, unique email/domain/external_id), with the same history, audit
row (`request_id` = `import:<import id>`) and events. Any other row fails, with its reason, in
`errors.csv`, and the job goes on.

**Modes**: `create` writes every valid row as a new record (a row whose unique value another
record, or an earlier row, holds fails). `upsert` matches each row on `match_key` among live
records: a match is updated with the row's non-empty cells (a row changing nothing is
`skipped`), no match is created; a row with an empty key fails. A key repeated in the file
applies in file order: the later row updates the record the earlier one created.

**Who**: admins, managers and reps (viewers: 403). The rows are written as the uploader, so a
rep's rows must be the rep's own records.

422 names each problem: `body.mapping.<column>` for a target that is not a field of the object
type or a live custom field, a column the header lacks, or a second column onto one field;
`body.match_key`; `body.mapping` for an upsert whose key no column maps onto."""


@router.post(
    "",
    operation_id="imports_create",
    status_code=201,
    response_model=ImportRead,
    responses=problems(400, 403, 413),
    summary="Import a CSV file of contacts, companies or deals",
    description=CREATE_DESCRIPTION,
)
async def create_import(body: Upload, service: Service) -> Response:
    job = await service.create(body)
    return JSONBody(job, status_code=201, headers={"Location": f"{PREFIX}/{job['id']}"})


@router.get(
    "",
    operation_id="imports_list",
    response_model=page_of(ImportRead),
    responses=READ,
    summary="List import jobs, newest first",
    description="Managers and admins see every job; the others see the jobs they uploaded.",
)
async def list_imports(
    service: Service,
    params: ListParamsDep,
    status: ImportStatus | None = None,
    object_type: ObjectType | None = None,
) -> Response:
    filters: dict[str, Any] = {"status": status, "object_type": object_type}
    return page_response(*await service.list_imports(params, filters))


@router.get(
    "/{import_id}",
    operation_id="imports_get",
    response_model=ImportRead,
    responses=READ,
    summary="An import job and its progress",
    description="`processed` = `created` + `updated` + `skipped` + `failed`, of `total_rows`; "
    "the counters move once per committed chunk. Jobs of others are 404 unless you are a "
    "manager or admin.",
)
async def get_import(import_id: UUID, service: Service) -> Response:
    return JSONBody(await service.get(import_id))


@router.post(
    "/{import_id}/cancel",
    operation_id="imports_cancel",
    response_model=ImportRead,
    responses=problems(403, 404, 409),
    summary="Stop a queued or running import",
    description="A running job stops at its next chunk boundary: the chunks already written "
    "stay, the rest of the file is dropped. Cancelling a cancelled job returns it; a "
    "completed or failed one is 409.",
)
async def cancel_import(import_id: UUID, service: Service) -> Response:
    return JSONBody(await service.cancel(import_id))


class CSVResponse(StreamingResponse):
    media_type = "text/csv"


ERRORS_DESCRIPTION = """\
The rows that failed so far (all of them once the job has finished), in file order, as CSV
(`,`, UTF-8, CRLF): `row`, then the row's cells under the file's own headers, then `reason`.
`row` is the line of the file the row starts on (the header row is line 1 unless blank lines
come before it; a cell with line breaks makes its row span several lines), as an editor shows
it. A reason names the field as the API would (`email: value is not a valid email address`);
a clash names the record holding the value (`existing_id`; in a dry run, when that is a record
an earlier row would have created, the id it would have had)."""


@router.get(
    "/{import_id}/errors.csv",
    operation_id="imports_errors",
    response_class=CSVResponse,
    responses={
        200: {
            "description": "The failed rows, streamed",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **READ,
    },
    summary="The failed rows of an import, with their reasons, as CSV",
    description=ERRORS_DESCRIPTION,
)
async def import_errors(import_id: UUID, service: Service) -> Response:
    lines = await service.error_report(import_id)
    disposition = f'attachment; filename="import-{import_id}-errors.csv"'
    return CSVResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition},
    )
