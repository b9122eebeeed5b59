"""printer: canonical configs -> apm.conf text; write_atomic."""

from __future__ import annotations

import os
import stat

import pytest

from alter.config.loader import WorkerDef, load_text
from alter.config.printer import format_workers, quote, render_text, write_atomic
from alter.errors import ConfigError


def test_format_is_stable_aligned_and_in_table_order():
    text = format_workers(
        [
            {
                "instances": 4,
                "exec": "node",
                "name": "myapp",
                "params": ["server.js"],
                "server": ["http://0.0.0.0:3000", "ws://0.0.0.0:3001"],
                "restart": True,
            }
        ],
        daemon={"gui_port": 6789},
        header="written by apm saveconf",
        top={"telemetry": False},
    )
    assert text == (
        "# written by apm saveconf\n"
        "\n"
        "daemon {\n"
        "    gui_port  6789;\n"
        "}\n"
        "\n"
        "telemetry  false;\n"
        "\n"
        "worker {\n"
        "    name       myapp;\n"
        "    exec       node;\n"
        "    params     server.js;\n"
        "    instances  4;\n"
        "    restart    true;\n"
        "    server     http://0.0.0.0:3000, ws://0.0.0.0:3001;\n"
        "}\n"
    )


def test_nested_blocks_and_units():
    config = {
        "name": "api",
        "exec": "node",
        "memory_limit": 256 * 1024**2,
        "kill_timeout": 5000,
        "vanguard": {"rate_limit": 100.0, "ban_path": ["*.php", "*.env"], "log": False},
        "dashboard": {
            "name": "My API",
            "module": [
                {"type": "led", "id": 1, "x": 0, "y": 0, "w": 1, "h": 1},
                {"type": "text", "id": 2, "x": 1, "y": 0, "w": 1, "h": 1},
            ],
        },
    }
    text = format_workers([config])
    assert text == (
        "worker {\n"
        "    name          api;\n"
        "    exec          node;\n"
        "    kill_timeout  5000;\n"
        "    memory_limit  256M;\n"
        "\n"
        "    vanguard {\n"
        "        ban_path    *.php, *.env;\n"
        "        rate_limit  100;\n"
        "        log         false;\n"
        "    }\n"
        "\n"
        "    dashboard {\n"
        "        name  My API;\n"
        "\n"
        "        module {\n"
        "            type  led;\n"
        "            id    1;\n"
        "            x     0;\n"
        "            y     0;\n"
        "            w     1;\n"
        "            h     1;\n"
        "        }\n"
        "        module {\n"
        "            type  text;\n"
        "            id    2;\n"
        "            x     1;\n"
        "            y     0;\n"
        "            w     1;\n"
        "            h     1;\n"
        "        }\n"
        "    }\n"
        "}\n"
    )
    assert load_text(text).configs() == {"api": config}


@pytest.mark.parametrize(
    "value,expected",
    [
        ("plain", "plain"),
        ("two words", "two words"),
        ("ç214-%Y-%m-%d %Tç59-.%FçR-", "ç214-%Y-%m-%d %Tç59-.%FçR-"),
        ("a  b", '"a  b"'),
        (" lead", '" lead"'),
        ("", '""'),
        ("semi;colon", '"semi;colon"'),
        ("#hash", '"#hash"'),
        ("a //b", '"a //b"'),
        ("a#b", "a#b"),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", "back\\slash"),
        ("tab\there", '"tab\\there"'),
        ("esc\x1b[0m", '"esc\\u001b[0m"'),
        (":", '":"'),
        ("{x}", '"{x}"'),
    ],
)
def test_quotes_only_when_needed(value, expected):
    assert render_text(value) == expected
    assert load_text(f"worker {{ exec n; prefix {expected}; }}").workers[0].config["prefix"] == value


def test_quote_escapes():
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_params_items_quoted_individually():
    config = {"name": "n", "exec": "n", "params": ["a b", "x,", "", "--ids=1,2", "#x"], "env": ["A=1 2", "B=x,y"]}
    text = format_workers([config])
    assert '    params  "a b" "x," "" --ids=1,2 "#x";\n' in text
    assert '    env     "A=1 2" B=x,y;\n' in text
    assert load_text(text).configs() == {"n": config}


def test_comments_are_written_back():
    source = (
        "# about api\n"
        "worker {\n"
        "    exec node;  # runtime\n"
        "    # scale\n"
        "    instances 2;\n"
        "    vanguard {\n"
        "        # bots\n"
        "        ban_path *.php;  # php probes\n"
        "    }\n"
        "}\n"
    )
    result = load_text(source)
    text = format_workers(result.workers)
    assert text == (
        "# about api\n"
        "worker {\n"
        "    name       node;\n"
        "    exec       node;  # runtime\n"
        "    # scale\n"
        "    instances  2;\n"
        "\n"
        "    vanguard {\n"
        "        # bots\n"
        "        ban_path  *.php;  # php probes\n"
        "    }\n"
        "}\n"
    )
    again = load_text(text)
    assert again.workers[0].comments == ["about api"]
    assert again.workers[0].key_comments == result.workers[0].key_comments
    assert again.workers[0].trail_comments == result.workers[0].trail_comments


def test_plain_dicts_and_workerdefs_mix():
    text = format_workers(
        [WorkerDef({"name": "a", "exec": "x"}, {"file": "f", "line": 1}, ["hello"]), {"name": "b", "exec": "y"}]
    )
    assert text.startswith("# hello\nworker {\n")
    assert list(load_text(text).configs()) == ["a", "b"]


def test_write_atomic_replaces_and_keeps_mode(tmp_path):
    path = tmp_path / "apm.conf"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    write_atomic(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["apm.conf"]  # no temp file left


def test_write_atomic_new_file_and_symlink(tmp_path):
    write_atomic(str(tmp_path / "fresh.conf"), "x\n")
    assert stat.S_IMODE(os.stat(tmp_path / "fresh.conf").st_mode) == 0o644
    os.symlink("fresh.conf", tmp_path / "link.conf")
    write_atomic(str(tmp_path / "link.conf"), "via link\n")
    assert os.path.islink(tmp_path / "link.conf")
    assert (tmp_path / "fresh.conf").read_text() == "via link\n"


def test_write_atomic_missing_dir_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot write"):
        write_atomic(str(tmp_path / "nope" / "apm.conf"), "x")
