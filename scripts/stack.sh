#!/usr/bin/env bash
# Starts the development stack in the foreground: the Temporal dev server (SQLite file
# under the data directory, Web UI pointed at the worker's codec endpoint, tokenwarden's
# search attributes registered) and the worker, which serves that endpoint. With "demo", also a fake OAuth2 provider and three demo credentials whose
# tokens live about a minute, so refresh cycles show up in the Web UI at once.
# Ctrl-C stops everything. Used by `make run` and `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
case "$mode" in
run) data_dir=${TOKENWARDEN_DATA_DIR:-data} ;;
demo) data_dir=${TOKENWARDEN_DATA_DIR:-.demo} ;;
*) echo "usage: $0 [run|demo]" >&2; exit 2 ;;
esac
frontend_port=${TEMPORAL_PORT:-7233}
ui_port=${TEMPORAL_UI_PORT:-8233}
fake_port=${FAKE_OAUTH_PORT:-9400}
codec_port=${CODEC_PORT:-8234}
codec_endpoint=http://127.0.0.1:$codec_port/codec

export TOKENWARDEN_DATA_DIR=$data_dir
export TOKENWARDEN_TEMPORAL_ADDRESS=127.0.0.1:$frontend_port
# The worker serves the codec endpoint the Web UI (and the temporal CLI) decode with; the
# UI's origin must be allowed to call it.
export TOKENWARDEN_HTTP_ADDR=127.0.0.1:$codec_port
export TOKENWARDEN_CODEC_CORS_ORIGINS=${TOKENWARDEN_CODEC_CORS_ORIGINS:-http://localhost:$ui_port,http://127.0.0.1:$ui_port}
export TOKENWARDEN_CODEC_ENDPOINT=$codec_endpoint
mkdir -p "$data_dir"
chmod 0700 "$data_dir"

for port in "$frontend_port" "$ui_port" "$codec_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use: is another Temporal server or worker running? (set TEMPORAL_PORT / TEMPORAL_UI_PORT / CODEC_PORT)" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping..."
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  echo "stopped."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# WAL with synchronous=normal: a commit does not wait for the disk (it is synced at
# checkpoints) and still survives the server being killed; SQLite's defaults wait for
# several fsyncs per transaction and cap the engine at a fifth of the throughput. One
# partition per task queue: on one node more partitions only add (rate-limited)
# forwarding between them.
bin/temporal server start-dev \
  --ip 127.0.0.1 --port "$frontend_port" --ui-port "$ui_port" \
  --ui-codec-endpoint "$codec_endpoint" \
  --db-filename "$data_dir/temporal.db" \
  --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
  --dynamic-config-value matching.numTaskqueueReadPartitions=1 \
  --dynamic-config-value matching.numTaskqueueWritePartitions=1 \
  --search-attribute TokenState=Keyword \
  --search-attribute TokenProvider=Keyword \
  --search-attribute TokenExpiresAt=Datetime \
  --log-level warn >"$data_dir/temporal.log" 2>&1 &
pids+=($!)

echo "starting the Temporal dev server on 127.0.0.1:$frontend_port (log: $data_dir/temporal.log)..."
for i in $(seq 1 120); do
  if bin/temporal operator cluster health --address "127.0.0.1:$frontend_port" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "the Temporal dev server exited; its log says:" >&2
    tail -n 20 "$data_dir/temporal.log" >&2
    exit 1
  fi
  sleep 0.5
done
bin/temporal operator cluster health --address "127.0.0.1:$frontend_port" >/dev/null
echo "Temporal Web UI: http://localhost:$ui_port (decodes payloads through $codec_endpoint while the worker runs)"

if [ "$mode" = demo ]; then
  bin/fakeoauth -addr "127.0.0.1:$fake_port" -access-lifetime 60s \
    -client-id demo-app -client-secret demo-secret \
    -seed-families demo-a,demo-b,demo-c >"$data_dir/fakeoauth.seeds" 2>"$data_dir/fakeoauth.log" &
  pids+=($!)
  for i in $(seq 1 50); do
    [ "$(wc -l <"$data_dir/fakeoauth.seeds")" -ge 3 ] && break
    sleep 0.2
  done
fi

bin/worker -init-dev-key &
pids+=($!)

if [ "$mode" = demo ]; then
  sleep 2
  n=0
  while read -r line; do
    n=$((n + 1))
    family=$(sed -E 's/.*"family":"([^"]+)".*/\1/' <<<"$line")
    token=$(sed -E 's/.*"refresh_token":"([^"]+)".*/\1/' <<<"$line")
    cat >"$data_dir/$family.json" <<JSON
{
  "id": "$family",
  "provider": "oauth2",
  "config": {"token_url": "http://127.0.0.1:$fake_port/token", "client_id": "demo-app", "auth_style": "header"},
  "policy": {"refresh_margin": "$((10 * n))s", "jitter": "2s", "retry_initial": "5s", "retry_max": "1m"}
}
JSON
    printf '{"refresh_token":"%s","client_secret":"demo-secret"}' "$token" |
      bin/starter start "$data_dir/$family.json" -secrets - || true
  done <"$data_dir/fakeoauth.seeds"
  cat <<MSG

Demo running: three credentials (demo-a, demo-b, demo-c) against a fake OAuth2 provider
whose access tokens live 60 s. Each refreshes every 30-40 s.
  Web UI:   http://localhost:$ui_port/namespaces/default/workflows
  status:   TOKENWARDEN_TEMPORAL_ADDRESS=127.0.0.1:$frontend_port TOKENWARDEN_DATA_DIR=$data_dir bin/starter status demo-a
  list:     TOKENWARDEN_TEMPORAL_ADDRESS=127.0.0.1:$frontend_port TOKENWARDEN_DATA_DIR=$data_dir bin/starter list
  history:  bin/temporal workflow show --workflow-id demo-a --address 127.0.0.1:$frontend_port --codec-endpoint $codec_endpoint
Ctrl-C stops everything.
MSG
fi

wait "${pids[-1]}"
