"""Every flowbook module imports on its own in a fresh interpreter (no import cycle, no module
that only works after another was imported), and the proxy-side modules named in
docs/architecture.md do not drag in the layers above them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import flowbook

ROOT = Path(flowbook.__file__).parent
# Entry points that are scripts, not libraries, are still importable: nothing is skipped.
MODULES = sorted(
    ".".join(("flowbook", *p.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
    for p in ROOT.rglob("*.py")
)


# Runs in a fresh interpreter: loads the heavy third-party libraries once (no flowbook module),
# then forks one child per flowbook module, so each child starts with no flowbook module loaded
# and imports only its own (and what that one imports).
CHILD = r"""
import importlib, os, sys, traceback
for lib in ("numpy", "pandas", "pyarrow", "pyarrow.feather", "psygnal", "httpx", "mitmproxy.http",
            "mitmproxy.proxy.mode_specs", "mitmproxy.tools.dump", "anywidget", "traitlets",
            "IPython"):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
assert not [m for m in sys.modules if m == "flowbook" or m.startswith("flowbook.")]
failed = []
for module in sys.argv[1:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(module)
            code = 0
        except BaseException:
            os.write(w, traceback.format_exc()[-2000:].encode())
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        err = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(f"{module}: {err}")
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone() -> None:
    assert len(MODULES) > 50 and "flowbook.workspace" in MODULES and "flowbook.schema" in MODULES
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *MODULES], capture_output=True, text=True, timeout=170
    )
    assert out.returncode == 0, "modules that fail to import alone:\n" + out.stdout + out.stderr


def test_the_settings_module_does_not_shadow_fb_config() -> None:
    script = (
        "import flowbook.settings, flowbook as fb, sys;"
        "from flowbook.settings import ConfigManager;"
        "import importlib.util as u;"
        "assert u.find_spec('flowbook.config') is None, 'no flowbook.config module';"
        "assert isinstance(fb.config, ConfigManager);"
        "assert 'flowbook.config' not in sys.modules"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr


def test_schema_and_filters_do_not_import_the_store() -> None:
    script = (
        "import sys, flowbook.schema, flowbook.filters;"
        "bad = sorted(m for m in sys.modules if m.startswith(('flowbook.store', 'flowbook.capture',"
        " 'flowbook.workspace', 'flowbook.runtime', 'flowbook.api')));"
        "assert not bad, bad"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr


# Loaded only when capture or the widgets are used: a fresh kernel reading its history pays for
# none of them (mitmproxy alone took ~1 s of P9's cold open).
CAPTURE_AND_UI = ("mitmproxy", "flask", "plotly", "anywidget", "ipywidgets", "IPython")


def test_reading_flows_from_a_data_dir_does_not_import_mitmproxy_or_widgets(
    tmp_path: Path,
) -> None:
    from flowbook.store.file_store import FileStore
    from tests.helpers.factories import make_flow

    flows = [make_flow(f"f{i}", model=f"gpt-4o-{i}") for i in range(3)]
    with FileStore(tmp_path) as fs:
        fs.append_many(flows)
    script = (
        "import sys, flowbook as fb\n"
        "df = fb.flows(include_history=True)\n"
        f"assert sorted(df['id']) == {sorted(f.id for f in flows)!r}, list(df['id'])\n"
        f"assert fb.get_flow({flows[0].id!r}).request.model == 'gpt-4o-0'\n"
        "fb.stats()\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {CAPTURE_AND_UI!r})\n"
        "assert not heavy, heavy[:20]\n"
    )
    env = dict(os.environ, FLOWBOOK_DATA_DIR=str(tmp_path), FLOWBOOK_AUTO_CLEANUP="false")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
