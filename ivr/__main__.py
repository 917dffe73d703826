"""`python -m ivr`: run the call-control service.

Reads DATABASE_URL, HOTLINE_CONFIG, HOTLINE_KEY_FILE (or HOTLINE_KEYS) and the ARI
credentials HOTLINE_ARI_USER / HOTLINE_ARI_PASSWORD from the environment. HOTLINE_ARI_URL,
if set, is where ARI is reached instead of the configured bind address and port (for a
proxy in front of Asterisk; the tests put one there to cut the WebSocket).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from db import keys, logsafe
from db import pool as db_pool
from db.crypto import CryptoError, load_keyring
from dialplan import config
from dialplan.render import ARI_APP
from ivr import progress
from ivr.ari import Ari
from ivr.service import CallControl
from ivr.voicemail import VoiceMessages

log = logging.getLogger("ivr")


async def main() -> int:
    try:
        cfg = config.load(os.environ.get("HOTLINE_CONFIG", "config/hotline.yaml"))
        logsafe.keep_numbers(n.number for n in cfg.numbers)  # public, not personal
        key_file = os.environ.get("HOTLINE_KEY_FILE")
        keyring = load_keyring(Path(key_file) if key_file else None)
    except (config.ConfigError, CryptoError) as e:
        log.error("cannot start: %s", e)
        return 2
    try:
        pool = await db_pool.connect(os.environ["DATABASE_URL"])
    except ConnectionError as e:
        log.error("cannot start: %s", e)
        return 3
    try:
        await keys.ensure_loaded(pool, keyring)  # the data keys, unwrapped by the KEK
    except CryptoError as e:
        log.error("cannot start: %s", e)
        await pool.close()
        return 2
    url = os.environ.get("HOTLINE_ARI_URL") or f"http://{cfg.system.bind}:{cfg.system.ari_port}"
    async with Ari(url, os.environ.get("HOTLINE_ARI_USER", "hotline"),
                   os.environ["HOTLINE_ARI_PASSWORD"], ARI_APP) as ari:
        asterisk_dir = os.environ.get("HOTLINE_ASTERISK_DIR")
        voicemail = VoiceMessages(pool, keyring, Path(asterisk_dir) if asterisk_dir else None,
                                  Path(os.environ.get("HOTLINE_RECORDINGS", "var/recordings")),
                                  hotline_numbers=[n.number for n in cfg.numbers])
        control = CallControl(cfg, ari, pool, keyring, os.environ["DATABASE_URL"], voicemail,
                              os.environ.get("HOTLINE_CONFIG", "config/hotline.yaml"))
        # The progress lookup by phone (FastAGI, reached from the dialplan).
        agi = await progress.serve(pool, cfg.system.agi_port, voicemail.sounds_dir(), keyring,
                                   rate=cfg.speech_rate)
        task = asyncio.create_task(control.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        log.info("call control running for %s (ARI %s)", cfg.name, url)
        try:
            await task
        except asyncio.CancelledError:
            log.info("call control stopping")
        if agi is not None:
            agi.close()
    await pool.close()
    return 0


if __name__ == "__main__":
    logsafe.setup()  # stderr, with callers' numbers masked
    sys.exit(asyncio.run(main()))
