"""The boot file at daemon start (persisted state first, then the file), auto_reload and watch_conf."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.helpers import wait_for
from tests.integration.conftest import Apm, wait_gone
from tests.integration.test_config_lifecycle import pids, running, sleeper, workers, write

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")


def daemon_log(apm: Apm) -> str:
    try:
        with open(os.path.join(apm.home, "apm.log")) as f:
            return f.read()
    except OSError:
        return ""


def kill9_daemon(apm: Apm) -> None:
    pid = apm.daemon_pid()
    assert pid
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid, 5)


def test_boot_file_loads_at_start_and_a_restart_never_duplicates(apm: Apm) -> None:
    boot = write(os.path.join(apm.home, "apm.conf"), sleeper("web", 1001) + sleeper("jobs", 1002))
    apm("run", "sleep", "1003", "--name", "adhoc", "--no-wait")  # autostarts the daemon, which boots
    running(apm, "web", "jobs", "adhoc")
    assert workers(apm)["web"]["origin"]["file"] == boot
    apm("stop", "jobs")  # a user decision the restart must keep

    kill9_daemon(apm)
    write(boot, sleeper("web", 2001) + sleeper("jobs", 1002) + sleeper("extra", 1004))  # edited while down
    found = workers(apm)  # restarts the daemon: state restored, then the boot file reconciled
    assert sorted(found) == ["adhoc", "extra", "jobs", "web"], "no duplicates, nothing lost"
    assert found["adhoc"]["origin"]["kind"] == "cli"
    wait_for(lambda: workers(apm)["web"]["config"]["params"] == ["2001"], what="web changed from the file")
    running(apm, "web", "extra", "adhoc")
    assert workers(apm)["jobs"]["status"] == "stopped", "an unchanged worker keeps its persisted state"
    assert "boot " + boot in daemon_log(apm)

    apm("boot")  # by hand: safe, changes nothing
    assert sorted(workers(apm)) == ["adhoc", "extra", "jobs", "web"]

    write(boot, sleeper("web", 2001) + "worker broken { exec sleep; instances many; }\n")
    kill9_daemon(apm)
    found = workers(apm)
    assert sorted(found) == ["adhoc", "extra", "jobs", "web"], "a broken boot file changes nothing"
    log = daemon_log(apm)
    assert "has 1 error(s); nothing was changed" in log and "instances: expected a whole number" in log


def test_boot_file_does_not_take_over_a_worker_from_apm_run(apm: Apm) -> None:
    apm("run", "sleep", "1005", "--name", "web", "--no-wait")
    mine = running(apm, "web")["web"]
    boot = write(os.path.join(apm.home, "apm.conf"), sleeper("web", 1001) + sleeper("other", 1002))
    result = apm.json("boot")
    assert result["file"] == boot and result["skipped"] == ["web"] and result["created"] == ["other"]
    assert any("already exists (from apm run)" in w for w in result["warnings"])
    assert pids(apm, "web") == mine and workers(apm)["web"]["origin"]["kind"] == "cli"


def test_auto_reload_applies_edits_renames_drop_ins_and_ignores_broken_edits(apm: Apm) -> None:
    drop = os.path.join(apm.home, "apm.conf.d")
    os.makedirs(drop)
    head = "daemon {\n    auto_reload true;\n}\ninclude apm.conf.d/*.conf;\n"
    boot = write(os.path.join(apm.home, "apm.conf"), head + sleeper("web", 1001) + sleeper("keep", 1002))
    apm("boot")
    first = running(apm, "web", "keep")

    write(boot, head + sleeper("web", 2001) + sleeper("keep", 1002))  # in place
    started = time.monotonic()
    wait_for(lambda: pids(apm, "web") != first["web"] and pids(apm, "web")[0], timeout=5, what="web reloaded")
    assert time.monotonic() - started < 3
    assert pids(apm, "keep") == first["keep"]

    tmp = os.path.join(apm.home, ".apm.conf.swp")
    write(tmp, head + sleeper("web", 2001) + sleeper("keep", 1002) + sleeper("renamed", 1003))
    os.rename(tmp, boot)  # how editors save
    running(apm, "renamed")

    write(os.path.join(drop, "api.conf"), sleeper("api", 1004))  # a new drop-in
    running(apm, "api")

    before = {n: pids(apm, n) for n in ("web", "keep", "renamed", "api")}
    write(boot, head + "worker web { exec sleep; params 5; instances none; }\n")
    wait_for(lambda: "nothing was changed" in daemon_log(apm), timeout=5, what="the broken edit logged")
    assert {n: pids(apm, n) for n in ("web", "keep", "renamed", "api")} == before


def test_watch_conf_reloads_just_that_worker(apm: Apm) -> None:
    conf = write(
        os.path.join(apm.home, "w.conf"), sleeper("watched", 1001, "    watch_conf true;\n") + sleeper("plain", 1002)
    )
    apm("load", conf)
    first = running(apm, "watched", "plain")
    write(conf, sleeper("watched", 2001, "    watch_conf true;\n") + sleeper("plain", 2002))
    wait_for(lambda: workers(apm)["watched"]["config"]["params"] == ["2001"], timeout=5, what="watched reloaded")
    assert running(apm, "watched")["watched"] != first["watched"]
    time.sleep(0.5)
    assert workers(apm)["plain"]["config"]["params"] == ["1002"], "watch_conf reloads only its own worker"
    assert pids(apm, "plain") == first["plain"]
