#!/bin/sh
# popsteer launcher: runs popsteer on the Node.js runtime this package carries
# (Debian's own node is older than the 24 popsteer needs). Found relative to
# this file, so an unpacked copy (dpkg-deb -x) runs too.
set -e
here=$(dirname "$(readlink -f "$0")")
lib=$(readlink -f "$here/../lib/popsteer")
exec "$lib/runtime/node" "$lib/bin/popsteer.js" "$@"
