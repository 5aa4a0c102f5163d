"""Monitor: a running flowbook proxy and how to point clients at it."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowbook.capture.client_env import CA_BUNDLE, CA_CERT, ca_bundle

if TYPE_CHECKING:
    import httpx

    from flowbook.capture.proxy import ProxyThread
    from flowbook.capture.proxy_process import ProxyProcess
    from flowbook.capture.runner import RunResult

__all__ = ["CA_BUNDLE", "CA_CERT", "ModeInfo", "Monitor", "ca_bundle", "private_dir"]


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


class Monitor:
    """A running proxy. Create with ``fb.start()``; stop with ``fb.stop()``."""

    def __init__(
        self,
        proxy: ProxyThread | ProxyProcess,
        modes: list[str],
        data_dir: Path,
        confdir: Path,
        store: Any,
    ) -> None:
        self._proxy = proxy
        self.data_dir = data_dir
        self.confdir = confdir
        self._store = store
        from mitmproxy.proxy import mode_specs  # here: importing this module must stay cheap

        infos = []
        for spec, (host, port) in zip(modes, proxy.listen_addrs, strict=False):
            kind = mode_specs.ProxyMode.parse(spec).type_name
            infos.append(ModeInfo(spec=spec, kind=kind, host=_client_host(host), port=port))
        self.modes: list[ModeInfo] = infos
        try:
            from flowbook.capture import discovery

            # `flowbook run` in a terminal finds and joins this capture through capture.json.
            discovery.announce(self)
        except OSError:
            pass  # a read-only data dir loses only the discovery, not the capture

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

    def client_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment variables that send a child process's LLM calls through this monitor.

        Overlay them on the child's environment: ``env={**os.environ, **mon.client_env()}``.
        Forward mode: HTTPS_PROXY/HTTP_PROXY/NO_PROXY (both cases), flowbook's CA for OpenSSL,
        requests, curl and Node (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
        NODE_EXTRA_CA_CERTS), NODE_USE_ENV_PROXY=1, for Node before 24 a preload appended to
        NODE_OPTIONS, and with a JDK on PATH, JAVA_TOOL_OPTIONS (proxy and trust store).
        Reverse listeners for a provider: its SDKs' base-URL variables (OPENAI_BASE_URL,
        ANTHROPIC_BASE_URL, GOOGLE_GEMINI_BASE_URL). ``environ`` (default
        ``os.environ``) is read for NODE_OPTIONS, NO_PROXY and base URLs already set.
        docs/capture-any-program.md says which tool reads which variable.
        """
        from flowbook.capture.client_env import build_env

        return build_env(self.modes, self.confdir, environ)

    def shell_line(self) -> str:
        """One line to paste into a POSIX shell so programs started there are captured."""
        from flowbook.capture.client_env import shell_exports

        return shell_exports(self.client_env())

    def run(self, cmd: str | Sequence[str], **popen_kwargs: Any) -> RunResult:
        """Run a program with its LLM calls going through this monitor, its output shown as it
        comes (in a notebook, in the cell), and return its exit code, the flows it made and a
        summary. Flows appear in ``fb.flows()`` and the widgets while it runs. ``cmd`` is an
        argv list or a shell-like string; ``popen_kwargs`` go to ``subprocess.Popen`` (``env``
        is the base the proxy variables are added to; ``stdout`` given: no relaying)."""
        import sys

        from flowbook.capture.runner import command_list, run_with_env

        # with shell=True a string is the shell's to split (pipes, globs, &&)
        args = [cmd] if popen_kwargs.get("shell") and isinstance(cmd, str) else command_list(cmd)
        return run_with_env(
            args, self.client_env, settle=False, relay_to=sys.stdout, **popen_kwargs
        )

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
        import shlex
        import shutil
        import sys

        lines = [f"<flowbook Monitor: {len(self._store)} flows, data in {self.data_dir}>"]
        for m in self.modes:
            if m.kind in ("regular", "upstream"):
                lines.append(f"  {m.kind:8} proxy {m.url}  (CA: {self.ca_cert_path})")
                lines.append("           Python SDKs: OpenAI(http_client=mon.httpx_client())")
            elif m.kind == "reverse":
                target = m.spec.split(":", 1)[1].split("@")[0]
                lines.append(f"  reverse  {m.url}  →  {target}   (use {m.url} as the base URL)")
            else:
                lines.append(f"  {m.kind:8} {m.url}")
        exe = "flowbook" if shutil.which("flowbook") else f"{sys.executable} -m flowbook.cli"
        lines.append(
            f"  a program you start in a terminal:  {exe} run --data-dir "
            f"{shlex.quote(str(self.data_dir))} -- YOUR COMMAND"
        )
        lines.append(
            "  from here: mon.run('YOUR COMMAND') or %flowmon run YOUR COMMAND; "
            "a whole shell: paste mon.shell_line()"
        )
        return "\n".join(lines)

    def stop(self) -> None:
        from flowbook.capture import discovery

        discovery.withdraw(self.data_dir)
        self._proxy.stop()


def _client_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return host


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
