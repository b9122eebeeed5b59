#!/usr/bin/env bash
# apm installer: puts /usr/sbin/apm, the apm group, /var/log/apm.log, /etc/apm and
# the init service (systemd, OpenRC or SysV) on this machine. Safe to re-run: it
# upgrades in place and never overwrites your /etc/apm/apm.conf.
#
#   curl -fsSL https://processmanager.dev/install.sh | sudo bash      # downloads apm
#   sudo bash install.sh            # next to a downloaded `apm` file: offline (air-gapped)
#   sudo bash install.sh            # in a source checkout: runs build.py, installs dist/apm
#
# Environment:
#   APM_URL      where to download apm from (default below; any http(s)/file URL)
#   APM_SHA256   expected sha256 of the apm file; the install stops on a mismatch
#   APM_FILE     install this apm file (skips the checkout/download logic)
#   APM_PYTHON   the Python (>= 3.9) to run apm with (default: the newest found)
#   APM_INIT     systemd | openrc | sysv | none: skip init-system detection
# Arguments go to `apm install` (e.g. `bash install.sh --no-start`, `| sudo bash -s -- --no-start`).
#
# The real work is `<python> <apm file> install` (alter/install/): this script only
# finds a Python, gets the file and checks it. Exit codes: docs/install.md.
set -euo pipefail

DEFAULT_URL="https://processmanager.dev/download/apm"
MIN_MAJOR=3
MIN_MINOR=9
# Searched on $PATH, newest first, `python3` last (sudo's PATH is the system one).
CANDIDATES="python3.14 python3.13 python3.12 python3.11 python3.10 python3.9 python3"

say() { printf 'apm install.sh: %s\n' "$*"; }
die() {
    local code=$1
    shift
    printf 'apm install.sh: error: %s\n' "$1" >&2
    shift
    if [ $# -gt 0 ]; then printf '  what to do: %s\n' "$*" >&2; fi
    exit "$code"
}

# How to get a Python >= 3.9 on this distro (same table as alter/install/detect.py).
python_hint() {
    local id="" like="" ver="" major
    if [ -r /etc/os-release ]; then
        # shellcheck source=/dev/null
        id=$(. /etc/os-release && echo "${ID:-}")
        # shellcheck source=/dev/null
        like=$(. /etc/os-release && echo "${ID_LIKE:-}")
        # shellcheck source=/dev/null
        ver=$(. /etc/os-release && echo "${VERSION_ID:-}")
    fi
    major=${ver%%.*}
    case "$id:$ver" in
        ubuntu:18.04 | ubuntu:20.04) echo "apt-get install -y python3.9"; return ;;
    esac
    case "$id:$major" in
        rhel:8 | centos:8 | rocky:8 | almalinux:8 | ol:8) echo "dnf install -y python39"; return ;;
    esac
    case "$id" in
        sles | opensuse-leap) echo "zypper install -y python311"; return ;;
    esac
    for d in $id $like; do
        case "$d" in
            debian | ubuntu | raspbian | linuxmint | devuan) echo "apt-get install -y python3"; return ;;
            fedora | rhel | centos | rocky | almalinux | ol | amzn) echo "dnf install -y python3"; return ;;
            alpine) echo "apk add python3"; return ;;
            arch | manjaro | endeavouros) echo "pacman -S --noconfirm python"; return ;;
            opensuse | opensuse-tumbleweed | suse) echo "zypper install -y python3"; return ;;
            gentoo) echo "emerge dev-lang/python"; return ;;
            void) echo "xbps-install -y python3"; return ;;
        esac
    done
    echo "install Python 3.9 or newer with your package manager (the package is usually python3)"
}

# Prints "major.minor.micro" of a Python, or fails.
py_version() {
    "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null </dev/null
}

py_ok() {
    "$1" -c "import sys; sys.exit(0 if sys.version_info >= ($MIN_MAJOR, $MIN_MINOR) else 1)" 2>/dev/null </dev/null
}

find_python() {
    local c p v tried=""
    if [ -n "${APM_PYTHON:-}" ]; then
        p=$(command -v "$APM_PYTHON" 2>/dev/null) ||
            die 10 "APM_PYTHON=$APM_PYTHON: no such command" "set APM_PYTHON to a Python 3.9 or newer, or unset it"
        v=$(py_version "$p") || die 10 "APM_PYTHON=$p does not run" "set APM_PYTHON to a working Python 3.9 or newer"
        py_ok "$p" || die 10 "APM_PYTHON=$p is Python $v; apm needs $MIN_MAJOR.$MIN_MINOR or newer" \
            "run: $(python_hint), then re-run this installer"
        PY=$p
        return
    fi
    for c in $CANDIDATES; do
        p=$(command -v "$c" 2>/dev/null) || continue
        if py_ok "$p"; then
            PY=$p
            return
        fi
        v=$(py_version "$p") || v="does not run"
        tried="$tried $p ($v)"
    done
    if [ -n "$tried" ]; then
        die 10 "no Python $MIN_MAJOR.$MIN_MINOR or newer found; found only:$tried" \
            "run: $(python_hint), then re-run this installer"
    fi
    die 10 "no Python found (looked for: $CANDIDATES)" "run: $(python_hint), then re-run this installer"
}

download() {
    local url=$1 out=$2
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 --connect-timeout 20 -o "$out" "$url" </dev/null
    elif command -v wget >/dev/null 2>&1; then
        wget -q -T 20 -t 3 -O "$out" "$url" </dev/null
    else
        "$PY" - "$url" "$out" <<'PYEOF'
import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)
PYEOF
    fi
}

# Refuses anything but an intact zip archive (a truncated download, an HTML error page).
verify_file() {
    local file=$1 what=$2 actual
    [ -s "$file" ] || die 13 "$what is empty or missing ($file)" "download it again"
    "$PY" - "$file" <<'PYEOF' || die 13 "$what ($file) is not an intact apm zipapp (not a zip, or damaged)" \
        "download it again (check APM_URL), or rebuild it with python3 build.py"
import sys, zipfile
path = sys.argv[1]
if not zipfile.is_zipfile(path):
    sys.exit(1)
with zipfile.ZipFile(path) as zf:
    sys.exit(1 if zf.testzip() is not None or "__main__.py" not in zf.namelist() else 0)
PYEOF
    if [ -n "${APM_SHA256:-}" ]; then
        if command -v sha256sum >/dev/null 2>&1; then
            actual=$(sha256sum "$file" | cut -d' ' -f1)
        else
            actual=$("$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$file")
        fi
        local expected
        expected=$(printf '%s' "$APM_SHA256" | tr 'A-F' 'a-f')
        [ "$actual" = "$expected" ] ||
            die 13 "$what ($file) has sha256 $actual, but APM_SHA256 is $expected" \
                "download it again; if it still differs, do not install it"
        say "sha256 verified: $actual"
    fi
}

main() {
    umask 022
    # $EUID, not `id -u`: this check and the Python search need no external command.
    if [ "$EUID" != 0 ]; then
        die 5 "the installer must run as root (you are uid $EUID, $(id -un 2>/dev/null || echo unknown)): it writes /usr/sbin/apm, /etc/apm and the init service" \
            "re-run it with sudo: \`sudo bash install.sh\`, or \`curl -fsSL <url> | sudo bash\`"
    fi

    find_python
    say "using $PY (Python $(py_version "$PY"))"

    # Where this script lives, when it is a file (not piped into bash).
    local here="" src="${BASH_SOURCE[0]:-}"
    if [ -n "$src" ] && [ -f "$src" ]; then
        here=$(cd "$(dirname "$src")" && pwd)
    fi

    TMP=$(mktemp -d "${TMPDIR:-/tmp}/apm-install.XXXXXX")
    trap 'rm -rf "$TMP"' EXIT

    local file
    if [ -n "${APM_FILE:-}" ]; then
        file=$APM_FILE
        [ -f "$file" ] || die 13 "APM_FILE=$file does not exist" "point APM_FILE at a downloaded apm file"
        say "installing $file (APM_FILE)"
    elif [ -n "$here" ] && [ -f "$here/build.py" ]; then
        local build_py="${APM_BUILD_PYTHON:-}"
        if [ -z "$build_py" ]; then
            build_py=$(command -v python3 2>/dev/null || echo "$PY")
        fi
        say "source checkout $here: building dist/apm with $build_py build.py"
        (cd "$here" && "$build_py" build.py </dev/null) ||
            die 1 "\`$build_py build.py\` failed in $here (see its output above)" \
                "fix the build, or install a downloaded apm file instead (APM_FILE=/path/to/apm)"
        file="$here/dist/apm"
    elif [ -n "$here" ] && [ -f "$here/apm" ]; then
        file="$here/apm"
        say "installing $file (offline: the apm file next to this script)"
    else
        local url="${APM_URL:-$DEFAULT_URL}"
        file="$TMP/apm"
        say "downloading $url"
        download "$url" "$file" ||
            die 13 "could not download $url" \
                "check the network or APM_URL; offline, put the apm file next to install.sh and run \`sudo bash install.sh\` there"
    fi
    verify_file "$file" "the apm file"

    # The same code as `apm install`, run from the new file.
    local rc=0
    "$PY" "$file" install --python "$PY" "$@" </dev/null || rc=$?
    if [ "$rc" != 0 ]; then
        # shellcheck disable=SC2016  # the backquotes are literal
        printf 'apm install.sh: `%s %s install` exited with %s (the message above says why)\n' "$PY" "$file" "$rc" >&2
        exit "$rc"
    fi
}

# Everything runs from main, after bash has read the whole script: when it is
# piped (curl | bash), nothing below can be consumed by a command reading stdin.
main "$@"
