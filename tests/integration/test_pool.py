# SPDX-License-Identifier: GPL-2.0-or-later
"""The connection pool (src/account/pool.c) against dovecot, through
tests/tools/pool_probe: never more sessions than allowed, sessions reused,
login errors reported at priming, a connection limit shrinks the pool, a
dead server fails fast during backoff and the pool recovers after it."""

import os
import re
import subprocess
import time

import pytest

import mailserver
from conftest import password_file, sanitizer_env

MAILBOXES = ["INBOX", "Archive", "Trash", "Sent", "Empty"]


@pytest.fixture(scope="session")
def pool_probe(build_dir):
    path = os.path.join(build_dir, "tests", "tools", "pool_probe")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built")
    return path


@pytest.fixture(scope="module")
def private(workdir):
    """A dovecot of this module's own: stopped and restarted by the tests, and
    allowing alice only 3 connections at once."""
    server = mailserver.Dovecot(os.path.join(workdir, "dovecot-pool"),
                                imap_extra="  mail_max_userip_connections = 3")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def probe_cmd(pool_probe, server, workdir, *args, user="alice", password=None, timeout=10):
    if password is None:
        pwfile = password_file(workdir, server, user)
    else:
        pwfile = os.path.join(workdir, "pool-wrong.password")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        os.chmod(pwfile, 0o600)
    return [pool_probe, "--tls", "implicit", "--ca", server.ca, "--password-file", pwfile,
            "--timeout", str(timeout), "127.0.0.1", str(server.ports["imaps"]), user, *args]


def run(pool_probe, server, workdir, *args, **kw):
    r = subprocess.run(probe_cmd(pool_probe, server, workdir, *args, **kw),
                       capture_output=True, text=True, timeout=60, env=sanitizer_env())
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


def parse_stats(out):
    m = re.search(r"^live (\d+) busy (\d+) max (\d+) commands (\d+) connects (\d+) "
                  r"failures (\d+)$", out, re.M)
    assert m, out
    return dict(zip(("live", "busy", "max", "commands", "connects", "failures"),
                    map(int, m.groups())))


def parse_parallel(out):
    m = re.search(r"^parallel errors (\d+) maxlive (\d+)$", out, re.M)
    assert m, out
    return int(m.group(1)), int(m.group(2))


@pytest.mark.parametrize("max_, threads", [(1, 4), (3, 8)])
def test_parallel_stays_within_max_and_reuses(pool_probe, dovecot, workdir, max_, threads):
    r = run(pool_probe, dovecot, workdir, "max", str(max_), "parallel", str(threads), *MAILBOXES)
    assert r.returncode == 0, r.stderr
    errors, maxlive = parse_parallel(r.stdout)
    st = parse_stats(r.stdout)
    assert errors == 0
    assert 1 <= maxlive <= max_
    assert st["live"] <= max_ and st["busy"] == 0
    # Heavy use: every slot got connected once, and only once.
    assert st["connects"] == max_
    assert st["failures"] == 0
    # A NOOP per round, an EXAMINE when the session had another mailbox,
    # plus a few login commands per session.
    rounds = threads * 20
    assert rounds <= st["commands"] <= 2 * rounds + 6 * max_


def test_prime_reports_wrong_password(pool_probe, dovecot, workdir):
    r = run(pool_probe, dovecot, workdir, "prime", password="not-the-password")
    assert r.returncode == 1
    assert "refused the login of alice" in r.stderr, r.stderr
    assert "AUTHENTICATIONFAILED" in r.stderr, r.stderr


def test_prime(pool_probe, dovecot, workdir):
    r = run(pool_probe, dovecot, workdir, "prime", "stats")
    assert r.returncode == 0, r.stderr
    assert "prime ok" in r.stdout
    st = parse_stats(r.stdout)
    assert st["live"] == 1 and st["connects"] == 1


class Repl:
    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd + ["repl"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=sanitizer_env())

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline().strip()
        assert out, f"pool_probe exited: {self.proc.stderr.read()}"
        return out

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        rc = self.proc.wait(20)
        err = self.proc.stderr.read()
        assert "Sanitizer" not in err and "runtime error" not in err, err
        return rc, err


def test_wait_for_returned_session_is_bounded(pool_probe, dovecot, workdir):
    p = Repl(probe_cmd(pool_probe, dovecot, workdir, "max", "1", timeout=1))
    try:
        assert p.ask("hold INBOX") == "held"
        out = p.ask("get INBOX")
        m = re.match(r"err get (\d+) (\d+) (.*)", out)
        assert m, out
        assert 900 <= int(m.group(1)) < 3000
        assert int(m.group(2)) == 24  # G_IO_ERROR_TIMED_OUT
        assert p.ask("release") == "released 1"
        assert p.ask("get INBOX").startswith("ok ")
        assert parse_stats(p.ask("stats"))["connects"] == 1
    finally:
        p.close()


def test_connection_limit_shrinks_pool(pool_probe, private, workdir):
    p = Repl(probe_cmd(pool_probe, private, workdir, "max", "6", timeout=1))
    try:
        for _ in range(3):
            assert p.ask("hold INBOX") == "held"
        # The server's [LIMIT] is not a failure: the pool shrinks and the
        # borrower waits for a session to come back (none does here).
        out = p.ask("hold INBOX")
        m = re.match(r"err get (\d+) (\d+) (.*)", out)
        assert m, out
        assert int(m.group(2)) == 24, out  # G_IO_ERROR_TIMED_OUT, not the login error
        st = parse_stats(p.ask("stats"))
        assert st["live"] == 3 and st["max"] == 3 and st["failures"] == 1
        assert p.ask("release") == "released 3"
        assert p.ask("get INBOX").startswith("ok ")
        st = parse_stats(p.ask("stats"))
        assert st["connects"] == 3 and st["failures"] == 1
    finally:
        rc, err = p.close()
    assert rc == 0, err
    assert "[LIMIT]" in err and "using 3 connections for now" in err, err


def test_connection_limit_in_parallel(pool_probe, private, workdir):
    # dovecot's count of logins in progress is racy, so more than 3 may get
    # in; what matters is that no borrower sees the limit as an error.
    r = run(pool_probe, private, workdir, "max", "6", "parallel", "8", "INBOX")
    assert r.returncode == 0, r.stderr
    errors, maxlive = parse_parallel(r.stdout)
    assert errors == 0, r.stderr
    assert maxlive <= 6


def test_dead_server_fails_fast_and_recovers(pool_probe, private, workdir):
    p = Repl(probe_cmd(pool_probe, private, workdir, "max", "2", timeout=10))
    try:
        assert p.ask("prime") == "prime ok"
        assert p.ask("get INBOX").startswith("ok ")
        private.stop()
        # The idle session is found dead by its first command; then the
        # connect fails: the pool is down, and reconnects in the background.
        outs = [p.ask("get INBOX") for _ in range(3)]
        assert all(o.startswith("err ") for o in outs), outs
        assert any(o.startswith("err get ") for o in outs), outs
        fast = p.ask("get INBOX")
        m = re.match(r"err get (\d+) \d+ (.*)", fast)
        assert m, fast
        assert int(m.group(1)) < 500, fast  # well under the 10 s timeout
        assert "is down since" in m.group(2), fast
        st = parse_stats(p.ask("stats"))
        assert st["live"] == 0 and st["failures"] >= 1

        private.start()
        deadline = time.monotonic() + 20
        while True:
            out = p.ask("get INBOX")
            if out.startswith("ok "):
                break
            m = re.match(r"err get (\d+) ", out)
            assert m, out
            assert int(m.group(1)) < 2000, out
            assert time.monotonic() < deadline, "the pool did not recover"
            time.sleep(0.25)
        assert p.ask("get INBOX").startswith("ok ")
    finally:
        rc, err = p.close()
    assert rc == 0, err
    assert "connected to" in err and "again" in err, err
