"""`hotline`: the operator's command line.

  hotline run                      bring the hotline up (what `make run` does)
  hotline stop                     stop it
  hotline status [--json]          components and the live queue
  hotline call NUMBER --from N     a citizen's call: SIP from the demo trunk (--local: inside)
  hotline config check [FILE]      validate the YAML
  hotline config render [--out D]  show or write the Asterisk files it renders to
  hotline config apply [FILE]      put a YAML live (reload Asterisk, keep waiting calls)
  hotline config versions          applied configuration versions
  hotline config rollback VERSION  put an earlier version live again
  hotline calendar seed            store the holidays the chinesecalendar package knows
  hotline calendar import FILE     enter a State Council holiday notice (YAML)
  hotline calendar show YEAR       a year's holidays and working weekends
  hotline units import FILE        the directory of linkage units (.yaml/.yml, or .csv)
  hotline units list [--all]       the directory as a tree
  hotline keys status [--json]     key ids, the primary, rows and files per key (no keys)
  hotline keys rotate [--index]    new data key (or index key), re-encrypt while running
  hotline keys migrate             move a version-1 key file to envelope keys (version 2)
  hotline phones [ID]              agents' phones; with an id, what to set on that phone
  hotline sip-bans [lift ADDRESS]  addresses the SIP guard shut out; lift one by hand
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from db import logsafe
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
    call.add_argument("--say", default="",
                      help="a sound the caller plays after the keys (e.g. hotline/please_hold)")
    call.add_argument("--hold", type=float, default=600,
                      help="seconds the caller stays on the line before hanging up")
    call.add_argument("--local", action="store_true",
                      help="a Local channel inside Asterisk instead of SIP from the demo "
                           "trunk (--say implies it)")

    _config_parser(sub)
    _calendar_parser(sub)
    _units_parser(sub)
    _keys_parser(sub)
    ph = sub.add_parser("phones", help="agents' phones; with an id, what to set on that phone")
    ph.add_argument("phone", nargs="?", help="a phone id: print its SIP account and secret")
    bans = sub.add_parser("sip-bans", help="addresses the SIP guard shut out (newest first)")
    bans.add_argument("action", nargs="?", choices=["lift"], help="lift the ban on ADDRESS")
    bans.add_argument("address", nargs="?", help="the banned address")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hotline` command."""
    args = _parser().parse_args(argv)
    logsafe.setup(fmt="%(asctime)s %(levelname)s %(message)s")  # callers' numbers masked
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
        if args.command == "calendar":
            return asyncio.run(_calendar(rt, args))
        if args.command == "units":
            return asyncio.run(_units(rt, args))
        if args.command == "keys":
            return _keys(rt, args)
        if args.command == "phones":
            return _phones(rt, args.phone)
        if args.command == "sip-bans":
            return asyncio.run(_sip_bans(rt, args.action, args.address))
    except KeyboardInterrupt:
        return 130
    return 2


# -- hotline sip-bans --------------------------------------------------------------------------


async def _sip_bans(rt: Runtime, action: str | None, address: str | None) -> int:
    """List the SIP guard's bans, or lift the one in force on an address."""
    import ipaddress
    from datetime import UTC, datetime

    from db import sipbans
    from hotline.apply import who

    if action == "lift":
        try:
            address = str(ipaddress.ip_address(address or ""))
        except ValueError:
            print("say which address to let in again, e.g. `hotline sip-bans lift "
                  "203.0.113.9`", file=sys.stderr)
            return 2
    conn = await _database(rt)
    if conn is None:
        return 1
    try:
        if action == "lift" and address:
            if not await sipbans.lift(conn, address, by=who(), now=datetime.now(UTC)):
                print(f"{address} is not banned", file=sys.stderr)
                return 1
            print(f"{address} may reach Asterisk again (the SIP guard reloads its ACL within "
                  "a second)")
            return 0
        rows = await sipbans.recent(conn)
    finally:
        await conn.close()
    if not rows:
        print("no address has been banned")
        return 0
    now = datetime.now(UTC)
    for r in rows:
        if r["lifted_at"] is None and r["until"] > now:
            state = f"banned until {r['until']:%Y-%m-%d %H:%M:%S %Z}"
        elif r["lifted_by"] == "expired" or r["lifted_at"] is None:
            state = "expired"
        else:
            state = f"lifted by {r['lifted_by']} at {r['lifted_at']:%Y-%m-%d %H:%M:%S %Z}"
        print(f"{r['address']:<39} {r['failures']:>5} x {r['reason']:<24} since "
              f"{r['banned_at']:%Y-%m-%d %H:%M:%S %Z}; {state}")
    return 0


# -- hotline phones ----------------------------------------------------------------------------


def _phones(rt: Runtime, phone_id: str | None) -> int:
    """List the phones, or print one SIP phone's account (its secret included: run it
    on the hotline's own machine, as the admin who provisions the phone)."""
    try:
        cfg = config.load(rt.config_path)
    except config.ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    secrets = rt.secrets(cfg)
    users = {a.phone: a.login for a in cfg.agents if a.phone}
    s = cfg.system
    if phone_id is None:
        for p in sorted(cfg.phones.values(), key=lambda p: p.id):
            where = "YAML" if p.secret else ("generated" if p.type != "virtual" else "-")
            print(f"{p.id:>6}  {p.type:8} {users.get(p.id, '(no agent)'):12} secret: {where}")
        print(f"\nSIP phones register at {s.sip_bind}:{s.sip_port} (UDP) from "
              f"{', '.join(render.phone_networks(cfg))}; `hotline phones ID` for one phone.")
        return 0
    phone = cfg.phones.get(phone_id)
    if phone is None or phone.type == "virtual":
        print(f"no SIP phone {phone_id!r} in {rt.config_path}", file=sys.stderr)
        return 1
    print(f"phone {phone.id} ({phone.type}, agent {users.get(phone.id, '-')})")
    print(f"  SIP server:  {s.sip_bind}:{s.sip_port} (UDP)")
    print(f"  user name:   {phone.id}")
    print(f"  password:    {secrets.phone_secret(phone.secret, phone.id)}")
    print("  codecs:      G.711 A-law (PCMA), then u-law; DTMF RFC 4733")
    return 0


# -- hotline config ----------------------------------------------------------------------------


def _config_parser(sub: Any) -> None:
    cfg = sub.add_parser("config", help="check, render, apply or roll back the YAML")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate the YAML")
    check.add_argument("file", nargs="?")
    rend = csub.add_parser("render", help="render Asterisk's files")
    rend.add_argument("file", nargs="?")
    rend.add_argument("--out", help="folder to write them to (default: print)")
    apply = csub.add_parser(
        "apply", help="validate a YAML, reload Asterisk with it and make it the live file")
    apply.add_argument("file", nargs="?",
                       help="the YAML to apply (default: the live file, --config)")
    versions = csub.add_parser("versions", help="list applied configuration versions")
    versions.add_argument("--limit", type=int, default=30, help="how many (newest first)")
    back = csub.add_parser("rollback", help="put an earlier configuration version live")
    back.add_argument("version", type=_version_id, help="its id, from `config versions`")


def _version_id(text: str) -> int:
    try:
        value = int(text.lstrip("#"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a version id (a number from `hotline config versions`)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a version id")
    return value


def _config(rt: Runtime, args: argparse.Namespace) -> int:
    if args.config_command in ("apply", "versions", "rollback"):
        return _config_live(rt, args)
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
    files = render.render(cfg, dirs, rt.secrets(cfg))
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


def _config_live(rt: Runtime, args: argparse.Namespace) -> int:
    """`config apply`, `versions` and `rollback`: they act on the running hotline."""
    from hotline import apply as live

    if args.config_command == "versions":
        try:
            found = asyncio.run(live.versions(rt, args.limit))
        except live.ApplyError as e:
            print(e, file=sys.stderr)
            return 1
        try:
            _print_versions(found)
        except BrokenPipeError:
            import os

            # Piped into `head`: the reader has seen enough; no error at exit either.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if args.config_command == "apply":
        result = asyncio.run(live.apply(rt, Path(args.file) if args.file else rt.config_path))
    else:
        result = asyncio.run(live.rollback(rt, args.version))
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def _print_versions(found: list[Any]) -> None:
    if not found:
        print("no configuration version yet: the first `hotline config apply` records one")
        return
    live_id = next((v.id for v in found if v.status == "applied"), None)
    print(f"{'id':>5}  {'applied_at':19}  {'status':11}  {'sha256':12}  {'who':12}  note")
    for v in found:
        if v.id == live_id:
            note = "running now"
        elif v.status == "failed":
            note = (v.error or "").strip().split("\n", 1)[0]
            # "<file>:12: sentence": the file is known from the source; keep the line.
            if v.source and note.startswith(f"{v.source}:"):
                note = "line " + note[len(v.source) + 1:]
            note = note if len(note) <= 100 else note[:99] + "…"
        else:
            note = ""
        if v.origin == "baseline":
            note = ", ".join(filter(None, ["baseline: what was running", note]))
        elif v.origin == "rollback":
            note = ", ".join(filter(None, [f"rollback to {v.rollback_of}", note]))
        at = v.applied_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        print(f"{v.id:>5}  {at:19}  {v.status:11}  {v.sha256[:12]:12}  {v.applied_by:12}  "
              f"{note}")


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
    withheld = args.caller.lower() in WITHHELD
    who = "a withheld number" if withheld else args.caller
    if not args.local and not args.say:
        from hotline import sipcall

        try:
            planned = sipcall.plan_call(cfg, args.number, args.caller, dtmf=args.dtmf,
                                        dtmf_delay=args.dtmf_delay, hold=args.hold,
                                        log_dir=rt.log_dir / "sipp")
            pid = sipcall.place(planned)
        except sipcall.BadCall as e:
            print(e, file=sys.stderr)
            return 2
        except sipcall.SipCallError as e:
            print(f"not as SIP ({e}); placing a Local channel instead", file=sys.stderr)
        else:
            print(f"calling {args.number} from {who} as the carrier of trunk "
                  f"{planned.trunk} would: SIP from {planned.local_ip} to {planned.target} "
                  f"(SIPp pid {pid}, the caller holds {args.hold:g} s; its log: "
                  f"{planned.run_dir})")
            return 0
    s = rt.secrets()
    caller_id = '"anonymous" <>' if withheld else f'"{args.caller}" <{args.caller}>'
    url = f"http://{cfg.system.bind}:{cfg.system.ari_port}"
    try:
        async with Ari(url, s.ari_user, s.ari_password, render.ARI_APP) as ari:
            ch = await ari.originate(
                f"Local/{args.number}@{INBOUND_CONTEXT}/n", context=CITIZEN_CONTEXT,
                extension="s", caller_id=caller_id, formats="ulaw", timeout=30,
                variables={"HOTLINE_DTMF": args.dtmf, "HOTLINE_HOLD": f"{args.hold:g}",
                           "HOTLINE_SAY": args.say,
                           "HOTLINE_DTMF_DELAY": f"{args.dtmf_delay:g}"},
            )
    except (aiohttp.ClientError, OSError):
        print(f"Asterisk is not reachable on {url}: is the hotline running (`make run`)?",
              file=sys.stderr)
        return 1
    except AriError as e:
        print(f"Asterisk refused the call: {e}", file=sys.stderr)
        return 1
    print(f"calling {args.number} from {who} on a Local channel: channel {ch.id} (the caller "
          f"holds {args.hold:g} s)")
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
            details = json.loads(hb["details"])
            connected = bool(details.get("ari_connected"))
            lost = int(details.get("db_outages") or 0)
            outages = (f"; lost the database {lost} time(s), "
                       f"{float(details.get('db_down_seconds') or 0):.0f} s in all"
                       if lost else "")
            comp["ari"] = {"ok": alive and connected,
                           "detail": ("connected" if connected else "not connected") + outages
                           if alive else f"call control silent for {float(hb['age']):.0f} s"}
        jobs = await conn.fetchrow(
            """SELECT extract(epoch FROM now() - updated_at) AS age FROM service_status
               WHERE name = 'casework'""")
        if jobs is None:
            comp["casework"] = {"ok": False, "detail": "the case-workflow jobs have never run"}
        else:
            # They tick every minute: silent for three means they are not running.
            fresh = float(jobs["age"]) < 180
            comp["casework"] = {"ok": fresh, "detail": "urging overdue cases" if fresh else
                                f"case-workflow jobs silent for {float(jobs['age']):.0f} s"}
        guard = await conn.fetchrow(
            """SELECT details, extract(epoch FROM now() - updated_at) AS age FROM service_status
               WHERE name = 'sipguard'""")
        if guard is None:
            comp["sipguard"] = {"ok": False, "detail": "the SIP guard has never run"}
        else:
            g = json.loads(guard["details"])
            fresh = float(guard["age"]) < 60  # it reports every 15 s
            comp["sipguard"] = {
                "ok": fresh,
                "detail": (f"watching; {g.get('banned', 0)} address(es) banned "
                           "(`hotline sip-bans`)" if g.get("watching") else "off (sip_guard "
                           "enabled: false)") if fresh
                else f"SIP guard silent for {float(guard['age']):.0f} s"}
        rows = await conn.fetch(
            """SELECT id, dialled_number, service, queue, state, trunk,
                      extract(epoch FROM now() - entered_queue_at) AS waited
               FROM calls WHERE state IN ('waiting', 'offered')
               ORDER BY queue, entered_queue_at"""
        )
        out["queue"]["waiting"] = [
            {"call_id": str(r["id"]), "dialled_number": r["dialled_number"],
             "service": r["service"], "queue": r["queue"], "state": r["state"],
             "trunk": r["trunk"], "waited_seconds": round(float(r["waited"]), 1)} for r in rows
        ]
        agents = await conn.fetch(
            "SELECT login, display_name, state, reason, state_since FROM agents WHERE active "
            "ORDER BY login"
        )
        out["queue"]["agents"] = [
            {"login": a["login"], "name": a["display_name"], "state": a["state"],
             "reason": a["reason"], "since": a["state_since"].isoformat()} for a in agents
        ]
    except asyncpg.PostgresError as e:
        # Reachable but not ready (a start applying its migrations): say so, never crash.
        comp["database"] = {"ok": False, "detail": f"not ready: {e}"}
        comp.setdefault("ari", {"ok": False, "detail": "unknown (database not ready)"})
        out["queue"] = {"waiting": [], "agents": []}
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
              f"  {w['waited_seconds']:6.0f} s  {w['trunk'] or ''}")
    print("\nagents:")
    for a in status["queue"]["agents"]:
        print(f"  {a['login']:10} {a['name']:8} {a['state']:10} {a['reason'] or ''}")
    return 0 if ok else 1


async def _database(rt: Runtime) -> asyncpg.Connection | None:
    """A connection to the hotline's database with its schema up to date, or None after
    saying in plain words that it is not reachable."""
    from db import migrate

    try:
        conn = await asyncpg.connect(rt.dsn(), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as e:
        print(f"the database is not reachable ({e}): is the hotline running (`make run`)?",
              file=sys.stderr)
        return None
    try:
        await migrate.apply(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


# -- hotline calendar --------------------------------------------------------------------------


def _calendar_parser(sub: Any) -> None:
    cal = sub.add_parser("calendar", help="holidays and working weekends for deadlines")
    csub = cal.add_subparsers(dest="calendar_command", required=True)
    csub.add_parser("seed", help="store the days the chinesecalendar package knows")
    imp = csub.add_parser("import", help="enter a State Council holiday notice (YAML)")
    imp.add_argument("file", help="e.g. config/calendar/2027.yaml")
    show = csub.add_parser("show", help="a year's exception days and whether it is covered")
    show.add_argument("year", type=int)


async def _calendar(rt: Runtime, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from casework import calendar

    notice = None
    if args.calendar_command == "import":
        if args.file.endswith(".example.yaml"):
            print(f"{args.file} is an example, not an official notice: copy it, enter the "
                  "notice's dates and import the copy", file=sys.stderr)
            return 2
        try:
            notice = calendar.parse_notice(Path(args.file))
        except calendar.NoticeError as e:
            print(e, file=sys.stderr)
            print(f"{len(e.problems)} problem(s); nothing was imported", file=sys.stderr)
            return 2
    conn = await _database(rt)
    if conn is None:
        return 1
    try:
        if args.calendar_command == "seed":
            added = await calendar.seed_from_package(conn)
            print(f"{added} day(s) added from the chinesecalendar package")
            return 0
        if notice is not None:
            rows = await calendar.apply_notice(conn, notice, None, datetime.now(UTC))
            print(f"{notice.year}: {rows} exception day(s) entered from {args.file}; "
                  f"`hotline calendar show {notice.year}` lists them")
            return 0
        cal = await calendar.load(conn)
    finally:
        await conn.close()
    for d in cal.exceptions(args.year):
        kind = "working" if d.working else "holiday"
        print(f"{d.day}  {calendar.WEEKDAYS[d.day.weekday()][:3]}  {kind:8} {d.name:10} "
              f"({d.source})")
    if cal.covers(args.year):
        print(f"{args.year} is covered")
    else:
        print(f"{args.year} is NOT covered: no holiday notice is known for it; deadlines "
              "count every Monday-Friday as working. Enter the notice with `hotline calendar "
              "import FILE` (see config/calendar/2027.example.yaml)")
    return 0


# -- hotline units -----------------------------------------------------------------------------


def _units_parser(sub: Any) -> None:
    units = sub.add_parser("units", help="the directory of linkage units and their handlers")
    usub = units.add_subparsers(dest="units_command", required=True)
    imp = usub.add_parser("import", help="make the directory what a file says (units not in "
                                         "it are deactivated)")
    imp.add_argument("file", help="config/units.yaml, or a CSV (see config/units.example.csv)")
    imp.add_argument("--handlers", help="with a units CSV: a CSV of handler accounts "
                                        "(unit_code,login,name,initial_password)")
    lst = usub.add_parser("list", help="the directory as a tree")
    lst.add_argument("--all", action="store_true", help="deactivated units too")


async def _units(rt: Runtime, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from casework import units

    specs: list[units.UnitSpec] = []
    with_handlers = False
    if args.units_command == "import":
        try:
            specs, with_handlers = units.parse_file(
                Path(args.file), Path(args.handlers) if args.handlers else None)
        except units.FileProblems as e:
            print(e, file=sys.stderr)
            print(f"{len(e.problems)} problem(s); nothing was imported", file=sys.stderr)
            return 2
    conn = await _database(rt)
    if conn is None:
        return 1
    try:
        if args.units_command == "import":
            try:
                result = await units.import_units(conn, specs, datetime.now(UTC),
                                                  with_handlers=with_handlers)
            except units.FileProblems as e:
                print(e, file=sys.stderr)
                print(f"{len(e.problems)} problem(s); nothing was imported", file=sys.stderr)
                return 2
            print(f"{args.file}: {result.summary()}")
            if not with_handlers:
                print("no handlers file given: handler accounts were left as they are")
            return 0
        roots = await units.tree(conn, include_inactive=args.all)
        counts = {r["unit_id"]: r["n"] for r in await conn.fetch(
            "SELECT unit_id, count(*) AS n FROM agents WHERE role = 'handler' AND active"
            " GROUP BY unit_id")}
    finally:
        await conn.close()
    if not roots:
        print("the directory is empty: `hotline units import config/units.yaml`")
        return 0

    def show(u: units.Unit, depth: int) -> None:
        handlers = counts.get(u.id, 0)
        note = "" if u.active else "  (deactivated)"
        print(f"{'  ' * depth}{u.code:{max(1, 28 - 2 * depth)}} {u.name}  {u.duty_phone}"
              f"  handlers: {handlers}{note}")
        for c in u.children:
            show(c, depth + 1)

    for r in roots:
        show(r, 0)
    return 0


# -- hotline keys ------------------------------------------------------------------------------


def _keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="encryption keys: status, rotation (docs/privacy.md)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    st = ksub.add_parser("status", help="key ids, the primary, rows and files per key")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    rot = ksub.add_parser("rotate", help="make a new primary data key and re-encrypt every "
                                         "personal field and voice message under it (the "
                                         "hotline keeps running; run again to resume)")
    rot.add_argument("--index", action="store_true",
                     help="rotate the blind-index key instead and rebuild every index")
    rot.add_argument("--batch", type=int, default=200, help="rows per transaction")
    rot.add_argument("--cipher", help="cipher of the new data key (default: the current one)")
    ksub.add_parser("migrate", help="move a version-1 key file's keys into the database, "
                                    "wrapped by a new key-encryption key")


def _keys(rt: Runtime, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_keys_async(rt, args))
    except KeyboardInterrupt:
        if args.keys_command == "rotate":
            # Each batch is its own transaction: what was committed stays done.
            print("\ninterrupted: run the same command again to resume where it stopped",
                  file=sys.stderr)
        return 130


async def _keys_async(rt: Runtime, args: argparse.Namespace) -> int:
    from db import keys
    from db.crypto import CryptoError, load_keyring

    try:
        keyring = load_keyring(rt.key_file)
    except CryptoError as e:
        print(e, file=sys.stderr)
        return 2
    conn = await _database(rt)
    if conn is None:
        return 1

    def progress(stage: str, done: int, total: int) -> None:
        what = {"fields": "personal fields re-encrypted", "files": "voice messages "
                "re-encrypted", "index": "blind indexes rebuilt"}[stage]
        print(f"  {done}/{total} {what}", flush=True)

    try:
        if args.keys_command == "migrate":
            if not await keys.migrate_key_file(conn, keyring):
                print(f"{rt.key_file} is already version 2: nothing to do")
                return 0
            print(f"moved the data keys into the database, wrapped by key-encryption key "
                  f"{keyring.kek_id}; {rt.key_file} is now version 2. Back it up now: "
                  "without it no personal field can be read (docs/privacy.md)")
            return 0
        if args.keys_command == "rotate" and args.index:
            print("rotating the blind-index key ...", flush=True)
            new_id, n = await keys.rotate_index_key(conn, keyring, batch=args.batch,
                                                    progress=progress)
            print(f"done: {n} blind index(es) rebuilt under index key {new_id}; the old "
                  f"index key is gone from {rt.key_file}. Back the key file up again.")
            return 0
        if args.keys_command == "rotate":
            was_v1 = not keyring.is_envelope
            result = await keys.rotate_data_key(conn, keyring, batch=args.batch,
                                                cipher=args.cipher, progress=progress)
            if was_v1:
                print(f"{rt.key_file} moved to version 2 (envelope keys); back it up now")
            print(f"{'resumed' if result.resumed else 'new'} primary data key "
                  f"{result.key_id}: {result.fields} personal field(s) and {result.files} "
                  "voice message(s) re-encrypted")
            if result.retired:
                print(f"retired (kept for old backups): {', '.join(result.retired)}")
            for f in result.failed:
                print(f"  could not re-encrypt {f}", file=sys.stderr)
            return 1 if result.failed else 0
        await keys.ensure_loaded(conn, keyring)
        status = await keys.key_status(conn, keyring)
    except CryptoError as e:
        print(e, file=sys.stderr)
        return 2
    finally:
        await conn.close()
    if args.json:
        print(json.dumps(status, indent=2, ensure_ascii=False))
        return 0
    print(f"key file: version {status['key_file_version']}"
          + (f", key-encryption key {status['kek_id']}" if status["kek_id"] else
             " (legacy keys in the file: `hotline keys migrate`)"))
    print("data keys:")
    for k in status["data_keys"]:
        flags = "primary" if k["primary"] else ("retired" if k["retired_at"] else "")
        print(f"  {k['id']:12} {k['cipher']:12} {flags:8} {k['rows']:7} field(s) "
              f"{k['files']:5} voice message(s)")
    for kid, n in status["rows_under_unknown_keys"].items():
        print(f"  {kid:12} UNKNOWN KEY  {n:7} field(s) cannot be read")
    if status["plaintext_files"]:
        print(f"  {status['plaintext_files']} voice message(s) not encrypted yet "
              "(`hotline keys rotate` encrypts them)")
    print(f"index keys: {', '.join(status['index_keys'])} (primary {status['primary_index']})")
    for kid, n in status["blind_indexes_per_index_key"].items():
        print(f"  {kid:12} {n:7} blind index(es)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
