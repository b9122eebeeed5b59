"""A non-root caller (apm group member) can never make the root daemon read or write a config file
they could not read or write themselves; workers from their files run as them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Iterator

import pytest

from tests.integration.conftest import Apm
from tests.integration.test_config_lifecycle import sleeper, workers, write
from tests.integration.test_daemon_auth import User, apm, apm_group, proc_uid, user  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"),
]


@pytest.fixture
def folder() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="apm-conf-perms-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_daemon_reads_only_files_the_caller_may_read(apm: Apm, user: User, apm_group: str, folder: str) -> None:  # noqa: F811
    subprocess.run(["usermod", "-aG", apm_group, user.name], check=True, capture_output=True)
    to_root = {"APM_SOCKET": apm.socket}
    secret = write(os.path.join(folder, "secret.conf"), sleeper("hidden_worker", 1001))
    os.chmod(secret, 0o600)
    r = user.run("load", secret, env=to_root)
    assert r.returncode == 5, r
    assert f"may not read {secret}" in r.stderr

    sneaky = write(os.path.join(folder, "sneaky.conf"), "include secret.conf;\n" + sleeper("front", 1002))
    r = user.run("reload", sneaky, env=to_root)
    assert r.returncode == 5 and "secret.conf" in r.stderr, r
    assert "hidden_worker" not in r.stderr and "hidden_worker" not in r.stdout

    link = os.path.join(folder, "link.conf")
    os.symlink("/etc/shadow", link)
    r = user.run("check", link, env=to_root)  # check reads as the user: plain EACCES, no daemon involved
    assert r.returncode != 0 and "root:" not in r.stdout + r.stderr
    r = user.run("load", link, env=to_root)
    assert r.returncode == 5, r
    assert sorted(workers(apm)) == ["s"], "nothing was loaded"

    root_only = tempfile.mkdtemp(prefix="apm-conf-root-", dir="/tmp")
    try:
        os.chmod(root_only, 0o755)
        r = user.run("saveconf", "s", os.path.join(root_only, "s.conf"), env=to_root)
        assert r.returncode == 5 and "may not write" in r.stderr, r
        assert os.listdir(root_only) == []
    finally:
        shutil.rmtree(root_only, ignore_errors=True)

    own = os.path.join(user.home, "mine.conf")
    write(own, sleeper("theirs", 1003, "    user root;\n"))
    os.chown(own, user.uid, user.gid)
    r = user.run("load", own, env=to_root)
    assert r.returncode == 0, r.stderr
    assert "runs as " + user.name in r.stderr  # `user root;` is not theirs to choose
    status = apm.json("info", "theirs")
    assert status["config"]["user"] == user.name and status["origin"]["owner"] == user.uid
    from tests.helpers import wait_for

    pid = wait_for(lambda: apm.json("info", "theirs")["instances"][0]["pid"], what="theirs running")
    assert proc_uid(pid) == user.uid
