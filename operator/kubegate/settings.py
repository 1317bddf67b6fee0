"""Every setting of every kubegate process, in one place. Flags and variables come from these models."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from kubegate.contracts.token_format import PREFIX_PATTERN
from kubegate.resources.common import DNS_LABEL_PATTERN, DnsSubdomain
from kubegate.resources.duration import Duration, parse_duration

DEFAULT_NAMESPACE = "kubegate-system"
ADMIN_GROUP = "kubegate:admin"
BOOTSTRAP_NAME = "initial-bootstrap-token"


def _log_level_name(value: str) -> str:
    level = value.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("use DEBUG, INFO, WARNING or ERROR")
    return level


LogLevel = Annotated[str, AfterValidator(_log_level_name)]
"""A log level name, upper-cased; one of DEBUG, INFO, WARNING, ERROR."""


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT as (host, port); the brackets of an IPv6 host are dropped."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _host_port(value: str) -> str:
    _, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        # Said at start-up: left to the HTTP server, a missing port would quietly become port 80.
        raise ValueError("use HOST:PORT, for example 0.0.0.0:8443 or [::]:8443")
    return value


Address = Annotated[str, AfterValidator(_host_port)]
"""HOST:PORT to listen on; IPv6 hosts in brackets."""


def _token_prefix(value: str) -> str:
    if value and not PREFIX_PATTERN.match(value):
        raise ValueError("use 1-16 lowercase letters or digits, starting with a letter and ending with _, such as kg_")
    return value


class OperatorSettings(BaseModel):
    """Settings of `kubegate operator`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    operator_namespace: Annotated[str, Field(pattern=DNS_LABEL_PATTERN)] = DEFAULT_NAMESPACE
    """Namespace the operator runs in: it holds the validation config, the bootstrap token and the signing keys."""
    namespaces: Annotated[
        list[Annotated[str, Field(pattern=DNS_LABEL_PATTERN)]], Field(json_schema_extra={"flag": "--namespace"})
    ] = []
    """Watch only this namespace; unset: every namespace."""
    token_prefix: str = ""
    """Prefix of generated tokens, such as kg_, so that secret scanners recognize leaked tokens."""
    config_shards: Annotated[int, Field(ge=1, le=1024)] = 64
    """Number of Secrets the validation config is spread over (each must stay under 1 MiB)."""
    config_write_delay: Annotated[float, Field(ge=0, le=60)] = 0.2
    """Seconds to gather changes before writing the validation config."""
    config_write_interval: Annotated[float, Field(ge=0, le=60)] = 1.0
    """While changes keep coming (many StaticTokens applied at once), write the validation config at most this
    often, so that each shard write carries many tokens; new tokens reach the servers within about this
    long plus the write."""
    secret_recheck_interval: Duration = "60s"
    """How often a token brought with spec.secretRef is read again from its Secret, to notice a new value."""
    resync_interval: Duration = "5m"
    """How often every StaticToken is reconciled without a change, to catch a missed event (2 reads each)."""
    delete_expired_after: Duration | None = None
    """Delete StaticTokens this long after they expire; unset: keep them (Ready=False, Stalled=True, reason Expired)."""
    token_method: bool = True
    """Enable the static-token method (StaticToken resources and the bootstrap token)."""
    bootstrap: bool = True
    """Create a bootstrap token at start-up when none exists."""
    bootstrap_token_secret: str | None = None
    """Use the token in this Secret of the operator namespace as the bootstrap token: NAME or NAME:KEY (key: token)."""
    bootstrap_expiration: Duration | None = None
    """Lifetime of the bootstrap token, such as 24h; unset: it never expires."""
    bootstrap_log_token: bool = True
    """Log a generated bootstrap token once, at INFO, under the key client_token (as Flipt does)."""
    bootstrap_recreate: bool = False
    """Create the bootstrap token again at start-up after someone deleted it."""
    admin_group: str = ADMIN_GROUP
    """Group of the bootstrap token; the server lets this group manage tokens."""
    signing_key_rotation: Duration = "720h"
    """How often a new key starts signing client tokens; the kubegate.dev/rotate annotation rotates at once."""
    client_token_max_lifetime: Duration = "24h"
    """No client token lives longer; a retired signing key stays published this long after it stops signing."""
    standalone: bool = False
    """Run without leader election: act at once, alone (a single replica, or a development run)."""
    lease_name: DnsSubdomain = "kubegate-operator"
    """Lease in the operator namespace the replicas elect their leader with: only its holder acts."""
    lease_duration: Duration = "10s"
    """How long a stand-by waits, after it last saw the leader renew the lease, before it takes over."""
    lease_renew_deadline: Annotated[Duration, Field(validate_default=True)] = "7s"
    """The leader stops writing when it could not renew the lease for this long; shorter than --lease-duration."""
    lease_retry_period: Annotated[Duration, Field(validate_default=True)] = "2s"
    """How often the leader renews the lease and a stand-by tries to take it; shorter than --lease-renew-deadline."""
    provider_refresh_interval: Duration = "1h"
    """How often each OIDCProvider's discovery document and keys are read again (the kubegate.dev/refresh annotation reads them at once)."""  # noqa: E501
    provider_keys_max_age: Duration = "24h"
    """While an OIDC provider cannot be reached, its last good keys stay published this long after they were read; then they are withdrawn."""  # noqa: E501
    provider_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Seconds the operator waits for an OIDC provider's discovery document or JWKS."""
    health_address: Address = "0.0.0.0:8081"
    """Address of the liveness endpoint (/healthz); port 0: a free port, named in the log."""
    log_level: LogLevel = "INFO"
    """Log level: DEBUG, INFO, WARNING or ERROR."""

    @field_validator("token_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return _token_prefix(value)

    @field_validator("lease_renew_deadline")
    @classmethod
    def _renew_before_expiry(cls, value: str, info: ValidationInfo) -> str:
        duration = info.data.get("lease_duration")
        # A leader must notice it lost the lease before a stand-by may take it, or both would act.
        if duration is not None and parse_duration(value) >= parse_duration(duration):
            raise ValueError(f"must be shorter than --lease-duration ({duration}), for example 7s for 10s")
        return value

    @field_validator("lease_retry_period")
    @classmethod
    def _retry_before_deadline(cls, value: str, info: ValidationInfo) -> str:
        deadline = info.data.get("lease_renew_deadline")
        if deadline is not None and parse_duration(value) >= parse_duration(deadline):
            raise ValueError(
                f"must be shorter than --lease-renew-deadline ({deadline}): the leader gets more than one try"
            )
        return value

    def lease_seconds(self) -> tuple[float, float, float]:
        """(duration, renew deadline, retry period) of the lease, in seconds."""
        duration, deadline, retry = (
            parse_duration(v).total_seconds()
            for v in (self.lease_duration, self.lease_renew_deadline, self.lease_retry_period)
        )
        return duration, deadline, retry

    def bootstrap_secret_ref(self) -> tuple[str, str] | None:
        """The (name, key) of a known bootstrap token, from `bootstrap_token_secret`."""
        if not self.bootstrap_token_secret:
            return None
        name, _, key = self.bootstrap_token_secret.partition(":")
        return name, key or "token"


RESERVED_PREFIX = "system:"
"""Kubernetes reserves names starting with this; kubegate never hands one out."""


class ServerSettings(BaseModel):
    """Settings of `kubegate server`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    operator_namespace: Annotated[str, Field(pattern=DNS_LABEL_PATTERN)] = DEFAULT_NAMESPACE
    """Namespace of the operator, whose validation-config Secrets this server watches."""
    address: Address = "0.0.0.0:8443"
    """Address to listen on, HOST:PORT."""
    tls_cert_file: str | None = None
    """Serving certificate (PEM, chain allowed); re-read when the file changes."""
    tls_key_file: str | None = None
    """Private key of the serving certificate (PEM); re-read when the file changes."""
    tls_reload_interval: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """Seconds between checks of the certificate files for changes."""
    insecure_http: Annotated[bool, Field(validate_default=True)] = False
    """Serve plain HTTP instead of HTTPS: only behind a TLS-terminating proxy or on loopback."""
    create_token_groups: list[str] = [ADMIN_GROUP]
    """Groups whose members may create tokens (POST /auth/v1/method/token)."""
    list_token_groups: list[str] = [ADMIN_GROUP]
    """Groups whose members may list and read other callers' tokens (GET /auth/v1/tokens)."""
    delete_token_groups: list[str] = [ADMIN_GROUP]
    """Groups whose members may delete tokens (DELETE /auth/v1/tokens/{id})."""
    token_namespace: Annotated[str, Field(pattern=DNS_LABEL_PATTERN)] = DEFAULT_NAMESPACE
    """Namespace of StaticTokens created through the API when the request has no namespaceKey."""
    token_namespaces: list[Annotated[str, Field(pattern=DNS_LABEL_PATTERN)]] = []
    """Namespaces a request's namespaceKey may name; unset: any namespace (Kubernetes RBAC still applies)."""
    token_wait_timeout: Annotated[float, Field(gt=0, le=300)] = 15.0
    """Seconds delete and expire wait for the operator and this server's memory to reflect the change; a created token the operator has not published after this long is dropped here if its StaticToken is gone, else kept (and checked as often)."""  # noqa: E501
    webhook_username_prefix: str = "kubegate:"
    """Prefix of usernames returned to kube-apiserver by the TokenReview webhook."""
    webhook_groups_prefix: str = "kubegate:"
    """Prefix of groups returned to kube-apiserver by the TokenReview webhook."""
    webhook_audiences: list[str] = []
    """Audiences kubegate tokens are valid for in TokenReviews; unset: any requested audience."""
    issuer_url: str | None = None
    """External URL of this server: the `iss` of the client tokens it issues, and where /.well-known lives."""
    client_token_audience: str = "kubegate"
    """The `aud` of the client tokens this server issues and accepts."""
    serviceaccount_bindings_file: str | None = None
    """YAML list of bindings (namespaces, serviceAccounts, namespaceLabels, groups) that may exchange service-account tokens; unset: the Kubernetes method is off."""  # noqa: E501
    serviceaccount_audiences: list[str] = []
    """Audiences a service-account token must be issued for (sent in the TokenReview); unset: the API server's."""
    serviceaccount_max_lifetime: Duration = "1h"
    """Longest lifetime of a client token from a service-account exchange (it never outlives the service-account token)."""  # noqa: E501
    serviceaccount_review_cache_seconds: Annotated[float, Field(ge=0, le=30)] = 5.0
    """Seconds a successful TokenReview is reused for the same token (never past its expiry); 0: no cache."""
    serviceaccount_max_concurrent_reviews: Annotated[int, Field(ge=1, le=10_000)] = 32
    """Most TokenReviews in flight to the API server at once; an exchange beyond that gets 503 with Retry-After."""
    static_token_prefix: str = ""
    """The operator's --token-prefix: an unknown credential with this prefix is never sent to an OIDC provider."""
    oidc_leeway: Annotated[float, Field(ge=0, le=300)] = 30.0
    """Seconds of clock skew allowed when checking exp, nbf and iat of OIDC access tokens."""
    oidc_jwks_refetch_cooldown: Annotated[float, Field(ge=1, le=3600)] = 30.0
    """Least seconds between two JWKS fetches of one provider caused by tokens naming an unknown key id."""
    oidc_cache_seconds: Annotated[float, Field(ge=0, le=3600)] = 300.0
    """Longest time a verified OIDC access token (JWT or opaque) is remembered; never past its expiry. 0: no cache."""
    oidc_cache_size: Annotated[int, Field(ge=0, le=1_000_000)] = 10_000
    """Most OIDC access tokens remembered (by SHA-256) at once."""
    oidc_accept_refresh_tokens: bool = False
    """Accept an opaque token that introspection calls a refresh token (token_use refresh_token): only for a provider such as Dex whose sole opaque tokens are refresh tokens; off, a leaked refresh token is no bearer credential."""  # noqa: E501
    oidc_provider_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Seconds the server waits for an OIDC provider (JWKS, introspection, userinfo) before answering 503."""
    oidc_provider_max_concurrent: Annotated[int, Field(ge=1, le=10_000)] = 16
    """Most calls in flight to one OIDC provider at once; beyond that a request needing one gets 503."""
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    """Largest request body accepted; larger bodies get 413."""
    idle_timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Seconds a keep-alive connection may sit idle between requests (or before its first) before it is closed."""
    header_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    """Seconds a client has to send a request's headers, from its first byte; then 408 and the connection closes."""
    body_timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Seconds a client has to send a request's body once its headers arrived; then 408 and the connection closes."""
    authentication_cache_size: Annotated[int, Field(ge=0, le=10_000_000)] = 16_384
    """Static tokens whose verified identity and answers are kept ready (about 1.5 KiB each); with more tokens in use than this, each answer costs about 8 µs more."""  # noqa: E501
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    """Worker processes sharing the listening socket, each a full replica with its own watchers (see README)."""
    access_log: bool = True
    """Log one line per request (method, route, status, duration; never headers, cookies or query strings)."""
    log_level: LogLevel = "INFO"
    """Log level: DEBUG, INFO, WARNING or ERROR."""

    @field_validator("static_token_prefix")
    @classmethod
    def _static_prefix(cls, value: str) -> str:
        return _token_prefix(value)

    @field_validator("webhook_username_prefix", "webhook_groups_prefix")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith(RESERVED_PREFIX):
            raise ValueError(f"must not start with {RESERVED_PREFIX!r}: Kubernetes reserves it for its own users")
        return value

    @field_validator("create_token_groups", "list_token_groups", "delete_token_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        if any(not group for group in value):
            raise ValueError("group names must not be empty")
        return value

    @field_validator("insecure_http")
    @classmethod
    def _transport(cls, value: bool, info: ValidationInfo) -> bool:
        # Validated here, after both file fields, so that the error names a flag.
        has_cert, has_key = bool(info.data.get("tls_cert_file")), bool(info.data.get("tls_key_file"))
        if has_cert != has_key:
            raise ValueError("set both --tls-cert-file and --tls-key-file, or neither")
        if value and has_cert:
            raise ValueError("--insecure-http and --tls-cert-file exclude each other: choose HTTP or HTTPS")
        if not value and not has_cert:
            raise ValueError("set --tls-cert-file and --tls-key-file to serve HTTPS, or --insecure-http for plain HTTP")
        return value

    @field_validator("issuer_url")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("use an absolute URL without query or fragment, such as https://kubegate.example.com")
        return value.rstrip("/")

    @field_validator("serviceaccount_bindings_file")
    @classmethod
    def _bindings_need_issuer(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not info.data.get("issuer_url"):
            raise ValueError("the Kubernetes method issues client tokens: set --issuer-url too")
        return value

    @property
    def kubernetes_method(self) -> bool:
        """Whether service-account tokens can be exchanged."""
        return self.serviceaccount_bindings_file is not None

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.address)
