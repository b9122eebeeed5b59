"""PM2 ecosystem files -> apm.conf `worker { }` blocks (`apm convert`).

`map_app()` turns one PM2/alter app object into raw apm option values plus
WARN notes; both `convert()` and `ecosystem.load_json()` use it.  Mapping
(PM2 field -> apm option):

    name -> name (PM2's default: the script's file name without extension)
    script + interpreter + interpreter_args/node_args + args -> exec + params
        (no interpreter: .js/.cjs/.mjs run with node, .py python3, .sh bash...,
        anything else runs directly; interpreter "none" runs the script itself)
    command (alter) -> exec;  cwd -> path;  namespace, kill_timeout, watch_delay
    instances N -> instances ("max"/0 = CPU count, -N = CPU count - N; WARN)
    env {K: V} -> env K=V;  port -> env PORT=...;  instance_var -> env_index
        (several instances and no instance_var: env_index NODE_APP_INSTANCE)
    autorestart (default true) -> restart + restart_err
    max_restarts -> max_err_restarts;  min_uptime -> err_grace
    restart_delay -> restart_delay + err_delay
    exp_backoff_restart_delay -> err_delay (WARN: apm backs off by default)
    watch true -> watch *;  watch [paths] / ignore_watch -> watch / watch_ignore
    out_file -> log;  error_file -> err_log;  log_file -> log when neither is set
    log_date_format (day.js tokens) -> log_time_format (strftime, SSS -> %F)
    max_memory_restart -> memory_limit (WARN: cgroup OOM kill, not a graceful restart)
    cron_restart -> restart_cron;  uid/user -> user;  autostart false -> enabled false
    merge_logs/combine_logs, time: already how apm logs (no output)

Every other field becomes `# WARN: <field> <value> has no apm equivalent
(<what to do instead>)` above its worker.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from typing import Any, Callable, Dict, List, Optional, Tuple

from alter.config import options
from alter.config.loader import WorkerDef
from alter.config.printer import format_workers
from alter.errors import ConfigError

EXT_INTERPRETERS = {
    ".js": "node", ".cjs": "node", ".mjs": "node", ".py": "python3", ".sh": "bash", ".rb": "ruby",
    ".php": "php", ".pl": "perl", ".coffee": "coffee", ".ls": "lsc", ".ts": "bun", ".tsx": "bun",
}  # fmt: skip
_EXEC_FIELDS = (
    "script",
    "exec",
    "command",
    "interpreter",
    "exec_interpreter",
    "interpreter_args",
    "interpreterArgs",
    "node_args",
    "args",
)
_ALIASES = {
    "out": "out_file", "output": "out_file", "out_log": "out_file", "error": "error_file", "err": "error_file",
    "err_file": "error_file", "err_log": "error_file", "log": "log_file", "combine_logs": "merge_logs",
    "cron": "cron_restart", "pid": "pid_file", "uid": "user", "exec_interpreter": "interpreter",
    "interpreterArgs": "interpreter_args", "node_args": "interpreter_args", "append_env_name": "append_env_to_name",
}  # fmt: skip
_SILENT = {"merge_logs", "time", "name_prefix", "username", "windowsHide", "write"}
_NO_EQUIVALENT = {
    "listen_timeout": "apm counts a worker as started when it spawns; use health_check for readiness",
    "wait_ready": "set `health_check on;` and have the app call APM_HEALTH_URL when ready",
    "shutdown_with_message": "apm stops workers with SIGTERM, then SIGKILL after kill_timeout; handle SIGTERM",
    "kill_retry_time": "apm sends SIGKILL once kill_timeout has passed",
    "stop_exit_codes": "apm's restart_on_exit_codes lists the exit codes that DO restart",
    "treekill": "apm stops a worker with SIGTERM, then SIGKILL after kill_timeout",
    "filter_env": "set the variables children need with env or env_file",
    "append_env_to_name": "set name yourself",
    "increment_var": "use env_index and add the offset in the app",
    "exec_mode": "apm runs N separate processes; put `server` in front to share one port",
    "log_type": "apm writes plain text lines",
    "disable_logs": "apm always keeps logs; set `log /dev/null;` to discard them",
    "watch_options": "apm's watcher takes watch, watch_ignore and watch_delay",
    "pid_file": "apm tracks pids itself; see apm info",
    "gid": "apm uses the primary group of user",
    "vizion": "apm keeps no version metadata",
    "post_update": "run these commands from your deploy script",
    "force": "apm refuses duplicate worker names instead",
    "source_map_support": "pass --enable-source-maps in params",
    "disable_source_map_support": "source maps are off unless you pass --enable-source-maps",
    "pmx": "apm has no PM2 metrics agent", "automation": "apm has no PM2 metrics agent",
    "trace": "apm has no transaction tracing", "disable_trace": "apm has no transaction tracing",
    "v8": "apm has no PM2 metrics agent", "event_loop_inspector": "apm has no PM2 metrics agent",
    "deep_monitoring": "apm has no PM2 metrics agent", "io": "apm has no PM2 metrics agent",
    "install_url": "install the app yourself", "execute_command": "set exec and params",
}  # fmt: skip
_DAYJS_UNSUPPORTED = ("SSSS", "Do", "kk", "k", "ww", "w", "WW", "W", "Q", "x", "gggg", "GGGG", "E", "e", "z")
_DAYJS = [
    ("YYYY", "%Y"), ("YY", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("M", "%-m"), ("DD", "%d"),
    ("D", "%-d"), ("dddd", "%A"), ("ddd", "%a"), ("HH", "%H"), ("H", "%-H"), ("hh", "%I"), ("h", "%-I"),
    ("mm", "%M"), ("m", "%-M"), ("ss", "%S"), ("s", "%-S"), ("SSS", "%F"), ("SS", "%F"), ("S", "%F"),
    ("A", "%p"), ("a", "%p"), ("ZZ", "%z"), ("Z", "%z"), ("X", "%s"),
]  # fmt: skip


def show(value: Any) -> str:
    """A PM2 value as it appears in a WARN comment (one line, at most ~70 chars)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= 70 else text[:67] + "..."


def no_equivalent(field: str, value: Any, instead: str) -> str:
    return f"WARN: {field} {show(value)} has no apm equivalent ({instead})"


def dayjs_to_strftime(fmt: str) -> Tuple[str, List[str]]:
    """`YYYY-MM-DD HH:mm:ss.SSS` -> `%Y-%m-%d %H:%M:%S.%F`; returns (format, unknown tokens)."""
    out: List[str] = []
    unknown: List[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "[":
            end = fmt.find("]", i)
            if end != -1:
                out.append(fmt[i + 1 : end].replace("%", "%%"))
                i = end + 1
                continue
        odd = next((t for t in _DAYJS_UNSUPPORTED if fmt.startswith(t, i)), None)
        if odd is not None:
            out.append(odd)
            if odd not in unknown:
                unknown.append(odd)
            i += len(odd)
            continue
        for token, repl in _DAYJS:
            if fmt.startswith(token, i):
                out.append(repl)
                i += len(token)
                break
        else:
            ch = fmt[i]
            if ch.isalpha() and ch not in unknown:
                unknown.append(ch)
            out.append("%%" if ch == "%" else ch)
            i += 1
    return "".join(out), unknown


def _words(value: Any) -> List[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if value is None or value == "":
        return []
    return shlex.split(str(value))


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _watch_patterns(value: Any, ignore: bool) -> List[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        text = str(item).strip().rstrip("/")
        if not text:
            continue
        if "*" in text:
            out.append(text)
        else:
            out.append(f"*{text}*" if ignore else f"{text}*")
    return out


def _cpu_count(value: Any, cpus: int) -> Optional[int]:
    if isinstance(value, str) and value.strip().lower() == "max":
        return cpus
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return cpus if n == 0 else max(1, cpus + n) if n < 0 else n


def _exec_params(app: Dict[str, Any], warns: List[str]) -> Tuple[Optional[str], List[str]]:
    args = _words(app.get("args"))
    if app.get("command"):
        return str(app["command"]), args
    script = app.get("script", app.get("exec"))
    if not script:
        return None, []
    script = str(script)
    interp = app.get("interpreter", app.get("exec_interpreter"))
    iargs = _words(next((app[k] for k in ("interpreter_args", "interpreterArgs", "node_args") if k in app), None))
    if interp == "none" or (not interp and os.path.splitext(script)[1] not in EXT_INTERPRETERS):
        if iargs:
            warns.append(no_equivalent("interpreter_args", iargs, "there is no interpreter here; put them in args"))
        return script, args
    return str(interp or EXT_INTERPRETERS[os.path.splitext(script)[1]]), iargs + [script] + args


def map_app(app: Dict[str, Any], cpu_count: Optional[int] = None) -> Tuple[Dict[str, Any], List[str]]:
    """One PM2/alter app object -> (raw apm option values, WARN notes in field order)."""
    cpus = cpu_count or os.cpu_count() or 1
    raw: Dict[str, Any] = {}
    warns: List[str] = []
    env: List[str] = []
    logs: Dict[str, Any] = {}
    exec_, params = _exec_params(app, warns)
    if exec_ is not None:
        raw["exec"] = exec_
        if params:
            raw["params"] = params
    for key, value in app.items():
        field = _ALIASES.get(key, key)
        if key in _EXEC_FIELDS or field in _SILENT or (field == "exec_mode" and str(value).startswith("fork")):
            continue
        handler = _HANDLERS.get(field)
        if handler is not None:
            handler(value, raw, warns, cpus)
        elif field == "env":
            if isinstance(value, dict):
                env.extend(f"{k}={_env_text(v)}" for k, v in value.items())
            else:
                warns.append(no_equivalent("env", value, "env takes KEY=value pairs; write them as an object"))
        elif field == "port":
            env.append(f"PORT={_env_text(value)}")
        elif field.startswith("env_"):
            warns.append(
                no_equivalent(
                    key, value, "apm has no --env switch: merge these into env, or write one worker per environment"
                )
            )
        elif field in ("out_file", "error_file", "log_file"):
            logs[field] = value
        elif field in _NO_EQUIVALENT:
            warns.append(no_equivalent(key, value, _NO_EQUIVALENT[field]))
        else:
            warns.append(no_equivalent(key, value, "not a PM2 field apm knows; check its spelling"))
    if env:
        raw["env"] = env
    _map_logs(logs, raw, warns)
    autorestart = app.get("autorestart", True)
    if autorestart is not False:
        raw.setdefault("restart", True)
        raw.setdefault("restart_err", True)
    if "name" not in raw and app.get("script") and not app.get("command"):
        raw["name"] = os.path.splitext(os.path.basename(str(app["script"])))[0]
    if _int(raw.get("instances")) > 1 and "env_index" not in raw and not app.get("command"):
        raw["env_index"] = "NODE_APP_INSTANCE"
    return raw, warns


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _map_logs(logs: Dict[str, Any], raw: Dict[str, Any], warns: List[str]) -> None:
    if "out_file" in logs:
        raw["log"] = logs["out_file"]
    if "error_file" in logs:
        raw["err_log"] = logs["error_file"]
    combined = logs.get("log_file")
    if combined is None or combined is False:
        return
    if isinstance(combined, str) and "out_file" not in logs and "error_file" not in logs:
        raw["log"] = combined
    else:
        warns.append(no_equivalent("log_file", combined, "apm writes stdout to log, stderr to err_log; no third file"))


def _set(option: str) -> Callable[[Any, Dict[str, Any], List[str], int], None]:
    def handler(value: Any, raw: Dict[str, Any], warns: List[str], cpus: int) -> None:
        raw[option] = value

    return handler


def _instances(value: Any, raw: Dict[str, Any], warns: List[str], cpus: int) -> None:
    n = _cpu_count(value, cpus)
    if n is None:
        raw["instances"] = value  # coerce reports it
    elif str(value).strip() != str(n):
        raw["instances"] = n
        warns.append(
            f"WARN: instances {show(value)} means one per CPU in PM2; this machine has {cpus} CPUs, so instances is {n}: adjust for the target host"
        )
    else:
        raw["instances"] = n


def _restart_delay(value: Any, raw: Dict[str, Any], warns: List[str], cpus: int) -> None:
    raw["restart_delay"] = value
    raw.setdefault("err_delay", value)


_BACKOFF = "apm backs off exponentially after error exits by default; err_delay, its first delay, is set from this"
_MEMORY = "apm's cgroup limit OOM-kills the child (then the restart policy applies) instead of a graceful restart"


def _backoff(value: Any, raw: Dict[str, Any], warns: List[str], cpus: int) -> None:
    raw["err_delay"] = value
    warns.append(no_equivalent("exp_backoff_restart_delay", value, _BACKOFF))


def _memory(value: Any, raw: Dict[str, Any], warns: List[str], cpus: int) -> None:
    raw["memory_limit"] = value
    warns.append(f"WARN: max_memory_restart {show(value)} became memory_limit: {_MEMORY}")


def _date_format(value: Any, raw: Dict[str, Any], warns: List[str], cpus: int) -> None:
    fmt, unknown = dayjs_to_strftime(str(value))
    raw["log_time_format"] = fmt
    if unknown:
        warns.append(
            f"WARN: log_date_format {show(value)}: tokens {', '.join(unknown)} have no strftime equivalent and were kept as literal text"
        )


def _watch(value: Any, raw: Dict[str, Any], warns: List[str], cpus: int) -> None:
    if value is True:
        raw["watch"] = ["*"]
    elif value not in (False, None, "", []):
        raw["watch"] = _watch_patterns(value, ignore=False)


def _ignore_watch(value: Any, raw: Dict[str, Any], warns: List[str], cpus: int) -> None:
    raw["watch_ignore"] = _watch_patterns(value, ignore=True)


def _name(value: Any, raw: Dict[str, Any], warns: List[str], cpus: int) -> None:
    name = str(value)
    clean = re.sub(r"[^A-Za-z0-9_.@-]+", "-", name).strip("-_.@")[:128] or "app"
    if clean != name:
        warns.append(f"WARN: name {show(value)} is not a valid apm worker name; renamed to {clean}")
    raw["name"] = clean


_HANDLERS: Dict[str, Callable[[Any, Dict[str, Any], List[str], int], None]] = {
    "name": _name, "cwd": _set("path"), "namespace": _set("namespace"), "kill_timeout": _set("kill_timeout"),
    "watch_delay": _set("watch_delay"), "max_restarts": _set("max_err_restarts"), "min_uptime": _set("err_grace"),
    "cron_restart": _set("restart_cron"), "instance_var": _set("env_index"), "instances": _instances,
    "restart_delay": _restart_delay, "exp_backoff_restart_delay": _backoff, "max_memory_restart": _memory,
    "log_date_format": _date_format, "watch": _watch, "ignore_watch": _ignore_watch,
    "autorestart": lambda value, raw, warns, cpus: raw.update(restart=value, restart_err=value),
    "autostart": lambda value, raw, warns, cpus: raw.update(enabled=False) if value is False else None,
    "user": lambda value, raw, warns, cpus: raw.update(user=str(value)),
}  # fmt: skip


def app_to_worker(
    app: Any, index: int, cpu_count: Optional[int] = None
) -> Tuple[Optional[Dict[str, Any]], List[str], List[str]]:
    """Map and validate one app: (clean config or None, WARN notes, errors)."""
    if not isinstance(app, dict):
        return None, [], [f"apps[{index}] is not an object"]
    raw, warns = map_app(app, cpu_count)
    if "exec" not in raw:
        return None, warns, [f"apps[{index}] ({app.get('name', 'unnamed')}) has no script or command"]
    clean: Dict[str, Any] = {}
    errors: List[str] = []
    for key, value in raw.items():
        option = options.WORKER_OPTIONS[key]
        items = value if option.multiple and isinstance(value, list) else [value]
        good: List[Any] = []
        for item in items:
            try:
                good.append(options.coerce(option, [item] if option.multiple else item))
            except ValueError as exc:
                errors.append(f"apps[{index}] {key} {show(item)}: {exc}")
                warns.append(f"WARN: {key} {show(item)} could not be converted ({exc}); left out")
        if option.multiple and good:
            clean[key] = [v for part in good for v in part]
        elif good:
            clean[key] = good[0]
    try:
        config, _ = options.coerce_block("worker", clean)
    except ConfigError as exc:
        return None, warns, errors + [f"apps[{index}]: {exc.message}"]
    return config, warns, errors


def apps_of(data: Any) -> Tuple[List[Any], List[str]]:
    """The app list of an ecosystem object, plus WARNs for top-level extras (deploy...)."""
    if isinstance(data, list):
        return data, []
    if not isinstance(data, dict):
        raise ConfigError("an ecosystem file holds {apps: [...]} or a list of apps", hint="check what the file exports")
    if "apps" not in data:
        if "script" in data or "command" in data:
            return [data], []
        raise ConfigError("the ecosystem file has no apps", hint="PM2 files look like {apps: [{name, script, ...}]}")
    apps = data["apps"] if isinstance(data["apps"], list) else [data["apps"]]
    warns = []
    for key, value in data.items():
        if key == "deploy":
            warns.append(no_equivalent("deploy", value, "apm does not deploy code; keep your deploy tool or CI"))
        elif key != "apps":
            warns.append(no_equivalent(key, value, "not part of an ecosystem's apps"))
    return apps, warns


_NODE_SCRIPT = r"""
const path = require('path'); const fs = require('fs'); const { pathToFileURL } = require('url');
const file = path.resolve(process.argv[process.argv.length - 1]);
const esm = (e) => e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE' ||
  (e instanceof SyntaxError && /\b(import|export)\b/.test(String(e.message))));
async function load() {
  if (file.endsWith('.mjs')) return import(pathToFileURL(file).href);
  try { return require(file); } catch (e) {
    if (!esm(e)) throw e;
    try { return await import(pathToFileURL(file).href); } catch (e2) {
      if (!(e2 instanceof SyntaxError)) throw e2;
      return import('data:text/javascript,' + encodeURIComponent(fs.readFileSync(file, 'utf8')));
    }
  }
}
const unwrap = (m) => (m && typeof m === 'object' && (m[Symbol.toStringTag] === 'Module' || m.__esModule) && 'default' in m) ? m.default : m;
load().then(async (m) => {
  const value = await unwrap(m);
  const out = JSON.stringify(value, (k, v) => typeof v === 'function' ? undefined : v instanceof RegExp ? String(v) : v);
  process.stdout.write((out === undefined ? 'null' : out) + '\n');
}).catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(3); });
"""


def read_ecosystem(path: str, node: str = "node", timeout: float = 30.0) -> Any:
    """Parse a .json ecosystem, or evaluate a .js/.cjs/.mjs one with node; returns its data."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".js", ".cjs", ".mjs"):
        from alter.config.ecosystem import parse_json  # local: ecosystem imports this module

        try:
            with open(path, encoding="utf-8") as fh:
                return parse_json(fh.read(), path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}", hint="check the path") from None
    if not os.path.exists(path):
        raise ConfigError(f"cannot read {path}: no such file", hint="check the path")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        proc = subprocess.run(
            [node, "-e", _NODE_SCRIPT, os.path.abspath(path)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise ConfigError(
            f"cannot evaluate {os.path.basename(path)}: node ({node}) is not installed",
            hint="install Node.js, or export the apps to JSON on a machine that has it and convert that file",
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"node took more than {timeout:g}s to evaluate {path}",
            hint="does the file start a server or wait on input?",
        ) from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[0:3]
        raise ConfigError(
            f"node could not evaluate {path}:\n  " + "\n  ".join(detail),
            hint="run `node " + path + "` to see the error",
        )
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise ConfigError(f"{path} did not export JSON-serialisable data", hint="export {apps: [...]}") from None


def convert(path: str, cpu_count: Optional[int] = None, node: str = "node") -> str:
    """A PM2 ecosystem file -> apm.conf text with `# WARN:` comments."""
    apps, top_warns = apps_of(read_ecosystem(path, node))
    defs: List[WorkerDef] = []
    header = [f"Converted from {os.path.basename(path)} by apm convert."]
    header += top_warns
    for index, app in enumerate(apps):
        config, warns, errors = app_to_worker(app, index, cpu_count)
        if config is None:
            header.append(f"WARN: {errors[-1]}; skipped")
            continue
        defs.append(WorkerDef(config=config, origin={"file": os.path.abspath(path), "line": 0}, comments=warns))
    return format_workers(defs, header=header)
