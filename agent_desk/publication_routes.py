"""The weekly publication on the web, public (no login): it holds no personal data.

- GET /public/weekly/{year}-W{week}.csv: one CSV (UTF-8 with BOM, for Excel).
- GET /public/weekly/{year}-W{week}.html: the printable page.

A week is published once it has ended (Asia/Shanghai); a week that does not exist or has
not ended yet is a 404 with a plain sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from casework import publication
from casework.stats import AssessmentFormula


def _not_found(message: str) -> web.Response:
    return web.Response(status=404, text=message, content_type="text/plain",
                        charset="utf-8")


def publication_routes(pool: asyncpg.Pool, *,
                       clock: Callable[[], datetime] | None = None,
                       criticism_urgings: int = publication.CRITICISM_URGINGS,
                       formula: AssessmentFormula | None = None) -> list[web.RouteDef]:
    """The routes of the weekly publication over `pool`; `clock` (aware, default the real
    time) decides which weeks have ended; `criticism_urgings` and `formula` as for
    casework.publication.weekly."""
    now = clock or (lambda: datetime.now(UTC))

    async def weekly(request: web.Request) -> web.Response:
        year, week = int(request.match_info["year"]), int(request.match_info["week"])
        fmt = request.match_info["fmt"]
        try:
            start, end = publication.week_bounds(year, week)
        except ValueError:
            return _not_found(f"{year}年没有第{week}周。")
        if end > now():
            return _not_found(f"{year}年第{week}周尚未结束，周报在该周结束后公布。")
        async with pool.acquire() as conn:
            pub = await publication.weekly(conn, year, week,
                                           criticism_urgings=criticism_urgings,
                                           formula=formula)
        name = f"hotline-weekly-{year}-W{week:02d}.{fmt}"
        if fmt == "csv":
            resp = web.Response(body=publication.to_csv(pub).encode("utf-8"),
                                content_type="text/csv", charset="utf-8")
            resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        else:
            resp = web.Response(text=publication.to_html(pub), content_type="text/html",
                                charset="utf-8")
        # A past week's figures can still move a little (late data entry): cache briefly.
        resp.headers["Cache-Control"] = "public, max-age=300"
        return resp

    return [web.get(r"/public/weekly/{year:\d{4}}-W{week:\d{1,2}}.{fmt:csv|html}", weekly)]
