"""Rendering of list/info/start failures (golden text), human units, colour rules."""

from __future__ import annotations

from alter.cli.info import render_info
from alter.cli.render import (
    Style,
    abbreviate_pids,
    color_wanted,
    human_bytes,
    human_cpu,
    human_duration,
    render_list,
    render_start_failed,
)
from tests.unit.test_cli_fakedaemon import NOW, instance, sample_workers, worker

PLAIN = Style(False)

LIST_GOLDEN = """\
NAME                           NAMESPACE  STATUS    INST  PID             CPU    MEM  UPTIME  RESTARTS
api                            default    running   2/2   4242,4243      1.5%  70.0M  3m12s   0/1
jobs-nightly-report-generator  batch      backoff   0/1   -                 -      -  -       0/5
web                            default    running   5/5   5001,5002,+3  10.0%   5.0G  4d4h    0/0
old                            default    stopped   0/1   -                 -      -  -       0/0
off                            default    disabled  0/1   -                 -      -  -       0/0"""

LIST_GOLDEN_70 = """\
NAME      STATUS    INST  PID       CPU    MEM  UPTIME  RESTARTS
api       running   2/2   4242,…   1.5%  70.0M  3m12s   0/1
jobs-ni…  backoff   0/1   -           -      -  -       0/5
web       running   5/5   5001,…  10.0%   5.0G  4d4h    0/0
old       stopped   0/1   -           -      -  -       0/0
off       disabled  0/1   -           -      -  -       0/0"""

INFO_HEAD_GOLDEN = """\
jobs-nightly-report-generator  backoff  1/2 instances
  namespace  batch
  origin     config file /etc/apm/apm.conf.d/jobs.conf
  enabled    yes
  restarts   0 clean, 5 error

Instances
  #  PID   STATUS   UPTIME   CPU    MEM  RESTARTS  LAST EXIT                        NEXT START
  1  -     backoff  -          -      -       0/5  code 1 after 90ms, 2s ago        in 1.5s
  2  4243  running  3m12s   0.3%  30.0M       0/1  signal SIGKILL after 1m, 5m ago  -

Options  (default) marks values nobody set
  Identity
    name                    jobs-nightly-report-generator  (default)
    exec                    python3
    params                  -  (default)
    path                    -  (default)
    instances               2
    user                    -  (default)
    namespace               batch  (default)
    enabled                 true  (default)
  Environment
    env                     A=1, B=x,y  (default)"""


def _info_worker() -> dict:
    w = worker(
        "jobs-nightly-report-generator",
        status="backoff",
        namespace="batch",
        error=5,
        origin={"kind": "file", "file": "/etc/apm/apm.conf.d/jobs.conf"},
        config={
            "exec": "python3",
            "instances": 2,
            "kill_timeout": 5000,
            "memory_limit": 256 * 1024**2,
            "watch": ["*.py", "*.cfg"],
        },
        instances=[
            instance(
                1,
                None,
                status="backoff",
                error=5,
                last_exit={"code": 1, "signal": None, "at": NOW - 2, "runtime_ms": 90},
                next_start_at=NOW + 1.5,
            ),
            instance(
                2,
                4243,
                uptime=192.0,
                error=1,
                last_exit={"code": None, "signal": "SIGKILL", "at": NOW - 300, "runtime_ms": 60000},
            ),
        ],
    )
    w["instances_running"] = 1
    w["options"] = {"env": ["A=1", "B=x,y"], "namespace": "batch"}
    return w


def test_list_golden() -> None:
    assert "\n".join(render_list(sample_workers(), PLAIN)) == LIST_GOLDEN


def test_list_truncates_to_terminal_width() -> None:
    lines = render_list(sample_workers(), PLAIN, width=70)
    assert "\n".join(lines) == LIST_GOLDEN_70
    for width in (100, 80, 70, 60, 50):
        assert all(len(line) <= width for line in render_list(sample_workers(), PLAIN, width=width)), width


def test_list_empty_gives_a_hint() -> None:
    text = "\n".join(render_list([], PLAIN))
    assert "No workers yet" in text and "apm run <cmd>" in text


def test_list_colours_status_words() -> None:
    text = "\n".join(render_list(sample_workers(), Style(True)))
    assert "\x1b[32mrunning\x1b[0m" in text
    assert "\x1b[33mbackoff\x1b[0m" in text
    assert "\x1b[90mstopped\x1b[0m" in text
    assert "\x1b[2mdisabled\x1b[0m" in text
    errored = render_list([worker("x", status="errored", instances=[instance(1, None, status="errored")])], Style(True))
    assert "\x1b[31merrored\x1b[0m" in "\n".join(errored)


def test_coloured_columns_stay_aligned() -> None:
    import re

    plain = render_list(sample_workers(), PLAIN)
    coloured = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in render_list(sample_workers(), Style(True))]
    assert coloured == plain


def test_info_golden_head() -> None:
    lines = render_info(_info_worker(), PLAIN, NOW)
    assert "\n".join(lines[: len(INFO_HEAD_GOLDEN.splitlines())]) == INFO_HEAD_GOLDEN


def test_info_shows_every_option_grouped_and_formats_values() -> None:
    from alter.config.options import WORKER_OPTIONS_LIST

    text = "\n".join(render_info(_info_worker(), PLAIN, NOW))
    for option in WORKER_OPTIONS_LIST:
        if option.name != "cmd":
            assert f"    {option.name} " in text, option.name
    for section in ("Identity", "Restart on error exit", "Logging", "Inter-worker IPC"):
        assert f"\n  {section}\n" in text
    assert "kill_timeout            5000 ms\n" in text  # set: not marked
    assert "restart_delay           250 ms  (default)" in text
    assert "memory_limit            256M\n" in text
    assert "watch                   *.py, *.cfg\n" in text


def test_info_dims_defaults_in_colour() -> None:
    text = "\n".join(render_info(_info_worker(), Style(True), NOW))
    assert "(default)" not in text
    assert "\x1b[2mrestart_delay           250 ms\x1b[0m" in text
    assert "    exec                    python3" in text


def test_info_without_instances() -> None:
    text = "\n".join(render_info(worker("off", status="disabled", instances=[], wanted=1), PLAIN, NOW))
    assert "(none running)" in text


def test_start_failed_block_matches_the_manual_shape() -> None:
    detail = {
        "instance": 1,
        "exit_code": 1,
        "signal": None,
        "runtime_ms": 515,
        "stderr": "Error: Cannot find module 'redis'\n    code: 'MODULE_NOT_FOUND',\n",
        "hints": ["missing node module redis — run npm install"],
    }
    lines = render_start_failed("Portal4", detail, PLAIN)
    assert lines[0] == " Portal4#1 failed during startup (exit 1, 515 ms)"
    assert lines[1].startswith("── child stderr ──") and len(lines[1]) == 62
    assert lines[2:4] == ["Error: Cannot find module 'redis'", "    code: 'MODULE_NOT_FOUND',"]
    assert lines[4] == "─" * 62
    assert lines[5] == "   missing node module redis — run npm install"


def test_start_failed_caps_stderr_at_8k_and_ascii_rules() -> None:
    detail = {"instance": 2, "signal": "SIGSEGV", "stderr": "x" * 20000}
    lines = render_start_failed("a", detail, Style(False, unicode=False))
    assert lines[0] == " a#2 failed during startup (killed by SIGSEGV)"
    assert lines[1].startswith("-- child stderr --")
    assert sum(len(line) for line in lines[2:-1]) == 8192


def test_human_units() -> None:
    assert human_bytes(512) == "512B"
    assert human_bytes(12.3 * 1024**2) == "12.3M"
    assert human_bytes(None) == "-"
    assert human_duration(45) == "45s"
    assert human_duration(192) == "3m12s"
    assert human_duration(2 * 3600 + 5 * 60 + 7) == "2h5m"
    assert human_duration(300) == "5m"
    assert human_duration(7200) == "2h"
    assert human_duration(86400 * 2 + 60) == "2d"
    assert human_duration(4 * 86400 + 3 * 3600) == "4d3h"
    assert human_duration(None) == "-"
    assert human_cpu(12.345) == "12.3%"
    assert abbreviate_pids([1, 2, 3, 4]) == "1,2,+2"
    assert abbreviate_pids([]) == "-"


class _Tty:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_colour_rules() -> None:
    assert color_wanted(_Tty(True), {}) is True
    assert color_wanted(_Tty(False), {}) is False
    assert color_wanted(_Tty(True), {"NO_COLOR": ""}) is False  # any value, even empty
    assert color_wanted(_Tty(True), {"NO_COLOR": "0"}) is False
    assert color_wanted(_Tty(True), {"TERM": "dumb"}) is False
    assert color_wanted(_Tty(False), {"APM_COLOR": "1"}) is True
    assert color_wanted(_Tty(False), {"APM_COLOR": "1", "NO_COLOR": "1"}) is True
    assert color_wanted(_Tty(True), {"APM_COLOR": "0"}) is False
    assert color_wanted(_Tty(False), {}, flag=True) is True
    assert color_wanted(_Tty(True), {"APM_COLOR": "1"}, flag=False) is False
