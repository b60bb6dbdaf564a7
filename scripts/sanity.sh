#!/usr/bin/env bash
# ansible-test sanity on a built copy of the collection (the tarball `ansible-galaxy collection build`
# makes, installed into build/sanity), so build_ignore and the real file list are what is tested.
# Extra arguments go to ansible-test (for example a list of files to test only those).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$here/scripts/venv.sh")
export PATH="$venv/bin:$PATH"
out="$here/build/sanity"
rm -rf "$out" && mkdir -p "$out/dist"
ansible-galaxy collection build "$here" --output-path "$out/dist" --force >/dev/null
ansible-galaxy collection install "$out"/dist/sre-runbooks-*.tar.gz -p "$out/collections" --no-deps --force >/dev/null
cd "$out/collections/ansible_collections/sre/runbooks"
# ansible-test wants a git work tree or none; the installed copy has none, which is what we want.
py=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
exec ansible-test sanity --venv --python "$py" --color no "$@"
