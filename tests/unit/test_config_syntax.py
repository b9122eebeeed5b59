"""The apm.conf language: words, quotes, comments, lists, repeats, includes."""

from __future__ import annotations

import pytest

from alter.config.lexer import tokenize
from alter.config.loader import load_file, load_text


def one(text: str) -> dict:
    result = load_text(text, "t.conf")
    assert result.errors == [], [e.message for e in result.errors]
    (worker,) = result.workers
    return worker.config


def test_comments_hash_and_slashes_but_not_inside_words():
    config = one(
        "// leading comment\n"
        "worker { # after brace\n"
        "    exec node; // trailing\n"
        "    health_check http://localhost:80/#top;  # the URL keeps // and #\n"
        "    prefix api#1;\n"
        "}\n"
    )
    assert config["health_check"] == "http://localhost:80/#top"
    assert config["prefix"] == "api#1"


def test_quotes_are_stripped_and_glued_like_a_shell():
    config = one(
        "worker {\n"
        "    exec 'node';\n"
        '    params --title="My App" `a b` "x\\"y\\\\z\\n" \'no\\escape\';\n'
        '    prefix "\\u00e7" ;\n'
        "}\n"
    )
    assert config["exec"] == "node"
    assert config["params"] == ["--title=My App", "a b", 'x"y\\z\n', "no\\escape"]
    assert config["prefix"] == "ç"


def test_unknown_escape_keeps_backslash():
    assert one('worker { exec node; prefix "C:\\dir"; }')["prefix"] == "C:\\dir"


@pytest.mark.parametrize("line", ["name: api;", "name : api;", "name:api;", "name:   api;"])
def test_optional_colon_after_key(line):
    assert one(f"worker {{ exec node; {line} }}")["name"] == "api"


def test_colon_values_survive():
    config = one("worker { exec node; server: :8080, http://0.0.0.0:3000; statsd { host: localhost:8125; } }")
    assert config["server"] == [":8080", "http://0.0.0.0:3000"]
    assert config["statsd"] == {"host": "localhost:8125"}


def test_several_statements_per_line_and_crlf_tabs_bom():
    config = one("\ufeffworker {\r\n\texec node;\tinstances 2; restart yes;\r\n}\r\n")
    assert config == {"name": "node", "exec": "node", "instances": 2, "restart": True}


def test_single_valued_words_join_with_one_space():
    config = one(
        "worker {\n"
        "    exec   node;\n"
        "    schedule   0 2  * * *;\n"
        "    log_time_format ç214-%Y-%m-%d %Tç59-.%FçR-;\n"
        "    restart_cron 0,30 * * * *;\n"
        "    vanguard { ban_response Access   denied, go away; }\n"
        "}\n"
    )
    assert config["schedule"] == "0 2 * * *"
    assert config["log_time_format"] == "ç214-%Y-%m-%d %Tç59-.%FçR-"
    assert config["restart_cron"] == "0,30 * * * *"  # commas are literal in single values
    assert config["vanguard"]["ban_response"] == "Access denied, go away"


def test_list_words_and_commas():
    config = one(
        "worker {\n"
        "    exec node;\n"
        "    params server.js --port 3000;\n"
        "    params --ids=1,2 a, b;\n"
        "    env A=1, B=x,y;\n"
        "    env C=3;\n"
        "    watch *.js,*.json *.ts;\n"
        "    restart_on_exit_codes 1, 2,3;\n"
        "}\n"
    )
    assert config["params"] == ["server.js", "--port", "3000", "--ids=1,2", "a", "b"]
    assert config["env"] == ["A=1", "B=x,y", "C=3"]
    assert config["watch"] == ["*.js", "*.json", "*.ts"]
    assert config["restart_on_exit_codes"] == [1, 2, 3]


def test_list_continues_on_next_line_only_after_trailing_comma():
    config = one("worker {\n    exec node;\n    watch *.js,\n          *.json;\n}\n")
    assert config["watch"] == ["*.js", "*.json"]


def test_cmd_splits_like_a_shell_and_keeps_quoted_words():
    assert one('worker { cmd node "my app.js" --x; }') == {
        "name": "node",
        "exec": "node",
        "params": ["my app.js", "--x"],
    }
    assert one("worker { cmd \"node 'a b.js'\"; }")["params"] == ["a b.js"]
    assert one("worker { cmd /usr/bin/redis-server; }") == {"name": "redis-server", "exec": "/usr/bin/redis-server"}


def test_cmd_with_exec_warns():
    result = load_text("worker { exec python3; cmd node x.js; }", "t.conf")
    assert result.workers[0].config["exec"] == "python3"
    assert result.warnings == ["t.conf:1:1: cmd is ignored where exec/params are also set (they win)"]


def test_units():
    config = one(
        "worker { exec n; kill_timeout 2s; err_delay 1m; restart_delay 750; depends_timeout 1h;"
        " memory_limit 256M; log_max_size 10M; }"
    )
    assert (config["kill_timeout"], config["err_delay"], config["restart_delay"], config["depends_timeout"]) == (
        2000,
        60000,
        750,
        3600000,
    )
    assert (config["memory_limit"], config["log_max_size"]) == (256 * 1024**2, 10 * 1024**2)
    assert one("worker { exec n; memory_limit 1G; }")["memory_limit"] == 1024**3


@pytest.mark.parametrize(
    "word,value",
    [
        ("true", True),
        ("yes", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("off", False),
        ("0", False),
    ],
)
def test_booleans(word, value):
    assert one(f"worker {{ exec n; restart {word}; }}")["restart"] is value


def test_option_names_are_normalised():
    assert one("worker { exec n; restart-err true; Kill_Timeout 5; }") == {
        "name": "n",
        "exec": "n",
        "restart_err": True,
        "kill_timeout": 5,
    }


def test_named_block_and_name_inside_warns_last_wins():
    result = load_text("worker a {\n exec n;\n name b;\n}", "t.conf")
    assert result.workers[0].config["name"] == "b"
    assert result.warnings == ["t.conf:3:2: name is set again (first at t.conf:1:8); the last value wins"]


def test_repeated_sub_blocks_merge_and_modules_repeat():
    config = one(
        "worker { exec n;\n"
        " vanguard { ban_path *.php; rate_limit 5; }\n"
        " vanguard { ban_path *.env; }\n"
        " dashboard { module { type led; id 1; x 0; y 0; w 1; h 1; } module { type text; id 2; x 1; y 0; w 1; h 1; } }\n"
        "}"
    )
    assert config["vanguard"] == {"ban_path": ["*.php", "*.env"], "rate_limit": 5.0}
    assert [m["id"] for m in config["dashboard"]["module"]] == [1, 2]


def test_multiple_daemon_blocks_merge():
    result = load_text("daemon { gui_port 1; }\ndaemon { auto_reload true; }\n", "t.conf")
    assert result.daemon == {"gui_port": 1, "auto_reload": True}


def test_comments_kept_for_saveconf():
    result = load_text(
        "# about api\n"
        "# second line\n"
        "worker {\n"
        "    exec node;  # the runtime\n"
        "    # how many\n"
        "    instances 2;\n"
        "    vanguard {\n"
        "        # block bots\n"
        "        ban_path *.php;\n"
        "    }\n"
        "    x 0; y 0;  # not a trailing comment of x\n"
        "}\n",
        "t.conf",
    )
    worker = result.workers[0]
    assert worker.comments == ["about api", "second line"]
    assert worker.key_comments == {"instances": ["how many"], "vanguard.ban_path": ["block bots"]}
    assert worker.trail_comments == {"exec": "the runtime"}


def test_lexer_positions_are_characters_not_bytes():
    tokens = tokenize("çç abc;").tokens
    assert [(t.text, t.line, t.col) for t in tokens[:3]] == [("çç", 1, 1), ("abc", 1, 4), (";", 1, 7)]


# --------------------------------------------------------------------------- includes


def test_include_glob_sorted_relative_and_nested(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("worker b { exec n; }\n")
    (tmp_path / "conf.d" / "a.conf").write_text("include ../more/*.conf;\nworker a { exec n; }\n")
    (tmp_path / "conf.d" / "c.txt").write_text("not included")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "m.conf").write_text("worker m { exec n; }\n")
    (tmp_path / "main.conf").write_text("worker first { exec n; }\ninclude conf.d/*.conf;\nworker last { exec n; }\n")
    result = load_file(str(tmp_path / "main.conf"))
    assert result.errors == [] and result.warnings == []
    assert [w.name for w in result.workers] == ["first", "m", "a", "b", "last"]
    assert result.files == [str(tmp_path / p) for p in ("main.conf", "conf.d/a.conf", "more/m.conf", "conf.d/b.conf")]
    assert result.dirs == [str(tmp_path / "conf.d"), str(tmp_path / "more")]
    assert result.workers[1].origin == {"file": str(tmp_path / "more" / "m.conf"), "line": 1}


def test_include_glob_matching_nothing_is_fine(tmp_path):
    (tmp_path / "empty.d").mkdir()
    (tmp_path / "main.conf").write_text("include empty.d/*.conf;\ninclude nowhere/*.conf;\n")
    result = load_file(str(tmp_path / "main.conf"))
    assert (result.errors, result.warnings, result.workers) == ([], [], [])


def test_include_missing_file_is_an_error(tmp_path):
    (tmp_path / "main.conf").write_text("\n  include missing.conf;\n")
    result = load_file(str(tmp_path / "main.conf"))
    assert [e.message for e in result.errors] == [
        f"{tmp_path}/main.conf:2:3: include missing.conf: no such file ({tmp_path}/missing.conf)"
    ]
    assert "relative includes start at the including file's directory" in result.errors[0].hint


def test_include_directory_is_an_error(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "main.conf").write_text("include d;\n")
    result = load_file(str(tmp_path / "main.conf"))
    assert [e.message for e in result.errors] == [f"{tmp_path}/main.conf:1:1: include d: is a directory"]
    assert result.errors[0].hint == "include the files in it: `include d/*.conf;`"


def test_include_without_path(tmp_path):
    result = load_text("include;\n", "t.conf")
    assert [e.message for e in result.errors] == ["t.conf:1:1: include needs a file path or glob"]


def test_include_cycle_a_b_a(tmp_path):
    (tmp_path / "a.conf").write_text("worker a { exec n; }\ninclude b.conf;\n")
    (tmp_path / "b.conf").write_text("\n\ninclude a.conf;\nworker b { exec n; }\n")
    result = load_file(str(tmp_path / "a.conf"))
    assert [e.message for e in result.errors] == [
        f"{tmp_path}/b.conf:3:1: circular include: a.conf -> b.conf -> a.conf"
    ]
    assert [w.name for w in result.workers] == ["a", "b"]


def test_self_include_via_glob(tmp_path):
    (tmp_path / "apm.conf").write_text("include *.conf;\nworker a { exec n; }\n")
    (tmp_path / "other.conf").write_text("worker o { exec n; }\n")
    result = load_file(str(tmp_path / "apm.conf"))
    assert [e.message for e in result.errors] == [f"{tmp_path}/apm.conf:1:1: circular include: apm.conf -> apm.conf"]
    assert [w.name for w in result.workers] == ["o", "a"]


def test_errors_in_included_file_name_that_file(tmp_path):
    (tmp_path / "main.conf").write_text("include sub.conf;\n")
    (tmp_path / "sub.conf").write_text("worker {\n  exec n;\n  instances x;\n}\n")
    result = load_file(str(tmp_path / "main.conf"))
    assert [e.where for e in result.errors] == [f"{tmp_path}/sub.conf:3:13"]


def test_load_text_include_relative_to_filename(tmp_path):
    (tmp_path / "x.conf").write_text("worker x { exec n; }\n")
    result = load_text("include x.conf;", str(tmp_path / "virtual.conf"))
    assert [w.name for w in result.workers] == ["x"]
    assert result.files == [str(tmp_path / "x.conf")]
