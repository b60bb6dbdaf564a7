#!/usr/bin/env bash
# ansible-test sanity on a built copy of the collection (the tarball `ansible-galaxy collection build`
# makes, installed outside this git work tree so ansible-test sees exactly the shipped files).
# Extra arguments go to ansible-test (for example a list of files to test only those).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$here/scripts/venv.sh")
export PATH="$venv/bin:$PATH"
out=${SRE_SANITY_DIR:-${SRE_CACHE_DIR:-/root/.cache/sre-runbooks}/sanity-$$}
trap 'rm -rf "$out"' EXIT
rm -rf "$out" && mkdir -p "$out/dist"
ansible-galaxy collection build "$here" --output-path "$out/dist" --force >/dev/null
ansible-galaxy collection install "$out"/dist/sre-runbooks-*.tar.gz -p "$out/collections" --no-deps --force >/dev/null 2>&1
# ansible-test bootstraps pip in its venvs with a script it downloads from a host we cannot reach:
# give it our stand-in (ensurepip + the pinned packages from PyPI) under the name it looks for.
pipver=$(python - <<'PY'
import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
m = re.search(r"pip='([0-9.]+)'", src)
print(m.group(1) if m else "")
PY
)
if [ -n "$pipver" ]; then
  mkdir -p "$HOME/.ansible/test/cache"
  cp "$here/scripts/ansible_test_get_pip.py" "$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py"
fi
cd "$out/collections/ansible_collections/sre/runbooks"
py=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ansible-test sanity --venv --python "$py" --color no "$@"
