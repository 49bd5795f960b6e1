# SPDX-License-Identifier: GPL-2.0-or-later
"""Installation: `meson install` puts the daemon, the man page, the
example config and the systemd user unit template where a distribution expects
them, and the unit is one systemd accepts."""

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import pytest

from test_imap_write import USER as WRITE_USER
from test_imap_write import seed as seed_write_user
from test_imap_write import server_folders

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_options(build_dir):
    out = subprocess.run(["meson", "introspect", "--buildoptions", build_dir],
                         capture_output=True, text=True, check=True).stdout
    return {o["name"]: o["value"] for o in json.loads(out)}


def under_prefix(opts, key):
    """An install directory as meson resolves it: relative ones are below the prefix."""
    return os.path.join(opts["prefix"], opts[key])


@pytest.fixture(scope="module")
def installed(build_dir, mailfs_bin):
    """(destdir, build options) after `meson install --destdir`; removed afterwards."""
    destdir = tempfile.mkdtemp(prefix="mailfs-install-")
    try:
        # --no-rebuild: install what the build holds (mailfs_bin checked it is
        # built); a rebuild would also drag in every test program.
        r = subprocess.run(["meson", "install", "--no-rebuild", "--destdir", destdir,
                            "-C", build_dir], capture_output=True, text=True)
        assert r.returncode == 0, f"meson install failed:\n{r.stdout}\n{r.stderr}"
        yield destdir, build_options(build_dir)
    finally:
        shutil.rmtree(destdir, ignore_errors=True)


def in_destdir(destdir, path):
    return os.path.join(destdir, os.path.relpath(path, "/"))


def find_unit(destdir):
    found = []
    for dirpath, dirnames, filenames in os.walk(destdir):
        found += [os.path.join(dirpath, n) for n in filenames if n == "mailfs@.service"]
    assert len(found) == 1, f"expected one mailfs@.service below {destdir}, found {found}"
    return found[0]


def read_unit(path):
    """The unit as {section: {key: value}}; every key in it appears once."""
    p = configparser.ConfigParser(interpolation=None, strict=True,
                                  comment_prefixes=("#", ";"), empty_lines_in_values=False)
    p.optionxform = str  # systemd keys are case-sensitive
    with open(path) as f:
        p.read_file(f)
    return {s: dict(p[s]) for s in p.sections()}


def test_installs_binary_man_page_and_example(installed):
    destdir, opts = installed
    binary = in_destdir(destdir, os.path.join(under_prefix(opts, "bindir"), "mailfs"))
    assert os.access(binary, os.X_OK), f"{binary} missing or not executable"
    man = in_destdir(destdir, os.path.join(under_prefix(opts, "mandir"), "man1", "mailfs.1"))
    assert os.path.isfile(man)
    example = in_destdir(destdir, os.path.join(under_prefix(opts, "datadir"), "doc", "mailfs",
                                               "mailfs.conf.example"))
    assert os.path.isfile(example)
    r = subprocess.run([binary, "-V"], capture_output=True, text=True)
    assert r.returncode == 0 and "mailfs" in r.stdout + r.stderr


def test_unit_lands_in_the_user_unit_dir(installed):
    destdir, opts = installed
    unit = find_unit(destdir)
    rel = "/" + os.path.relpath(unit, destdir)
    # Below our prefix (systemd's pkg-config directory moved there, or the
    # fallback), which the user manager searches for /usr and /usr/local.
    assert rel == os.path.join(opts["prefix"], "lib", "systemd", "user", "mailfs@.service")


def test_unit_template_contents(installed):
    destdir, opts = installed
    unit = read_unit(find_unit(destdir))
    assert set(unit) == {"Unit", "Service", "Install"}
    svc = unit["Service"]
    mp = "%h/mail/%i"
    binary = os.path.join(under_prefix(opts, "bindir"), "mailfs")
    assert svc["Type"] == "simple"
    # Foreground: systemd supervises the process; the instance is the account NAME.
    assert svc["ExecStart"].split() == [binary, "-f", "%i", mp]
    # The mountpoint is made by a guard that refuses inside a FUSE mount
    # (test_unit_never_creates_inside_a_mount runs it).
    pre = shlex.split(svc["ExecStartPre"])
    assert pre[:2] == ["/bin/sh", "-c"] and len(pre) == 3
    assert pre[2].endswith(f'exec mkdir -p "{mp}"')
    # '-': a clean exit already unmounted, fusermount3 then fails harmlessly.
    assert svc["ExecStopPost"].split() == ["-fusermount3", "-uz", mp]
    assert svc["Restart"] == "on-failure"
    assert int(svc["RestartSec"]) > 0
    assert unit["Install"]["WantedBy"] == "default.target"
    assert "man:mailfs(1)" in unit["Unit"]["Documentation"]
    assert "@" not in svc["ExecStart"].replace("mailfs@", ""), "unsubstituted @VAR@"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(installed):
    destdir, opts = installed
    binary = os.path.join(under_prefix(opts, "bindir"), "mailfs")
    with open(find_unit(destdir)) as f:
        text = f.read()
    assert binary in text
    # verify checks that ExecStart's program exists: point it at the installed
    # copy in the destdir, and instantiate the template for one account.
    text = text.replace(binary, in_destdir(destdir, binary))
    tmp = tempfile.mkdtemp(prefix="mailfs-verify-")
    try:
        path = os.path.join(tmp, "mailfs@work.service")
        with open(path, "w") as f:
            f.write(text)
        runtime = os.path.join(tmp, "run")
        os.mkdir(runtime, 0o700)
        # A user manager needs XDG_RUNTIME_DIR even to verify.
        env = dict(os.environ, XDG_RUNTIME_DIR=runtime)
        r = subprocess.run(["systemd-analyze", "verify", "--user", "--man=no", path],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0 and not r.stderr.strip(), \
            f"systemd-analyze verify: rc {r.returncode}\n{r.stdout}{r.stderr}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def expand(word, home, instance):
    """A unit's command word as systemd runs it: specifiers, then $$ -> $."""
    word = re.sub(r"%(.)", lambda m: {"h": home, "i": instance, "%": "%"}[m.group(1)], word)
    return word.replace("$$", "$")


def run_start_pre(installed, home, instance):
    unit = read_unit(find_unit(installed[0]))
    argv = [expand(w, home, instance) for w in shlex.split(unit["Service"]["ExecStartPre"])]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_unit_creates_the_mountpoint_in_a_plain_directory(installed, workdir):
    home = tempfile.mkdtemp(prefix="home-", dir=workdir)
    r = run_start_pre(installed, home, "work")
    assert r.returncode == 0, r.stderr
    assert os.path.isdir(os.path.join(home, "mail", "work"))
    # Again, with everything there: nothing to do, no error.
    r = run_start_pre(installed, home, "work")
    assert r.returncode == 0, r.stderr
    # No ~/mail yet: the home is checked, and both are made.
    os.rmdir(os.path.join(home, "mail", "work"))
    os.rmdir(os.path.join(home, "mail"))
    r = run_start_pre(installed, home, "gmail")
    assert r.returncode == 0, r.stderr
    assert os.listdir(os.path.join(home, "mail")) == ["gmail"]


def test_unit_never_creates_inside_a_mount(installed, workdir, mount, dovecot):
    """An account mounted on ~/mail by hand, then the unit started for another:
    the unit's mkdir would be a CREATE on the first account's server."""
    seed_write_user(dovecot)
    before = server_folders(dovecot, WRITE_USER)
    home = tempfile.mkdtemp(prefix="home-", dir=workdir)
    m = mount(user=WRITE_USER, start=False)
    m.mountpoint = os.path.join(home, "mail")
    m.start()
    listed = sorted(os.listdir(m.mountpoint))
    for instance in ("work", "Work"):  # a new folder, and one the server has
        r = run_start_pre(installed, home, instance)
        assert r.returncode != 0, f"{instance}: {r.stdout}{r.stderr}"
        assert f"mailfs@{instance}: {m.mountpoint} is a FUSE mount" in r.stderr, r.stderr
    assert sorted(os.listdir(m.mountpoint)) == listed
    assert server_folders(dovecot, WRITE_USER) == before


def documented_mountpoints(path):
    """The mountpoints of the mount commands and fstab lines in a document."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip().replace("\\-", "-")
            if line.startswith("mailfs ") and " " in line[7:]:
                try:
                    words, pos, skip = shlex.split(line), [], False
                except ValueError:  # prose with an apostrophe
                    continue
                for w in words[1:]:
                    if skip:
                        skip = False
                    elif w in ("-o", "-F"):
                        skip = True
                    elif not w.startswith("-"):
                        pos.append(w)
                if len(pos) == 2:
                    out.append(pos[1])
            elif "fuse.mailfs" in line and not line.startswith((".", "#")):
                out.append(line.split()[1])
    return out


@pytest.mark.parametrize("doc", ["README.md", "doc/mailfs.1"])
def test_documents_mount_where_the_unit_does(doc):
    """The unit mounts NAME on ~/mail/NAME: a document that mounts an account on
    ~/mail itself makes the unit's ~/mail/NAME a folder on the server."""
    points = documented_mountpoints(os.path.join(SOURCE_ROOT, doc))
    assert len(points) >= 2, points
    for p in points:
        p = re.sub(r"^/home/[^/]+/", "~/", p)
        assert p.rstrip("/") != "~/mail", f"{doc}: an account mounted on ~/mail itself"
        if p.startswith("~/mail/"):
            assert re.fullmatch(r"~/mail/[^/]+/?", p), f"{doc}: {p} is not ~/mail/NAME"
