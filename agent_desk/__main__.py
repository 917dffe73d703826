"""`python -m agent_desk`: serve the agent desk.

Reads DATABASE_URL, HOTLINE_CONFIG and HOTLINE_KEY_FILE (or HOTLINE_KEYS), and
HOTLINE_SECRETS_FILE for the generated secrets of webrtc phones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from aiohttp import web

from agent_desk.app import DESK, make_app
from db import keys, logsafe
from db import pool as db_pool
from db.crypto import CryptoError, load_keyring
from dialplan import config
from dialplan.render import read_phone_secrets

log = logging.getLogger("agent_desk")


async def build() -> web.Application | None:
    try:
        cfg = config.load(os.environ.get("HOTLINE_CONFIG", "config/hotline.yaml"))
        logsafe.keep_numbers(n.number for n in cfg.numbers)  # public, not personal
        key_file = os.environ.get("HOTLINE_KEY_FILE")
        keyring = load_keyring(Path(key_file) if key_file else None)
        pool = await db_pool.connect(os.environ["DATABASE_URL"])
        await keys.ensure_loaded(pool, keyring)  # the data keys, unwrapped by the KEK
    except (config.ConfigError, CryptoError, ConnectionError) as e:
        log.error("cannot start: %s", e)
        return None
    secrets_file = os.environ.get("HOTLINE_SECRETS_FILE")
    app = make_app(cfg, pool, keyring, os.environ["DATABASE_URL"],
                   os.environ.get("HOTLINE_CONFIG", "config/hotline.yaml"),
                   phone_secrets=(lambda: read_phone_secrets(secrets_file))
                   if secrets_file else None)

    async def close_pool(_app: web.Application) -> None:
        await pool.close()

    app.on_cleanup.append(close_pool)
    return app


def main() -> int:
    logsafe.setup()  # stderr, with callers' numbers masked
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    built = loop.run_until_complete(build())
    if built is None:
        return 2
    cfg = built[DESK].cfg
    log.info("agent desk on http://%s:%d/", cfg.system.bind, cfg.system.desk_port)
    web.run_app(built, host=cfg.system.bind, port=cfg.system.desk_port, print=None, loop=loop,
                access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
