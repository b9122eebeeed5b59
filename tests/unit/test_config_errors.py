"""A catalogue of broken config files: every problem is reported at file:line:col, with a hint."""

from __future__ import annotations

import os

import pytest

from alter.config.loader import load_file, load_text
from alter.errors import ConfigError

# name -> (config text, [(line, col, message fragment, hint fragment)], warnings fragments)
CASES = {
    "missing_semicolon": (
        "worker {\n    exec node\n    instances 2;\n}\n",
        [(2, 14, "missing `;` after `exec node`", "end every `key value` statement with `;`")],
    ),
    "missing_semicolon_before_brace": (
        "worker { exec node }\n",
        [(1, 19, "missing `;` after `exec node`", "with `;`")],
    ),
    "missing_semicolon_at_eof": (
        "telemetry false",
        [(1, 16, "missing `;` after `telemetry false`", "with `;`")],
    ),
    "unclosed_block": (
        "worker {\n    exec node;\n",
        [(3, 1, "unclosed block: `{` opened at line 1, col 8 has no matching `}`", "add the missing `}`")],
    ),
    "unclosed_nested_block": (
        "worker {\n    exec node;\n    vanguard {\n        rate_limit 5;\n}\n",
        [(6, 1, "unclosed block: `{` opened at line 1, col 8", "add the missing `}`")],
    ),
    "unclosed_quote": (
        'worker {\n    name "api;\n    exec node;\n}\n',
        [(2, 10, 'unclosed " quote', 'closing " on the same line')],
    ),
    "unclosed_single_quote": (
        "worker { exec node; prefix 'x; }\n",
        [(1, 28, "unclosed ' quote", "same line")],
    ),
    "bad_unicode_escape": (
        'worker { exec node; prefix "a\\u12G4"; }\n',
        [(1, 30, "bad \\u escape: \\u needs 4 hex digits", "\\u00e7")],
    ),
    "nul_escape": (
        'worker { exec node; prefix "a\\u0000"; }\n',
        [(1, 30, "\\u0000 is not allowed", "visible character")],
    ),
    "bad_int": (
        "worker {\n    exec node;\n    instances many;\n}\n",
        [(3, 15, "worker option instances: expected a whole number, got 'many'", "instances takes integer")],
    ),
    "int_out_of_range": (
        "worker { exec node; instances 0; }\n",
        [(1, 31, "worker option instances: 0 is below the minimum 1", "instances takes integer")],
    ),
    "bad_bool": (
        "worker { exec node; restart maybe; }\n",
        [(1, 29, "worker option restart: expected true or false, got 'maybe'", "restart takes boolean")],
    ),
    "bad_size": (
        "worker { exec node; memory_limit 12Q; }\n",
        [
            (
                1,
                34,
                "worker option memory_limit: expected a size like 512K, 256M or 1G, got '12Q'",
                "memory_limit takes size",
            )
        ],
    ),
    "bad_duration": (
        "worker { exec node; kill_timeout soon; }\n",
        [
            (
                1,
                34,
                "worker option kill_timeout: expected milliseconds (e.g. 500, or 2s / 5m / 1h), got 'soon'",
                "duration",
            )
        ],
    ),
    "bad_server": (
        "worker {\n    exec node;\n    server http://0.0.0.0:3000, http//x:3000;\n}\n",
        [(3, 33, "worker option server: 'http//x:3000' is not a server address", "server takes list")],
    ),
    "bad_cidr_in_vanguard": (
        "worker {\n    exec node;\n    vanguard {\n        ban_ip 10.0.0.0/8, 10.0.0.0/33;\n    }\n}\n",
        [(4, 28, "vanguard option ban_ip: '10.0.0.0/33' is not an IP address or CIDR range", "ban_ip takes list")],
    ),
    "bad_enum": (
        "worker { exec node; on_crash { url http://h/x; method PUT; } }\n",
        [(1, 55, "on_crash option method: expected one of POST, GET, got 'PUT'", "one of POST, GET")],
    ),
    "bad_url": (
        "worker { exec node; on_crash { url hooks.example.com; } }\n",
        [(1, 36, "on_crash option url: 'hooks.example.com' is not an http:// or https:// URL", "Destination URL")],
    ),
    "bad_env": (
        "worker { exec node; env PORT=1 NOEQUALS; }\n",
        [(1, 32, "worker option env: 'NOEQUALS' is not KEY=value", "env takes list")],
    ),
    "bad_cron": (
        "worker { exec node; schedule every day; }\n",
        [(1, 30, "worker option schedule: 'every day' is not a 5-field cron expression", "Cron expression")],
    ),
    "bad_name": (
        'worker { exec node; name "my app"; }\n',
        [(1, 26, "worker option name: a worker name is 1-128 characters", "Worker name")],
    ),
    "bad_cmd_quote": (
        'worker { cmd "node \'x"; }\n',
        [(1, 14, 'worker option cmd: cannot split "node \'x": No closing quotation', "cmd takes string")],
    ),
    "missing_exec": (
        "# no exec\nworker {\n    name api;\n}\n",
        [(2, 1, "worker is missing required option exec", "add `exec <value>;`")],
    ),
    "missing_value": (
        "worker { exec; }\n",
        [(1, 10, "exec needs a value", "write `exec <value>;`")],
    ),
    "missing_required_in_sub_block": (
        "worker { exec node; statsd { prefix x; } }\n",
        [(1, 21, "statsd is missing required option host", "add `host <value>;`")],
    ),
    "duplicate_worker": (
        "worker api { exec node; }\n\nworker {\n    name api;\n    exec python3;\n}\n",
        [(3, 1, "duplicate worker name 'api' (first defined at {file}:1:1)", "unique `name`")],
    ),
    "duplicate_default_name": (
        "worker { exec node; }\nworker { exec /usr/bin/node; }\n",
        [(2, 1, "duplicate worker name 'node' (first defined at {file}:1:1)", "named after exec")],
    ),
    "duplicate_module_id": (
        "worker { exec n; dashboard {\n module { type led; id 1; x 0; y 0; w 1; h 1; }\n module { type led; id 1; x 1; y 0; w 1; h 1; }\n} }\n",
        [(1, 18, "dashboard module ids must be unique; repeated: [1]", "its own id")],
    ),
    "close_without_open": (
        "worker { exec node; }\n}\n",
        [(2, 1, "`}` without a matching `{`", "remove it")],
    ),
    "open_without_key": (
        "{ exec node; }\n",
        [(1, 1, "block without a name", "write `worker { ... }`")],
    ),
    "value_where_block_expected": (
        "worker { exec node; vanguard on; }\n",
        [(1, 21, "vanguard is a block, not a value", "write `vanguard { ... }`")],
    ),
    "block_where_value_expected": (
        "worker { exec node; name { x; } }\n",
        [(1, 21, "name takes a value, not a block", "write `name <value>;`")],
    ),
    "worker_without_block": (
        "worker node;\n",
        [(1, 1, "worker is a block", "worker <name> { ... }")],
    ),
    "worker_two_names": (
        "worker a b { exec node; }\n",
        [(1, 10, "worker takes at most one name before `{`", "no spaces")],
    ),
    "daemon_with_name": (
        "daemon main { gui_port 1; }\n",
        [(1, 8, "daemon takes no name", "daemon { ... }")],
    ),
    "bad_daemon_value": (
        "daemon {\n    gui_port 70000;\n}\n",
        [(2, 14, "daemon option gui_port: 70000 is above the maximum 65535", "gui_port takes integer")],
    ),
    "bad_utf8": (
        b"worker {\n    exec node;\n    name caf\xe9;\n}\n",
        [(3, 13, "invalid UTF-8 byte 0xe9", "save the file as UTF-8")],
    ),
    "nul_byte": (
        b"worker {\n    exec no\x00de;\n}\n",
        [(2, 12, "NUL byte in config file", "remove it")],
    ),
    "several_errors_all_reported": (
        "worker {\n exec node;\n instances x;\n restart maybe;\n memory_limit 12Q;\n}\nworker {\n name y;\n}\n",
        [
            (3, 12, "instances: expected a whole number", ""),
            (4, 10, "restart: expected true or false", ""),
            (5, 15, "memory_limit: expected a size", ""),
            (7, 1, "missing required option exec", ""),
        ],
    ),
}


def _write(tmp_path, text) -> str:
    path = tmp_path / "broken.conf"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_file(tmp_path, name):
    text, expected = CASES[name]
    path = _write(tmp_path, text)
    result = load_file(path)
    got = [(e.where, e.message, e.hint) for e in result.errors]
    assert len(got) == len(expected), got
    for err, (line, col, fragment, hint) in zip(result.errors, expected):
        assert err.where == f"{path}:{line}:{col}", got
        assert err.message.startswith(f"{err.where}: "), got
        assert fragment.replace("{file}", path) in err.message, got
        assert hint in err.hint, got
    for err in result.errors:
        assert isinstance(err, ConfigError) and err.hint
    with pytest.raises(ConfigError):
        result.raise_if_errors()


def test_bad_optional_field_keeps_the_rest_of_the_worker():
    result = load_text("worker {\n exec node;\n instances x;\n restart true;\n}\n", "t.conf")
    assert [w.config for w in result.workers] == [{"name": "node", "exec": "node", "restart": True}]
    assert len(result.errors) == 1


def test_bad_sub_block_is_dropped_worker_kept():
    result = load_text("worker { exec node; on_crash { method GET; } }", "t.conf")
    assert [w.config for w in result.workers] == [{"name": "node", "exec": "node"}]
    assert [e.message for e in result.errors] == ["t.conf:1:21: on_crash is missing required option url"]


def test_unknown_option_is_a_warning_with_suggestion():
    result = load_text("worker {\n    exec node;\n    restrat true;\n}\n", "t.conf")
    assert result.errors == []
    assert result.warnings == [
        "t.conf:3:5: unknown worker option 'restrat' ignored (did you mean restart or restart_err or restart_cron?)"
    ]
    assert [w.config for w in result.workers] == [{"name": "node", "exec": "node"}]


def test_unknown_option_in_sub_block_and_top_level():
    result = load_text("wroker { }\nworker { exec n; vanguard { rate_limt 5; } }\n", "t.conf")
    assert result.errors == []
    assert result.warnings == [
        "t.conf:1:1: unknown top-level key 'wroker' ignored (did you mean worker?)",
        "t.conf:2:29: unknown vanguard option 'rate_limt' ignored (did you mean rate_limit or rate_burst?)",
    ]


def test_worker_option_at_top_level_warns():
    result = load_text("instances 4;\ngui_port 1;\n", "t.conf")
    assert result.errors == []
    assert result.warnings == [
        "t.conf:1:1: instances outside a worker block is ignored (move it into `worker { ... }`)",
        "t.conf:2:1: gui_port outside a daemon block is ignored (move it into `daemon { ... }`)",
    ]


def test_repeated_single_value_last_wins_with_warning_naming_both_lines():
    result = load_text("worker {\n    exec a;\n    exec b;\n}\n", "t.conf")
    assert result.errors == []
    assert result.workers[0].config["exec"] == "b"
    assert result.warnings == ["t.conf:3:5: exec is set again (first at t.conf:2:5); the last value wins"]


def test_empty_and_comment_only_files_are_valid(tmp_path):
    for text in ("", "\n\n", "# nothing here\n// nor here\n", ";;\n", "\ufeff"):
        result = load_file(_write(tmp_path, text))
        assert (result.workers, result.errors, result.warnings, result.daemon) == ([], [], [], {})


def test_missing_main_file():
    result = load_file("/nonexistent/apm.conf")
    assert [e.message for e in result.errors] == [
        "/nonexistent/apm.conf: cannot read config file /nonexistent/apm.conf: No such file or directory"
    ]


def test_raise_if_errors_lists_every_error():
    result = load_text("worker { exec a; instances x; restart y; }", "t.conf")
    with pytest.raises(ConfigError) as info:
        result.raise_if_errors()
    text = str(info.value)
    assert text.startswith("2 errors in config:")
    assert "t.conf:1:28: worker option instances" in text and "t.conf:1:39: worker option restart" in text
    assert info.value.where == "t.conf:1:28"


def test_duplicate_worker_across_files_names_both(tmp_path):
    (tmp_path / "a.conf").write_text("include b.conf;\nworker api { exec node; }\n")
    (tmp_path / "b.conf").write_text("\nworker api { exec python3; }\n")
    result = load_file(str(tmp_path / "a.conf"))
    assert [w.config["exec"] for w in result.workers] == ["python3"]
    assert [e.message for e in result.errors] == [
        f"{tmp_path}/a.conf:2:1: duplicate worker name 'api' (first defined at {tmp_path}/b.conf:2:1)"
    ]
    assert os.path.basename(result.workers[0].origin["file"]) == "b.conf"
