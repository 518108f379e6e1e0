#!/usr/bin/env python3
"""Start, stop or query the embedded Milvus standalone server that `make test` runs the
server-marked tests against (the PyPI package `milvus` 2.3.x: a real Milvus binary with embedded
etcd and local storage; no Docker).

    python scripts/milvus_server.py start  [--base-dir D] [--lease ID]   # prints the URI when ready
                                                                        # (exit 2: no `milvus` package here)
    python scripts/milvus_server.py stop   [--base-dir D] [--lease ID]
    python scripts/milvus_server.py status [--base-dir D]

Only one such server can run on a machine (its embedded etcd and /run/milvus/standalone.pid are
fixed), so concurrent `make test` runs share it: each `start` takes a lease (by default named
after the calling process), each `stop` gives its lease back, and the server is stopped when no
live lease is left. Tests use their own collection prefixes, so sharing is safe. A fresh server
starts on an empty data folder, removed again at stop (logs stay in D/logs); the unpacked
binary is kept in D/bin between runs.

The server runs under a small supervisor process (`_serve`, in its own session) that stops it on
SIGTERM; nothing here signals a process it did not start (pids are checked against their
command lines first).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_BASE = Path(__file__).resolve().parent.parent / ".milvus-test"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0


def _state_file(base: Path) -> Path:
    return base / "server.json"


def _leases(base: Path) -> Path:
    return base / "leases"


@contextlib.contextmanager
def _locked(base: Path):  # noqa: ANN202
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_supervisor(pid: int, base: Path) -> bool:
    cmd = _cmdline(pid)
    return _alive(pid) and "milvus_server.py" in cmd and "_serve" in cmd and str(base) in cmd


def _is_milvus(pid: int, base: Path) -> bool:
    return _alive(pid) and _cmdline(pid).startswith(str(base / "bin" / "milvus"))


def _other_embedded_milvus(base: Path) -> str | None:
    """'pid N: cmd' of an embedded Milvus standalone not started from ``base``, if one runs."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        pid = int(d.name)
        cmd = _cmdline(pid).strip()
        if cmd.endswith("/bin/milvus run standalone") and _alive(pid) and not _is_milvus(pid, base):
            return f"pid {pid}: {cmd}"
    return None


def _read_state(base: Path) -> dict | None:
    try:
        return json.loads(_state_file(base).read_text())
    except (OSError, ValueError):
        return None


def _running(base: Path) -> dict | None:
    st = _read_state(base)
    if st and _is_supervisor(int(st.get("supervisor_pid", 0)), base) and _is_milvus(int(st.get("milvus_pid", 0)), base):
        return st
    return None


def _live_leases(base: Path) -> list[Path]:
    d = _leases(base)
    if not d.is_dir():
        return []
    live = []
    for f in d.iterdir():
        try:
            owner = int(f.read_text().strip() or 0)
        except (OSError, ValueError):
            owner = 0
        if _alive(owner):
            live.append(f)
        else:
            f.unlink(missing_ok=True)  # its holder died without `stop`
    return live


def _healthy(uri: str, timeout: float = 10.0) -> str | None:
    """The server's version when a pymilvus client can talk to it, else None."""
    import logging

    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    try:
        from pymilvus import MilvusClient

        c = MilvusClient(uri=uri, timeout=timeout)
        try:
            return str(c.get_server_version(timeout=timeout))
        finally:
            c.close()
    except Exception:
        return None


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"({path} missing)"


def _stop_server(base: Path, st: dict | None) -> None:
    """Stop the supervisor (which stops Milvus), then make sure the Milvus binary is gone."""
    if not st:
        return
    sup, mil = int(st.get("supervisor_pid", 0)), int(st.get("milvus_pid", 0))
    if _is_supervisor(sup, base):
        os.kill(sup, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and (_is_supervisor(sup, base) or _is_milvus(mil, base)):
        time.sleep(0.1)
    for pid, check in ((mil, _is_milvus), (sup, _is_supervisor)):
        if check(pid, base):
            os.kill(pid, signal.SIGKILL)
    _state_file(base).unlink(missing_ok=True)


def cmd_start(base: Path, lease: str, owner: int, port: int | None) -> int:
    """Exit 0 (URI printed), 1 (failed to start) or 2 (no embedded Milvus for this platform)."""
    t0 = time.monotonic()
    import importlib.util

    if importlib.util.find_spec("milvus") is None:
        print("milvus_server: the PyPI package `milvus` (embedded Milvus 2.3.5; wheels for Linux x86-64 and macOS) "
              "is not installed for this platform", file=sys.stderr)
        return 2
    with _locked(base):
        st = _running(base)
        if st is None:
            _stop_server(base, _read_state(base))  # leftovers of a killed run
            for f in _leases(base).glob("*") if _leases(base).is_dir() else []:
                f.unlink(missing_ok=True)
            shutil.rmtree(base / "data", ignore_errors=True)  # a fresh server starts empty
            log = open(base / "supervisor.log", "w")
            cmd = [sys.executable, str(Path(__file__).resolve()), "_serve", "--base-dir", str(base)]
            if port:
                cmd += ["--port", str(port)]
            sup = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
            log.close()
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                st = _read_state(base)
                if st and st.get("supervisor_pid") == sup.pid and st.get("uri"):
                    break
                if sup.poll() is not None or time.monotonic() > deadline:
                    if sup.poll() is None:
                        os.kill(sup.pid, signal.SIGTERM)
                        sup.wait(STOP_TIMEOUT_S)
                    print(f"milvus_server: the embedded Milvus did not start (supervisor exit {sup.returncode})", file=sys.stderr)
                    other = _other_embedded_milvus(base)
                    if other:
                        print(f"milvus_server: another embedded Milvus runs on this machine ({other}); only one can", file=sys.stderr)
                    print(_tail(base / "supervisor.log"), file=sys.stderr)
                    print(_tail(base / "logs" / "milvus-stderr.log"), file=sys.stderr)
                    return 1
                time.sleep(0.2)
            version = _healthy(st["uri"])
            if version is None:
                print(f"milvus_server: Milvus at {st['uri']} does not answer", file=sys.stderr)
                _stop_server(base, st)
                return 1
            print(f"milvus_server: started Milvus {version} at {st['uri']} in {time.monotonic() - t0:.1f} s (logs: {base / 'logs'})", file=sys.stderr)
        else:
            print(f"milvus_server: reusing the running Milvus at {st['uri']}", file=sys.stderr)
        _leases(base).mkdir(exist_ok=True)
        (_leases(base) / lease).write_text(str(owner))
        print(st["uri"])
    return 0


def cmd_stop(base: Path, lease: str | None) -> int:
    t0 = time.monotonic()
    with _locked(base):
        if lease is not None:
            (_leases(base) / lease).unlink(missing_ok=True)
        others = _live_leases(base)
        st = _read_state(base)
        if others and _running(base):
            print(f"milvus_server: left running for {len(others)} other user(s)", file=sys.stderr)
            return 0
        if st is None:
            print("milvus_server: not running", file=sys.stderr)
            return 0
        _stop_server(base, st)
        shutil.rmtree(base / "data", ignore_errors=True)  # test data only; logs stay for post-mortems
        print(f"milvus_server: stopped in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0


def cmd_status(base: Path) -> int:
    st = _running(base)
    if st is None:
        print("stopped")
        return 3
    print(json.dumps({**st, "leases": [f.name for f in _live_leases(base)]}))
    return 0


def cmd_serve(base: Path, port: int | None) -> int:
    """The supervisor: run Milvus until SIGTERM/SIGINT, then stop it (gracefully, then kill)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from milvus import MilvusServer

    server = MilvusServer(wait_for_started=False)  # its own wait does not notice a crashed binary
    server.set_base_dir(str(base))
    if port:
        server.listen_port = port
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()  # unpacks the binary (once) and starts it
    proc = server.server_proc
    health = f"http://127.0.0.1:{server.webservice_port}/healthz"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            print(f"milvus exited during start-up with {proc.returncode}", flush=True)
            return 1
        if stop["now"] or time.monotonic() > deadline:
            break
        try:
            with urllib.request.urlopen(health, timeout=5) as resp:
                if b"OK" in resp.read():
                    break
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    uri = f"http://127.0.0.1:{server.listen_port}"
    tmp = _state_file(base).with_suffix(".tmp")
    tmp.write_text(json.dumps({"uri": uri, "supervisor_pid": os.getpid(), "milvus_pid": proc.pid, "base_dir": str(base), "started": time.time()}))
    tmp.replace(_state_file(base))
    print(f"serving {uri} (milvus pid {proc.pid})", flush=True)
    code = 0
    while not stop["now"]:
        if proc.poll() is not None:
            print(f"milvus exited by itself with {proc.returncode}", flush=True)
            code = 1
            break
        time.sleep(0.2)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S - 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for fh in server.proc_fds.values():
        fh.close()
    server.proc_fds.clear()
    server.server_proc = None  # nothing left for MilvusServer.__del__ to stop
    print(f"stopped (milvus exit {proc.returncode})", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["start", "stop", "status", "_serve"])
    ap.add_argument("--base-dir", type=Path, default=Path(os.environ.get("VIDRET_TEST_SERVER_DIR", DEFAULT_BASE)))
    ap.add_argument("--owner", type=int, default=None, help="pid whose life the lease lasts (default: the parent process)")
    ap.add_argument("--lease", help="lease name (default: the owner's pid)")
    ap.add_argument("--port", type=int, default=None, help="first proxy port to try (default 19530)")
    args = ap.parse_args(argv)
    base = args.base_dir.resolve()
    owner = args.owner or os.getppid()  # e.g. the shell that runs start ... stop
    lease = args.lease or str(owner)
    if args.action == "start":
        return cmd_start(base, lease, owner, args.port)
    if args.action == "stop":
        return cmd_stop(base, lease)
    if args.action == "status":
        return cmd_status(base)
    return cmd_serve(base, args.port)


if __name__ == "__main__":
    sys.exit(main())
