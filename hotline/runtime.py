"""Where a hotline install keeps its state, and its generated secrets.

Everything lives under one folder (HOTLINE_VAR, default ./var): the key file, the
Asterisk credentials, the local PostgreSQL cluster, logs and the pid of `hotline run`.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from db.crypto import create_key_file
from dialplan.config import HotlineConfig
from dialplan.render import PHONE_SECRET_PREFIX, Secrets

# Phone types that register with a SIP secret.
SIP_PHONE_TYPES = ("pjsip", "webrtc")

DEFAULT_PG_PORT = 55432


@dataclass(frozen=True)
class Runtime:
    """Paths and settings of one install, from the environment."""

    var: Path
    config_path: Path
    pg_port: int

    @classmethod
    def from_env(cls, config: str | None = None, var: str | None = None) -> Runtime:
        return cls(
            var=Path(var or os.environ.get("HOTLINE_VAR", "var")).resolve(),
            config_path=Path(config or os.environ.get("HOTLINE_CONFIG", "config/hotline.yaml"))
            .resolve(),
            pg_port=int(os.environ.get("HOTLINE_PG_PORT", DEFAULT_PG_PORT)),
        )

    @property
    def key_file(self) -> Path:
        return Path(os.environ.get("HOTLINE_KEY_FILE", self.var / "keys.json"))

    @property
    def secrets_file(self) -> Path:
        return self.var / "secrets.json"

    @property
    def pg_dir(self) -> Path:
        return self.var / "pg" / "data"

    @property
    def prompts_dir(self) -> Path:
        return self.var / "prompts"

    @property
    def pid_file(self) -> Path:
        return self.var / "run.pid"

    @property
    def log_dir(self) -> Path:
        return self.var / "log"

    def dsn(self) -> str:
        """DATABASE_URL when set, else the project-local cluster."""
        from hotline.postgres import local_dsn

        return os.environ.get("DATABASE_URL") or local_dsn(self.pg_port, self.pg_password())

    @property
    def pg_durable(self) -> bool:
        """False only for throw-away test clusters (HOTLINE_PG_FAST=1): fsync off."""
        return os.environ.get("HOTLINE_PG_FAST") != "1"

    def pg_password(self) -> str:
        """The local cluster's password (generated with the other secrets)."""
        return self._secret_data()["pg_password"]

    def ensure_keys(self) -> bool:
        """Create the encryption key file (0600) on first use; True if it was created."""
        if os.environ.get("HOTLINE_KEYS"):
            return False
        return create_key_file(self.key_file)

    def _secret_data(self, more: list[str] | None = None) -> dict[str, str]:
        path = self.secrets_file
        data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        wanted: dict[str, str | None] = {
            "ari_user": "hotline", "ari_password": None, "ami_user": "hotline",
            "ami_secret": None, "pg_password": None}
        wanted.update(dict.fromkeys(more or []))
        missing = {k: v or secrets.token_urlsafe(18) for k, v in wanted.items() if k not in data}
        if missing:
            data.update(missing)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        return data

    def secrets(self, cfg: HotlineConfig | None = None) -> Secrets:
        """The Asterisk ARI/AMI credentials, generated on first use (file mode 0600); with
        cfg, also the SIP secrets of its phones that have none in the YAML (generated the
        first time a phone is seen, then kept, so a provisioned phone keeps working)."""
        wanted = [] if cfg is None else sorted(
            f"{PHONE_SECRET_PREFIX}{p.id}" for p in cfg.phones.values()
            if p.type in SIP_PHONE_TYPES and not p.secret)
        data = self._secret_data(wanted)
        phones = {k[len(PHONE_SECRET_PREFIX):]: v for k, v in data.items()
                  if k.startswith(PHONE_SECRET_PREFIX)}
        return Secrets(data["ari_user"], data["ari_password"], data["ami_user"],
                       data["ami_secret"], phones=phones)

    def service_env(self) -> dict[str, str]:
        """The environment the ivr and desk processes are started with."""
        s = self.secrets()
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.dsn(),
            HOTLINE_CONFIG=str(self.config_path),
            HOTLINE_ARI_USER=s.ari_user,
            HOTLINE_ARI_PASSWORD=s.ari_password,
            # The desk hands an agent's browser its webrtc phone's generated secret.
            HOTLINE_SECRETS_FILE=str(self.secrets_file),
        )
        if not os.environ.get("HOTLINE_KEYS"):
            env["HOTLINE_KEY_FILE"] = str(self.key_file)
        return env
