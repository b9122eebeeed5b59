"""apm convert: PM2 ecosystem files (.json/.js/.cjs/.mjs) -> worker blocks, golden files."""

from __future__ import annotations

import shutil

import pytest

from alter.config.loader import load_text
from alter.config.pm2 import convert, dayjs_to_strftime, map_app
from alter.errors import ConfigError
from tests.unit.config_helpers import fixture

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
SOURCES = [
    "ecosystem.json",
    pytest.param("ecosystem.config.js", marks=needs_node),
    pytest.param("ecosystem.config.cjs", marks=needs_node),
    pytest.param("ecosystem.config.mjs", marks=needs_node),
    pytest.param("mixed.config.js", marks=needs_node),
]


def _golden(name: str) -> str:
    with open(fixture("pm2", name + ".expected.conf"), encoding="utf-8") as fh:
        return fh.read()


@pytest.mark.parametrize("name", SOURCES)
def test_convert_matches_golden_and_parses(name):
    text = convert(fixture("pm2", name), cpu_count=4)
    assert text == _golden(name)
    result = load_text(text, "converted.conf")
    assert result.errors == [] and result.warnings == []
    assert result.workers
    for worker in result.workers:  # every WARN comment sits above its worker block
        assert all(c.startswith("WARN: ") for c in worker.comments)


def _workers(name: str):
    return load_text(_golden(name), "g.conf").configs()


def test_json_ecosystem_meaning():
    workers = _workers("ecosystem.json")
    assert workers["api"] == {
        "name": "api",
        "exec": "node",
        "params": ["--max-old-space-size=512", "./dist/server.js", "--port", "3000"],
        "path": "/srv/api",
        "instances": 2,
        "env": ["NODE_ENV=production", "PORT=3000", "DEBUG=false"],
        "env_index": "NODE_APP_INSTANCE",
        "restart": True,
        "restart_err": True,
        "restart_delay": 4000,
        "err_delay": 4000,
        "max_err_restarts": 10,
        "err_grace": 10000,
        "kill_timeout": 5000,
        "memory_limit": 300 * 1024**2,
        "log": "/var/log/api/out.log",
        "err_log": "/var/log/api/err.log",
        "log_time_format": "%Y-%m-%d %H:%M:%S.%F %z",
        "watch": ["dist*", "config/*.json"],
        "watch_ignore": ["*node_modules*", "*.log"],
        "watch_delay": 500,
    }
    assert workers["nightly-report"] == {
        "name": "nightly-report",
        "exec": "node",
        "params": ["report.js"],
        "path": "/srv/api",
        "namespace": "jobs",
        "restart": False,
        "restart_err": False,
        "restart_cron": "0 2 * * *",
    }


@needs_node
def test_commonjs_meaning():
    workers = _workers("ecosystem.config.js")
    assert list(workers) == ["shop-web", "shop-worker", "cleanup"]  # cleanup: named after its script
    assert workers["shop-web"]["instances"] == 4
    assert workers["shop-web"]["env"] == ["NODE_ENV=development", "PORT=8080"]
    assert workers["shop-web"]["log"] == "/var/log/shop/web.log"
    assert workers["shop-worker"]["watch"] == ["*"]
    assert workers["shop-worker"]["env_index"] == "INSTANCE_ID"
    assert workers["cleanup"]["params"] == ["scripts/cleanup.js"]


@needs_node
def test_cjs_interpreter_none_and_port():
    (gateway,) = _workers("ecosystem.config.cjs").values()
    assert gateway["exec"] == "/usr/local/bin/gateway"
    assert gateway["params"] == ["--config", "/etc/gateway.toml", "--verbose"]
    assert gateway["instances"] == 3  # -1 = CPUs - 1
    assert gateway["env"] == ["PORT=9000"]
    assert gateway["user"] == "www-data"


@needs_node
def test_mjs_and_python_bash():
    edge = _workers("ecosystem.config.mjs")
    assert edge["edge-http"]["params"] == ["--enable-source-maps", "http.mjs", "--listen", ":8443"]
    assert edge["edge-cache"]["log_time_format"] == "%H:%M:%S"
    mixed = _workers("mixed.config.js")
    assert mixed["ml-api"]["exec"] == "python3" and mixed["ml-api"]["params"] == [
        "-u",
        "serve.py",
        "run",
        "--workers",
        "2",
    ]
    assert mixed["backup"]["exec"] == "bash" and mixed["backup"]["params"] == ["/opt/scripts/backup.sh"]
    assert mixed["legacy"]["enabled"] is False


@needs_node
def test_js_with_esm_syntax_and_failures(tmp_path):
    (tmp_path / "eco.js").write_text("export default { apps: [{ name: 'x', script: 'x.js' }] };\n")
    assert "    name         x;\n" in convert(str(tmp_path / "eco.js"))
    (tmp_path / "bad.js").write_text("throw new Error('boom in ecosystem');\n")
    with pytest.raises(ConfigError, match="(?s)node could not evaluate .*boom in ecosystem"):
        convert(str(tmp_path / "bad.js"))


def test_missing_node_is_a_clear_error(tmp_path):
    (tmp_path / "eco.js").write_text("module.exports = {apps: []};\n")
    with pytest.raises(ConfigError) as info:
        convert(str(tmp_path / "eco.js"), node=str(tmp_path / "no-node"))
    assert "node" in info.value.message and "is not installed" in info.value.message
    assert "export the apps to JSON" in info.value.hint


def test_bad_json_has_line_and_col(tmp_path):
    (tmp_path / "eco.json").write_text('{\n  "apps": [\n    {"name": "a",}\n  ]\n}\n')
    with pytest.raises(ConfigError) as info:
        convert(str(tmp_path / "eco.json"))
    assert info.value.where == f"{tmp_path}/eco.json:3:18"


def test_app_without_script_is_skipped_with_warn(tmp_path):
    (tmp_path / "eco.json").write_text('{"apps": [{"name": "a"}, {"name": "b", "script": "b.js"}]}')
    text = convert(str(tmp_path / "eco.json"))
    assert "# WARN: apps[0] (a) has no script or command; skipped\n" in text
    assert list(load_text(text).configs()) == ["b"]


@pytest.mark.parametrize(
    "fmt,expected,unknown",
    [
        ("YYYY-MM-DD HH:mm:ss.SSS", "%Y-%m-%d %H:%M:%S.%F", []),
        ("YYYY-MM-DD HH:mm Z", "%Y-%m-%d %H:%M %z", []),
        ("DD/MM/YY hh:mm A", "%d/%m/%y %I:%M %p", []),
        ("ddd, MMM D [at] H:mm", "%a, %b %-d at %-H:%M", []),
        ("100% Do", "100%% Do", ["Do"]),
    ],
)
def test_dayjs_tokens(fmt, expected, unknown):
    assert dayjs_to_strftime(fmt) == (expected, unknown)


@pytest.mark.parametrize("value,expected", [("max", 8), (0, 8), (-1, 7), (-20, 1), (3, 3), ("2", 2)])
def test_instances(value, expected):
    raw, warns = map_app({"script": "a.js", "instances": value}, cpu_count=8)
    assert raw["instances"] == expected
    assert bool(warns) == (str(value) != str(expected))


def test_mapping_details():
    raw, warns = map_app(
        {
            "name": "a",
            "script": "a.js",
            "autorestart": False,
            "exec_mode": "fork_mode",
            "merge_logs": True,
            "time": True,
            "watch": "src",
            "ignore_watch": "node_modules",
            "min_uptime": "1m",
            "port": 80,
            "env": {"A": 1},
            "some_new_field": 1,
        },
        cpu_count=1,
    )
    assert raw == {
        "exec": "node",
        "params": ["a.js"],
        "name": "a",
        "restart": False,
        "restart_err": False,
        "watch": ["src*"],
        "watch_ignore": ["*node_modules*"],
        "err_grace": "1m",
        "env": ["PORT=80", "A=1"],  # in the app's field order
    }
    assert warns == ["WARN: some_new_field 1 has no apm equivalent (not a PM2 field apm knows; check its spelling)"]
