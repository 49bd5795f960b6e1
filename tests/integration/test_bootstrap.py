# SPDX-License-Identifier: GPL-2.0-or-later
"""scripts/bootstrap never removes a package (README, Installing from source):
it simulates the install first and, when apt would remove anything, installs
nothing, names what would go and says what to do.

Nothing is installed or removed here: dpkg-query, apt-get and sudo are
stand-ins first on PATH that report a machine's state and record every call,
and the test reads what bootstrap asked of them."""

import os
import stat
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BOOTSTRAP = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts", "bootstrap")

FAKE_DPKG_QUERY = """#!/bin/sh
# dpkg-query -W -f=... PACKAGE: installed unless PACKAGE is in $FAKE_MISSING.
for p; do :; done
case " $FAKE_MISSING " in
*" $p "*) printf 'not-installed' ;;
*) printf 'installed' ;;
esac
"""

FAKE_APT_GET = """#!/bin/sh
# Records the call; a simulation (-s) prints $FAKE_SIM's plan.
echo "$*" >> "$FAKE_APT_LOG"
for a; do
	if [ "$a" = -s ]; then
		cat "$FAKE_SIM"
		exit 0
	fi
done
exit 0
"""

FAKE_SUDO = """#!/bin/sh
exec "$@"
"""

SIM_CONFLICT = """NOTE: This is only a simulation!
Reading package lists...
Building dependency tree...
The following packages will be REMOVED:
  cyrus-common cyrus-imapd
The following NEW packages will be installed:
  dovecot-core dovecot-imapd dovecot-pop3d
Remv cyrus-imapd [3.6.1-4+deb12u1]
Remv cyrus-common [3.6.1-4+deb12u1]
Inst dovecot-core (1:2.3.19.1+dfsg1-2.1+deb12u1 Debian:12.5/stable [amd64])
Inst dovecot-imapd (1:2.3.19.1+dfsg1-2.1+deb12u1 Debian:12.5/stable [amd64])
Inst dovecot-pop3d (1:2.3.19.1+dfsg1-2.1+deb12u1 Debian:12.5/stable [amd64])
Conf dovecot-core (1:2.3.19.1+dfsg1-2.1+deb12u1 Debian:12.5/stable [amd64])
Conf dovecot-imapd (1:2.3.19.1+dfsg1-2.1+deb12u1 Debian:12.5/stable [amd64])
Conf dovecot-pop3d (1:2.3.19.1+dfsg1-2.1+deb12u1 Debian:12.5/stable [amd64])
"""

SIM_CLEAN = """NOTE: This is only a simulation!
Inst rsync (3.2.7-1 Debian:12.5/stable [amd64])
Conf rsync (3.2.7-1 Debian:12.5/stable [amd64])
"""


@pytest.fixture
def fake(tmp_path):
    """A PATH whose dpkg-query, apt-get and sudo are the stand-ins above."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("dpkg-query", FAKE_DPKG_QUERY), ("apt-get", FAKE_APT_GET),
                       ("sudo", FAKE_SUDO)):
        p = bindir / name
        p.write_text(text)
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    log = tmp_path / "apt.log"
    log.write_text("")
    sim = tmp_path / "sim.txt"

    def run(missing, plan):
        sim.write_text(plan)
        env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}",
                   FAKE_MISSING=" ".join(missing), FAKE_APT_LOG=str(log), FAKE_SIM=str(sim))
        r = subprocess.run(["bash", BOOTSTRAP], capture_output=True, text=True, env=env,
                           timeout=120)
        return r, log.read_text().splitlines()
    return run


def real_installs(calls):
    """The apt-get calls that would change the system: all but update and -s."""
    return [c for c in calls if c.split()[0] != "update" and "-s" not in c.split()]


def test_stops_with_the_list_when_apt_would_remove(fake):
    r, calls = fake(["dovecot-imapd", "dovecot-pop3d"], SIM_CONFLICT)
    assert r.returncode != 0, r.stderr
    assert "REMOVE: cyrus-imapd cyrus-common" in r.stderr, r.stderr
    assert "never removes a package" in r.stderr
    # What to do: where to run the tests instead, and the removal as the user's own act.
    assert "container or virtual machine" in r.stderr
    assert "sudo apt-get remove cyrus-imapd cyrus-common" in r.stderr
    # It simulated the install of what is missing, and did nothing else.
    sims = [c for c in calls if "-s" in c.split()]
    assert len(sims) == 1 and "dovecot-imapd dovecot-pop3d" in sims[0], calls
    assert real_installs(calls) == [], calls


def test_installs_with_no_remove_when_nothing_would_go(fake):
    # The real install writes /usr/sbin/policy-rc.d when it is missing:
    # not on a machine whose own one this test would replace.
    if not os.path.exists("/usr/sbin/policy-rc.d"):
        pytest.skip("no /usr/sbin/policy-rc.d: bootstrap would create one for the install")
    r, calls = fake(["rsync"], SIM_CLEAN)
    assert r.returncode == 0, r.stderr
    installs = real_installs(calls)
    assert len(installs) == 1, calls
    words = installs[0].split()
    assert words[0] == "install" and "rsync" in words
    # Should apt's plan change after the simulation, it still removes nothing.
    assert "--no-remove" in words and "-y" in words
    assert calls.index(installs[0]) > min(i for i, c in enumerate(calls) if "-s" in c.split())


def test_nothing_missing_asks_apt_nothing(fake):
    r, calls = fake([], SIM_CONFLICT)
    assert r.returncode == 0, r.stderr
    assert calls == []
