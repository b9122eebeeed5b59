"""Golden tests: every config example of the apm manual parses to its documented meaning."""

from __future__ import annotations

import pytest

from alter.config.ecosystem import load_json
from alter.config.loader import load_file
from tests.unit.config_helpers import configs, fixture, load_ok


def manual(name: str):
    return load_ok(fixture("manual", name))


def test_simple_worker():
    assert configs(manual("simple.conf")) == [
        {
            "name": "myapp",
            "exec": "node",
            "params": ["server.js"],
            "instances": 4,
            "restart": True,
            "watch": ["*.js"],
            "server": ["http://0.0.0.0:3000"],
        }
    ]


def test_includes_drop_in_dir_sorted_and_relative():
    result = manual("includes.conf")
    assert result.daemon == {"gui_port": 6789}
    # drop-ins are spliced at the include, in file-name order; README is not a .conf
    assert configs(result) == [
        {"name": "api", "exec": "node", "params": ["api.js"]},
        {"name": "queue", "exec": "python3", "params": ["queue.py"]},
        {"name": "portal", "exec": "node", "params": ["app.js"]},
    ]
    assert result.files == [
        fixture("manual", "includes.conf"),
        fixture("manual", "apm.conf.d", "10-api.conf"),
        fixture("manual", "apm.conf.d", "20-queue.conf"),
    ]
    assert result.dirs == [fixture("manual", "apm.conf.d")]
    assert result.workers[0].origin == {"file": fixture("manual", "apm.conf.d", "10-api.conf"), "line": 2}
    assert result.workers[0].comments == ["drop-in (test fixture)"]
    assert result.workers[2].origin == {"file": fixture("manual", "includes.conf"), "line": 8}


def test_multiple_values_comma_and_repeat():
    assert configs(manual("multiple_values.conf")) == [
        {
            "name": "node",
            "exec": "node",
            "server": ["http://0.0.0.0:3000", "ws://0.0.0.0:3001"],
            "vanguard": {"ban_path": ["*.php", "*wp-*", "*.env"]},
        }
    ]


def test_on_crash():
    (worker,) = configs(manual("on_crash.conf"))
    assert worker == {
        "name": "myapp",
        "exec": "node",
        "params": ["server.js"],  # from `cmd node server.js;`
        "on_crash": {
            "url": "https://hooks.example.com/apm-crash",
            "method": "POST",
            "debounce": 10000,
            "log_lines": 20,
            "log_source": "err",
            "secret": "mysecret",
        },
    }


def test_daemon_and_top_level_telemetry():
    result = manual("daemon.conf")
    assert result.workers == []
    assert result.daemon == {"gui_port": 6789, "gui_bind": "127.0.0.1", "gui_password": "secret", "auto_reload": True}
    assert result.top == {"telemetry": False}


def test_gui_daemon_block():
    assert manual("gui.conf").daemon == {"gui_port": 6789, "gui_bind": "127.0.0.1"}


def test_server_types_both_forms_mean_two_listeners():
    # The manual shows two equivalent spellings in one block; the repeats are dropped with a warning.
    result = load_file(fixture("manual", "server_types.conf"))
    assert result.errors == []
    assert configs(result) == [
        {"name": "api", "exec": "node", "params": ["api.js"], "server": ["http://0.0.0.0:3000", "ws://0.0.0.0:3001"]}
    ]
    where = fixture("manual", "server_types.conf") + ":11:5"
    assert result.warnings == [
        f"{where}: server http://0.0.0.0:3000 is listed twice; the repeat is ignored",
        f"{where}: server ws://0.0.0.0:3001 is listed twice; the repeat is ignored",
    ]


def test_trust_proxy():
    assert configs(manual("trust_proxy.conf")) == [{"name": "node", "exec": "node", "trust_proxy": True}]


def test_vanguard():
    (worker,) = configs(manual("vanguard.conf"))
    assert worker["vanguard"] == {
        "rate_limit": 100.0,
        "rate_burst": 200,
        "ban_ttl": 300000,
        "ban_path": ["*.php", "*wp-*", "*.env", "/.git*"],
        "ban_response": "Forbidden",
    }
    assert worker["server"] == ["http://0.0.0.0:3000"]


def test_vanguard_methods():
    (worker,) = configs(manual("vanguard_methods.conf"))
    assert worker["vanguard"] == {"allow_method": ["GET", "POST"], "ban_method": ["TRACE", "OPTIONS"]}


def test_vanguard_paths_all_four_modes():
    (worker,) = configs(manual("vanguard_paths.conf"))
    assert worker["vanguard"] == {"ban_path": ["*.php", "*wp-*", "/.git*", "*.env", "/admin/login"]}


def test_vanguard_log_off_and_summary():
    (worker,) = configs(manual("vanguard_log.conf"))
    assert worker["vanguard"] == {"rate_limit": 200.0, "ban_path": ["*.php", "*.env"], "log": False, "log_summary": 60}


def test_vanguard_cdn_include_inside_block():
    result = manual("vanguard_cdn.conf")
    (worker,) = configs(result)
    assert worker["vanguard"] == {
        "allow_ip": ["173.245.48.0/20", "103.21.244.0/22", "104.16.0.0/13", "2400:cb00::/32", "2606:4700::/32"],
        "rate_limit": 500.0,
        "ban_path": ["*.php", "*wp-*", "*.env", "/.git*"],
    }
    assert result.files[1:] == [
        fixture("manual", "ips", "cloudflare-v4.part"),
        fixture("manual", "ips", "cloudflare-v6.part"),
    ]


def test_tls():
    assert configs(manual("tls.conf")) == [
        {
            "name": "api",
            "exec": "node",
            "params": ["api.js"],
            "server": ["https://0.0.0.0:443"],
            "tls": True,
            "tls_cert": "/etc/ssl/certs/myapp.crt",
            "tls_key": "/etc/ssl/private/myapp.key",
            "tls_ca": "/etc/ssl/certs/ca.crt",
        }
    ]


def test_file_watcher():
    assert configs(manual("watcher.conf")) == [
        {
            "name": "api",
            "exec": "node",
            "params": ["server.js"],
            "path": "/home/user/myapp",
            "watch": ["*.js", "*.json"],
            "watch_ignore": ["*node_modules*"],
            "watch_delay": 200,
        }
    ]


def test_watch_patterns():
    assert configs(manual("watch_patterns.conf")) == [
        {"name": "go", "exec": "./server", "watch": ["*.go"], "watch_ignore": ["*_generated.go", "*vendor*"]},
        {
            "name": "js",
            "exec": "node",
            "watch": ["*.js", "*.ts", "*.json"],
            "watch_ignore": ["*node_modules*", "*dist/*"],
        },
        {"name": "py", "exec": "python3", "watch": ["*.py"], "watch_ignore": ["*__pycache__*"]},
    ]


def test_rolling_fragment_lacks_exec():
    # The manual's rolling example is a fragment: as a file on its own it misses `exec`.
    result = load_file(fixture("manual", "rolling.conf"))
    assert result.workers == []
    assert [e.message for e in result.errors] == [
        fixture("manual", "rolling.conf") + ":1:1: worker is missing required option exec"
    ]
    assert result.errors[0].hint.startswith("add `exec <value>;`")


def test_rolling_session():
    assert configs(manual("rolling_session.conf")) == [
        {
            "name": "node",
            "exec": "node",
            "rolling": True,
            "rolling_delay": 500,
            "session_persist": True,
            "session_wait": 2000,
        }
    ]


def test_logger_prefix_and_files():
    assert configs(manual("logger.conf")) == [
        {
            "name": "api",
            "exec": "node",
            "params": ["server.js"],
            "prefix": "ç51-api-serverçR-",
            "log": "/var/log/myapp/out.log",
            "err_log": "/var/log/myapp/err.log",
        }
    ]


def test_time_formats_keep_spaces():
    assert [c["log_time_format"] for c in configs(manual("time_formats.conf"))] == [
        "ç214-%Y-%m-%d %Tç59-.%FçR-",
        "ç59-%TçR-",
        "%Y-%m-%d %T",
    ]


def test_prefix_colors():
    assert [c["prefix"] for c in configs(manual("prefix_colors.conf"))] == [
        "ç82-myappçR-",
        "ç196-myappçR-",
        "ç214-myappçR-",
        "ç15,88-ERRORçR-",
        "ç51,0,1-myappçR-",
    ]


def test_statsd():
    (worker,) = configs(manual("statsd.conf"))
    assert worker["statsd"] == {"host": "localhost:8125", "prefix": "apm.api", "interval": 1}


def test_dashboard():
    (worker,) = configs(manual("dashboard.conf"))
    assert worker["name"] == "my-api"  # from `worker my-api {`
    assert worker["dashboard"] == {
        "name": "My API",
        "cols": 6,
        "rows": 4,
        "module": [
            {"type": "graph", "id": 1, "name": "Requests/sec", "x": 0, "y": 0, "w": 3, "h": 1},
            {
                "type": "gauge",
                "id": 2,
                "name": "CPU %",
                "x": 3,
                "y": 0,
                "w": 1,
                "h": 1,
                "min": 0.0,
                "max": 100.0,
                "unit": "%",
            },
            {"type": "counter", "id": 3, "name": "Total errors", "x": 4, "y": 0, "w": 1, "h": 1},
            {"type": "text", "id": 4, "name": "Last error", "x": 5, "y": 0, "w": 1, "h": 1},
        ],
    }


def test_ipc_listen_quoted():
    assert configs(manual("ipc.conf")) == [
        {
            "name": "iot_ws",
            "exec": "node",
            "params": ["iot_server.js"],
            "server": ["ws://0.0.0.0:9100"],
            "instances": 4,
            "listen": "iot_control",
            "ipc_timeout": 1000,
        },
        {
            "name": "web_panel",
            "exec": "node",
            "params": ["panel.js"],
            "server": ["http://0.0.0.0:8080"],
            "instances": 2,
        },
    ]


def test_shop_cross_language():
    result = manual("shop.conf")
    assert configs(result) == [
        {
            "name": "web",
            "exec": "node",
            "params": ["front.js"],
            "path": "/opt/shop",
            "server": [":8080"],
            "instances": 4,
        },
        {
            "name": "pricing",
            "exec": "python3",
            "params": ["pricing.py"],
            "path": "/opt/shop",
            "listen": "pricing",
            "ipc_timeout": 500,
            "instances": 2,
        },
    ]
    assert result.workers[0].key_comments == {}
    assert result.workers[1].trail_comments == {
        "listen": "become the receiver for `pricing` channel",
        "ipc_timeout": "default reply window in ms",
    }


def test_alter_ecosystem_example():
    result = load_json(fixture("alter_ecosystem.json"))
    assert result.errors == [] and result.warnings == []
    assert configs(result) == [
        {
            "name": "web-server",
            "exec": "node",
            "params": ["server.js"],
            "path": "/opt/app",
            "namespace": "production",
            "instances": 1,
            "env": ["PORT=3000", "NODE_ENV=production"],
            "restart": True,
            "restart_err": True,
        },
        {
            "name": "worker",
            "exec": "python",
            "params": ["worker.py"],
            "path": "/opt/app",
            "instances": 4,
            "restart": True,
            "restart_err": True,
        },
    ]
    assert [w.origin["line"] for w in result.workers] == [3, 13]


@pytest.mark.parametrize(
    "name",
    [
        "simple.conf", "includes.conf", "multiple_values.conf", "on_crash.conf", "daemon.conf", "tls.conf",
        "vanguard.conf", "vanguard_cdn.conf", "dashboard.conf", "ipc.conf", "shop.conf", "statsd.conf",
        "watcher.conf", "logger.conf", "time_formats.conf", "prefix_colors.conf",
    ],
)  # fmt: skip
def test_manual_examples_round_trip_through_printer(name):
    from alter.config.loader import load_text
    from alter.config.printer import format_workers

    result = manual(name)
    text = format_workers(result.workers, daemon=result.daemon, top=result.top)
    again = load_text(text, "printed.conf")
    assert again.errors == [] and again.warnings == []
    assert configs(again) == configs(result)
    assert again.daemon == result.daemon and again.top == result.top
