# SPDX-License-Identifier: GPL-2.0-or-later
"""The harness itself: the private dovecot answers on all four ports over
verified TLS, refuses an unknown CA, and holds the corpus."""

import imaplib
import os
import poplib
import ssl

import pytest

import corpus


def test_imaps_and_starttls_login(dovecot):
    with dovecot.imaps("alice") as c:
        assert c.noop()[0] == "OK"
    with dovecot.imap_starttls("alice") as c:
        assert c.noop()[0] == "OK"


def test_pop3s_and_stls_login(dovecot):
    with dovecot.pop3s("bob") as p:
        assert p.stat()[0] >= 0
    with dovecot.pop3_stls("bob") as p:
        assert "UIDL" in p.capa()


def test_unknown_ca_is_refused(dovecot):
    ctx = ssl.create_default_context(cafile=dovecot.other_ca)
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(dovecot.host, dovecot.ports["imaps"], ssl_context=ctx, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        poplib.POP3_SSL(dovecot.host, dovecot.ports["pop3s"], context=ctx, timeout=10)


def test_corpus_is_seeded(dovecot):
    expected = {}
    for folder, _, _, _ in corpus.build():
        expected[folder] = expected.get(folder, 0) + 1
    with dovecot.imaps("alice") as c:
        typ, lines = c.list()
        assert typ == "OK"
        names = {corpus.mutf7_decode(l.decode().rsplit(' "/" ', 1)[1].strip('"')) for l in lines}
        assert {"Entwürfe", "Отправленные", "Project X", "Lists", "Archive/2024/Q1"} <= names
        for folder, count in expected.items():
            typ, data = c.select(corpus._q(corpus.mutf7_encode(folder)), readonly=True)
            assert typ == "OK" and int(data[0]) == count, folder


def test_a_server_namespace_does_not_hold_a_mount(mount, workdir):
    """Cyrus and Courier run in a private mount namespace, which starts with
    a copy of every mount: a mailfs mount copied there would never see its
    unmount outside end its session (the daemon would not exit). The
    namespace detaches those copies first."""
    import unpacked_servers

    m = mount()
    os.listdir(m.mountpoint)
    s = unpacked_servers.Cyrus(os.path.join(workdir, "harness-ns-cyrus"), {"mia": "Mia-Secret-9"})
    s.start()
    try:
        m.unmount(timeout=15)  # hangs, the session held by the copy, without the detach
    finally:
        s.stop()
