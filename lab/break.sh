#!/usr/bin/env bash
# Break the lab on purpose, for the demo and drills:
#   lab/break.sh fill-connections [N]  open N idle connections as the app's role on sre-lab-systemd
#                                      (default: every slot left), so the app's /health fails
#   lab/break.sh stop-app              stop the saasresto unit on sre-lab-systemd
#   lab/break.sh stop-compose-web      stop the compose project's web container
#   lab/break.sh stop-pm2              stop cookcam-api under pm2 on sre-lab-pm2
#   lab/break.sh heal                  undo: end the filler process, start what was stopped
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"
host=sre-lab-systemd
docker inspect "$host" >/dev/null 2>&1 || die "the lab is not running (make lab-up)"

case "${1:-}" in
  fill-connections)
    n=${2:-0}
    # A python process inside the host holds the connections open, idle, until it is killed.
    docker exec -d "$host" python3 -c '
import os, sys, time, psycopg2
env = dict(l.strip().split("=", 1) for l in open("/opt/saasresto/.env") if "=" in l)
want = int(sys.argv[1]); held = []
while want == 0 or len(held) < want:
    try:
        held.append(psycopg2.connect(env["DATABASE_URL"], application_name="lab-filler"))
    except psycopg2.OperationalError:
        break
open("/run/lab-filler.pid", "w").write(str(os.getpid()))
time.sleep(3600)
' "$n"
    for _ in $(seq 1 30); do
      docker exec "$host" test -f /run/lab-filler.pid && break
      sleep 0.5
    done
    used=$(docker exec "$host" runuser -u postgres -- psql -Atc "select count(*) from pg_stat_activity where application_name = 'lab-filler'")
    log "connection pool filled: $used idle connections held by lab-filler"
    ;;
  stop-app) docker exec "$host" systemctl stop saasresto && log "saasresto stopped" ;;
  stop-compose-web) compose stop web >/dev/null 2>&1 && log "compose web stopped" ;;
  stop-pm2) docker exec sre-lab-pm2 pm2 stop cookcam-api >/dev/null && log "pm2 cookcam-api stopped" ;;
  heal)
    docker exec "$host" sh -c 'test -f /run/lab-filler.pid && kill "$(cat /run/lab-filler.pid)" && rm -f /run/lab-filler.pid' || true
    docker exec "$host" systemctl start saasresto
    docker exec sre-lab-pm2 pm2 start cookcam-api >/dev/null 2>&1 || true
    compose start web >/dev/null 2>&1 || true
    log "healed"
    ;;
  *) die "usage: lab/break.sh fill-connections [N] | stop-app | stop-compose-web | stop-pm2 | heal" ;;
esac
