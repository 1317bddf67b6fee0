"""A real Dex, the OIDC provider of the tests and benchmarks, on loopback HTTPS with a CA of its own.

hack/build-dex.sh (`make dex`) builds the binary; `DexServer` writes its certificates and configuration into
a work directory, starts it as a child of the calling process (`kubegate.devcluster.processes`), mints tokens
with the password and refresh grants, and counts the HTTP requests Dex served, so a test can prove that
verifying a token cost no call to the provider.

Dex keeps everything in memory storage: a restart forgets every token and makes new signing keys, which is
how tests get "the provider rotated its keys" on demand.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import os
import re
import ssl
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from kubegate.devcluster.binaries import cache_root, find_versions_file, parse_versions_env
from kubegate.devcluster.certs import generate_ca, issue_serving_certificate
from kubegate.devcluster.errors import DevClusterError
from kubegate.devcluster.files import write_private
from kubegate.devcluster.ports import LOOPBACK, pick_free_ports
from kubegate.devcluster.processes import Child, start_child, wait_ready

_BUILD_HINT = "run `make dex` (or hack/build-dex.sh) from the kubegate checkout"
DEFAULT_SCOPES = ("openid", "email", "profile", "groups")
DEFAULT_PASSWORD = "password"
# Dex refuses a login whose hash has a cost under bcrypt's default, 10 ("does not meet minimum cost
# requirement"), though it loads such a hash from its config without complaint. So 10 it is: each password
# grant costs Dex 60-80 ms of CPU (about 12 grants/s here), and refresh grants (`mint_access_tokens`) are
# the fast way to mint many tokens.
BCRYPT_COST = 10
# A hash of DEFAULT_PASSWORD at BCRYPT_COST, made with Python's crypt module, for interpreters without it
# (3.13 and later).
_PRECOMPUTED_DEFAULT_HASH = "$2b$10$u5odhILk20C3m/hbCdFL3e0sTVBa11bAr2TE0KWX6Sw33Wrid1BRG"
# Dex's request counter, labelled by handler, method and code (see `requests_served`).
REQUESTS_METRIC = "http_requests_total"


@dataclass(frozen=True)
class DexUser:
    """A static password of Dex's local connector; Dex logs users in by email."""

    username: str
    email: str
    user_id: str
    groups: tuple[str, ...] = ()
    password: str = DEFAULT_PASSWORD


@dataclass(frozen=True)
class DexClient:
    """A static OAuth2 client; its secret is known to the harness, which sends it in the password grant."""

    client_id: str
    secret: str
    redirect_uris: tuple[str, ...] = ("http://127.0.0.1/callback",)
    """A placeholder until a test runs the authorization-code flow against a real callback."""


DEFAULT_USERS = (
    DexUser(username="alice", email="alice@example.com", user_id="alice-id", groups=("admins", "developers")),
    DexUser(username="bob", email="bob@example.org", user_id="bob-id", groups=("developers",)),
    DexUser(username="carol", email="carol@example.com", user_id="carol-id"),
    # An AARC-G069 entitlement as a group (Dex's static users have no entitlement claim), for requirements
    # of that kind: a subgroup of `platform` with a role.
    DexUser(
        username="dave",
        email="dave@example.com",
        user_id="dave-id",
        groups=("urn:geant:example.org:group:platform:ops:role=admin#idp.example.org",),
    ),
)
KUBEGATE_CLIENT = DexClient(client_id="kubegate", secret="kubegate-dex-secret")
OTHER_CLIENT = DexClient(client_id="other-client", secret="other-client-secret")
"""A second client, so tests can mint tokens whose audience is not kubegate's."""
DEFAULT_CLIENTS = (KUBEGATE_CLIENT, OTHER_CLIENT)


@dataclass(frozen=True)
class DexTokens:
    """The answer of a password or refresh grant."""

    access_token: str
    id_token: str
    expires_in: int
    refresh_token: str
    """Empty unless the scopes asked for offline_access."""


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash of cost BCRYPT_COST as Dex's static passwords want it, from the C library's crypt()
    (libxcrypt makes `$2b$`). Python has no bcrypt module, and `crypt` left the standard library in 3.13:
    there only DEFAULT_PASSWORD has a hash, precomputed."""
    crypt = _crypt_module()
    if crypt is None:
        if password == DEFAULT_PASSWORD:
            return _PRECOMPUTED_DEFAULT_HASH
        raise DevClusterError("this Python has no crypt module to hash Dex passwords; give test users DEFAULT_PASSWORD")
    hashed: str = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2**BCRYPT_COST))
    if not hashed or not hashed.startswith("$2"):
        raise DevClusterError("the C library's crypt() makes no bcrypt hashes; give test users DEFAULT_PASSWORD")
    return hashed


def _crypt_module() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # noqa: PLC0415 - deprecated: imported only where it is needed
        except ImportError:
            return None
    return crypt


def render_config(
    *,
    issuer: str,
    https_address: str,
    telemetry_address: str,
    cert_file: Path,
    key_file: Path,
    clients: Sequence[DexClient],
    users: Sequence[DexUser],
    password_hash: Callable[[str], str] = bcrypt_hash,
    access_token_expiry: str = "24h",  # noqa: S107 - a duration, not a password
) -> dict[str, Any]:
    """Dex's configuration: memory storage, HTTPS only, the password grant on the local password database.

    Refresh tokens get an absolute lifetime: without one Dex's introspection says `exp` = `iat` for them,
    which an RFC 7662 client must read as expired (tests use refresh tokens as opaque tokens)."""
    return {
        "issuer": issuer,
        "expiry": {"idTokens": access_token_expiry, "refreshTokens": {"absoluteLifetime": "24h"}},
        "storage": {"type": "memory"},
        "web": {"https": https_address, "tlsCert": str(cert_file), "tlsKey": str(key_file)},
        "telemetry": {"http": telemetry_address},
        "logger": {"level": "info", "format": "text"},
        "oauth2": {"passwordConnector": "local", "skipApprovalScreen": True},
        "enablePasswordDB": True,
        "staticClients": [
            {"id": c.client_id, "secret": c.secret, "name": c.client_id, "redirectURIs": list(c.redirect_uris)}
            for c in clients
        ],
        "staticPasswords": [
            {
                "email": u.email,
                "username": u.username,
                "userID": u.user_id,
                "hash": password_hash(u.password),
                **({"groups": list(u.groups)} if u.groups else {}),
            }
            for u in users
        ],
    }


def find_dex_binary(*, env: Mapping[str, str] | None = None, search_from: Sequence[Path] | None = None) -> Path:
    """KUBEGATE_DEX_BINARY if set, else the binary hack/build-dex.sh builds for DEX_VERSION of versions.env."""
    env = os.environ if env is None else env
    override = env.get("KUBEGATE_DEX_BINARY")
    if override:
        binary = Path(override).expanduser()
    else:
        starts = search_from if search_from is not None else (Path(__file__).resolve().parent, Path.cwd())
        versions_file = find_versions_file(starts)
        if versions_file is None:
            raise DevClusterError(f"cannot find hack/versions.env to know which Dex to run; {_BUILD_HINT}")
        version = parse_versions_env(versions_file.read_text(encoding="utf-8")).get("DEX_VERSION")
        if not version:
            raise DevClusterError(f"{versions_file} does not set DEX_VERSION; restore it from git")
        binary = cache_root(env) / "bin" / f"dex-{version}" / "dex"
    if not os.access(binary, os.X_OK):
        raise DevClusterError(f"the Dex binary {binary} is missing; {_BUILD_HINT}")
    return binary


def sum_metric(text: str, name: str, *, labels: Mapping[str, str] | None = None) -> float:
    """The sum of counter `name` in a Prometheus text exposition over the label sets that hold `labels`."""
    total = 0.0
    for label_text, value in re.findall(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})?\s+(\S+)", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', label_text))
        if all(found.get(key) == wanted for key, wanted in (labels or {}).items()):
            total += float(value)
    return total


class DexServer:
    """One Dex process on free loopback ports, configured in `work_dir`; `start` it, then mint tokens.

    The ports, the CA and the certificate stay the same across `restart`; the signing keys do not.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        users: Sequence[DexUser] = DEFAULT_USERS,
        clients: Sequence[DexClient] = DEFAULT_CLIENTS,
        binary: Path | None = None,
        cpus: str | None = None,
        access_token_expiry: str = "24h",  # noqa: S107 - a duration, not a password
    ) -> None:
        """`work_dir`: where the keys, configuration and log go (created if missing).
        `users`, `clients`: Dex's static passwords and clients.
        `binary`: the Dex executable; by default the one `make dex` built (DevClusterError if missing).
        `cpus`: pin Dex to these CPUs (taskset's list, such as "0"), as benchmarks do.
        `access_token_expiry`: lifetime of access and ID tokens, a Go duration ("24h", "3s"); Dex sets both
        with `expiry.idTokens`."""
        self.binary = binary if binary is not None else find_dex_binary()
        self.cpus = cpus
        self.work_dir = work_dir
        self.users = tuple(users)
        self.clients = {client.client_id: client for client in clients}
        https_port, telemetry_port = pick_free_ports(2)
        self.issuer = f"https://{LOOPBACK}:{https_port}/dex"
        self.telemetry_url = f"http://{LOOPBACK}:{telemetry_port}"
        self.ca_file = work_dir / "ca.crt"
        self.config_file = work_dir / "config.yaml"
        self.log_file = work_dir / "dex.log"
        ca = generate_ca(common_name="kubegate-test-dex-ca")
        serving = issue_serving_certificate(ca, common_name="dex", dns_names=("localhost",), ip_addresses=(LOOPBACK,))
        self.ca_pem = ca.cert_pem.decode("ascii")
        work_dir.mkdir(parents=True, exist_ok=True)
        self.ca_file.write_bytes(ca.cert_pem)
        write_private(work_dir / "tls.crt", serving.cert_pem)
        write_private(work_dir / "tls.key", serving.key_pem)
        config = render_config(
            issuer=self.issuer,
            https_address=f"{LOOPBACK}:{https_port}",
            telemetry_address=f"{LOOPBACK}:{telemetry_port}",
            cert_file=work_dir / "tls.crt",
            key_file=work_dir / "tls.key",
            clients=list(self.clients.values()),
            users=self.users,
            access_token_expiry=access_token_expiry,
        )
        write_private(self.config_file, yaml.safe_dump(config, sort_keys=False).encode())
        self.ssl_context = ssl.create_default_context(cafile=str(self.ca_file))
        self._process: Child | None = None

    @property
    def ca_bundle_base64(self) -> str:
        """The CA as an OIDCProvider's spec.caBundle wants it."""
        return base64.b64encode(self.ca_pem.encode("ascii")).decode("ascii")

    @property
    def pid(self) -> int:
        """The pid of the running Dex (its CPU time is in /proc/<pid>/stat)."""
        if self._process is None:
            raise DevClusterError("Dex is not running; call start() first")
        return self._process.pid

    def oidc_provider(self, name: str, **spec: Any) -> dict[str, Any]:
        """An OIDCProvider resource trusting this Dex (its issuer, its CA as caBundle) for the kubegate client;
        `spec` adds fields or overrides these."""
        return {
            "apiVersion": "kubegate.dev/v1alpha1",
            "kind": "OIDCProvider",
            "metadata": {"name": name},
            "spec": {
                "issuerURL": self.issuer,
                "clientID": KUBEGATE_CLIENT.client_id,
                "caBundle": self.ca_bundle_base64,
                **spec,
            },
        }

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def user(self, username: str) -> DexUser:
        for user in self.users:
            if username in (user.username, user.email):
                return user
        raise KeyError(f"no Dex user {username!r}; the users are {[u.username for u in self.users]}")

    def start(self, *, timeout: float = 30.0) -> None:
        """Start Dex and return once its discovery document answers over HTTPS (trusting only its CA)."""
        if self._process is not None and self._process.returncode is None:
            raise DevClusterError(f"Dex in {self.work_dir} is already running (pid {self._process.pid})")
        self._process = start_child(
            "dex",
            [str(self.binary), "serve", str(self.config_file)],
            log_file=self.log_file,
            cpus=self.cpus,
            append=True,
        )
        wait_ready(self.discovery_url, timeout=timeout, what="Dex", child=self._process, context=self.ssl_context)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop and start on the same ports; memory storage makes every earlier token invalid (new keys)."""
        self.stop()
        self.start(timeout=timeout)

    def __enter__(self) -> DexServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def get_json(self, url: str) -> Any:
        """GET a JSON document from Dex (discovery, JWKS) over HTTPS."""
        status, body = self._request("GET", url, body=None, headers={})
        if status != 200:
            raise DevClusterError(f"Dex answered {status} to GET {url}: {body[:300]!r}")
        return json.loads(body)

    def jwks(self) -> dict[str, Any]:
        keys_url = self.get_json(self.discovery_url)["jwks_uri"]
        result: dict[str, Any] = self.get_json(keys_url)
        return result

    def password_grant(
        self,
        username: str,
        password: str | None = None,
        *,
        client_id: str = KUBEGATE_CLIENT.client_id,
        scopes: Sequence[str] = DEFAULT_SCOPES,
    ) -> str:
        """A new access token (a JWT signed by Dex) for `username` (name or email; its own password if none
        is given), minted for `client_id`."""
        return self.password_grant_tokens(username, password, client_id=client_id, scopes=scopes).access_token

    def password_grant_tokens(
        self,
        username: str,
        password: str | None = None,
        *,
        client_id: str = KUBEGATE_CLIENT.client_id,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        connection: http.client.HTTPSConnection | None = None,
    ) -> DexTokens:
        """The access and ID tokens of a password grant. `connection` (from `connect`) is reused if given:
        minting many tokens over one kept-alive connection saves a TLS handshake each."""
        try:
            user = self.user(username)
            login, secret = user.email, user.password if password is None else password
        except KeyError:
            login, secret = username, password or ""
        form = {"grant_type": "password", "username": login, "password": secret, "scope": " ".join(scopes)}
        return self._token_request(
            form, client_id=client_id, connection=connection, what=f"password grant for {login!r}"
        )

    def refresh_grant_tokens(
        self,
        refresh_token: str,
        *,
        client_id: str = KUBEGATE_CLIENT.client_id,
        connection: http.client.HTTPSConnection | None = None,
    ) -> DexTokens:
        """New tokens for a refresh token (which Dex then replaces: use the one returned next time). No
        bcrypt on this path, so it is about 20 times faster than a password grant."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_request(form, client_id=client_id, connection=connection, what="refresh grant")

    def mint_access_tokens(
        self,
        count: int,
        usernames: Sequence[str],
        *,
        client_id: str = KUBEGATE_CLIENT.client_id,
        scopes: Sequence[str] = DEFAULT_SCOPES,
    ) -> list[str]:
        """`count` distinct new access tokens: per user one password grant, then refresh grants, the users'
        chains in parallel over kept-alive connections.

        One chain per user because Dex keeps one refresh token per user and client: a second password
        grant for the same pair revokes the refresh token of the first."""
        if len(set(usernames)) != len(usernames) or not usernames:
            raise ValueError("mint_access_tokens needs distinct usernames, at least one")
        chains = min(len(usernames), count)
        sizes = [count // chains + (1 if i < count % chains else 0) for i in range(chains)]

        def chain(username: str, size: int) -> list[str]:
            connection = self.connect()
            try:
                tokens = self.password_grant_tokens(
                    username, client_id=client_id, scopes=(*scopes, "offline_access"), connection=connection
                )
                minted = [tokens.access_token]
                while len(minted) < size:
                    tokens = self.refresh_grant_tokens(tokens.refresh_token, client_id=client_id, connection=connection)
                    minted.append(tokens.access_token)
                return minted
            finally:
                connection.close()

        with concurrent.futures.ThreadPoolExecutor(max_workers=chains) as pool:
            minted = [token for tokens in pool.map(chain, usernames[:chains], sizes) for token in tokens]
        if len(set(minted)) != count:
            raise DevClusterError(f"Dex minted {len(set(minted))} distinct tokens where {count} were asked for")
        return minted

    def _token_request(
        self,
        form: Mapping[str, str],
        *,
        client_id: str,
        connection: http.client.HTTPSConnection | None,
        what: str,
    ) -> DexTokens:
        client = self.clients[client_id]
        basic = base64.b64encode(f"{client.client_id}:{client.secret}".encode()).decode("ascii")
        headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
        status, body = self._request(
            "POST", f"{self.issuer}/token", body=urllib.parse.urlencode(form), headers=headers, connection=connection
        )
        if status != 200:
            raise DevClusterError(f"Dex refused the {what} ({status}): {body[:300]!r}")
        answer = json.loads(body)
        return DexTokens(
            access_token=answer["access_token"],
            id_token=answer.get("id_token", ""),
            expires_in=answer["expires_in"],
            refresh_token=answer.get("refresh_token", ""),
        )

    def connect(self) -> http.client.HTTPSConnection:
        """A kept-alive HTTPS connection to Dex, for `password_grant_tokens(connection=...)`; close it after."""
        parsed = urllib.parse.urlsplit(self.issuer)
        return http.client.HTTPSConnection(parsed.hostname or LOOPBACK, parsed.port, context=self.ssl_context)

    def requests_served(self, *, handler: str | None = None) -> int:
        """How many HTTP requests Dex has answered since it last (re)started, from its /metrics; reading the
        metrics is not one of them (they are served on the telemetry port). `handler`: only those of one
        route, as Dex names it without the issuer's path, such as "/token/introspect" or "/keys"."""
        with urllib.request.urlopen(f"{self.telemetry_url}/metrics", timeout=10) as response:  # noqa: S310 - loopback
            text = response.read().decode()
        if REQUESTS_METRIC not in text:
            raise DevClusterError(f"Dex's /metrics has no {REQUESTS_METRIC}; did its metric names change?")
        return int(sum_metric(text, REQUESTS_METRIC, labels=None if handler is None else {"handler": handler}))

    def _request(
        self,
        method: str,
        url: str,
        *,
        body: str | None,
        headers: Mapping[str, str],
        connection: http.client.HTTPSConnection | None = None,
    ) -> tuple[int, bytes]:
        own = connection is None
        conn = self.connect() if connection is None else connection
        target = urllib.parse.urlsplit(url)
        path = target.path + (f"?{target.query}" if target.query else "")
        try:
            conn.request(method, path, body=body, headers=dict(headers))
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            raise DevClusterError(f"cannot reach Dex at {url}: {error}; its log is {self.log_file}") from error
        finally:
            if own:
                conn.close()
