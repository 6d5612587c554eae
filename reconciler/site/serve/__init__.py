"""``reconcile site serve``: an AdminService-compatible HTTPS server over an embedded site (tests and demos).

One module per concern: ``server`` (the listener, its lifecycle, :class:`ServeConfig`), ``handler`` (one
connection: authentication, routing, answers), ``auth`` (Negotiate: NTLM and Kerberos), ``tls`` (the CA and
certificate), ``odata`` (routes, keys, query options, error bodies), ``metadata`` (``wmi/$metadata``),
``backend`` (the embedded site as rows, in its own thread), ``writes`` and ``folders`` (what POST, PUT,
DELETE and the methods change), ``versions`` (what a site keeps that the embedded site does not) and
``requestlog``. The classes and their mapping to records are :mod:`reconciler.site.adminservice.wire`'s.
"""

from __future__ import annotations

from reconciler.site.serve.auth import REJECTING_NTLM, Account, AuthSetupError, kerberos_available
from reconciler.site.serve.requestlog import RequestEntry, RequestLog
from reconciler.site.serve.server import (
    AdminServiceServer,
    ServeConfig,
    ServeError,
    parse_listen,
    read_method_names,
    run,
)
from reconciler.site.serve.tls import TlsError, TlsFiles, ensure_certificates

__all__ = [
    "REJECTING_NTLM",
    "Account",
    "AdminServiceServer",
    "AuthSetupError",
    "RequestEntry",
    "RequestLog",
    "ServeConfig",
    "ServeError",
    "TlsError",
    "TlsFiles",
    "ensure_certificates",
    "kerberos_available",
    "parse_listen",
    "read_method_names",
    "run",
]
