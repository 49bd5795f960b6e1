# SPDX-License-Identifier: GPL-2.0-or-later
"""The POP3 client against a hostile server (hostile.py with hostile_pop3.py).

Each test runs tests/tools/pop3_probe against one scripted connection with a
short --timeout and checks that the client fails cleanly (exit 1, a clear
line on stderr) or carries on where it must, without a sanitizer report,
with bounded memory, and quickly.
"""

import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

import mailserver
from conftest import sanitizer_env
from hostile import Close, HostileServer, Send, SendForever, Stall, StartTLS
from hostile_pop3 import PopOn, capa_reply, pop3_login_steps, pop3_quit_steps

TIMEOUT = 3
HARD_TIMEOUT = 20
QUICK = 2.5
MAX_RSS_KB = 100 * 1024
SANITIZER = re.compile(r"(AddressSanitizer|LeakSanitizer|runtime error:|"
                       r"UndefinedBehaviorSanitizer|Segmentation fault|GLib-CRITICAL)")


@pytest.fixture(scope="module")
def probe(build_dir):
    path = os.path.join(build_dir, "tests", "tools", "pop3_probe")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built")
    return path


@pytest.fixture(scope="module")
def certs(workdir):
    base = os.path.join(workdir, "hostile-pop3-ca")
    os.makedirs(base, exist_ok=True)
    ca, cert, key, _ = mailserver.make_ca(base)
    return {"ca": ca, "cert": cert, "key": key}


@pytest.fixture(scope="module")
def pwfile(workdir):
    path = os.path.join(workdir, "hostile-pop3.password")
    with open(path, "w") as f:
        f.write("not-a-real-password\n")
    os.chmod(path, 0o600)
    return path


class Result:
    def __init__(self, rc, stdout, stderr, elapsed, maxrss_kb):
        self.rc, self.stdout, self.stderr = rc, stdout, stderr
        self.elapsed, self.maxrss_kb = elapsed, maxrss_kb
        self.errors = [l for l in stderr.splitlines() if l.startswith("pop3_probe: ")]

    def __str__(self):
        return (f"exit {self.rc} after {self.elapsed:.2f}s, max RSS {self.maxrss_kb} KiB\n"
                f"--- stdout ---\n{self.stdout[:2000]}\n--- stderr ---\n{self.stderr[:4000]}")


def read_rss(path):
    """The child's peak RSS in KiB as GNU time wrote it (the last number)."""
    with open(path) as f:
        numbers = [l.strip() for l in f if l.strip().isdigit()]
    return int(numbers[-1]) if numbers else 0


def run_probe(probe, port, pwfile, *args, tls="none", ca=None, timeout=TIMEOUT):
    cmd = [probe, "--tls", tls, "--timeout", str(timeout), "--password-file", pwfile]
    if ca:
        cmd += ["--ca", ca]
    cmd += ["127.0.0.1", str(port), "tester", *args]
    # Measured by GNU time, a small parent: a child forked from pytest would
    # report pytest's own peak RSS as its maximum.
    rss = tempfile.NamedTemporaryFile(prefix="mailfs-rss-")
    cmd = ["/usr/bin/time", "-q", "-f", "%M", "-o", rss.name] + cmd
    with rss, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=sanitizer_env(), start_new_session=True)
        killed = False
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > HARD_TIMEOUT and not killed:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.01)
        elapsed = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        res = Result(os.waitstatus_to_exitcode(status), out.read().decode("utf-8", "replace"),
                     err.read().decode("utf-8", "replace"), elapsed, read_rss(rss.name))
    assert not killed, f"the probe was still running after {HARD_TIMEOUT}s\n{res}"
    assert not SANITIZER.search(res.stderr), f"sanitizer report\n{res}"
    assert res.maxrss_kb < MAX_RSS_KB, f"memory not bounded\n{res}"
    return res


def check_failed(res, keyword, max_seconds=QUICK):
    assert res.rc == 1, f"expected exit 1\n{res}"
    assert res.elapsed < max_seconds, f"took too long (limit {max_seconds}s)\n{res}"
    assert res.errors, f"no error line\n{res}"
    assert re.search(keyword, res.errors[0], re.IGNORECASE), f"{keyword!r} not said\n{res}"
    assert len(res.errors[0]) < 1000, f"error line not bounded\n{res}"


def test_stls_response_injection_is_refused(probe, certs, pwfile):
    """CVE-2020-14954: bytes after the +OK to STLS, in the same write."""
    script = [
        Send("+OK ready\r\n"),
        PopOn("CAPA", capa_reply(("USER", "UIDL", "STLS"))),
        PopOn("STLS", "+OK begin TLS\r\n+OK injected\r\n"),
        Stall(10),
    ]
    with HostileServer(script, cert=certs["cert"], key=certs["key"]) as srv:
        res = run_probe(probe, srv.port, pwfile, "login", tls="starttls", ca=certs["ca"])
        srv.wait_done()
    check_failed(res, r"after its \+OK to STLS")
    assert srv.commands == ["CAPA", "STLS"]


def test_stls_done_right_logs_in(probe, certs, pwfile):
    """Control: the same server without injection; CAPA is asked again after TLS."""
    script = [
        Send("+OK ready\r\n"),
        PopOn("CAPA", capa_reply(("USER", "UIDL", "STLS"))),
        PopOn("STLS", "+OK begin TLS\r\n"),
        StartTLS(),
        PopOn("CAPA", capa_reply(("USER", "UIDL", "SASL PLAIN"))),
        PopOn("AUTH", "+OK in\r\n"),
        PopOn("CAPA", capa_reply(("UIDL", "TOP"))),
    ] + pop3_quit_steps()
    with HostileServer(script, cert=certs["cert"], key=certs["key"]) as srv:
        res = run_probe(probe, srv.port, pwfile, "login", tls="starttls", ca=certs["ca"])
        srv.wait_done()
    assert res.rc == 0, res
    assert srv.done, srv.error
    assert srv.commands[3].startswith("AUTH PLAIN ")


def test_stls_not_offered_is_refused(probe, pwfile):
    script = [Send("+OK ready\r\n"), PopOn("CAPA", capa_reply(("USER", "UIDL"))), Stall(5)]
    with HostileServer(script) as srv:
        res = run_probe(probe, srv.port, pwfile, "login", tls="starttls")
    check_failed(res, r"does not offer STLS")
    assert srv.commands == ["CAPA"]


def test_greeting_that_never_ends(probe, pwfile):
    script = [SendForever(b"+OK " + b"a" * 65536)]
    with HostileServer(script) as srv:
        res = run_probe(probe, srv.port, pwfile, "login")
    check_failed(res, r"longer than")


def test_listing_line_that_never_ends(probe, pwfile):
    script = pop3_login_steps() + [PopOn("UIDL", "+OK\r\n1 abc\r\n"), SendForever(b"a" * 65536)]
    with HostileServer(script) as srv:
        res = run_probe(probe, srv.port, pwfile, "list")
    check_failed(res, r"line of more than", max_seconds=5)


def test_retr_that_stalls_times_out(probe, pwfile, tmp_path):
    script = pop3_login_steps() + [PopOn("RETR", "+OK\r\nSubject: x\r\n"), Stall(15)]
    with HostileServer(script) as srv:
        res = run_probe(probe, srv.port, pwfile, "retr", "1", str(tmp_path / "m"))
    check_failed(res, r"RETR 1.*(timed out|time)", max_seconds=TIMEOUT + 3)
    assert res.elapsed >= TIMEOUT - 0.5


def test_odd_uidls_and_bad_lines(probe, pwfile):
    """'/' and '..' are valid UIDL characters (the name encoder handles them);
    invalid UIDLs and malformed lines are logged and skipped, never the whole listing."""
    uidl = ("+OK\r\n1 ../../etc/passwd\r\n2 a/b\r\n3 has space\r\n4 \x01ctl\r\n"
            f"5 {'x' * 71}\r\n6 fine\r\n6 dup-num\r\n7 fine\r\nbogus\r\n0 zero\r\n.\r\n")
    lst = "+OK\r\n1 10\r\n2 20\r\n3 30\r\n4 40\r\n5 50\r\n6 60\r\n7 99999999999999999999999\r\n.\r\n"
    script = pop3_login_steps() + [PopOn("UIDL", uidl), PopOn("LIST", lst)] + pop3_quit_steps()
    with HostileServer(script) as srv:
        res = run_probe(probe, srv.port, pwfile, "list")
        srv.wait_done()
    assert res.rc == 0, res
    rows = [l for l in res.stdout.splitlines() if not l.startswith("quit")]
    assert rows == ["1 ../../etc/passwd 10", "2 a/b 20", "6 fine 60"], res
    assert "skipped" in res.stderr and "\x01" not in res.stderr
    assert "quit ok" in res.stdout


def test_no_uidl_is_refused(probe, pwfile):
    script = pop3_login_steps(caps=("USER", "TOP")) + [
        PopOn("UIDL", "-ERR unknown command\r\n")] + pop3_quit_steps()
    with HostileServer(script) as srv:
        res = run_probe(probe, srv.port, pwfile, "list")
        srv.wait_done()
    check_failed(res, r"does not support UIDL")


def test_login_in_use_shows_code(probe, pwfile):
    script = [
        Send("+OK ready\r\n"),
        PopOn("CAPA", capa_reply(("USER", "UIDL", "RESP-CODES"))),
        PopOn("USER", "+OK\r\n"),
        PopOn("PASS", "-ERR [IN-USE] Mailbox is locked by \x1b[31manother\r\n"),
    ]
    with HostileServer(script) as srv:
        res = run_probe(probe, srv.port, pwfile, "login")
    check_failed(res, r"\[IN-USE\] Mailbox is locked")
    assert "\x1b" not in res.stderr
    assert "not-a-real-password" not in res.stderr


def test_login_delay_after_login_wins(probe, pwfile):
    """RFC 2449 §6.5: a LOGIN-DELAY marked USER before login may change after it."""
    script = [
        Send("+OK ready\r\n"),
        PopOn("CAPA", capa_reply(("USER", "UIDL", "LOGIN-DELAY 900 USER"))),
        PopOn("USER", "+OK\r\n"),
        PopOn("PASS", "+OK in\r\n"),
        PopOn("CAPA", capa_reply(("UIDL", "TOP", "LOGIN-DELAY 60"))),
    ] + pop3_quit_steps()
    with HostileServer(script) as srv:
        res = run_probe(probe, srv.port, pwfile, "login")
        srv.wait_done()
    assert res.rc == 0, res
    assert "caps TOP UIDL LOGIN-DELAY CAPA" in res.stdout, res
    assert "login-delay 60" in res.stdout.splitlines(), res


def test_lost_quit_reply_is_reported_distinctly(probe, pwfile):
    script = pop3_login_steps() + [PopOn("DELE", "+OK marked\r\n"), PopOn("QUIT", ""), Close()]
    with HostileServer(script) as srv:
        res = run_probe(probe, srv.port, pwfile, "dele", "1")
        srv.wait_done()
    assert "dele 1 ok" in res.stdout
    assert "quit unconfirmed" in res.stdout, res
    assert res.rc == 1 and "no answer to QUIT" in res.stderr


def test_retr_stuffed_body_across_writes(probe, pwfile, tmp_path):
    """A body arriving in pieces that cut the dot lines and the terminator."""
    script = pop3_login_steps() + [
        PopOn("RETR", "+OK\r\na\r\n."), Send(".b\r\n.\r"), Send("x\r\n."), Send("\r"),
        Send("\n"),
    ] + pop3_quit_steps()
    with HostileServer(script) as srv:
        res = run_probe(probe, srv.port, pwfile, "retr", "1", str(tmp_path / "m"))
        srv.wait_done()
    assert res.rc == 0, res
    assert (tmp_path / "m").read_bytes() == b"a\r\n.b\r\n\rx\r\n"
