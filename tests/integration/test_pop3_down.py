# SPDX-License-Identifier: GPL-2.0-or-later
"""The POP3 spool when its server hangs or goes away: the first open that
needs the server waits one `timeout` and fails with EIO, the account is
down from then on (opens of messages not downloaded fail at once, the
listing still answers, the status says since when and why), the poll
thread logs in again in the background, and unmount never waits for it.
Counts, not times: the timeouts in the log, guards against a hang only."""

import os
import subprocess
import time

import pytest

import mailserver
from conftest import Mount, password_file, node_tag
from test_imap_down import (SwitchProxy, assert_eio, run, stacks, timeouts_logged, wait_for,
                            wait_refused)
from test_pop3_spool import USER, Spool, inbox_messages, seed, server_messages

TIMEOUT = 3
ALLOWED = [r"warning: .*(timed out|is down|refused|closed|abandoned|no answer|reset)"]


@pytest.fixture(scope="module")
def server(workdir):
    s = mailserver.Dovecot(os.path.join(workdir, "dovecot-pop3-down"))
    s.start()
    yield s
    try:
        s.thaw()
    except Exception:
        pass
    s.stop()


@pytest.fixture
def spool(workdir, request):
    s = Spool(workdir, "down-" + node_tag(request))
    yield s
    subprocess.run(["fusermount3", "-uz", s.mnt], capture_output=True)


def mount_spool(mailfs_bin, server, workdir, spool, url=None, **options):
    opts = {"ca_file": server.ca, "password_file": password_file(workdir, server, USER),
            "cache_dir": spool.cache, "pop3_archive": spool.archive,
            "timeout": TIMEOUT, "prefetch": 0}
    opts.update(options)
    m = Mount(mailfs_bin, url or server.url(USER, "pop3s"), spool.mnt, opts, workdir,
              env=spool.env())
    return m.start()


def status(m):
    return subprocess.run(["getfattr", "-n", "user.mailfs.status", "--only-values",
                           m.mountpoint], capture_output=True, text=True, timeout=60).stdout


def test_frozen_pop3_server(mailfs_bin, server, workdir, spool):
    seed(server, inbox_messages()[:6])
    want = server_messages(server)
    m = mount_spool(mailfs_bin, server, workdir, spool)
    try:
        names = sorted(os.listdir(m.mountpoint))
        assert len(names) == 6
        # The session is QUIT after 2 s without work: the next open logs in.
        wait_for(lambda: "session: none" in status(m), 30, "the session to be closed")
        server.freeze()
        assert_eio(run("cat", os.path.join(m.mountpoint, names[0])))
        assert len(timeouts_logged(m)) == 1, m.stderr()
        st = status(m)
        assert "state: down since" in st and "down_reason:" in st, st
        assert_eio(run("cat", os.path.join(m.mountpoint, names[1])))
        assert_eio(run("cat", os.path.join(m.mountpoint, names[2])))
        assert len(timeouts_logged(m)) == 1, m.stderr()
        assert sorted(os.listdir(m.mountpoint)) == names  # the listing still answers

        server.thaw()
        wait_for(lambda: "state: up" in status(m), 90, "the spool to come up again")
        with open(os.path.join(m.mountpoint, names[0]), "rb") as f:
            assert f.read() == want[names[0][:-4]]
        m.unmount(allowed=ALLOWED)
    finally:
        server.thaw()
        if m.proc.poll() is None:
            m.kill()


def test_killed_pop3_server(mailfs_bin, server, workdir, spool):
    seed(server, inbox_messages()[:4])
    want = server_messages(server)
    m = mount_spool(mailfs_bin, server, workdir, spool)
    try:
        names = sorted(os.listdir(m.mountpoint))
        # An open session's pop3 process outlives dovecot's master for a
        # moment and answers "-ERR [SYS/TEMP] Server shutting down" (EAGAIN,
        # rightly): stop the server once the session was closed.
        wait_for(lambda: "session: none" in status(m), 30, "the session to be closed")
        server.stop()
        wait_refused(server.ports["pop3s"])
        assert_eio(run("cat", os.path.join(m.mountpoint, names[0])))
        assert "state: down since" in status(m)
        assert_eio(run("cat", os.path.join(m.mountpoint, names[1])))
        assert timeouts_logged(m) == [], m.stderr()
        server.start()
        wait_for(lambda: "state: up" in status(m), 90, "the spool to come up again")
        with open(os.path.join(m.mountpoint, names[1]), "rb") as f:
            assert f.read() == want[names[1][:-4]]
        m.unmount(allowed=ALLOWED)
    finally:
        if server.proc is None:
            server.start()
        if m.proc.poll() is None:
            m.kill()


def test_pop3_unmount_abandons_a_hanging_login(mailfs_bin, server, workdir, spool):
    """Down after refused connections; the poll thread's login then meets a
    server that accepts and says nothing, with a 60 s timeout: unmount does
    not wait for its TLS handshake."""
    seed(server, inbox_messages()[:3])
    proxy = SwitchProxy(server.ports["pop3s"])
    m = None
    try:
        m = mount_spool(mailfs_bin, server, workdir, spool,
                        url=f"pop3s://{USER}@localhost:{proxy.port}", timeout=60)
        names = sorted(os.listdir(m.mountpoint))
        wait_for(lambda: "session: none" in status(m), 30, "the session to be closed")
        proxy.set_mode("refuse")
        assert_eio(run("cat", os.path.join(m.mountpoint, names[0])))
        assert "state: down since" in status(m)
        proxy.set_mode("silent")
        wait_for(lambda: proxy.conns, 30, "the login to reach the proxy")
        r = subprocess.run(["fusermount3", "-u", m.mountpoint], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        try:
            rc = m.proc.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail("unmount waited for a login hanging in its TLS handshake:\n" +
                        stacks(m.proc.pid))
        assert rc == 0, m.stderr()
        m.check_stderr(ALLOWED)
    finally:
        proxy.close()
        if m and m.proc.poll() is None:
            m.kill()
