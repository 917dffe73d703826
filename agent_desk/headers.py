"""Security headers on every response of the desk, set just before it is sent.

`add_security_headers` is an `on_response_prepare` signal handler rather than a middleware:
the signal runs for every response the app sends, also those no middleware sees or
returns (aiohttp's own 404 and 405, an HTTPException raised anywhere, the 500 for an
exception that escaped every middleware, static files and their 304s). Only the WebSocket
upgrade (101, no body) is left as it is.

Two policies:

- The desk (pages, /api, everything else): nothing but the desk's own files. Its pages
  load only /static/*.css and /static/*.js (no inline script, no <style>, no style=""
  in markup, no eval; the printable 受理交办单 too), fetch /api and open WebSockets to /ws
  and /sip on the same host. Never stored by the browser or a proxy: these answers carry
  callers' personal data, and the pages are the shell that shows it.
- The public answers without a login and without personal data (Open311 under /open311/,
  the weekly publication under /public/): no script at all, and the publication's own
  inline <style> (it is one self-contained printable file); cached as their handlers say.

Static JS and CSS (/static/) keep aiohttp's validators (ETag, Last-Modified) and are
cached as the browser likes: they hold no personal data.
"""

from __future__ import annotations

import re

from aiohttp import web

# What the desk's pages may load. Each source is the desk's own origin; every directive
# not listed falls back to default-src 'none' (objects, frames, workers, manifests).
_DESK_DIRECTIVES = (
    "default-src 'none'",
    "script-src 'self'",  # /static/*.js only: no inline script, handler attribute or eval
    "style-src 'self'",  # /static/*.css only (element.style from script stays allowed)
    "img-src 'self'",
    "font-src 'self'",
    "media-src 'self'",  # the softphone's audio is a MediaStream (srcObject), not a URL
    "form-action 'none'",  # every form is sent by script; a form sent before the script
    # ran would put the login and password in the address as a GET query
    "base-uri 'none'",
    "frame-ancestors 'none'",
)
# The public pages: no script, the publication's inline <style>, never framed.
PUBLIC_CSP = "; ".join((
    "default-src 'none'",
    "style-src 'unsafe-inline'",
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))
PUBLIC_PREFIXES = ("/open311/", "/public/")
STATIC_PREFIX = "/static/"
# A Host header that is a plain host name or address with an optional port (anything else
# is not written into the policy).
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                   r"(?::[0-9]{1,5})?")


def desk_csp(host: str | None) -> str:
    """The desk's Content-Security-Policy for a page served under `host` (the request's
    Host header). connect-src is 'self' (fetch to /api) plus ws:// and wss:// of that host
    (/ws and /sip): CSP Level 3 lets 'self' match a same-host WebSocket, but not every
    browser did so (Safari before 15.5), so the WebSocket origins are also named."""
    connect = "connect-src 'self'"
    if host and _HOST.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join((*_DESK_DIRECTIVES, connect))


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Set the security headers on `response` (the app's on_response_prepare signal).

    - Content-Security-Policy: which scripts, styles and connections a page may use (see
      desk_csp; PUBLIC_CSP for Open311 and the publication), so that a value injected into
      a page cannot run as script or send the page's data elsewhere; frame-ancestors
      'none' so that no other site can frame a page (clickjacking a case's buttons).
    - X-Frame-Options: DENY: frame-ancestors for browsers that predate CSP Level 2.
    - X-Content-Type-Options: nosniff: the browser keeps to the declared type, so a JSON
      answer or an uploaded text holding markup is never run as HTML or script.
    - Referrer-Policy: no-referrer: addresses carry case numbers and ids, and leave the
      desk in no Referer (e.g. a link a caller's text puts in a case).
    - Cache-Control: no-store on every page and every /api answer (and anything else not
      static or public): personal data stays out of the browser's disk cache and any
      proxy's, and Back after logout shows nothing. Static files and the public answers
      keep their own caching.
    """
    if response.status == 101 or isinstance(response, web.WebSocketResponse):
        return  # the WebSocket upgrade: no body to protect
    path = request.path
    public = path.startswith(PUBLIC_PREFIXES)
    headers = response.headers
    headers["Content-Security-Policy"] = PUBLIC_CSP if public else desk_csp(request.host)
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if not public and not path.startswith(STATIC_PREFIX):
        headers["Cache-Control"] = "no-store"
