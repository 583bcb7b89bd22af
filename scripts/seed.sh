#!/usr/bin/env bash
# Installs the task app's default routing (run by `make up`; idempotent):
#
#   rule task-completed   TaskCompleted -> topic task-completed, whose email
#                         subscription for $SLUICE_TASKS_OWNER (default
#                         owner@example.com) tells that owner, confirmed
#                         through the mailbox
#   rule task-approval    high-priority TaskCreated -> workflow target
#                         "approval", run by the orchestrator
#   topic task-approvals  the approval requests; an email subscription per
#                         approver ($SLUICE_APPROVAL_APPROVERS) filtered on
#                         the `approver` attribute
#   topic file-events     file notices; an email subscription for
#                         $SLUICE_FILES_OWNER_EMAIL (default dev@example.com)
#                         filtered on the owner `dev` (the dev key)
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

# Subscribes an email address to a topic with a filter policy and, when it
# waits for confirmation, opens the link the mailbox received.
subscribe_email() { # topic address filter-policy-json [scope]
  local sub status link
  sub="$(call POST "/v1/topics/$1/subscriptions" "{
    \"protocol\": \"email\", \"endpoint\": \"$2\",
    \"filter_policy_scope\": \"${4:-MessageAttributes}\", \"filter_policy\": $3}")"
  status="$(printf '%s' "$sub" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
  [ "$status" = "pending_confirmation" ] || return 0
  link=""
  for _ in $(seq 1 100); do
    link="$(curl -sS -m 5 "$mailbox?to=$2" | python3 -c '
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
    echo "seed: no confirmation email for $2 in $mailbox" >&2
    exit 1
  fi
  curl -sS -m 10 -o /dev/null -f "$link"
}

subscribe_email task-completed "$owner" "{\"owner\": [\"$owner\"]}" MessageBody

# Approval requests: the orchestrator publishes one per approver asked,
# with the approver as the `approver` attribute; each approver's email
# subscription takes its own.
approvers="${SLUICE_APPROVAL_APPROVERS:-approver@example.com,escalation@example.com}"
call PUT /v1/topics/task-approvals '{"display_name": "sluice approvals"}' >/dev/null
IFS=',' read -r -a list <<<"$approvers"
for a in "${list[@]}"; do
  subscribe_email task-approvals "$a" "{\"approver\": [\"$a\"]}"
done
# File notices: file-ingest publishes one when a file is processed or
# dead-lettered, with its owner (the principal that registered it) as the
# `owner` attribute. The dev key's principal is `dev`.
files_email="${SLUICE_FILES_OWNER_EMAIL:-dev@example.com}"
call PUT /v1/topics/file-events '{"display_name": "sluice files"}' >/dev/null
subscribe_email file-events "$files_email" '{"owner": ["dev"]}'

echo "seed: files registered with the dev key are reported to $files_email"
echo "seed: task rules installed; completions of $owner's tasks are emailed to $owner; approvals go to $approvers"
