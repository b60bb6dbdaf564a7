#!/usr/bin/env bash
# `make docs`: the docs site of the collection with antsibull-docs (what docs.ansible.com uses) and Sphinx, into
# build/docs/build/html: every module, the callback, the filters, every role entry point (argument_specs), and the
# guides of docs/docsite (getting started, the runbook catalog rendered from awx/catalog.yml).
# Offline here, so the references into docs.ansible.com (intersphinx) cannot resolve: those warnings are expected
# and listed; any other warning fails the build.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$here/scripts/venv.sh")
export PATH="$venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$here/build/collections"
mkdir -p "$here/build/collections/ansible_collections/sre"
ln -sfn "$here" "$here/build/collections/ansible_collections/sre/runbooks"
out="$here/build/docs"
rm -rf "$out" && mkdir -m 0700 -p "$out"
antsibull-docs sphinx-init --use-current --dest-dir "$out" sre.runbooks >/dev/null
cd "$out"
mkdir -p rst && chmod og-w rst
antsibull-docs --config-file antsibull-docs.cfg collection --cleanup everything --use-current --dest-dir rst sre.runbooks
log="$out/sphinx.log"
sphinx-build -M html rst build -c . --keep-going -q > "$log" 2>&1 || { cat "$log"; exit 1; }
# the expected ones: labels and env vars of docs.ansible.com (intersphinx, unreachable offline)
offline='undefined label: .(common_return_values|callback_plugins|ansible_configuration_settings). \[ref\.ref\]|reference target not found: ANSIBLE_|intersphinx|failed to reach any of the inventories|fetching .*objects\.inv'
other=$(grep -E 'WARNING|ERROR' "$log" | grep -Ev "$offline" || true)
if [ -n "$other" ]; then echo "$other"; echo "docs: warnings above"; exit 1; fi
echo "docs: $(grep -cE 'WARNING' "$log" || true) warnings about docs.ansible.com references (offline), none other"
echo "docs: $(find build/html -name '*.html' | wc -l) pages in $out/build/html"
