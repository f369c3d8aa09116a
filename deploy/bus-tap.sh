#!/usr/bin/env bash
# bus-tap.sh URL [TYPE-PREFIX] [COUNT]
#
# Shows live bus events as text with the real tools: nngcat subscribes (one
# line per message, hex-escaped), and protoc decodes the Envelope after the
# bus header (type, 0x00, partition u32, seq u64; common/bus.h).  For
# example, with `make run` going:
#
#     deploy/bus-tap.sh ipc://.run/intake.pub case.
#
# TYPE-PREFIX filters with NNG_OPT_SUB_SUBSCRIBE ("case." for every case
# event); COUNT stops after that many messages (default: run until ^C).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
url=${1:?usage: bus-tap.sh URL [TYPE-PREFIX] [COUNT]}
prefix=${2:-}
count=${3:-0}
args=(--sub --dial "$url" --subscribe "$prefix" --hex)
[ "$count" -gt 0 ] && args+=(--count "$count")
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
nngcat "${args[@]}" | while IFS= read -r line; do
    line=${line#\"}
    line=${line%\"}
    head=${line%%\\x00*}           # the type, still escaped
    type=$(printf '%b' "$head")
    rest=${line:${#head}}          # \x00, partition, seq, envelope
    printf '%b' "$rest" >"$tmp"
    partition=$(od -An -tu1 -j1 -N4 "$tmp" | awk '{print $1*16777216 + $2*65536 + $3*256 + $4}')
    seq=$(od -An -tu1 -j5 -N8 "$tmp" | awk '{s = 0; for (i = 1; i <= 8; i++) s = s * 256 + $i; printf "%.0f", s}')
    echo "--- $type  partition $partition  seq $seq"
    tail -c +14 "$tmp" | protoc --decode=shouwen.v1.Envelope -I "$top/proto" \
        "$top/proto/shouwen/v1/envelope.proto"
done
