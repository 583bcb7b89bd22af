# shellcheck shell=bash
# The values cases the chart is checked with (sourced by check-chart.sh and
# check-apiserver.sh; needs $chart): a name and helm options each. The
# defaults, each environment, and the optional parts switched on.
# shellcheck disable=SC2034 # used by the scripts that source this
cases=(
  "default|"
  "dev|-f $chart/values-dev.yaml"
  "staging|-f $chart/values-staging.yaml"
  "prod|-f $chart/values-prod.yaml"
  "options|--set httpRoute.enabled=true --set httpRoute.parentRefs[0].name=gw --set prometheus.rules.prometheusRule=true --set prometheus.podMonitor.enabled=true --set nats.auth.enabled=false --set secrets.existingSecret=mine"
)
