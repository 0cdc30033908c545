# shellcheck shell=bash
# Sourced by bin/test and bin/demo: moves to the repository root and installs the locked
# dependencies into .venv. Needs only Python 3.11+ (and, on a machine without the venv
# module, root and apt-get). Fast when everything is already in place.

UV_VERSION=0.13.9

MONETA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$MONETA_ROOT" || exit 1

export UV_PYTHON_DOWNLOADS=never
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '==> %s\n' "$*" >&2; }
die() {
	printf '\nerror: %s\n' "$*" >&2
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
can_apt() { is_root && have apt-get; }

_apt_updated=0
apt_install() {
	if [ "$_apt_updated" = 0 ]; then
		say "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
		_apt_updated=1
	fi
	say "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null
}

# The interpreter the project runs on: $PYTHON if set, else python3 (or a python3.1x).
_python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
find_python() {
	local candidate path
	for candidate in ${PYTHON:-python3 python3.13 python3.12 python3.11}; do
		path="$(command -v "$candidate" 2>/dev/null)" || continue
		# The real interpreter, not a wrapper such as a pyenv shim.
		if _python_ok "$path"; then
			"$path" -c 'import sys; print(sys.executable)'
			return 0
		fi
	done
	return 1
}

# .cache/tools: a venv holding the pinned uv, made with the machine's Python and pip.
_tools_venv() {
	local python="$1"
	rm -rf .cache/tools
	"$python" -m venv .cache/tools >/dev/null 2>&1 && [ -x .cache/tools/bin/pip ]
}
bootstrap_uv() {
	local python="$1"
	UV="$MONETA_ROOT/.cache/tools/bin/uv"
	case "$("$UV" --version 2>/dev/null)" in
	"uv $UV_VERSION" | "uv $UV_VERSION "*) return 0 ;;
	esac
	say "installing uv $UV_VERSION into .cache/tools"
	mkdir -p .cache
	if ! _tools_venv "$python"; then
		# Debian and Ubuntu ship the venv module separately.
		local venv_package
		venv_package="python$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
		can_apt || die "'$python -m venv' does not work here: install the venv module" \
			"(Debian/Ubuntu: apt-get install $venv_package) and run this again"
		apt_install "$venv_package" || die "could not install $venv_package"
		_tools_venv "$python" || die "'$python -m venv' still fails after installing $venv_package"
	fi
	.cache/tools/bin/python -m pip install -q "uv==$UV_VERSION" || die "could not install uv $UV_VERSION"
}

# .venv: the project's environment, exactly as requirements/lock.txt says (hashes checked).
bootstrap() {
	local python
	if [ -n "${PYTHON:-}" ]; then
		python="$(find_python)" || die "PYTHON=$PYTHON is not Python 3.11 or newer"
	else
		python="$(find_python)" || die "Python 3.11 or newer is needed; found none" \
			"(python3: $(python3 --version 2>&1 || echo missing)). Install it, or set PYTHON" \
			"to its path."
	fi
	bootstrap_uv "$python"
	if ! _python_ok .venv/bin/python; then
		say "creating .venv with $python"
		"$UV" venv --quiet --clear --python "$python" .venv || die "could not create .venv"
	fi
	"$UV" pip sync --require-hashes --python .venv/bin/python requirements/lock.txt ||
		die "could not install the locked dependencies (requirements/lock.txt) into .venv"
	static_files_collect
}

# The admin's and Redoc's static files into staticfiles/, with hashed names and gzip
# copies, which WhiteNoise serves under bin/serve and pages name (with DEBUG off, a page
# cannot be rendered without them). They all come from installed packages, so they change
# only with the lock file or the settings (about 6 s to collect again). bin/test, bin/demo
# and bin/serve call it.
static_files_collect() {
	local manifest=staticfiles/staticfiles.json
	if [ ! "$manifest" -nt requirements/lock.txt ] || [ ! "$manifest" -nt config/settings.py ]; then
		.venv/bin/python manage.py collectstatic --noinput --verbosity 0 ||
			die "manage.py collectstatic could not fill staticfiles/"
	fi
}
