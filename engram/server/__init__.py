"""`engram serve`: the library as a REST and MCP service with tenants and keys (FastAPI, uvicorn, the `mcp` SDK).

Modules, each with one purpose: `app` (the ASGI app and its error boundary), `routes_mem0` / `routes_client` /
`routes_engram` (the paths), `auth` (key to Caller), `caller` (a caller's user and reach), `keys` (the keys
database), `tenancy` (one store per tenant), `limits` (rate and body size), `request_ids`, `mcp` (the tools),
`models` (request and response shapes), `errors` (statuses). Nothing here is imported by `import engram`.
"""
