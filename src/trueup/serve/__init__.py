"""`trueup serve`: the HTTP API and the operator dashboard over the same library calls as the CLI.

Nothing here holds business logic: each endpoint parses its request, calls the
function the matching CLI command calls (`trueup.reconcile.*`, `trueup.ledger`,
`trueup.cost`) and renders the result with the same `trueup.report` functions,
so an API body and `--format json` are one document. `tokens` (API tokens,
stored hashed in the target database) needs no web framework; `app` builds the
FastAPI application and is imported only by `trueup serve`.
"""
