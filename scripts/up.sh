#!/usr/bin/env bash
# Starts the local stack as background processes: NATS (JetStream), DynamoDB
# Local, the mailbox (SMTP), Temporal's development server, MinIO (the
# object store), Kafka, Jaeger (traces), Prometheus (metrics and the
# chart's alert rules), the processor, the transformer, the notifier, the
# orchestrator, file-ingest and the gateway. Idempotent: what is already running
# and serving is left alone; anything else (exited, killed, a zombie, alive
# but not answering) is started again, so `make up` always ends with every
# process serving.
#
#   .sluice/run/<name>.pid   process ids      .sluice/log/<name>.log   logs
#   .sluice/data/            server data      .sluice/dev.env          URL + dev API key
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile="${SLUICE_PROFILE:-release}"
bin="$root/target/$profile"
state="${SLUICE_STATE_DIR:-$root/.sluice}"
# shellcheck source=scripts/proc.sh
source "$root/scripts/proc.sh"
mkdir -p "$state/run" "$state/log" "$state/data/nats" "$state/data/dynamodb" "$state/data/mailbox" "$state/data/temporal" "$state/data/minio" "$state/data/kafka" "$state/data/prometheus" "$state/prometheus"

NATS_PORT="${SLUICE_NATS_PORT:-4222}"
NATS_MONITOR_PORT="${SLUICE_NATS_MONITOR_PORT:-8222}"
DYNAMO_PORT="${SLUICE_DYNAMO_PORT:-8000}"
GATEWAY_PORT="${SLUICE_GATEWAY_PORT:-8080}"
PROCESSOR_PORT="${SLUICE_PROCESSOR_PORT:-8081}"
TRANSFORMER_PORT="${SLUICE_TRANSFORMER_PORT:-8082}"
TRANSFORMER_GRPC_PORT="${SLUICE_TRANSFORMER_GRPC_PORT:-9082}"
NOTIFIER_PORT="${SLUICE_NOTIFIER_PORT:-8083}"
NOTIFIER_GRPC_PORT="${SLUICE_NOTIFIER_GRPC_PORT:-9083}"
ORCHESTRATOR_PORT="${SLUICE_ORCHESTRATOR_PORT:-8084}"
ORCHESTRATOR_GRPC_PORT="${SLUICE_ORCHESTRATOR_GRPC_PORT:-9084}"
SMTP_PORT="${SLUICE_SMTP_PORT:-2587}"
SMTPS_PORT="${SLUICE_SMTPS_PORT:-2465}"
MAILBOX_PORT="${SLUICE_MAILBOX_PORT:-8025}"
TEMPORAL_PORT="${SLUICE_TEMPORAL_PORT:-7233}"
TEMPORAL_UI_PORT="${SLUICE_TEMPORAL_UI_PORT:-8233}"
TEMPORAL_HTTP_PORT="${SLUICE_TEMPORAL_HTTP_PORT:-7243}"
TEMPORAL_METRICS_PORT="${SLUICE_TEMPORAL_METRICS_PORT:-7253}"
FILE_INGEST_PORT="${SLUICE_FILE_INGEST_PORT:-8085}"
MINIO_PORT="${SLUICE_MINIO_PORT:-9000}"
MINIO_CONSOLE_PORT="${SLUICE_MINIO_CONSOLE_PORT:-9001}"
KAFKA_PORT="${SLUICE_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${SLUICE_KAFKA_CONTROLLER_PORT:-9093}"
JAEGER_PORT="${SLUICE_JAEGER_PORT:-16686}"
JAEGER_GRPC_PORT="${SLUICE_JAEGER_GRPC_PORT:-16685}"
OTLP_GRPC_PORT="${SLUICE_OTLP_GRPC_PORT:-4317}"
OTLP_HTTP_PORT="${SLUICE_OTLP_HTTP_PORT:-4318}"
PROMETHEUS_PORT="${SLUICE_PROMETHEUS_PORT:-9090}"
# fsync every JetStream write: on a single node this is what makes a 202 durable
# against power loss, not just against a process crash. `SLUICE_NATS_SYNC=default`
# keeps the server's periodic sync.
NATS_SYNC="${SLUICE_NATS_SYNC:-always}"

# Whether a process is doing its job: its port answers (servers) or its
# /healthz answers 200 (services).
serving() { # name probe ("port:N" or a URL)
  case "$2" in
    port:*) (exec 3<>"/dev/tcp/127.0.0.1/${2#port:}") 2>/dev/null ;;
    *) curl -fsS -m 2 -o /dev/null "$2" 2>/dev/null ;;
  esac
}

running() { alive "$1"; }

start() { # name probe command...
  local name=$1 probe=$2; shift 2
  if alive "$name"; then
    if serving "$name" "$probe"; then
      echo "up: $name already running (pid $(cat "$state/run/$name.pid"))"
      return
    fi
    echo "up: $name (pid $(cat "$state/run/$name.pid")) is not serving; restarting it"
    stop_pid "$name"
  fi
  rm -f "$state/run/$name.pid"
  nohup "$@" >>"$state/log/$name.log" 2>&1 </dev/null &
  echo $! >"$state/run/$name.pid"
  basename "$1" >"$state/run/$name.cmd"
  echo "up: started $name (pid $!)"
}

wait_http() { # name url
  for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
    if ! running "$1"; then echo "up: $1 exited; see $state/log/$1.log" >&2; tail -20 "$state/log/$1.log" >&2; exit 1; fi
    sleep 0.2
  done
  echo "up: $1 not ready at $2; see $state/log/$1.log" >&2; exit 1
}

wait_port() { # name port
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    if ! running "$1"; then echo "up: $1 exited; see $state/log/$1.log" >&2; tail -20 "$state/log/$1.log" >&2; exit 1; fi
    sleep 0.2
  done
  echo "up: $1 did not open port $2" >&2; exit 1
}

# --- servers ------------------------------------------------------------------
sync_line=""
[ "$NATS_SYNC" = "always" ] && sync_line="sync_interval: always"
cat >"$state/nats.conf" <<CONF
listen: 127.0.0.1:$NATS_PORT
http: 127.0.0.1:$NATS_MONITOR_PORT
jetstream {
  store_dir: "$state/data/nats"
  $sync_line
}
CONF
start nats "port:$NATS_PORT" "$root/.deps/bin/nats-server" -c "$state/nats.conf"
ddb="$root/.deps/dynamodb-local/lib"
# DynamoDB Local writes a metadata file into its working directory.
(cd "$state/data/dynamodb" && start dynamodb "port:$DYNAMO_PORT" java "-Djava.library.path=$ddb" -Xmx512m -cp "$ddb/*" \
  com.amazonaws.services.dynamodbv2.local.main.ServerRunner \
  -sharedDb -dbPath "$state/data/dynamodb" -port "$DYNAMO_PORT")
# The mailbox: a real SMTP server (STARTTLS and AUTH) keeping what it receives.
smtp_password_file="$state/data/mailbox/password"
[ -f "$smtp_password_file" ] || od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$smtp_password_file"
smtp_password="$(cat "$smtp_password_file")"
start mailbox "port:$MAILBOX_PORT" "$root/.deps/mailbox-venv/bin/python" "$root/scripts/mailbox.py" \
  --dir "$state/data/mailbox" --smtp-port "$SMTP_PORT" --smtps-port "$SMTPS_PORT" \
  --http-port "$MAILBOX_PORT" --user sluice --password "$smtp_password"
# Temporal's development server, its history in SQLite under .sluice/data.
start temporal "port:$TEMPORAL_PORT" "$root/.deps/bin/temporal" server start-dev \
  --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
  --http-port "$TEMPORAL_HTTP_PORT" --metrics-port "$TEMPORAL_METRICS_PORT" \
  --db-filename "$state/data/temporal/temporal.db" --log-level warn --ui-disable-news-fetch
# MinIO, the object store: it publishes an S3 event notification for each
# object created in the upload bucket to JetStream (files.uploads), keeping
# them in its own queue while NATS is away. Credentials are made once and
# kept beside its data.
minio_secret_file="$state/data/minio-secret"
[ -f "$minio_secret_file" ] || od -An -N20 -tx1 /dev/urandom | tr -d ' \n' >"$minio_secret_file"
minio_secret="$(cat "$minio_secret_file")"
MINIO_ROOT_USER=sluice MINIO_ROOT_PASSWORD="$minio_secret" \
  MINIO_NOTIFY_NATS_ENABLE_SLUICE=on MINIO_NOTIFY_NATS_ADDRESS_SLUICE="127.0.0.1:$NATS_PORT" \
  MINIO_NOTIFY_NATS_SUBJECT_SLUICE=files.uploads MINIO_NOTIFY_NATS_JETSTREAM_SLUICE=on \
  MINIO_NOTIFY_NATS_QUEUE_DIR_SLUICE="$state/data/minio-events" \
  start minio "port:$MINIO_PORT" "$root/.deps/bin/minio" server "$state/data/minio" \
  --address "127.0.0.1:$MINIO_PORT" --console-address "127.0.0.1:$MINIO_CONSOLE_PORT" --quiet
# Apache Kafka, one KRaft node, for kafka targets; its log is formatted once.
kafka_libs="$root/.deps/kafka/libs"
cat >"$state/kafka.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data/kafka
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
if [ ! -f "$state/data/kafka/meta.properties" ]; then
  cluster_id="$(python3 -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="))')"
  java -cp "$kafka_libs/*" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
    -c "$state/kafka.properties" >"$state/log/kafka-format.log" 2>&1
fi
start kafka "port:$KAFKA_PORT" java -Xms128m -Xmx512m -XX:+UseSerialGC -cp "$kafka_libs/*" kafka.Kafka "$state/kafka.properties"
# Jaeger: every service sends its spans here (OTLP over HTTP); traces are
# kept in memory, so they go when Jaeger stops.
SLUICE_JAEGER_QUERY="127.0.0.1:$JAEGER_PORT" SLUICE_JAEGER_QUERY_GRPC="127.0.0.1:$JAEGER_GRPC_PORT" \
  SLUICE_JAEGER_OTLP_GRPC="127.0.0.1:$OTLP_GRPC_PORT" SLUICE_JAEGER_OTLP_HTTP="127.0.0.1:$OTLP_HTTP_PORT" \
  start jaeger "port:$JAEGER_PORT" "$root/.deps/bin/jaeger" --config "file:$root/deploy/deps/jaeger/config.yaml"
# Prometheus: scrapes every service every 5 s, labelled as the chart's
# Prometheus labels them (service, pod), and evaluates the chart's alert
# rules, rendered from the chart as its default values render them.
"$root/.deps/bin/helm" template sluice "$root/deploy/helm/sluice" --show-only templates/prometheus.yaml |
  "$root/.deps/venv/bin/python" -c '
import sys, yaml
for doc in yaml.safe_load_all(sys.stdin):
    if doc and doc.get("kind") == "ConfigMap" and "alerts.yaml" in doc.get("data", {}):
        sys.stdout.write(doc["data"]["alerts.yaml"])
' >"$state/prometheus/alerts.yaml"
{
  printf 'global:\n  scrape_interval: 5s\n  evaluation_interval: 15s\n'
  printf 'rule_files: ["%s"]\n' "$state/prometheus/alerts.yaml"
  printf 'scrape_configs:\n  - job_name: sluice\n    static_configs:\n'
  for target in "gateway:$GATEWAY_PORT" "processor:$PROCESSOR_PORT" "transformer:$TRANSFORMER_PORT" \
    "notifier:$NOTIFIER_PORT" "orchestrator:$ORCHESTRATOR_PORT" "file-ingest:$FILE_INGEST_PORT"; do
    printf '      - targets: ["127.0.0.1:%s"]\n        labels: {service: %s, pod: %s-local}\n' \
      "${target#*:}" "${target%%:*}" "${target%%:*}"
  done
} >"$state/prometheus/prometheus.yml"
start prometheus "port:$PROMETHEUS_PORT" "$root/.deps/bin/prometheus" \
  --config.file="$state/prometheus/prometheus.yml" --storage.tsdb.path="$state/data/prometheus" \
  --storage.tsdb.retention.time=7d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --log.level=warn
wait_port nats "$NATS_PORT"
wait_port dynamodb "$DYNAMO_PORT"
wait_port mailbox "$MAILBOX_PORT"
wait_port temporal "$TEMPORAL_PORT"
wait_port minio "$MINIO_PORT"
wait_port kafka "$KAFKA_PORT"
wait_port jaeger "$JAEGER_PORT"
wait_port prometheus "$PROMETHEUS_PORT"
# The topic the README's Kafka example produces to (kept if it exists).
java -cp "$kafka_libs/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
  --create --if-not-exists --topic carts --partitions 3 --replication-factor 1 >>"$state/log/kafka.log" 2>&1 ||
  echo "up: could not create the Kafka topic carts; see $state/log/kafka.log" >&2

# --- development credentials ---------------------------------------------------
if [ -f "$state/dev.env" ] && grep -q '^SLUICE_API_KEY=' "$state/dev.env"; then
  key="$(sed -n 's/^SLUICE_API_KEY=//p' "$state/dev.env")"
else
  key="dev-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
fi
gateway_url="http://127.0.0.1:$GATEWAY_PORT"
mailbox_url="http://127.0.0.1:$MAILBOX_PORT"
jaeger_url="http://127.0.0.1:$JAEGER_PORT"
prometheus_url="http://127.0.0.1:$PROMETHEUS_PORT"
printf 'SLUICE_GATEWAY_URL=%s\nSLUICE_API_KEY=%s\nSLUICE_SMTP_API_URL=%s\nSLUICE_JAEGER_URL=%s\nSLUICE_PROMETHEUS_URL=%s\n' \
  "$gateway_url" "$key" "$mailbox_url/api/messages" "$jaeger_url" "$prometheus_url" >"$state/dev.env"

# --- services --------------------------------------------------------------------
export SLUICE_NATS_URL="nats://127.0.0.1:$NATS_PORT"
export SLUICE_STORE_ENDPOINT_URL="http://127.0.0.1:$DYNAMO_PORT"
export SLUICE_GATEWAY_LISTEN="127.0.0.1:$GATEWAY_PORT"
export SLUICE_PROCESSOR_LISTEN="127.0.0.1:$PROCESSOR_PORT"
export SLUICE_TRANSFORMER_LISTEN="127.0.0.1:$TRANSFORMER_PORT"
export SLUICE_TRANSFORMER_GRPC_LISTEN="127.0.0.1:$TRANSFORMER_GRPC_PORT"
export SLUICE_TRANSFORMER_URL="http://127.0.0.1:$TRANSFORMER_GRPC_PORT"
export SLUICE_NOTIFIER_LISTEN="127.0.0.1:$NOTIFIER_PORT"
export SLUICE_NOTIFIER_GRPC_LISTEN="127.0.0.1:$NOTIFIER_GRPC_PORT"
export SLUICE_NOTIFIER_URL="http://127.0.0.1:$NOTIFIER_GRPC_PORT"
export SLUICE_ORCHESTRATOR_LISTEN="127.0.0.1:$ORCHESTRATOR_PORT"
export SLUICE_ORCHESTRATOR_GRPC_LISTEN="127.0.0.1:$ORCHESTRATOR_GRPC_PORT"
export SLUICE_ORCHESTRATOR_URL="http://127.0.0.1:$ORCHESTRATOR_GRPC_PORT"
export SLUICE_TEMPORAL_URL="http://127.0.0.1:$TEMPORAL_PORT"
export SLUICE_FILE_INGEST_LISTEN="127.0.0.1:$FILE_INGEST_PORT"
export SLUICE_S3_ENDPOINT="http://127.0.0.1:$MINIO_PORT"
export SLUICE_S3_ACCESS_KEY_ID=sluice
export SLUICE_S3_SECRET_ACCESS_KEY="$minio_secret"
export SLUICE_FILES_BUCKET=uploads
export SLUICE_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export SLUICE_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_HTTP_PORT"
export SLUICE_FILES_NOTIFY_ARN="arn:minio:sqs::SLUICE:nats"
# Approval links are signed with a key kept beside the data, so they keep
# working across restarts.
link_secret_file="$state/data/temporal/link-secret"
[ -f "$link_secret_file" ] || od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$link_secret_file"
SLUICE_LINK_SECRET="$(cat "$link_secret_file")"
export SLUICE_LINK_SECRET
export SLUICE_PUBLIC_URL="$gateway_url"
export SLUICE_SMTP_URL="smtp://sluice:$smtp_password@localhost:$SMTP_PORT"
export SLUICE_SMTP_CA_FILE="$state/data/mailbox/ca.pem"
# Rule targets and webhooks may not call sluice's own ports or the servers it runs on.
export SLUICE_TARGETS_DENY="127.0.0.1:$GATEWAY_PORT,127.0.0.1:$TRANSFORMER_PORT,127.0.0.1:$TRANSFORMER_GRPC_PORT,127.0.0.1:$SMTP_PORT,127.0.0.1:$SMTPS_PORT,127.0.0.1:$MAILBOX_PORT,127.0.0.1:$PROCESSOR_PORT,127.0.0.1:$NOTIFIER_PORT,127.0.0.1:$NOTIFIER_GRPC_PORT,127.0.0.1:$ORCHESTRATOR_PORT,127.0.0.1:$ORCHESTRATOR_GRPC_PORT,127.0.0.1:$NATS_PORT,127.0.0.1:$NATS_MONITOR_PORT,127.0.0.1:$DYNAMO_PORT,127.0.0.1:$TEMPORAL_PORT,127.0.0.1:$TEMPORAL_UI_PORT,127.0.0.1:$TEMPORAL_HTTP_PORT,127.0.0.1:$TEMPORAL_METRICS_PORT,127.0.0.1:$FILE_INGEST_PORT,127.0.0.1:$MINIO_PORT,127.0.0.1:$MINIO_CONSOLE_PORT,127.0.0.1:$KAFKA_PORT,127.0.0.1:$KAFKA_CONTROLLER_PORT,127.0.0.1:$JAEGER_PORT,127.0.0.1:$JAEGER_GRPC_PORT,127.0.0.1:$OTLP_GRPC_PORT,127.0.0.1:$OTLP_HTTP_PORT,127.0.0.1:$PROMETHEUS_PORT${SLUICE_TARGETS_DENY:+,$SLUICE_TARGETS_DENY}"
export SLUICE_GATEWAY_API_KEYS="[{\"principal\":\"dev\",\"key\":\"$key\",\"scopes\":[\"*\"]}]"
start processor "http://127.0.0.1:$PROCESSOR_PORT/healthz" "$bin/sluice-processor"
start transformer "http://127.0.0.1:$TRANSFORMER_PORT/healthz" "$bin/sluice-transformer"
start notifier "http://127.0.0.1:$NOTIFIER_PORT/healthz" "$bin/sluice-notifier"
start orchestrator "http://127.0.0.1:$ORCHESTRATOR_PORT/healthz" "$bin/sluice-orchestrator"
start file-ingest "http://127.0.0.1:$FILE_INGEST_PORT/healthz" "$bin/sluice-file-ingest"
start gateway "$gateway_url/healthz" "$bin/sluice-gateway"
wait_http processor "http://127.0.0.1:$PROCESSOR_PORT/readyz"
wait_http transformer "http://127.0.0.1:$TRANSFORMER_PORT/readyz"
wait_http notifier "http://127.0.0.1:$NOTIFIER_PORT/readyz"
wait_http orchestrator "http://127.0.0.1:$ORCHESTRATOR_PORT/readyz"
wait_http file-ingest "http://127.0.0.1:$FILE_INGEST_PORT/readyz"
wait_http gateway "$gateway_url/readyz"
bash "$root/scripts/seed.sh" "$gateway_url" "$key" "$mailbox_url/api/messages"

cat <<MSG

sluice is up.
  gateway      $gateway_url   (OpenAPI: $gateway_url/openapi.json)
  dev API key  $key   (every scope)
  transformer  gRPC http://127.0.0.1:$TRANSFORMER_GRPC_PORT (buses, rules, queues; the gateway serves them as REST)
  notifier     gRPC http://127.0.0.1:$NOTIFIER_GRPC_PORT (topics; the gateway serves them as REST)
  orchestrator gRPC http://127.0.0.1:$ORCHESTRATOR_GRPC_PORT (workflows on Temporal; the gateway serves them as REST)
  mailbox      email sent by sluice: $mailbox_url/api/messages (SMTP with STARTTLS on 127.0.0.1:$SMTP_PORT)
  temporal     UI http://127.0.0.1:$TEMPORAL_UI_PORT  (frontend 127.0.0.1:$TEMPORAL_PORT, namespace default)
  object store MinIO S3 API http://127.0.0.1:$MINIO_PORT, console http://127.0.0.1:$MINIO_CONSOLE_PORT (user sluice, password in $minio_secret_file)
  kafka        127.0.0.1:$KAFKA_PORT (one KRaft node; kafka targets produce here)
  files        POST $gateway_url/v1/files answers an upload URL; uploads to bucket uploads start the file pipeline (file-ingest)
  tasks        $gateway_url/v1/tasks; completing one of ${SLUICE_TASKS_OWNER:-owner@example.com}'s tasks emails them
  traces       Jaeger $jaeger_url (query API: $jaeger_url/api/traces/<trace id>; every response's
               traceresponse header names its trace: 00-<trace id>-<span id>-<flags>)
  one request  grep -h <trace id> $state/log/*.log   (every log line carries its trace_id)
  prometheus   $prometheus_url (every service scraped, the chart's alert rules loaded:
               $prometheus_url/api/v1/query?query=up, $prometheus_url/api/v1/alerts)
  metrics      $gateway_url/metrics, http://127.0.0.1:$PROCESSOR_PORT/metrics, http://127.0.0.1:$TRANSFORMER_PORT/metrics, http://127.0.0.1:$NOTIFIER_PORT/metrics, http://127.0.0.1:$ORCHESTRATOR_PORT/metrics, http://127.0.0.1:$FILE_INGEST_PORT/metrics
  logs         $state/log/
These are in .sluice/dev.env:   source .sluice/dev.env
MSG
