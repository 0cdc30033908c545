"""Servers that tests start with bin/serve: a port for one, and its processes."""

import os
import socket


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def uwsgi_pids(port: int) -> list[int]:
    """The uWSGI processes listening on 127.0.0.1:`port`, whatever their parent (a worker
    whose master is gone is init's). ps shows the master and each worker alike: `uwsgi`,
    with the command line bin/serve execs (`.venv/bin/python .venv/bin/uwsgi --ini
    uwsgi.ini --http-socket 127.0.0.1:<port> ...`)."""
    address = f"127.0.0.1:{port}".encode()
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                arguments = cmdline.read().split(b"\0")
        except OSError:
            continue
        if address in arguments and any(os.path.basename(a) == b"uwsgi" for a in arguments):
            found.append(int(entry))
    return found
