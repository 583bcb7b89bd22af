# shellcheck shell=bash
# Process helpers shared by up.sh and down.sh (sourced; needs $state).
# shellcheck disable=SC2154 # $state is set by the script that sources this

# A pid file names a live process only if that pid exists, is not a zombie
# (a SIGKILLed child nobody has reaped yet) and still runs the same program.
alive() { # name
  local f="$state/run/$1.pid" pid st
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -r "/proc/$pid/stat" ] || return 1
  st="$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
  case "$st" in Z|X|x) return 1 ;; esac
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(cat "$state/run/$1.cmd" 2>/dev/null || echo "$1")"
}

stop_pid() { # name: TERM, then KILL after 10 s
  local pid; pid="$(cat "$state/run/$1.pid" 2>/dev/null)" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do alive "$1" || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
}

