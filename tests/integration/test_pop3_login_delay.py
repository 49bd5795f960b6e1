# SPDX-License-Identifier: GPL-2.0-or-later
"""A POP3 server that asks the spool to wait (mailfs(1) POP3 VIEW, RFC 2449), against
the scripted maildrop of hostile_pop3d.py:

- logins refused with [LOGIN-DELAY] after a good one: `ls` keeps answering
  from the last listing, the condition is logged once, and when the server
  lets the spool in again it catches up (a DELE deferred meanwhile reaches
  the server, a new message shows);
- the first login of a mount refused with [LOGIN-DELAY] or [IN-USE]: the
  mount starts empty and fills in later; [AUTH] still fails the mount;
- CAPA LOGIN-DELAY n: no login nobody asked for sooner than n seconds after
  the last one.

The retry interval is min(poll, 30 s): poll=1 makes it 1 s. Waits have
generous deadlines; the only time compared is a lower bound (a login no
sooner than n seconds after another), which a slow machine cannot break.
"""

import os
import re
import subprocess
import threading
import time

import pytest

from conftest import Mount, mounted, sanitizer_env, node_tag
from hostile_pop3d import Maildrop

TLS_NONE = r"warning: .*tls"
DEADLINE = 60
BUSY_LINE = "keeping the last listing"


def message(i):
    return (f"msg-{i}", b"Subject: message %d\r\nMessage-ID: <m%d@example.org>\r\n\r\n"
            b"body %d\r\n" % (i, i, i))


def name(uidl):
    return uidl + ".eml"


@pytest.fixture
def spool(workdir, request):
    base = os.path.join(workdir, "delay-" + node_tag(request))
    os.makedirs(base, exist_ok=True)
    pw = os.path.join(base, "pw")
    with open(pw, "w") as f:
        f.write("not-a-real-password\n")
    os.chmod(pw, 0o600)
    env = sanitizer_env()
    env["XDG_STATE_HOME"] = os.path.join(base, "state")
    env.pop("MAILFS_CRASH_AT", None)
    s = {"base": base, "pw": pw, "env": env, "mnt": os.path.join(base, "mnt")}
    yield s
    subprocess.run(["fusermount3", "-uz", s["mnt"]], capture_output=True)


def make_mount(mailfs_bin, srv, workdir, spool, **options):
    opts = {"tls": "none", "password_file": spool["pw"],
            "cache_dir": os.path.join(spool["base"], "cache"),
            "pop3_archive": os.path.join(spool["base"], "archive"), "poll": 1}
    opts.update(options)
    return Mount(mailfs_bin, f"pop3://tester@127.0.0.1:{srv.port}", spool["mnt"], opts, workdir,
                 env=spool["env"])


def wait_for(what, cond, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def listing(m):
    return sorted(os.listdir(m.mountpoint))


def busy_lines(m):
    return [l for l in m.stderr().splitlines() if BUSY_LINE in l]


def test_refused_logins_keep_the_listing(mailfs_bin, workdir, spool):
    a, b, c = message(1), message(2), message(3)
    refusing = threading.Event()
    srv = Maildrop([a, b], refuse=lambda n: (
        "[LOGIN-DELAY] wait 15 minutes between logins" if refusing.is_set() else None))
    with srv:
        # No archive: rm takes without a download, so it needs no login.
        m = make_mount(mailfs_bin, srv, workdir, spool, pop3_archive="none").start()
        try:
            assert listing(m) == [name(a[0]), name(b[0])]
            refusing.set()
            # The mount's session QUITs after ~2 s without work; every login
            # after it is refused, so the DELE below cannot go out at once.
            wait_for("the session after the mount closed", lambda: srv.sessions_open() == 0)
            os.unlink(os.path.join(m.mountpoint, name(a[0])))
            srv.add(*c)
            wait_for("two refused logins", lambda: srv.refused_logins() >= 2)
            assert listing(m) == [name(b[0])]
            status = os.getxattr(m.mountpoint, "user.mailfs.status").decode()
            assert "LOGIN-DELAY" in status, status
            assert a[0] in srv.uidls()
            refusing.clear()
            wait_for("the DELE committed", lambda: srv.uidls() == [b[0], c[0]])
            wait_for("the new message listed",
                     lambda: listing(m) == [name(b[0]), name(c[0])])
            m.unmount(allowed=[TLS_NONE])
        finally:
            m.kill()
    assert srv.refused_logins() >= 2
    lines = busy_lines(m)
    assert len(lines) == 1 and "[LOGIN-DELAY]" in lines[0], m.stderr()
    assert not srv.errors, srv.errors


@pytest.mark.parametrize("code", ["LOGIN-DELAY", "IN-USE"])
def test_first_login_refused_mounts_empty(mailfs_bin, workdir, spool, code):
    a, b = message(1), message(2)
    refusing = threading.Event()
    refusing.set()
    srv = Maildrop([a, b], refuse=lambda n: (
        f"[{code}] not now" if refusing.is_set() else None))
    with srv:
        m = make_mount(mailfs_bin, srv, workdir, spool).start()
        try:
            assert listing(m) == []
            wait_for("two refused logins", lambda: srv.refused_logins() >= 2)
            assert listing(m) == []
            refusing.clear()
            wait_for("the listing", lambda: listing(m) == [name(a[0]), name(b[0])])
            with open(os.path.join(m.mountpoint, name(a[0])), "rb") as f:
                assert f.read() == a[1]
            wait_for("the DELE committed", lambda: srv.uidls() == [b[0]])
            m.unmount(allowed=[TLS_NONE])
        finally:
            m.kill()
    lines = busy_lines(m)
    assert len(lines) == 1 and f"[{code}]" in lines[0], m.stderr()
    assert not srv.errors, srv.errors


def test_first_login_refused_for_good_fails_the_mount(mailfs_bin, workdir, spool):
    """Control: a refusal that is no "not now" is still the mount's error."""
    srv = Maildrop([message(1)], refuse=lambda n: "[AUTH] invalid password")
    with srv:
        m = make_mount(mailfs_bin, srv, workdir, spool)
        os.makedirs(m.mountpoint, exist_ok=True)
        r = subprocess.run(m.command(), capture_output=True, text=True, timeout=60,
                           env=spool["env"])
    assert r.returncode != 0
    errors = [l for l in r.stderr.splitlines() if not re.search(TLS_NONE, l)]
    assert len(errors) == 1 and "[AUTH] invalid password" in errors[0], r.stderr
    assert not mounted(m.mountpoint)


def test_capa_login_delay_spaces_logins(mailfs_bin, workdir, spool):
    """A server stating LOGIN-DELAY 3 (and refusing logins sooner, as such
    servers do): with poll=1 and ls running all along, no login comes sooner
    than 3 s after the last one; new mail still shows."""
    delay = 3
    srv = None

    def too_soon(n):
        ok = [t for t, accepted in srv.logins if accepted]
        if ok and time.monotonic() - ok[-1] < delay:
            return "[LOGIN-DELAY] too soon"
        return None

    srv = Maildrop([message(1)], login_caps=(f"LOGIN-DELAY {delay}",), refuse=too_soon)
    with srv:
        m = make_mount(mailfs_bin, srv, workdir, spool).start()
        try:
            added = False
            deadline = time.monotonic() + DEADLINE
            while len(srv.accepted_logins()) < 4 and time.monotonic() < deadline:
                assert len(listing(m)) >= 1
                if len(srv.accepted_logins()) >= 2 and not added:
                    srv.add(*message(2))
                    added = True
                time.sleep(0.2)
            assert len(srv.accepted_logins()) >= 4, srv.logins
            wait_for("the new message listed", lambda: name("msg-2") in listing(m))
            m.unmount(allowed=[TLS_NONE])
        finally:
            m.kill()
    times = [t for t, _ in srv.logins]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= delay for g in gaps), gaps
    assert srv.refused_logins() == 0 and not busy_lines(m), m.stderr()
    assert not srv.errors, srv.errors
