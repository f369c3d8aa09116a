#!/usr/bin/env bash
# bus-tap.sh URL [TYPE-PREFIX] [COUNT]
#
# Shows live bus events as text with the real tools: nngcat subscribes (one
# line per message, hex-escaped), and protoc decodes each Envelope.  A
# message rings for one event (type, 0x00, partition u32, seq u64,
# Envelope) or for a batch of one type (type, 0x00, 0xFFFFFFFF, count u64,
# then partition u32, seq u64, length u32 and Envelope for each event;
# common/bus.h).  For example, with `make run` going:
#
#     deploy/bus-tap.sh ipc://.run/intake.pub case.
#
# TYPE-PREFIX filters with NNG_OPT_SUB_SUBSCRIBE ("case." for every case
# event); COUNT stops after that many messages, a batch being one (default:
# run until ^C).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
url=${1:?usage: bus-tap.sh URL [TYPE-PREFIX] [COUNT]}
prefix=${2:-}
count=${3:-0}
args=(--sub --dial "$url" --subscribe "$prefix" --hex)
[ "$count" -gt 0 ] && args+=(--count "$count")
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
u32() { od -An -tu1 -j"$1" -N4 "$tmp" | awk '{printf "%.0f", $1 * 16777216 + $2 * 65536 + $3 * 256 + $4}'; }
u64() { od -An -tu1 -j"$1" -N8 "$tmp" | awk '{s = 0; for (i = 1; i <= 8; i++) s = s * 256 + $i; printf "%.0f", s}'; }
show() { # show PARTITION SEQ OFFSET LENGTH: one event's header, then its Envelope decoded
    echo "--- $type  partition $1  seq $2"
    tail -c +$(($3 + 1)) "$tmp" | head -c "$4" | protoc --decode=shouwen.v1.Envelope -I "$top/proto" \
        "$top/proto/shouwen/v1/envelope.proto"
}
nngcat "${args[@]}" | while IFS= read -r line; do
    line=${line#\"}
    line=${line%\"}
    head=${line%%\\x00*}           # the type, still escaped
    type=$(printf '%b' "$head")
    rest=${line:${#head}}          # \x00, then the rest of the header and the events
    printf '%b' "$rest" >"$tmp"
    partition=$(u32 1)
    if [ "$partition" = 4294967295 ]; then # a batch
        n=$(u64 5)
        at=13
        size=$(stat -c %s "$tmp")
        for ((k = 0; k < n && at + 16 <= size; k++)); do # a count past the bytes stops at them
            len=$(u32 $((at + 12)))
            show "$(u32 "$at")" "$(u64 $((at + 4)))" $((at + 16)) "$len"
            at=$((at + 16 + len))
        done
    else
        show "$partition" "$(u64 5)" 13 $(($(stat -c %s "$tmp") - 13))
    fi
done
