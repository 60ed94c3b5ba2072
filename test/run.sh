#!/bin/bash
# Runs test files (paths under dist/test) with node's test runner, one file
# at a time. Many tests run our programs as user 65534, as the agent does at
# boot; a checkout that user cannot read (a clone in root's 0700 home, a
# mktemp -d directory) is therefore copied to a world-readable place first
# and the tests run from that copy.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && ! setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$PWD/dist/src/client/main.js"; then
  stage=$(mktemp -d /var/tmp/mandos-ts-test.XXXXXX)
  trap 'rm -rf "$stage"' EXIT
  chmod 755 "$stage"
  echo "test/run.sh: user 65534 cannot read $PWD; running the tests from a copy in $stage"
  tar --exclude=./.git -cf - . | tar -xf - -C "$stage"
  cd "$stage"
fi
node --test --test-concurrency=1 "$@"
