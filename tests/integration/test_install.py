# SPDX-License-Identifier: GPL-2.0-or-later
"""Installation (issue 10): `meson install` puts the daemon, the man page, the
example config and the systemd user unit template where a distribution expects
them, and the unit is one systemd accepts."""

import configparser
import json
import os
import shutil
import subprocess
import tempfile

import pytest


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
    assert svc["ExecStartPre"].split() == ["mkdir", "-p", mp]
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
