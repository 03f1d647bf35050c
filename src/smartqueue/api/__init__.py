"""The HTTP API: app factory and lifespan (app.py), shared services built once (services.py),
async `Annotated` dependencies (deps.py), the one error shape (errors.py), turning requests into
jobs (submission.py), holding OpenAI clients (holding.py), job events as SSE (events.py), the
stored-job view (records.py), and one router per resource under routes/.

It talks to Redis only through smartqueue.store, and to GPUs not at all.
"""
