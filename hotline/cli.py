"""`hotline`: the operator's command line.

  hotline run                      bring the hotline up (what `make run` does)
  hotline stop                     stop it
  hotline status [--json]          components and the live queue
  hotline call NUMBER --from N     place a real citizen call through Asterisk
  hotline config check [FILE]      validate the YAML
  hotline config render [--out D]  show or write the Asterisk files it renders to
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from dialplan import config, render
from dialplan.render import CITIZEN_CONTEXT, INBOUND_CONTEXT
from hotline.runtime import Runtime
from ivr.ari import basic_auth

WITHHELD = ("withheld", "anonymous", "")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotline", description="Citizen hotline operations")
    p.add_argument("--config", help="the hotline YAML (default config/hotline.yaml)")
    p.add_argument("--var", help="state folder (default ./var)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("run", help="bring the hotline up until Ctrl-C")
    sub.add_parser("stop", help="stop a running hotline")

    st = sub.add_parser("status", help="components and the live queue")
    st.add_argument("--json", action="store_true", help="machine-readable output")

    call = sub.add_parser("call", help="place a citizen call to a hotline number")
    call.add_argument("number", help="the hotline number to dial, e.g. 12345")
    call.add_argument("--from", dest="caller", default="13800138000",
                      help="the caller's number; 'withheld' for a hidden caller ID")
    call.add_argument("--dtmf", default="", help="keys the caller presses (w = 0.5 s pause)")
    call.add_argument("--dtmf-delay", type=float, default=1.0,
                      help="seconds after answer before pressing keys")
    call.add_argument("--hold", type=float, default=600,
                      help="seconds the caller stays on the line before hanging up")

    cfg = sub.add_parser("config", help="check or render the YAML")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate the YAML")
    check.add_argument("file", nargs="?")
    rend = csub.add_parser("render", help="render Asterisk's files")
    rend.add_argument("file", nargs="?")
    rend.add_argument("--out", help="folder to write them to (default: print)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hotline` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    rt = Runtime.from_env(args.config, args.var)
    try:
        if args.command == "run":
            from hotline import supervisor

            return supervisor.run(rt)
        if args.command == "stop":
            from hotline import supervisor

            return supervisor.stop(rt)
        if args.command == "status":
            return asyncio.run(_status(rt, args.json))
        if args.command == "call":
            return asyncio.run(_call(rt, args))
        if args.command == "config":
            return _config(rt, args)
    except KeyboardInterrupt:
        return 130
    return 2


def _config(rt: Runtime, args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else rt.config_path
    try:
        cfg = config.load(path)
    except config.ConfigError as e:
        print(e, file=sys.stderr)
        print(f"{len(e.problems)} problem(s); the file was not applied", file=sys.stderr)
        return 1
    if args.config_command == "check":
        print(f"{path}: ok ({len(cfg.numbers)} numbers, {len(cfg.queues)} queue(s), "
              f"{len(cfg.agents)} agents, {len(cfg.phones)} phones)")
        return 0
    from hotline.asterisk import AsteriskInstance, locate

    dirs = AsteriskInstance(locate(), rt.var).dirs
    files = render.render(cfg, dirs, rt.secrets())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, body in files.items():
            (out / name).write_text(body, encoding="utf-8")
        print(f"wrote {len(files)} files to {out}")
    else:
        for name, body in files.items():
            print(f"==> {name} <==\n{body}")
    return 0


def _load(rt: Runtime) -> config.HotlineConfig | None:
    try:
        return config.load(rt.config_path)
    except config.ConfigError as e:
        print(e, file=sys.stderr)
        return None


async def _call(rt: Runtime, args: argparse.Namespace) -> int:
    from ivr.ari import Ari, AriError

    cfg = _load(rt)
    if cfg is None:
        return 1
    if cfg.number(args.number) is None:
        known = ", ".join(n.number for n in cfg.numbers)
        print(f"{args.number} is not a hotline number (configured: {known})", file=sys.stderr)
        return 1
    s = rt.secrets()
    withheld = args.caller.lower() in WITHHELD
    caller_id = '"anonymous" <>' if withheld else f'"{args.caller}" <{args.caller}>'
    url = f"http://{cfg.system.bind}:{cfg.system.ari_port}"
    try:
        async with Ari(url, s.ari_user, s.ari_password, render.ARI_APP) as ari:
            ch = await ari.originate(
                f"Local/{args.number}@{INBOUND_CONTEXT}/n", context=CITIZEN_CONTEXT,
                extension="s", caller_id=caller_id, formats="ulaw", timeout=30,
                variables={"HOTLINE_DTMF": args.dtmf, "HOTLINE_HOLD": f"{args.hold:g}",
                           "HOTLINE_DTMF_DELAY": f"{args.dtmf_delay:g}"},
            )
    except (aiohttp.ClientError, OSError):
        print(f"Asterisk is not reachable on {url}: is the hotline running (`make run`)?",
              file=sys.stderr)
        return 1
    except AriError as e:
        print(f"Asterisk refused the call: {e}", file=sys.stderr)
        return 1
    who = "a withheld number" if withheld else args.caller
    print(f"calling {args.number} from {who}: channel {ch.id} (the caller holds "
          f"{args.hold:g} s)")
    return 0


async def gather_status(rt: Runtime) -> dict[str, Any]:
    """Every component's health and the live queue, as `hotline status --json` prints it."""
    out: dict[str, Any] = {"components": {}, "queue": {"waiting": [], "agents": []}}
    comp = out["components"]
    cfg = _load(rt)
    if cfg is None:
        comp["config"] = {"ok": False, "detail": "the YAML does not validate"}
        return out
    comp["config"] = {"ok": True, "detail": str(rt.config_path)}
    s = rt.secrets()
    ari_url = f"http://{cfg.system.bind}:{cfg.system.ari_port}/ari/asterisk/info"
    timeout = aiohttp.ClientTimeout(total=3)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            auth = {"Authorization": basic_auth(s.ari_user, s.ari_password)}
            async with http.get(ari_url, headers=auth) as r:
                info = await r.json() if r.status == 200 else {}
                comp["asterisk"] = {"ok": r.status == 200,
                                    "detail": info.get("system", {}).get("version", r.status)}
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            comp["asterisk"] = {"ok": False, "detail": f"not reachable: {e or type(e).__name__}"}
        desk_url = f"http://{cfg.system.bind}:{cfg.system.desk_port}/"
        try:
            async with http.get(desk_url + "healthz") as r:
                comp["desk"] = {"ok": r.status == 200, "detail": desk_url}
        except (TimeoutError, aiohttp.ClientError, OSError):
            comp["desk"] = {"ok": False, "detail": f"not reachable on {desk_url}"}
    try:
        conn = await asyncpg.connect(rt.dsn(), timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError) as e:
        comp["database"] = {"ok": False, "detail": f"not reachable: {e}"}
        comp["ari"] = {"ok": False, "detail": "unknown (no database)"}
        return out
    try:
        comp["database"] = {"ok": True, "detail": rt.dsn().split("@")[-1]}
        hb = await conn.fetchrow(
            """SELECT details, extract(epoch FROM now() - updated_at) AS age
               FROM service_status WHERE name = 'ivr'"""
        )
        if hb is None:
            comp["ari"] = {"ok": False, "detail": "the call-control service has never run"}
        else:
            alive = float(hb["age"]) < 10
            connected = bool(json.loads(hb["details"]).get("ari_connected"))
            comp["ari"] = {"ok": alive and connected,
                           "detail": ("connected" if connected else "not connected")
                           if alive else f"call control silent for {float(hb['age']):.0f} s"}
        rows = await conn.fetch(
            """SELECT id, dialled_number, service, queue, state,
                      extract(epoch FROM now() - entered_queue_at) AS waited
               FROM calls WHERE state IN ('waiting', 'offered')
               ORDER BY queue, entered_queue_at"""
        )
        out["queue"]["waiting"] = [
            {"call_id": str(r["id"]), "dialled_number": r["dialled_number"],
             "service": r["service"], "queue": r["queue"], "state": r["state"],
             "waited_seconds": round(float(r["waited"]), 1)} for r in rows
        ]
        agents = await conn.fetch(
            "SELECT login, display_name, state, reason, state_since FROM agents WHERE active "
            "ORDER BY login"
        )
        out["queue"]["agents"] = [
            {"login": a["login"], "name": a["display_name"], "state": a["state"],
             "reason": a["reason"], "since": a["state_since"].isoformat()} for a in agents
        ]
    finally:
        await conn.close()
    return out


async def _status(rt: Runtime, as_json: bool) -> int:
    status = await gather_status(rt)
    ok = all(c["ok"] for c in status["components"].values())
    if as_json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
        return 0 if ok else 1
    for name, c in status["components"].items():
        print(f"{name:10} {'ok  ' if c['ok'] else 'DOWN'}  {c['detail']}")
    waiting = status["queue"]["waiting"]
    print(f"\nwaiting calls: {len(waiting)}")
    for w in waiting:
        print(f"  {w['dialled_number']:>9}  {w['service'] or '-':10}  {w['state']:8}"
              f"  {w['waited_seconds']:6.0f} s")
    print("\nagents:")
    for a in status["queue"]["agents"]:
        print(f"  {a['login']:10} {a['name']:8} {a['state']:10} {a['reason'] or ''}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
