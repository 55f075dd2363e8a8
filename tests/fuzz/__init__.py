"""Property tests over every parser of outside data, one module per parser family.

Each family is tried at two layers: the pure parser with near-valid documents (it returns its
parsed value or raises its documented error, never KeyError, TypeError, RecursionError...), and
the HTTP endpoint in front of it, authenticated or signed so the body reaches the parser (a 2xx,
or a 4xx with a clear error body after which the fingerprint of the tables it writes and of the
ledger is unchanged).
"""
