"""`rcd serve`: an OpenAI-compatible HTTP server with batching, streaming and a live step stream.

An application room beside `cli`: it builds on the text decoder (`rcd.eval.Decoder`), the
configs and `rcd.generate`; no lower room knows about HTTP. `app.create_app` needs the
`serve` extra (`pip install "rcd[serve]"`: FastAPI, uvicorn, pydantic, prometheus-client);
this package imports none of it by itself, so `rcd --help` works without the extra.
"""
