#!/usr/bin/env bash
# Creates (or reuses) the virtualenv the Python benchmark runs in and installs
# the pinned requirements into it.
#
#   bash benchmarks/python/setup.sh      # venv at $VENV, default <repo>/target/bench-venv
#
# A hash of requirements.txt is kept inside the venv, so a second run with an
# unchanged file returns at once without asking PyPI anything.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
VENV="${VENV:-$repo/target/bench-venv}"
PYTHON="${PYTHON:-python3}"
requirements="$here/requirements.txt"
stamp="$VENV/.requirements.sha256"

want="$(sha256sum "$requirements" | cut -d' ' -f1)"

# The venv's interpreter is a link to the system one: if that went away the
# venv is dead even though the stamp still matches, so check it runs.
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$VENV/bin/python" -c '' 2>/dev/null; then
    exit 0
fi

# eventsourcing 9.5 requires Python 3.11 or newer.
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup.sh: $PYTHON is $("$PYTHON" --version 2>&1); eventsourcing needs Python >= 3.11" >&2
    exit 1
fi

echo "setup.sh: installing $(basename "$requirements") into $VENV" >&2
# --clear: a venv whose interpreter no longer runs cannot be repaired in place.
"$VENV/bin/python" -c '' 2>/dev/null || "$PYTHON" -m venv --clear "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
echo "$want" > "$stamp"
