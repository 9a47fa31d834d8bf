#!/usr/bin/env bash
# with_broker.sh CMD [ARGS...]
# Starts a fresh single-node Varve broker on a free loopback port with its own temporary data
# directory, runs CMD with these variables exported, then stops the broker:
#   VARVE_BOOTSTRAP  host:port of the broker        VARVE_DATA_DIR  its log.dirs
#   VARVE_PID        broker process id              VARVE_LOG       broker's log file
#   VARVE_PID_FILE   file holding the current broker pid (changes on restart)
#   VARVE_RESTART    path of a script that restarts the broker (same port and data dir);
#                    `$VARVE_RESTART kill` restarts after SIGKILL, `$VARVE_RESTART` after SIGTERM
# Extra broker settings: VARVE_OVERRIDES="key=value key2=value2".
# Exit status is CMD's; the broker log is printed if CMD fails.
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${VARVE_BIN:-$root/build/varve}
[ -x "$bin" ] || { echo "with_broker: $bin not built" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/varve-test.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export VARVE_BOOTSTRAP=127.0.0.1:$port
export VARVE_DATA_DIR=$work/data
export VARVE_LOG=$work/broker.log
export VARVE_ADMIN=127.0.0.1:$admin_port

cat > "$work/start.sh" <<SH
#!/usr/bin/env bash
args=(broker "$root/config/server.properties"
  --override "listeners=PLAINTEXT://127.0.0.1:$port"
  --override "log.dirs=$VARVE_DATA_DIR"
  --override "admin.listeners=http://127.0.0.1:$admin_port")
for kv in ${VARVE_OVERRIDES:-}; do args+=(--override "\$kv"); done
"$bin" "\${args[@]}" >>"$VARVE_LOG" 2>&1 &
echo \$! > "$work/pid"
for _ in \$(seq 1 300); do
  if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",$port),0.2)' 2>/dev/null; then exit 0; fi
  kill -0 \$(cat "$work/pid") 2>/dev/null || { echo "broker exited during start-up" >&2; tail -50 "$VARVE_LOG" >&2; exit 1; }
  sleep 0.1
done
echo "broker did not start listening within 30s" >&2; exit 1
SH
cat > "$work/restart.sh" <<SH
#!/usr/bin/env bash
pid=\$(cat "$work/pid")
if [ "\${1:-}" = kill ]; then kill -9 \$pid; else kill -TERM \$pid; fi
for _ in \$(seq 1 300); do kill -0 \$pid 2>/dev/null || break; sleep 0.1; done
kill -9 \$pid 2>/dev/null
bash "$work/start.sh"
echo "VARVE_PID=\$(cat "$work/pid")"
SH
chmod +x "$work/start.sh" "$work/restart.sh"
export VARVE_RESTART=$work/restart.sh
export VARVE_PID_FILE=$work/pid

stop_broker() {
  local pid
  pid=$(cat "$work/pid" 2>/dev/null) || return
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
}

bash "$work/start.sh" || { rm -rf "$work"; exit 2; }
export VARVE_PID=$(cat "$work/pid")
"$@"
rc=$?
stop_broker
if [ $rc -ne 0 ]; then
  echo "---- broker log (last 80 lines): $VARVE_LOG" >&2
  tail -80 "$VARVE_LOG" >&2
fi
[ "${VARVE_KEEP:-0}" = 1 ] || rm -rf "$work"
exit $rc
