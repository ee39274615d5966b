"""Another leakwatch process using the store, for the hand-over tests (run as a script).

store_user.py try STORE            one try, no waiting: prints "free" or "busy"
store_user.py wait STORE SECONDS   one try ("free"/"busy"), then opens as every command
                                   does (waiting up to SECONDS, announced): "opened S"
                                   with the seconds it waited; closes at a line on stdin
                                   (or its end): "closed"
store_user.py announce STORE       says it waits for the store, never opens it:
                                   "announced", then sleeps until killed
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.errors import StoreBusyError
from core.settings import Settings
from flows.context import _open_waiting
from matching.store import Store
from matching.store_wanted import Waiting


def _try(store: Path) -> str:
    try:
        Store(store).close()
    except StoreBusyError:
        return "busy"
    return "free"


def main(mode: str, store: Path, *rest: str) -> None:
    if mode == "try":
        print(_try(store), flush=True)
    elif mode == "wait":
        print(_try(store), flush=True)
        started = time.monotonic()
        opened = _open_waiting(Settings(store=store, store_wait_s=float(rest[0])), read_only=False)
        print(f"opened {time.monotonic() - started:.3f}", flush=True)
        sys.stdin.readline()
        opened.close()
        print("closed", flush=True)
    elif mode == "announce":
        waiting = Waiting(store)
        waiting.renew()
        print("announced", flush=True)
        time.sleep(3600)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
