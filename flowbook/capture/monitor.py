"""Monitor: a running flowbook proxy and how to point clients at it."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mitmproxy.proxy import mode_specs

from flowbook.capture.proxy import ProxyThread

if TYPE_CHECKING:
    import httpx

CA_CERT = "mitmproxy-ca-cert.pem"
CA_BUNDLE = "ca-bundle.pem"


@dataclass(frozen=True)
class ModeInfo:
    """One listening mode: its mitmproxy spec, kind and the URL a client uses."""

    spec: str
    kind: str  # regular | reverse | upstream | local | …
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def ca_bundle(confdir: Path) -> Path:
    """certifi's roots plus flowbook's CA, so a child process trusts both proxied and direct
    TLS with one SSL_CERT_FILE."""
    ca = confdir / CA_CERT
    bundle = confdir / CA_BUNDLE
    if not bundle.exists() or bundle.stat().st_mtime < ca.stat().st_mtime:
        import certifi

        bundle.write_text(Path(certifi.where()).read_text() + "\n" + ca.read_text())
    return bundle


class Monitor:
    """A running proxy. Create with ``fb.start()``; stop with ``fb.stop()``."""

    def __init__(
        self, proxy: ProxyThread, modes: list[str], data_dir: Path, confdir: Path, store: Any
    ) -> None:
        self._proxy = proxy
        self.data_dir = data_dir
        self.confdir = confdir
        self._store = store
        infos = []
        for spec, (host, port) in zip(modes, proxy.listen_addrs, strict=False):
            kind = mode_specs.ProxyMode.parse(spec).type_name
            infos.append(ModeInfo(spec=spec, kind=kind, host=_client_host(host), port=port))
        self.modes: list[ModeInfo] = infos

    @property
    def port(self) -> int:
        return self.modes[0].port

    @property
    def host(self) -> str:
        return self.modes[0].host

    @property
    def proxy_url(self) -> str:
        """URL of the first mode: a proxy URL (regular/upstream) or a base URL (reverse)."""
        return self.modes[0].url

    @property
    def ca_cert_path(self) -> Path:
        """flowbook's CA certificate (PEM). Trust it in clients that go through forward mode."""
        return self.confdir / CA_CERT

    @property
    def running(self) -> bool:
        return self._proxy.alive

    def _forward(self) -> ModeInfo | None:
        for m in self.modes:
            if m.kind in ("regular", "upstream"):
                return m
        return None

    def client_env(self) -> dict[str, str]:
        """Environment variables that send a child process's HTTP(S) through this proxy."""
        env = {
            "SSL_CERT_FILE": str(ca_bundle(self.confdir)),
            "REQUESTS_CA_BUNDLE": str(ca_bundle(self.confdir)),
            "NODE_EXTRA_CA_CERTS": str(self.ca_cert_path),
        }
        fwd = self._forward()
        if fwd is not None:
            for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
                env[name] = fwd.url
            env["NO_PROXY"] = env["no_proxy"] = ""
        return env

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context trusting the system roots and flowbook's CA."""
        return ssl.create_default_context(cafile=str(ca_bundle(self.confdir)))

    def httpx_client(self, **kwargs: Any) -> httpx.Client:
        """An httpx.Client routed through the proxy (forward mode) that trusts flowbook's CA;
        in reverse mode its base_url is the proxy. Pass it as ``http_client=`` to SDKs."""
        import httpx

        self._route(kwargs)
        kwargs.setdefault("timeout", httpx.Timeout(600.0, connect=10.0))
        return httpx.Client(**kwargs)

    def async_httpx_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """The async twin of :meth:`httpx_client`."""
        import httpx

        return httpx.AsyncClient(**self._route(kwargs))

    def _route(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Fill in (unless given) the CA to trust and the proxy, or the base URL in reverse mode."""
        fwd = self._forward()
        kwargs.setdefault("verify", self.ssl_context())
        if fwd is not None:
            kwargs.setdefault("proxy", fwd.url)
        else:
            kwargs.setdefault("base_url", self.proxy_url)
        return kwargs

    def __repr__(self) -> str:
        lines = [f"<flowbook Monitor: {len(self._store)} flows, data in {self.data_dir}>"]
        for m in self.modes:
            if m.kind in ("regular", "upstream"):
                lines.append(
                    f"  {m.kind:8} proxy {m.url}  →  export HTTPS_PROXY={m.url} "
                    f"SSL_CERT_FILE={ca_bundle(self.confdir)}"
                )
                lines.append("           Python SDKs: OpenAI(http_client=mon.httpx_client())")
            elif m.kind == "reverse":
                target = m.spec.split(":", 1)[1].split("@")[0]
                lines.append(f"  reverse  {m.url}  →  {target}   (use {m.url} as the base URL)")
            else:
                lines.append(f"  {m.kind:8} {m.url}")
        return "\n".join(lines)

    def stop(self) -> None:
        self._proxy.stop()


def _client_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return host


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
