#!/usr/bin/env bash
# Installs the task app's default routing (run by `make up`; idempotent):
#
#   rule task-completed   TaskCompleted -> topic task-completed, whose email
#                         subscription for $SLUICE_TASKS_OWNER (default
#                         owner@example.com) tells that owner, confirmed
#                         through the mailbox
#   rule task-approval    high-priority TaskCreated -> workflow target
#                         "approval" (the orchestrator runs it; until it
#                         exists the deliveries wait in the target's backlog)
#
# Usage: seed.sh <gateway URL> <API key> <mailbox API URL>
set -euo pipefail
gateway="$1" key="$2" mailbox="$3"
owner="${SLUICE_TASKS_OWNER:-owner@example.com}"

call() { # method path [body]
  local out code
  out="$(curl -sS -m 10 -X "$1" "$gateway$2" -H "x-api-key: $key" \
    -H 'content-type: application/json' ${3:+-d "$3"} -w '\n%{http_code}')"
  code="${out##*$'\n'}"
  if [ "${code:0:1}" != 2 ]; then
    echo "seed: $1 $2 answered $code: ${out%$'\n'*}" >&2
    return 1
  fi
  printf '%s' "${out%$'\n'*}"
}

call PUT /v1/topics/task-completed '{"display_name": "sluice tasks"}' >/dev/null
call PUT /v1/buses/default/rules/task-completed '{
  "description": "tell a task'"'"'s owner it is completed",
  "event_pattern": {"source": ["sluice.tasks"], "detail-type": ["TaskCompleted"]},
  "targets": [{"type": "topic", "id": "owner-email", "topic": "task-completed",
    "input_transformer": {
      "input_paths_map": {"title": "$.detail.title", "owner": "$.detail.userId", "task": "$.detail.taskId"},
      "input_template": "{\"owner\": <owner>, \"task\": <task>, \"text\": \"Your task <title> is completed.\"}"}}]}' >/dev/null
call PUT /v1/buses/default/rules/task-approval '{
  "description": "high-priority tasks need an approval",
  "event_pattern": {"source": ["sluice.tasks"], "detail-type": ["TaskCreated"], "detail": {"priority": ["high"]}},
  "targets": [{"type": "workflow", "id": "approval", "workflow_type": "approval"}]}' >/dev/null

sub="$(call POST /v1/topics/task-completed/subscriptions "{
  \"protocol\": \"email\", \"endpoint\": \"$owner\",
  \"filter_policy_scope\": \"MessageBody\", \"filter_policy\": {\"owner\": [\"$owner\"]}}")"
status="$(printf '%s' "$sub" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
if [ "$status" = "pending_confirmation" ]; then
  # The confirmation email reaches the mailbox; open its link.
  link=""
  for _ in $(seq 1 100); do
    link="$(curl -sS -m 5 "$mailbox?to=$owner" | python3 -c '
import json, re, sys
for m in reversed(json.load(sys.stdin)):
    found = re.search(r"\S*/confirm\?token=\S+", m.get("text", ""))
    if found:
        print(found.group(0)); break
' || true)"
    [ -n "$link" ] && break
    sleep 0.1
  done
  if [ -z "$link" ]; then
    echo "seed: no confirmation email for $owner in $mailbox" >&2
    exit 1
  fi
  curl -sS -m 10 -o /dev/null -f "$link"
fi
echo "seed: task rules installed; completions of $owner's tasks are emailed to $owner"
