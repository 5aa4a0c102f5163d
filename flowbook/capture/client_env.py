"""The environment a child process needs to send its LLM calls through flowbook.

Two routes, usable together (docs/capture-any-program.md has the table of which tool honours
which variable):

* **Forward mode** (a ``regular`` or ``upstream`` listener): proxy variables in both spellings,
  flowbook's CA for every TLS stack (OpenSSL's ``SSL_CERT_FILE``, requests, curl, Node), for
  Node before 24 a preload that routes the built-in ``fetch`` and ``http(s)`` through the proxy,
  and with a JDK on PATH, ``JAVA_TOOL_OPTIONS`` (proxy properties and a trust store).
* **Base-URL mode** (``reverse:`` listeners): each provider SDK's base-URL variable pointed at
  the listener that reverse-proxies to that provider. No proxy support and no CA needed.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from flowbook.capture.monitor import ModeInfo

CA_CERT = "mitmproxy-ca-cert.pem"
CA_BUNDLE = "ca-bundle.pem"
PRELOAD = Path(__file__).resolve().parent.parent / "static" / "node" / "proxy_preload.mjs"
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")
CA_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@dataclass(frozen=True)
class ProviderBase:
    """A provider whose SDKs take their base URL from environment variables."""

    name: str
    env_vars: tuple[str, ...]  # every variable set in base-URL mode; the first is read back
    default: str  # the SDKs' built-in base URL (with the path prefix they expect)


PROVIDER_BASES = (
    # openai (Python and npm) read OPENAI_BASE_URL; OPENAI_API_BASE is the pre-1.0 and
    # LangChain/LiteLLM spelling.
    ProviderBase("openai", ("OPENAI_BASE_URL", "OPENAI_API_BASE"), "https://api.openai.com/v1"),
    # anthropic (Python and npm) and Claude Code read ANTHROPIC_BASE_URL.
    ProviderBase("anthropic", ("ANTHROPIC_BASE_URL",), "https://api.anthropic.com"),
    # google-genai reads GOOGLE_GEMINI_BASE_URL (google/genai/_base_url.py).
    ProviderBase(
        "gemini", ("GOOGLE_GEMINI_BASE_URL",), "https://generativelanguage.googleapis.com"
    ),
)


def ca_bundle(confdir: Path) -> Path:
    """certifi's roots plus flowbook's CA, so a child process trusts both proxied and direct
    TLS with one file (tools that *replace* their roots with the file need both)."""
    ca = confdir / CA_CERT
    bundle = confdir / CA_BUNDLE
    if not bundle.exists() or bundle.stat().st_mtime < ca.stat().st_mtime:
        import certifi

        tmp = bundle.with_suffix(".pem.tmp")
        tmp.write_text(Path(certifi.where()).read_text() + "\n" + ca.read_text())
        os.replace(tmp, bundle)  # a concurrent reader never sees half a bundle
    return bundle


JAVA_TRUSTSTORE = "java-truststore.p12"
JAVA_STORE_PASS = "changeit"  # the JDK's own default; the store holds public certificates only


def java_truststore(confdir: Path) -> Path | None:
    """A PKCS12 trust store: the JDK's roots plus flowbook's CA, built once with the ``keytool``
    on PATH (Java has no variable that *adds* a CA, only one that replaces the roots)."""
    keytool = shutil.which("keytool")
    if keytool is None:
        return None
    ca = confdir / CA_CERT
    store = confdir / JAVA_TRUSTSTORE
    if store.exists() and store.stat().st_mtime >= ca.stat().st_mtime:
        return store
    cacerts = Path(keytool).resolve().parent.parent / "lib" / "security" / "cacerts"
    tmp = confdir / f".{JAVA_TRUSTSTORE}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    common = ["-noprompt", "-storepass", JAVA_STORE_PASS, "-keystore", str(tmp)]
    steps = [["-importcert", "-alias", "flowbook", "-file", str(ca), *common]]
    if cacerts.exists():
        steps.insert(0, [
            "-importkeystore", "-noprompt", "-srckeystore", str(cacerts),
            "-srcstorepass", JAVA_STORE_PASS, "-destkeystore", str(tmp),
            "-deststoretype", "PKCS12", "-deststorepass", JAVA_STORE_PASS,
        ])  # fmt: skip
    try:
        for step in steps:
            subprocess.run([keytool, *step], check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        logging.getLogger(__name__).warning("could not build a Java trust store: %s", exc)
        tmp.unlink(missing_ok=True)
        return None
    os.replace(tmp, store)
    return store


def java_options(fwd: ModeInfo, confdir: Path, existing: str) -> str | None:
    """JAVA_TOOL_OPTIONS: the JDK's proxy properties (no loopback bypass) and the trust store,
    appended to the user's options; None without a JDK."""
    store = java_truststore(confdir)
    if store is None:
        return None
    props = [
        f"-Dhttps.proxyHost={fwd.host}",
        f"-Dhttps.proxyPort={fwd.port}",
        f"-Dhttp.proxyHost={fwd.host}",
        f"-Dhttp.proxyPort={fwd.port}",
        "-Dhttp.nonProxyHosts=",  # the default skips localhost|127.*: capture local servers too
        f"-Djavax.net.ssl.trustStore={store}",
        f"-Djavax.net.ssl.trustStorePassword={JAVA_STORE_PASS}",
    ]
    if f"-Djavax.net.ssl.trustStore={store}" in existing:
        return existing
    return " ".join([existing, *props]).strip()


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased, default ports dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("https", 443), ("http", 80)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def provider_targets(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each provider's calls go: the base URL already set in ``environ`` (a gateway, a
    local server) or the SDKs' default. Base-URL mode keeps that destination."""
    env = os.environ if environ is None else environ
    out = {}
    for p in PROVIDER_BASES:
        value = next((env[v] for v in p.env_vars if env.get(v)), p.default)
        out[p.name] = value.rstrip("/") or p.default
    return out


def reverse_modes(environ: Mapping[str, str] | None = None) -> list[str]:
    """One ``reverse:`` mode spec per distinct provider destination (for ``--reverse``)."""
    seen: dict[str, None] = {}
    for target in provider_targets(environ).values():
        seen.setdefault(f"reverse:{origin(target)}", None)
    return list(seen)


def mode_target(spec: str) -> str | None:
    """The destination URL of a ``reverse:`` spec (``reverse:https://x@8081`` → https://x)."""
    from mitmproxy.proxy import mode_specs

    mode = mode_specs.ProxyMode.parse(spec)
    if mode.type_name != "reverse":
        return None
    return str(mode.data)


@functools.cache
def node_knows_import() -> bool:
    """False only when the ``node`` on PATH predates ``--import`` (18.18 / 19.0): with it in
    NODE_OPTIONS such a Node would refuse to start at all. No node on PATH: True."""
    node = shutil.which("node")
    if node is None:
        return True
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
        major, minor = (int(x) for x in out.stdout.strip().lstrip("v").split(".")[:2])
    except (OSError, ValueError, subprocess.SubprocessError):
        return True
    return (major, minor) >= (18, 18)


def merge_node_options(existing: str, preload: Path) -> str:
    """The user's NODE_OPTIONS with flowbook's ``--import`` appended (once)."""
    flag = f'--import "{preload.as_uri()}"'
    if preload.as_uri() in existing:
        return existing
    return f"{existing} {flag}".strip()


def _append_list(existing: str, items: Iterable[str]) -> str:
    have = [x.strip() for x in existing.split(",") if x.strip()]
    return ",".join(dict.fromkeys([*have, *items]))


def build_env(
    modes: Sequence[ModeInfo],
    confdir: Path,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Variables to overlay on ``environ`` (default ``os.environ``) for a child process.

    ``environ`` is only read: for NODE_OPTIONS and NO_PROXY (extended, not replaced) and for
    base URLs already set (base-URL mode keeps their destination).
    """
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    fwd = next((m for m in modes if m.kind in ("regular", "upstream")), None)
    reverse = [(m, mode_target(m.spec)) for m in modes if m.kind == "reverse"]
    bypass: list[str] = []
    # Base-URL mode: each provider whose destination one of our reverse listeners serves.
    targets = provider_targets(env)
    for p in PROVIDER_BASES:
        want = targets[p.name]
        for m, tgt in reverse:
            if tgt is not None and origin(tgt) == origin(want):
                path = urlsplit(want).path.rstrip("/")
                for var in p.env_vars:
                    out[var] = m.url + path
                bypass.append(f"{m.host}:{m.port}")
                break
    if fwd is not None:
        for name in PROXY_VARS:
            out[name] = fwd.url
        # Everything goes through the proxy, local servers too (a fake or self-hosted model on
        # localhost is an LLM call worth seeing) — except our own reverse listeners, which
        # would otherwise be captured twice.
        no_proxy = ",".join(bypass)
        for name in NO_PROXY_VARS:
            out[name] = no_proxy
        bundle = str(ca_bundle(confdir))
        for name in CA_VARS:
            out[name] = bundle
        out["NODE_EXTRA_CA_CERTS"] = str(confdir / CA_CERT)
        out["NODE_USE_ENV_PROXY"] = "1"
        java = java_options(fwd, confdir, env.get("JAVA_TOOL_OPTIONS", ""))
        if java is not None:
            out["JAVA_TOOL_OPTIONS"] = java
        if not node_knows_import():
            pass  # Node < 18.18 refuses to start with --import in NODE_OPTIONS
        elif PRELOAD.exists():
            out["NODE_OPTIONS"] = merge_node_options(env.get("NODE_OPTIONS", ""), PRELOAD)
        else:
            logging.getLogger(__name__).warning(
                "%s is missing (a source checkout without the widget build?): Node before 24 "
                "will not use the proxy. Build it with: cd widgets && npm ci && node build.mjs",
                PRELOAD,
            )
    elif bypass:
        # Base-URL mode only: a corporate proxy in the user's environment must not swallow the
        # calls to our listeners on loopback.
        hosts = sorted({b.rsplit(":", 1)[0] for b in bypass})
        for name in NO_PROXY_VARS:
            out[name] = _append_list(env.get(name, ""), hosts)
    return out


def shell_exports(env: Mapping[str, str]) -> str:
    """``export A=… B=…`` as one POSIX shell line (values quoted)."""
    import shlex

    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
