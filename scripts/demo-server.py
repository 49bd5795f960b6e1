#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The demo's private dovecot (used by scripts/demo).

    demo-server.py start BASE   start dovecot under BASE as a detached daemon
                                (or find it running), seed alice's corpus once,
                                write BASE/alice.password (0600), print JSON:
                                {"state", "url", "ports", "ca_file",
                                 "password_file", "pid", "config", "base"}
    demo-server.py stop BASE    stop that dovecot; idempotent; says what it did
    demo-server.py status BASE  exit 0 and print the JSON if it runs, else exit 1

It reuses tests/integration/mailserver.py (config, certificates, users) and
corpus.py. Must run as root, as the test harness does (dovecot's mail
processes run as the dovecot user); scripts/demo uses sudo otherwise, and the
password file then goes to the calling user (SUDO_UID).

What stays under BASE between runs: the Maildirs (so a remount can reuse
cached bodies: UIDVALIDITY holds), the certificates (made again when older
than a day: they are valid for two). What goes at stop: the state file.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

import corpus  # noqa: E402
import mailserver  # noqa: E402

USER = "alice"
STATE = "demo.json"
PORTS = "ports.json"
SEEDED = "seeded"
CERT_FILES = ("ca.key", "ca.crt", "ca.srl", "server.key", "server.csr", "server.crt",
              "server.ext", "other-ca.key", "other-ca.crt")


def say(msg):
    print(f"demo-server: {msg}", file=sys.stderr)


def real_base(base):
    """Where the server really lives: dovecot's users must traverse to it.

    A base under a directory others cannot enter (a 0700 home) is moved to
    /var/tmp, with BASE a symlink to it.
    """
    if os.path.islink(base):
        return os.path.realpath(base)
    parent = os.path.dirname(os.path.abspath(base))
    p = parent
    while True:
        if not os.stat(p).st_mode & 0o001:
            break
        if p == "/":
            return os.path.abspath(base)
        p = os.path.dirname(p)
    if os.path.exists(base):
        # Made earlier by a version without this check; it cannot work there.
        raise SystemExit(f"demo-server: {p} is not searchable by other users, so dovecot "
                         f"cannot reach {base}: remove {base} and start again")
    real = f"/var/tmp/mailfs-demo-{os.environ.get('SUDO_UID', os.getuid())}"
    os.makedirs(real, exist_ok=True)
    os.symlink(real, base)
    say(f"{p} is private: the server lives in {real} ({base} points there)")
    return real


def read_state(base):
    try:
        with open(os.path.join(base, STATE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def alive(state):
    """The recorded dovecot master still runs with our config (not a reused pid)."""
    if not state:
        return False
    try:
        with open(f"/proc/{state['pid']}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return os.path.basename(argv[0]) == b"dovecot" and state["config"].encode() in argv


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As dovecot binds: connections of the last run in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def owner_ids():
    uid = int(os.environ.get("SUDO_UID", os.getuid()))
    gid = int(os.environ.get("SUDO_GID", os.getgid()))
    return uid, gid


def write_password(base, password):
    path = os.path.join(base, f"{USER}.password")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    os.chmod(tmp, 0o600)
    os.chown(tmp, *owner_ids())
    os.replace(tmp, path)
    return path


def drop_old_certs(base):
    ca = os.path.join(base, "ca.crt")
    try:
        age = time.time() - os.path.getmtime(ca)
    except OSError:
        return
    if age > 24 * 3600:
        for name in CERT_FILES:
            try:
                os.unlink(os.path.join(base, name))
            except FileNotFoundError:
                pass


def start(base):
    os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
    base = real_base(base)
    state = read_state(base)
    if alive(state):
        state["state"] = "already running"
        return state

    drop_old_certs(base)
    server = mailserver.Dovecot(base)
    # The same ports as last time when they are still free: the URL stays.
    try:
        with open(os.path.join(base, PORTS)) as f:
            ports = json.load(f)
        if set(ports) == {"imap", "imaps", "pop3", "pop3s"} and all(
                port_free(p) for p in ports.values()):
            server.ports = ports
    except (OSError, ValueError, TypeError):
        pass
    server.start()
    try:
        if not os.path.exists(os.path.join(base, SEEDED)):
            say("seeding the demo corpus for alice (once)")
            with server.imaps(USER) as c:
                corpus.seed(c)
            with open(os.path.join(base, SEEDED), "w") as f:
                f.write("corpus seeded for alice\n")
        state = {
            "state": "started",
            "base": base,
            "url": server.url(USER, "imaps"),
            "ports": server.ports,
            "ca_file": server.ca,
            "password_file": write_password(base, server.users[USER]),
            "pid": server.proc.pid,
            "config": server.config,
        }
        with open(os.path.join(base, PORTS), "w") as f:
            json.dump(server.ports, f)
        tmp = os.path.join(base, STATE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, os.path.join(base, STATE))
    except BaseException:
        server.stop()
        raise
    # Detach: the server keeps running in its own session after we exit.
    server.proc = None
    return state


def gone(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                # An unreaped zombie (no init reaping in a container) is gone too.
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def group_gone(pgid, seconds):
    """Wait until no live process is left in the process group."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                left = True
                break
        if not left:
            return True
        time.sleep(0.05)
    return False


def stop(base):
    if not os.path.exists(base):
        say(f"no demo server under {base}: nothing to stop")
        return
    base = os.path.realpath(base)
    state = read_state(base)
    if not alive(state):
        say("the demo dovecot is not running")
    else:
        pid = state["pid"]
        # dovecot's own shutdown first (it ends its children), then the group.
        subprocess.run(["doveadm", "-c", state["config"], "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
        if not gone(pid, 10):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(pid, sig)
                except ProcessLookupError:
                    break
                if gone(pid, 10):
                    break
        # Children that outlived the master share its process group (its session).
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        group_gone(pid, 5)
        say(f"stopped the demo dovecot (pid {pid})")
    for name in (STATE, STATE + ".tmp"):
        try:
            os.unlink(os.path.join(base, name))
        except FileNotFoundError:
            pass


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop", "status"):
        print("usage: demo-server.py start|stop|status BASE", file=sys.stderr)
        return 2
    base = argv[2]
    try:
        if argv[1] == "start":
            print(json.dumps(start(base)))
        elif argv[1] == "stop":
            stop(base)
        else:
            state = read_state(os.path.realpath(base)) if os.path.exists(base) else None
            if not alive(state):
                return 1
            state["state"] = "running"
            print(json.dumps(state))
    except mailserver.DovecotError as e:
        say(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
