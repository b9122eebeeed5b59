"""From a worker config to a SpawnSpec: user, clean environment, working directory, executable.

`build_spec()` is used for every spawn AND by `apm env` (`child_env()`), so
what the command shows is exactly what children get.

Environment, in order (later wins):
  1. a minimal base from the daemon's environment: PATH, LANG, LANGUAGE, LC_*,
     TZ (plus APM_HOME / APM_SOCKET so `apm` run by a child reaches its own
     daemon) -- never the daemon's whole environment;
  2. the target user's HOME, USER, LOGNAME, SHELL (and, for a user other than
     the daemon's, a standard PATH for that user);
  3. `env_file` (KEY=VALUE lines, read by the daemon before dropping privileges);
  4. `env` (KEY=value items);
  5. apm's own: APM=1, APM_NAME, APM_INDEX (0-based), the `env_index` variable
     (0-based), APM_INSTANCE=<daemon-id>:<worker>#<N> (1-based, the marker
     used to find a worker's descendants; a replacement process started next
     to the running one in an overlapping rolling restart alternates with
     `#<N>.1`), and PORT / APM_PORT when the worker is behind the proxy.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Tuple

from alter.errors import ApmError, StartFailed
from alter.supervise.ops import ProcessOps, SpawnSpec, UserInfo

ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_PATH = "/usr/local/bin:/usr/bin:/bin"
BASE_KEYS = ("PATH", "LANG", "LANGUAGE", "TZ", "APM_HOME", "APM_SOCKET")
_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def daemon_id_for(socket_name: str) -> str:
    """The daemon id used in cgroup paths and markers, from the control socket name (`@apm.0.ab12` -> `apm.0.ab12`)."""
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", socket_name.lstrip("@\0")) or "apm"


def marker(daemon_id: str, worker: str, index: int, slot: int = 0) -> str:
    """APM_INSTANCE value: `<daemon-id>:<worker>#<N>` with N 1-based like every displayed name.

    `slot` 1 is the other process of an instance while one replaces the other (`#<N>.1`)."""
    return f"{daemon_id}:{worker}#{index + 1}" + (f".{slot}" if slot else "")


def expand_vars(text: str, env: Dict[str, str]) -> str:
    """$VAR and ${VAR} from `env` (unknown names are left as written); a leading ~ is HOME."""
    out = _VAR_RE.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)
    if out == "~" or out.startswith("~/"):
        out = env.get("HOME", "~") + out[1:]
    return out


def parse_env_file(text: str, where: str) -> Tuple[Dict[str, str], List[str]]:
    """KEY=VALUE lines; `#` comments, blank lines, `export KEY=...` and quoted values allowed.

    Bad lines are skipped with a warning naming file:line (never fatal).
    """
    env: Dict[str, str] = {}
    warnings: List[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.match(key):
            warnings.append(f"{where}:{number}: ignored {raw.strip()!r} (expected KEY=VALUE)")
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        env[key] = value
    return env, warnings


def target_user(config: Dict[str, Any], ops: ProcessOps) -> UserInfo:
    """The user children run as: `user` (root daemon only) or the daemon's own user."""
    me = ops.current_user()
    wanted = config.get("user")
    if not wanted or wanted in (me.name, str(me.uid)):
        return me
    if not ops.is_root:
        raise StartFailed(
            f"worker {config.get('name')!r}: user {wanted!r} needs a root daemon (this daemon runs as {me.name})",
            hint="remove `user`, or run the worker from the root daemon (sudo apm ...)",
        )
    try:
        return ops.lookup_user(str(wanted))
    except ApmError as exc:
        raise StartFailed(f"worker {config.get('name')!r}: {exc.message}", hint=exc.hint) from None


def base_env(daemon_env: Dict[str, str], user: UserInfo, me: UserInfo) -> Dict[str, str]:
    env = {k: v for k, v in daemon_env.items() if k in BASE_KEYS or k.startswith("LC_")}
    if user.uid != me.uid:
        env["PATH"] = ROOT_PATH if user.uid == 0 else USER_PATH
    else:
        env.setdefault("PATH", ROOT_PATH if user.uid == 0 else USER_PATH)
    env["HOME"] = user.home
    env["USER"] = user.name
    env["LOGNAME"] = user.name
    env["SHELL"] = user.shell or "/bin/sh"
    return env


def child_env(
    name: str,
    index: int,
    config: Dict[str, Any],
    ops: ProcessOps,
    daemon_id: str,
    user: Optional[UserInfo] = None,
    slot: int = 0,
    port: Optional[int] = None,
) -> Tuple[Dict[str, str], List[str]]:
    """The exact environment instance `index` (0-based) gets, and warnings about it."""
    user = user or target_user(config, ops)
    env = base_env(ops.daemon_env, user, ops.current_user())
    warnings: List[str] = []
    env_file = config.get("env_file")
    if env_file:
        path = expand_vars(str(env_file), env)
        if not os.path.isabs(path):
            path = os.path.join(working_dir(config, env), path)
        try:
            values, warnings = parse_env_file(ops.read_file(path), path)
        except OSError as exc:
            raise StartFailed(
                f"worker {name!r}: cannot read env_file {path}: {exc.strerror or exc}",
                hint="fix the path in `env_file` (relative paths are inside `path`) or create the file",
            ) from None
        env.update(values)
    for item in config.get("env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    env["APM"] = "1"
    env["APM_NAME"] = name
    env["APM_INDEX"] = str(index)
    if config.get("env_index"):
        env[str(config["env_index"])] = str(index)
    env["APM_INSTANCE"] = marker(daemon_id, name, index, slot)
    if port is not None:
        env["PORT"] = env["APM_PORT"] = str(port)
    return env, warnings


def working_dir(config: Dict[str, Any], env: Dict[str, str]) -> str:
    raw = config.get("path") or env.get("HOME") or "/"
    return os.path.normpath(expand_vars(str(raw), env))


def build_spec(
    name: str,
    index: int,
    config: Dict[str, Any],
    ops: ProcessOps,
    daemon_id: str,
    slot: int = 0,
    port: Optional[int] = None,
) -> Tuple[SpawnSpec, List[str]]:
    """Validate and assemble one spawn (config is the effective config).  StartFailed names the problem.

    `slot` picks the marker and cgroup of the instance's process (see marker()); `port` is its PORT."""
    user = target_user(config, ops)
    env, warnings = child_env(name, index, config, ops, daemon_id, user, slot, port)
    cwd = working_dir(config, env)
    if not ops.is_dir(cwd):
        shown = config.get("path") or cwd
        raise StartFailed(
            f"worker {name!r}: path {shown!r} is not a directory" + (f" (expanded: {cwd})" if shown != cwd else ""),
            hint="fix `path` (--path) or create the directory",
        )
    problem = ops.enter_problem(cwd, user) if user.uid != ops.current_user().uid else None
    if problem:
        raise StartFailed(
            f"worker {name!r}: user {user.name!r} cannot enter path {cwd!r} ({problem})",
            hint=f"give {user.name} access (chmod o+x / chgrp), or choose a `path` that user can reach",
        )
    exec_ = str(config.get("exec") or "")
    if not exec_:
        raise StartFailed(f"worker {name!r} has no exec", hint="set `exec` to the program to run")
    executable = ops.resolve_exec(expand_vars(exec_, env), user, cwd, env.get("PATH", ""))
    memory_limit = config.get("memory_limit")
    if memory_limit and not ops.is_root:
        warnings.append("memory_limit needs a root daemon: not enforced")
        memory_limit = None
    spec = SpawnSpec(
        worker=name,
        index=index,
        argv=[exec_, *[str(p) for p in config.get("params") or []]],
        cwd=cwd,
        env=env,
        user=None if user.uid == ops.current_user().uid else user,
        marker=env["APM_INSTANCE"],
        memory_limit=int(memory_limit) if memory_limit else None,
        group=f"{name}.{index}" + (f".{slot}" if slot else ""),
        executable=executable,
    )
    return spec, warnings
