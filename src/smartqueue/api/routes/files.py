"""The OpenAI Files API: upload a batch's input, read a batch's output and error files.

Bytes live in the blob directory (`SMARTQUEUE_BLOB_DIR`), records in Redis; a file belongs to
its owner (another owner gets 404). Uploads over `SMARTQUEUE_MAX_FILE_BYTES` are refused (413).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.datastructures import FormData, UploadFile

from smartqueue.api.deps import BlobsDep, OwnerDep, SettingsDep, StoreDep
from smartqueue.batches import StoredFile
from smartqueue.blobs import new_file_id
from smartqueue.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from smartqueue.models import ErrorBody
from smartqueue.store import Store
from smartqueue.store.files import Deletion

# Every 4xx these routes answer, in the one error shape (tests/fuzz holds the schema to it).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad request"},
    404: {"model": ErrorBody, "description": "No such file (or another owner's)"},
    409: {"model": ErrorBody, "description": "The file is the input of a batch"},
    413: {"model": ErrorBody, "description": "File over the size limit"},
    422: {"model": ErrorBody, "description": "Missing field or unknown purpose"},
}
router = APIRouter(tags=["files"], responses=ERRORS)

UPLOAD_PURPOSES = ("batch",)
MULTIPART_SLACK_BYTES = 65_536  # the form's own bytes around the file
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file", "purpose"],
            "properties": {"file": {"type": "string", "format": "binary"},
                           "purpose": {"type": "string", "enum": list(UPLOAD_PURPOSES)}},
        }}},
    }
}  # fmt: skip


async def owned_file(store: Store, file_id: str, owner: str) -> StoredFile:
    """The caller's file, or 404 (another owner's file is not found either)."""
    found = await store.files.get(file_id)
    if found is None or found.owner != owner:
        raise NotFound(f"no file {file_id!r}", param="file_id")
    return found


def _checked_form(form: FormData) -> tuple[UploadFile, str]:
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise InvalidInput("send the file as the multipart field `file`", param="file")
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidInput(f"purpose must be one of: {', '.join(UPLOAD_PURPOSES)}",
                           param="purpose")  # fmt: skip
    return upload, str(purpose)


@router.post("/v1/files", openapi_extra=UPLOAD_BODY, summary="Upload a file")
async def upload_file(
    request: Request, store: StoreDep, blobs: BlobsDep, settings: SettingsDep, owner: OwnerDep
) -> dict[str, Any]:
    """Keep a JSONL file of batch requests (multipart: `file`, `purpose=batch`)."""
    limit = settings.max_file_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK_BYTES:
        raise PayloadTooLarge(f"a file may hold at most {limit} bytes")
    file_id = new_file_id()
    async with request.form(max_files=1, max_fields=8) as form:  # spooled parts closed after
        upload, purpose = _checked_form(form)
        size = await asyncio.to_thread(blobs.store, file_id, upload.file, limit_bytes=limit)
    if size is None:
        raise PayloadTooLarge(f"a file may hold at most {settings.max_file_bytes} bytes")
    now = time.time()
    record = StoredFile(id=file_id, owner=owner, bytes=size, created_at=int(now),
                        filename=upload.filename or "upload.jsonl", purpose=purpose)  # fmt: skip
    await store.files.add(record, now=now)
    return record.as_openai()


@router.get("/v1/files", summary="List files")
async def list_files(
    store: StoreDep,
    owner: OwnerDep,
    purpose: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
) -> dict[str, Any]:
    """The caller's files, newest first (`after`: the last id of the previous page)."""
    ids = await store.files.ids(owner)
    if after in ids:
        ids = ids[ids.index(after) + 1 :]
    data: list[dict[str, Any]] = []
    for file_id in ids:
        found = await store.files.get(file_id)
        if found is not None and purpose in (None, found.purpose):
            data.append(found.as_openai())
        if len(data) > limit:
            break
    return page(data, limit)


def page(data: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """OpenAI's cursor page over `data` (one more than `limit` read: `has_more`)."""
    shown = data[:limit]
    return {"object": "list", "data": shown, "has_more": len(data) > limit,
            "first_id": shown[0]["id"] if shown else None,
            "last_id": shown[-1]["id"] if shown else None}  # fmt: skip


@router.get("/v1/files/{file_id}", summary="A file's record")
async def get_file(file_id: str, store: StoreDep, owner: OwnerDep) -> dict[str, Any]:
    """The file object."""
    return (await owned_file(store, file_id, owner)).as_openai()


@router.get("/v1/files/{file_id}/content", summary="A file's bytes")
async def file_content(
    file_id: str, store: StoreDep, blobs: BlobsDep, owner: OwnerDep
) -> FileResponse:
    """The file's bytes (a batch's output or error file is JSONL)."""
    found = await owned_file(store, file_id, owner)
    path = blobs.path(found.id)
    if not path.exists():
        raise NotFound(f"the bytes of file {file_id!r} are gone from the blob directory")
    return FileResponse(path, media_type="application/octet-stream", filename=found.filename)


@router.delete("/v1/files/{file_id}", summary="Delete a file")
async def delete_file(
    file_id: str, store: StoreDep, blobs: BlobsDep, owner: OwnerDep
) -> dict[str, Any]:
    """Forget a file and its bytes; refused (409) while an open batch reads it."""
    found = await owned_file(store, file_id, owner)
    outcome = await store.files.delete(found)
    if outcome is Deletion.IN_USE:
        raise Conflict(f"file {file_id!r} is the input of batch {found.batch or 'in progress'}; "
                       "cancel it or let it end first")  # fmt: skip
    if outcome is Deletion.MISSING:
        raise NotFound(f"no file {file_id!r}", param="file_id")
    await asyncio.to_thread(blobs.delete, found.id)
    return {"id": found.id, "object": "file", "deleted": True}
