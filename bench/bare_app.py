"""The bare endpoint `POST /enqueue` is compared with: read the body, answer 202 JSON.

Run with the same uvicorn settings as `smartqueue serve` (one worker, default loop and HTTP
implementation, no access log): `python -m bench.bare_app --port 8099`.
"""

from __future__ import annotations

import argparse
import uuid

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/enqueue", status_code=202)
async def enqueue(request: Request) -> JSONResponse:
    """Read the whole body and answer like an accepted job."""
    body = await request.body()
    content = {"job_id": uuid.uuid4().hex, "status": "queued", "bytes": len(body)}
    return JSONResponse(content, status_code=202)


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness, for the benchmark's start-up wait."""
    return {"status": "ok"}


def main() -> None:
    """Serve the bare app on loopback."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
