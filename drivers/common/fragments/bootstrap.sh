#!/bin/bash
# The last step of every node's user data: runs the bootstrap fragments in
# order, then tells Heat how it went through the node's wait condition
# handle, so that a cluster is CREATE_COMPLETE only when its nodes say so.
# SUCCESS after the last fragment, with what the node runs (coe_version, a
# function of the driver's lib.sh); FAILURE at the first failing fragment,
# naming the node, the fragment and the last lines of its output, and the
# node stops there (upstream signals from each driver's last fragment,
# magnum/drivers/common/templates/kubernetes/fragments/wc-notify-master.sh).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib-common.sh
. /var/lib/magnum/lib.sh

LOG_DIR=/var/log/magnum
mkdir -p "$LOG_DIR"
node=${NODE_NAME:-$(node_name)}

for fragment in /var/lib/magnum/fragments/*.sh; do
    step=$(basename "$fragment")
    output=$LOG_DIR/$step.log
    # pipefail: the fragment's status, with its output on the console too.
    if ! bash "$fragment" 2>&1 | tee "$output"; then
        reason="$node: bootstrap step $step failed: $(tail -n 10 "$output")"
        log "$step failed; signalling FAILURE"
        signal_heat FAILURE "$reason" null || log "could not signal the failure to Heat"
        exit 1
    fi
done

version=$(coe_version 2>/dev/null || true)
data=$(printf '{"node": %s, "coe_version": %s}' "$(json_string "$node")" "$(json_string "$version")")
signal_heat SUCCESS "$node: bootstrap complete" "$data"
log "bootstrap complete (${version:-unknown version})"
