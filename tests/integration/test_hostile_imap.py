# SPDX-License-Identifier: GPL-2.0-or-later
"""The IMAP client against a hostile server (tests/integration/hostile.py).

Each test runs tests/tools/imap_probe against one scripted connection with a
short --timeout and checks that the client fails cleanly (exit 1, one clear
line on stderr saying what was wrong) or carries on where it must (exit 0),
without a sanitizer report, with bounded memory, and quickly. Run it also
with an ASan build: MAILFS_BUILD=/work/build-asan pytest-3 <this file>.
"""

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import mailserver
from conftest import sanitizer_env
from hostile import (Expect, HostileServer, On, Send, SendForever, Stall, StartTLS,
                     login_steps, logout_steps)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))

TIMEOUT = 3          # the probe's --timeout
HARD_TIMEOUT = 20    # the test's own bound on the probe
QUICK = 2.5          # an immediate refusal must not wait for the timeout
MAX_RSS_KB = 100 * 1024

SANITIZER = re.compile(r"(AddressSanitizer|LeakSanitizer|runtime error:|"
                       r"UndefinedBehaviorSanitizer|Segmentation fault|GLib-CRITICAL)")

PLAIN = "IMAP4rev1 AUTH=PLAIN SASL-IR"


@pytest.fixture(scope="module")
def probe(build_dir):
    path = os.path.join(build_dir, "tests", "tools", "imap_probe")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built: ninja -C {build_dir} tests/tools/imap_probe")
    return path


@pytest.fixture(scope="module")
def certs(workdir):
    """A CA and a localhost/127.0.0.1 certificate for the scripted server."""
    base = os.path.join(workdir, "hostile-ca")
    os.makedirs(base, exist_ok=True)
    ca, cert, key, _ = mailserver.make_ca(base)
    return {"ca": ca, "cert": cert, "key": key}


@pytest.fixture(scope="module")
def password_file(workdir):
    path = os.path.join(workdir, "hostile.password")
    with open(path, "w") as f:
        f.write("not-a-real-password\n")
    os.chmod(path, 0o600)
    return path


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """Every test ends with no hostile server thread and no socket of its own left."""
    before = open_fds()
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith("hostile-")]
    assert not alive, f"hostile server threads still running: {alive}"
    leaked = []
    for fd in open_fds() - before:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor
        if target.startswith("socket:"):
            leaked.append(target)
    assert not leaked, f"sockets left open: {leaked}"


class Result:
    def __init__(self, rc, stdout, stderr, elapsed, maxrss_kb):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self.maxrss_kb = maxrss_kb
        # The scripted server speaks plain text: the tls=none warning is expected.
        self.lines = [l for l in stderr.splitlines()
                      if l.strip() and "warning: tls=none" not in l]

    def __str__(self):
        return (f"exit {self.rc} after {self.elapsed:.2f}s, max RSS {self.maxrss_kb} KiB\n"
                f"--- stdout ---\n{self.stdout[:2000]}\n--- stderr ---\n{self.stderr[:4000]}")


def read_rss(path):
    """The child's peak RSS in KiB as GNU time wrote it (the last number)."""
    with open(path) as f:
        numbers = [l.strip() for l in f if l.strip().isdigit()]
    return int(numbers[-1]) if numbers else 0


def run_probe(probe, port, password_file, command, *args, tls="none", ca=None,
              timeout=TIMEOUT):
    """Run the probe to its end (killed after HARD_TIMEOUT); exit status, output, RSS."""
    cmd = [probe, "--tls", tls, "--timeout", str(timeout), "--password-file", password_file]
    if ca:
        cmd += ["--ca", ca]
    cmd += ["127.0.0.1", str(port), "tester", command, *args]
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
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        res = Result(proc.returncode, out.read().decode("utf-8", "replace"),
                     err.read().decode("utf-8", "replace"), elapsed, read_rss(rss.name))
    assert not killed, f"the probe was still running after {HARD_TIMEOUT}s\n{res}"
    return res


def check_common(res, max_seconds):
    assert not SANITIZER.search(res.stderr), f"sanitizer report\n{res}"
    assert res.maxrss_kb < MAX_RSS_KB, f"memory not bounded\n{res}"
    assert res.elapsed < max_seconds, f"took too long (limit {max_seconds}s)\n{res}"


def check_refused(res, keyword, max_seconds=QUICK):
    """Exit 1 with exactly one line on stderr that matches keyword (a regex, any case)."""
    check_common(res, max_seconds)
    assert res.rc == 1, f"expected exit 1\n{res}"
    assert len(res.lines) == 1, f"expected exactly one line on stderr\n{res}"
    line = res.lines[0]
    assert line.startswith("imap_probe: "), f"not the probe's error line\n{res}"
    assert re.search(keyword, line, re.IGNORECASE), f"stderr does not mention {keyword!r}\n{res}"
    assert len(line) < 1000, f"error line not bounded\n{res}"
    return line


def serve(script, **kw):
    return HostileServer(script, **kw)


# -- STARTTLS ------------------------------------------------------------------------

def test_starttls_response_injection_is_refused(probe, certs, password_file):
    """CVE-2020-14954: bytes after the OK to STARTTLS, in the same write."""
    script = [
        Send("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN SASL-IR] ready\r\n"),
        On("STARTTLS", "{tag} OK Begin TLS\r\n"
                       "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] injected\r\n"),
        Stall(10),
    ]
    with serve(script, cert=certs["cert"], key=certs["key"]) as srv:
        res = run_probe(probe, srv.port, password_file, "login", tls="starttls", ca=certs["ca"])
        srv.wait_done()
    check_refused(res, r"STARTTLS")
    assert srv.commands == ["STARTTLS"], "the client went on after the injection"
    assert srv.client_closed


def test_starttls_injection_without_newline_is_refused(probe, certs, password_file):
    """The same with an incomplete injected line: the parser holds a partial response."""
    script = [
        Send("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN SASL-IR] ready\r\n"),
        On("STARTTLS", "{tag} OK Begin TLS\r\n* OK [CAPAB"),
        Stall(10),
    ]
    with serve(script, cert=certs["cert"], key=certs["key"]) as srv:
        res = run_probe(probe, srv.port, password_file, "login", tls="starttls", ca=certs["ca"])
        srv.wait_done()
    check_refused(res, r"STARTTLS")
    assert srv.commands == ["STARTTLS"]


def test_starttls_done_right_logs_in(probe, certs, password_file):
    """Control: the same server without injection is accepted, over verified TLS."""
    script = [
        Send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n"),
        On("STARTTLS", "{tag} OK Begin TLS\r\n"),
        StartTLS(),
        On("CAPABILITY", f"* CAPABILITY {PLAIN}\r\n{{tag}} OK done\r\n"),
        On("AUTHENTICATE", f"{{tag}} OK [CAPABILITY {PLAIN} IDLE] in\r\n"),
    ] + logout_steps()
    with serve(script, cert=certs["cert"], key=certs["key"]) as srv:
        res = run_probe(probe, srv.port, password_file, "login", tls="starttls", ca=certs["ca"])
        srv.wait_done()
    check_common(res, QUICK)
    assert res.rc == 0, str(res)
    assert res.lines == [], str(res)
    assert srv.error is None and srv.done, srv.error
    assert srv.commands[:2] == ["STARTTLS", "CAPABILITY"]


def test_implicit_tls_logs_in(probe, certs, password_file):
    """Control: the scripted server speaks implicit TLS too."""
    script = login_steps(PLAIN) + logout_steps()
    with serve(script, cert=certs["cert"], key=certs["key"], implicit_tls=True) as srv:
        res = run_probe(probe, srv.port, password_file, "login", tls="implicit", ca=certs["ca"])
        srv.wait_done()
    check_common(res, QUICK)
    assert res.rc == 0, str(res)
    assert srv.error is None and srv.done, srv.error


def test_preauth_on_starttls_link_is_refused(probe, certs, password_file):
    """CVE-2020-14093: PREAUTH would skip STARTTLS."""
    script = [Send("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] welcome\r\n"), Stall(10)]
    with serve(script, cert=certs["cert"], key=certs["key"]) as srv:
        res = run_probe(probe, srv.port, password_file, "list", tls="starttls", ca=certs["ca"])
        srv.wait_done()
    check_refused(res, r"PREAUTH")
    assert srv.commands == [], "the client sent commands over the unencrypted link"


@pytest.mark.parametrize("where", ["greeting", "capability"])
def test_starttls_not_offered_is_refused(probe, certs, password_file, where):
    if where == "greeting":
        script = [Send(f"* OK [CAPABILITY {PLAIN}] ready\r\n"), Stall(10)]
    else:
        script = [Send("* OK ready\r\n"),
                  On("CAPABILITY", f"* CAPABILITY {PLAIN}\r\n{{tag}} OK done\r\n"),
                  Stall(10)]
    with serve(script, cert=certs["cert"], key=certs["key"]) as srv:
        res = run_probe(probe, srv.port, password_file, "login", tls="starttls", ca=certs["ca"])
        srv.wait_done()
    check_refused(res, r"STARTTLS")
    assert not any(c.startswith(("LOGIN", "AUTHENTICATE")) for c in srv.commands), \
        "credentials sent over an unencrypted link"


# -- literals, lines, nesting --------------------------------------------------------

def list_script(response, tail=None):
    """Log in (AUTHENTICATE PLAIN with SASL-IR), then answer LIST with response."""
    return login_steps(PLAIN) + [On("LIST", response)] + (tail or [Stall(10)])


def test_literal_of_4_gib_is_refused(probe, password_file):
    with serve(list_script(b'* LIST () "/" {4294967296}\r\nabc')) as srv:
        res = run_probe(probe, srv.port, password_file, "list")
    check_refused(res, r"literal.*limit|limit.*literal")


def test_literal_size_overflowing_64_bits_is_refused(probe, password_file):
    with serve(list_script(b'* LIST () "/" {99999999999999999999999}\r\nabc')) as srv:
        res = run_probe(probe, srv.port, password_file, "list")
    check_refused(res, r"overflow")


def test_line_that_never_ends_is_refused(probe, password_file):
    """'a' forever in 64 KiB writes: the client gives up at its line limit."""
    script = [Send("* OK "), SendForever(b"a" * 65536, max_seconds=15)]
    with serve(script) as srv:
        res = run_probe(probe, srv.port, password_file, "list")
        srv.wait_done()
    check_refused(res, r"longer than|too long|limit")
    assert srv.client_closed, "the client did not hang up"
    # Kernel buffers hold a few MB at most; the client must not read on and on.
    assert srv.sent_forever < 64 * 1024 * 1024


def test_line_that_never_ends_after_login_is_refused(probe, password_file):
    script = list_script(b"* LIST (", [SendForever(b"a" * 65536, max_seconds=15)])
    with serve(script) as srv:
        res = run_probe(probe, srv.port, password_file, "list")
        srv.wait_done()
    check_refused(res, r"longer than|too long|limit")
    assert srv.client_closed


def test_deep_nesting_is_refused(probe, password_file):
    deep = b"(" * 10000 + b")" * 10000
    with serve(list_script(b"* LIST (" + deep + b') "/" INBOX\r\n{tag} OK done\r\n')) as srv:
        res = run_probe(probe, srv.port, password_file, "list")
    check_refused(res, r"nest|depth|deep")


def test_stall_in_a_literal_times_out(probe, password_file):
    """{1000} announced, 10 bytes sent, then nothing: the timeout ends the wait."""
    with serve(list_script(b'* LIST () "/" {1000}\r\n0123456789', [Stall(15)])) as srv:
        res = run_probe(probe, srv.port, password_file, "list")
    check_refused(res, r"timed out|timeout", max_seconds=TIMEOUT + 3)
    assert res.elapsed >= TIMEOUT - 0.5, f"gave up before the timeout\n{res}"


# -- unsolicited data ----------------------------------------------------------------

BODY = b"X" * 200 * 1024


def examine_steps(exists=b"* 1 EXISTS\r\n"):
    return [On("EXAMINE", exists + b"* OK [UIDVALIDITY 1] UIDs valid\r\n"
                          b"* FLAGS (\\Seen \\Flagged)\r\n"
                          b"{tag} OK [READ-ONLY] EXAMINE completed\r\n")]


@pytest.mark.parametrize("order", ["flags-first", "body-first"])
def test_unsolicited_fetch_with_body_is_absorbed(probe, password_file, order):
    """A FETCH nobody asked for, with a 200 KB body: flags applied, body dropped."""
    flags = b"FLAGS (\\Seen \\Flagged)"
    body = b"BODY[] {%d}\r\n" % len(BODY) + BODY
    items = flags + b" " + body if order == "flags-first" else body + b" " + flags
    script = (login_steps(PLAIN) + examine_steps() +
              [On("NOOP", b"* 1 FETCH (UID 999 " + items + b")\r\n{tag} OK NOOP done\r\n"),
               On("NOOP", "{tag} OK NOOP done\r\n")] + logout_steps())
    with serve(script) as srv:
        res = run_probe(probe, srv.port, password_file, "noop-wait", "2")
        srv.wait_done()
    check_common(res, QUICK + 1)
    assert res.rc == 0, str(res)
    assert "flags 1 \\Seen \\Flagged" in res.stdout.splitlines(), str(res)
    # The client notes the dropped body once (an info line), nothing else.
    assert len(res.lines) <= 1, str(res)
    assert all(re.search(r"body", l) for l in res.lines), str(res)
    assert srv.error is None and srv.done, srv.error


# -- greetings -----------------------------------------------------------------------

@pytest.mark.parametrize("greeting", [b"HELLO\r\n", b"\x00\x01\x02 garbage\r\n",
                                      b"* HELLO there\r\n", b"* NO go away\r\n",
                                      b"+ go ahead\r\n", b"A1 OK fake\r\n"])
def test_invalid_greeting_is_refused(probe, password_file, greeting):
    """The first response must be OK, PREAUTH or BYE (RFC 3501 §7.1): anything
    else is refused at once, not waited out until the timeout."""
    with serve([Send(greeting), Stall(10)]) as srv:
        res = run_probe(probe, srv.port, password_file, "login")
    check_refused(res, r"greeting")
    assert srv.commands == []


def test_bye_greeting_shows_the_servers_words(probe, password_file):
    with serve([Send("* BYE too many connections\r\n"), Stall(10)]) as srv:
        res = run_probe(probe, srv.port, password_file, "login")
    check_refused(res, r"too many connections")
    assert srv.commands == []


# -- tags and numbers ----------------------------------------------------------------

@pytest.mark.parametrize("tag", [b"Z999", b"A99", b"T" * 5000])
def test_tagged_response_for_a_tag_never_sent(probe, password_file, tag):
    """The client warns (once, bounded) and carries on: the listing completes."""
    response = (tag + b" OK [ALERT] you never asked\r\n"
                b'* LIST (\\HasNoChildren) "/" INBOX\r\n{tag} OK LIST done\r\n')
    with serve(list_script(response, logout_steps())) as srv:
        res = run_probe(probe, srv.port, password_file, "list")
        srv.wait_done()
    check_common(res, QUICK)
    assert res.rc == 0, str(res)
    assert res.stdout.startswith("INBOX\t/"), str(res)
    assert len(res.lines) == 1, str(res)
    assert re.search(r"never sent", res.lines[0]), str(res)
    assert len(res.lines[0]) < 300, str(res)
    assert srv.error is None and srv.done, srv.error


def fetch_script(examine, uid_fetch=None):
    steps = login_steps(PLAIN) + examine
    if uid_fetch is not None:
        steps.append(On("UID", uid_fetch))
    return steps + logout_steps()


def test_message_number_over_32_bits_is_refused(probe, password_file, tmp_path):
    script = fetch_script(examine_steps(b"* 4294967296 EXISTS\r\n"))
    with serve(script) as srv:
        res = run_probe(probe, srv.port, password_file, "fetch", "INBOX", str(tmp_path))
    check_refused(res, r"overflow|number|limit")


def test_message_number_over_64_bits_is_refused(probe, password_file, tmp_path):
    script = fetch_script(examine_steps(b"* 99999999999999999999999 EXPUNGE\r\n"))
    with serve(script) as srv:
        res = run_probe(probe, srv.port, password_file, "fetch", "INBOX", str(tmp_path))
    check_refused(res, r"overflow|number|limit")


def test_uid_over_32_bits_is_ignored(probe, password_file, tmp_path):
    """UID 4294967296 is not a UID: skipped, never wrapped to 0 and fetched."""
    script = fetch_script(examine_steps(),
                          b"* 1 FETCH (UID 4294967296)\r\n{tag} OK UID FETCH done\r\n")
    with serve(script) as srv:
        res = run_probe(probe, srv.port, password_file, "fetch", "INBOX", str(tmp_path))
        srv.wait_done()
    check_common(res, QUICK)
    assert res.rc == 0, str(res)
    assert res.stdout.strip() == "0 messages", str(res)
    assert res.lines == [], str(res)
    assert srv.error is None and srv.done, f"{srv.error}; commands: {srv.commands}"
    assert os.listdir(tmp_path) == []


def test_uidvalidity_over_32_bits_is_ignored(probe, password_file, tmp_path):
    script = fetch_script([On("EXAMINE", b"* 0 EXISTS\r\n* OK [UIDVALIDITY 4294967296] x\r\n"
                                         b"{tag} OK [READ-ONLY] done\r\n")])
    with serve(script) as srv:
        res = run_probe(probe, srv.port, password_file, "fetch", "INBOX", str(tmp_path))
        srv.wait_done()
    check_common(res, QUICK)
    assert res.rc == 0, str(res)
    assert res.stdout.strip() == "0 messages", str(res)
    assert srv.error is None and srv.done, srv.error


# -- the harness itself ----------------------------------------------------------------

def test_server_stops_when_the_test_fails():
    """A failing test inside the with block leaves no thread or socket behind,
    even while the script stalls or sends forever to a client that never reads."""
    class TestFailed(Exception):
        pass

    for script in ([Stall(60)], [SendForever(b"a" * 65536, max_seconds=60)]):
        start = time.monotonic()
        with pytest.raises(TestFailed):
            with HostileServer(script) as srv:
                client = socket.create_connection(("127.0.0.1", srv.port))
                try:
                    time.sleep(0.3)
                    raise TestFailed()
                finally:
                    client.close()
        assert time.monotonic() - start < 3


def test_script_errors_are_reported():
    """A client that sends the wrong command is a script error, not a hang."""
    with HostileServer([Send("* OK hi\r\n"), Expect("LOGIN")]) as srv:
        with socket.create_connection(("127.0.0.1", srv.port)) as client:
            client.recv(100)
            client.sendall(b"A1 NOOP\r\n")
            assert srv.wait_done(5)
    assert srv.error and "NOOP" in srv.error
    assert srv.commands == ["NOOP"]
    assert not srv.done


# -- SASL mechanisms, checked byte for byte against a scripted server --------

def run_oauth(probe, port, token_file, mech):
    cmd = [probe, "--tls", "none", "--timeout", str(TIMEOUT), "--password-file", token_file,
           "--oauth", "--auth", mech, "127.0.0.1", str(port), "alice", "login"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=HARD_TIMEOUT,
                          env=sanitizer_env())


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("ya29.test-token\n")
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize("mech,expected", [
    ("xoauth2", "user=alice\x01auth=Bearer ya29.test-token\x01\x01"),
    ("oauthbearer", "n,a=alice,\x01host=127.0.0.1\x01port={port}\x01auth=Bearer ya29.test-token\x01\x01"),
])
def test_oauth_initial_response(probe, token_file, mech, expected):
    import base64
    caps = f"IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER SASL-IR"
    with serve(login_steps(caps) + logout_steps()) as srv:
        res = run_oauth(probe, srv.port, token_file, mech)
        srv.wait_done()
    assert res.returncode == 0, res.stderr
    word, rest = srv.commands[0].split(" ", 1)
    got_mech, payload = rest.strip().split(" ", 1)
    assert (word, got_mech) == ("AUTHENTICATE", mech.upper())
    assert base64.b64decode(payload).decode() == expected.format(port=srv.port)


@pytest.mark.parametrize("mech,answer", [("xoauth2", b""), ("oauthbearer", b"AQ==")])
def test_oauth_error_challenge_is_answered(probe, token_file, mech, answer):
    """RFC 7628 §3.2.3 / XOAUTH2: a failed token gets a challenge with the error;
    the client answers it and the server's NO is shown."""
    error = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIn0="
    script = [
        Send("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER SASL-IR] ready\r\n"),
        On("AUTHENTICATE", f"+ {error}\r\n"),
        Expect(None),
        Send("A1 NO [AUTHENTICATIONFAILED] invalid credentials\r\n"),
    ]
    with serve(script) as srv:
        res = run_oauth(probe, srv.port, token_file, mech)
        srv.wait_done()
    assert res.returncode == 1
    assert "invalid credentials" in res.stderr and "ya29" not in res.stderr, res.stderr
    assert srv.error is None, srv.error
    assert srv.lines[1] == answer


def test_plain_without_sasl_ir_waits_for_continuation(probe, password_file):
    import base64
    script = [
        Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"),
        On("AUTHENTICATE", "+ \r\n"),
        Expect(None),
        Send("A1 OK [CAPABILITY IMAP4rev1] in\r\n"),
    ] + logout_steps()
    with serve(script) as srv:
        res = run_probe(probe, srv.port, password_file, "login")
        srv.wait_done()
    assert res.rc == 0, str(res)
    assert srv.commands[0] == "AUTHENTICATE PLAIN"
    secret = open(password_file).read().strip()
    assert base64.b64decode(srv.lines[1]) == f"\0tester\0{secret}".encode()
