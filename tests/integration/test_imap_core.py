# SPDX-License-Identifier: GPL-2.0-or-later
"""The IMAP client core against the real dovecot, through tests/tools/imap_probe:
log in over STARTTLS and IMAPS, LIST with decoded names, fetch every body in
ranges and compare it with imaplib's BODY.PEEK[]; and the refusals."""

import os
import re
import subprocess

import pytest

import corpus
import mailserver
from conftest import password_file, sanitizer_env


@pytest.fixture(scope="session")
def probe(build_dir):
    path = os.path.join(build_dir, "tests", "tools", "imap_probe")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built")
    return path


def run_probe(probe, dovecot, workdir, *args, user="alice", host="127.0.0.1", port=None,
              tls="implicit", ca=None, timeout=60, password=None):
    if port is None:
        port = dovecot.ports["imaps" if tls == "implicit" else "imap"]
    if password is None:
        pwfile = password_file(workdir, dovecot, user)
    else:
        pwfile = os.path.join(workdir, "wrong.password")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        os.chmod(pwfile, 0o600)
    cmd = [probe, "--tls", tls, "--password-file", pwfile, "--timeout", "10"]
    if ca is not False:
        cmd += ["--ca", ca or dovecot.ca]
    cmd += [host, str(port), user, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=sanitizer_env())
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


def server_folders(dovecot, user="alice"):
    with dovecot.imaps(user) as c:
        typ, lines = c.list()
        assert typ == "OK"
    out = set()
    for line in lines:
        m = re.match(rb'\(([^)]*)\) (?:"(.)"|NIL) (.*)$', line)
        name = m.group(3).decode()
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out.add(corpus.mutf7_decode(name))
    return out


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_login(probe, dovecot, workdir, tls):
    r = run_probe(probe, dovecot, workdir, "login", tls=tls)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("caps ")


def test_login_by_host_name(probe, dovecot, workdir):
    r = run_probe(probe, dovecot, workdir, "login", host="localhost", tls="starttls")
    assert r.returncode == 0, r.stderr


def test_list_decodes_names(probe, dovecot, workdir):
    r = run_probe(probe, dovecot, workdir, "list", tls="starttls")
    assert r.returncode == 0, r.stderr
    listed = {line.split("\t")[0] for line in r.stdout.splitlines()}
    assert listed == server_folders(dovecot)
    assert {"Entwürfe", "Отправленные", "Project X", "Archive/2024/Q1"} <= listed
    attrs = {l.split("\t")[0]: int(l.split("\t")[2], 16) for l in r.stdout.splitlines()}
    assert attrs["Lists"] & 0x1, "Lists is \\Noselect"
    assert attrs["Trash"] & 0x400, "Trash has \\Trash"


def test_list_courier_namespace(probe, dovecot, workdir):
    r = run_probe(probe, dovecot, workdir, "list", user="carol")
    assert r.returncode == 0, r.stderr
    rows = [l.split("\t") for l in r.stdout.splitlines()]
    assert {row[0] for row in rows} == {"INBOX", "INBOX.Work", "INBOX.Work.Reports"}
    assert all(row[1] == "." for row in rows)


@pytest.mark.parametrize("folder", ["INBOX", "PyEmail", "Entwürfe"])
def test_fetch_bodies_byte_for_byte(probe, dovecot, workdir, folder, tmp_path):
    r = run_probe(probe, dovecot, workdir, "fetch", folder, str(tmp_path), timeout=120)
    assert r.returncode == 0, r.stderr
    with dovecot.imaps("alice") as c:
        c.select(corpus._q(corpus.mutf7_encode(folder)), readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        assert typ == "OK"
        expected = {}
        for item in data:
            if isinstance(item, tuple):
                uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                expected[uid] = item[1]
    got = {int(n): (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
    assert set(got) == set(expected)
    for uid, body in expected.items():
        assert got[uid] == body, f"{folder} UID {uid} differs"
    if folder == "INBOX":
        assert max(len(b) for b in got.values()) > 5 * 1024 * 1024


def test_refuses_unknown_ca(probe, dovecot, workdir):
    r = run_probe(probe, dovecot, workdir, "login", ca=dovecot.other_ca)
    assert r.returncode == 1
    assert "certificate" in r.stderr
    assert "tls_fingerprint=" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_refuses_name_mismatch(probe, dovecot, workdir):
    # The certificate is for localhost and 127.0.0.1; dovecot also listens on 127.0.0.2.
    r = run_probe(probe, dovecot, workdir, "login", host="127.0.0.2")
    assert r.returncode == 1
    assert "certificate" in r.stderr and "127.0.0.2" in r.stderr


def test_refuses_name_mismatch_starttls(probe, dovecot, workdir):
    r = run_probe(probe, dovecot, workdir, "login", host="127.0.0.2", tls="starttls")
    assert r.returncode == 1
    assert "certificate" in r.stderr


def test_wrong_password_shows_server_words(probe, dovecot, workdir):
    r = run_probe(probe, dovecot, workdir, "login", password="not-the-password")
    assert r.returncode == 1
    assert "Authentication failed" in r.stderr, r.stderr
    assert "not-the-password" not in r.stderr


def test_password_not_in_trace(probe, dovecot, workdir):
    pwfile = password_file(workdir, dovecot, "alice")
    for auth in ("plain", "login"):
        r = subprocess.run([probe, "--trace", "--auth", auth, "--tls", "starttls", "--ca",
                            dovecot.ca, "--password-file", pwfile, "127.0.0.1",
                            str(dovecot.ports["imap"]), "alice", "login"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "C: A" in r.stderr
        assert dovecot.users["alice"] not in r.stderr
        import base64
        plain = base64.b64encode(f"\0alice\0{dovecot.users['alice']}".encode()).decode()
        assert plain not in r.stderr


@pytest.fixture(scope="module")
def plain_dovecot(workdir):
    """A second dovecot without TLS: its IMAP listener does not offer STARTTLS."""
    server = mailserver.Dovecot(os.path.join(workdir, "dovecot-plain"), tls=False)
    server.start()
    yield server
    server.stop()


def test_refuses_when_starttls_not_offered(probe, plain_dovecot, workdir):
    r = run_probe(probe, plain_dovecot, workdir, "login", tls="starttls", ca=False,
                  port=plain_dovecot.ports["imap"])
    assert r.returncode == 1
    assert "STARTTLS" in r.stderr and "tls=none" in r.stderr


def test_tls_none_works_when_chosen(probe, plain_dovecot, workdir):
    r = run_probe(probe, plain_dovecot, workdir, "list", tls="none", ca=False,
                  port=plain_dovecot.ports["imap"])
    assert r.returncode == 0, r.stderr
    assert "warning: tls=none" in r.stderr and "unencrypted" in r.stderr


def server_fingerprint(dovecot):
    out = subprocess.run(["openssl", "x509", "-in", dovecot.cert, "-noout", "-fingerprint",
                          "-sha256"], capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]


def test_fingerprint_pin_replaces_chain_check(probe, dovecot, workdir):
    fp = server_fingerprint(dovecot)
    # Trusting only an unrelated CA, the pin alone admits the server...
    r = run_probe(probe, dovecot, workdir, "login", ca=dovecot.other_ca, timeout=60)
    assert r.returncode == 1
    pwfile = password_file(workdir, dovecot, "alice")
    base = [probe, "--ca", dovecot.other_ca, "--password-file", pwfile, "--timeout", "10"]
    r = subprocess.run(base + ["--fingerprint", fp, "127.0.0.1", str(dovecot.ports["imaps"]),
                               "alice", "login"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # ...and a wrong pin refuses even a certificate the CA would accept.
    wrong = ("00:" + fp[3:]) if not fp.startswith("00") else ("11:" + fp[3:])
    r = subprocess.run([probe, "--ca", dovecot.ca, "--password-file", pwfile, "--fingerprint",
                        wrong, "127.0.0.1", str(dovecot.ports["imaps"]), "alice", "login"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "fingerprint" in r.stderr
