#!/usr/bin/env bash
# Creates the indexes of ragd's MongoDB store and, on a sharded cluster,
# shards its collections (see README.md and setup.js).
#
#   deploy/mongodb/setup.sh URI [DATABASE]
#
#   URI        an admin connection string (a mongos for sharding), e.g.
#              mongodb://admin:secret@mongos-0:27017/admin; or set MONGODB_URI
#   DATABASE   ragd's database (store.mongodb.database), default "ragd"
#   RAGD_NO_SHARDING=1   only the indexes
set -euo pipefail

uri=${1:-${MONGODB_URI:-}}
[ -n "$uri" ] || { echo "usage: $0 URI [DATABASE]" >&2; exit 2; }
command -v mongosh >/dev/null || { echo "mongosh is not installed" >&2; exit 1; }
RAGD_DB=${2:-ragd} RAGD_NO_SHARDING=${RAGD_NO_SHARDING:-0} \
  mongosh --quiet "$uri" --file "$(dirname "$0")/setup.js"
