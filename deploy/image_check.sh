#!/usr/bin/env bash
# Build the real Dockerfile and run the image, without a Docker engine (buildah, chroot
# isolation), on a Debian base made here by debootstrap: only the base differs from the
# shipped image (BASE_IMAGE build argument; the shipped default is debian:bookworm-slim, the
# same release). Checks: the CUDA and cuDNN libraries load from the image's wheels (all but
# the driver's), the image's own HEALTHCHECK command passes, the README's curl example answers,
# the process runs as the image's non-root user with the models mounted read-only and writes
# nothing into its root filesystem, and SIGTERM stops it within 10 s. Prints the image size.
#
#   bash deploy/image_check.sh        (as root; .ci/run calls it; needs buildah and debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
  echo "image check skipped: buildah and debootstrap are not installed (apt-get install buildah debootstrap)"
  exit 0
fi
BUILDAH=(buildah --storage-driver vfs)
WORK=/var/tmp/rul-image-check
PORT=18765
mkdir -p "$WORK"

# 1. The base: a minimal Debian with Python (cached between runs).
if ! "${BUILDAH[@]}" images --quiet localhost/rul-base:bookworm >/dev/null 2>&1; then
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
  tar -C "$WORK/rootfs" -czf "$WORK/rootfs.tar.gz" .
  printf 'FROM scratch\nADD rootfs.tar.gz /\n' >"$WORK/Containerfile"
  "${BUILDAH[@]}" bud --quiet --isolation chroot -t localhost/rul-base:bookworm "$WORK" >/dev/null
fi

# 2. The project's Dockerfile on that base. This machine's CA bundle and pip configuration are
#    mounted for the build only (never baked into the image).
mounts=()
for path in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf /etc/xdg/pip; do
  [ -e "$path" ] && mounts+=(-v "$path:$path:ro")
done
started=$(date +%s)
"${BUILDAH[@]}" bud --quiet --format docker --isolation chroot --network host "${mounts[@]}" \
  --build-arg BASE_IMAGE=localhost/rul-base:bookworm -t localhost/rul-service:ci . >/dev/null
echo "image built in $(($(date +%s) - started)) s: $("${BUILDAH[@]}" images --format '{{.Size}}' localhost/rul-service:ci)"
# the previous run's image, untagged by this build: 3 GB each, so not left to pile up
"${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true

# 3. Run it as the image's user, the models mounted read-only.
image_config=$("${BUILDAH[@]}" inspect --type image localhost/rul-service:ci)
user=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Docker"]["config"]["User"])' <<<"$image_config")
mapfile -t healthcheck < <(python3 -c '
import json, sys
test = json.load(sys.stdin)["Docker"]["config"]["Healthcheck"]["Test"]
assert test[0] == "CMD", test
print("\n".join(test[1:]))' <<<"$image_config")
[ "$user" != "" ] && [ "$user" != "0" ] && [ "$user" != "root" ] || { echo "FAIL: the image runs as root"; exit 1; }
container=$("${BUILDAH[@]}" from localhost/rul-service:ci)
rootfs=$("${BUILDAH[@]}" mount "$container")
cleanup() {
  pkill -KILL -f "rul-serve" -U "$user" 2>/dev/null || true
  "${BUILDAH[@]}" umount "$container" >/dev/null 2>&1 || true
  "${BUILDAH[@]}" rm "$container" >/dev/null 2>&1 || true
}
trap cleanup EXIT
# /run is left out: buildah run itself puts its runtime files there
snapshot() { (cd "$rootfs" && find . -path ./tmp -prune -o -path ./proc -prune -o -path ./dev -prune -o -path ./sys -prune -o -path ./app/models -prune -o -path ./run -prune -o -printf '%p %s %T@\n' | sort); }
snapshot >"$WORK/before.txt"
run_options=("${BUILDAH[@]}" run --isolation chroot --network host --user "$user" -e "RUL_PORT=$PORT"
             --mount "type=bind,source=$PWD/models,destination=/app/models,ro=true")
run=("${run_options[@]}" "$container")

# 3a. ONNX Runtime's CUDA and cuDNN libraries load from the image's own wheels.
"${run_options[@]}" --mount "type=bind,source=$PWD/deploy/cuda_libraries_check.py,destination=/tmp/cuda_check.py,ro=true" \
  "$container" -- python3 /tmp/cuda_check.py || { echo "FAIL: CUDA libraries"; exit 1; }
"${run[@]}" -- rul-serve >"$WORK/serve.log" 2>&1 &
server=$!

# 4. The image's own HEALTHCHECK command, run inside the container, until it passes (90 s).
for _ in $(seq 1 45); do
  if RUL_PORT=$PORT "${run[@]}" -- env "RUL_PORT=$PORT" "${healthcheck[@]}" >/dev/null 2>&1; then
    echo "HEALTHCHECK passed"
    break
  fi
  kill -0 "$server" 2>/dev/null || { echo "FAIL: rul-serve exited"; cat "$WORK/serve.log"; exit 1; }
  sleep 2
done
RUL_PORT=$PORT "${run[@]}" -- env "RUL_PORT=$PORT" "${healthcheck[@]}" || { echo "FAIL: HEALTHCHECK never passed"; tail -20 "$WORK/serve.log"; exit 1; }

# 4a. Without a GPU driver here the service says, once, that it runs on the CPU and that only
#     the driver's library is missing (every CUDA library of the image loaded).
if ! [ -e /dev/nvidiactl ]; then
  grep -q "CUDA EXECUTION PROVIDER NOT ACTIVE.*missing: libcuda.so.1, the NVIDIA driver's library" "$WORK/serve.log" \
    || { echo "FAIL: the CPU fallback warning does not name the driver"; grep -i cuda "$WORK/serve.log"; exit 1; }
  echo "CPU fallback reported: only the driver's libcuda.so.1 missing"
fi
if grep -q "onnxruntime" <(grep "\[W:\|\[E:" "$WORK/serve.log"); then
  echo "FAIL: ONNX Runtime's own warnings in the service log:"; grep "\[W:\|\[E:" "$WORK/serve.log"; exit 1
fi

# 5. The README's curl example.
answer=$(curl -sf -X POST "http://127.0.0.1:$PORT/v1/predict" -H 'Content-Type: application/json' -d @service/examples/predict_fd001.json)
python3 -c '
import json, sys
body = json.loads(sys.argv[1])
assert body["model"] == "fd001" and len(body["predictions"]) == 2, body
for p in body["predictions"]:
    assert p["rul"] >= 0 and p["health_state"] in ("normal", "degrading", "critical"), p
print("README example answered:", [(p["id"], round(p["rul"], 1), p["health_state"]) for p in body["predictions"]])' "$answer"

# 6. Not root; nothing written into the root filesystem (it can be mounted read-only).
pid=$(pgrep -f -n "bin/rul-serve" -U "$user") || { echo "FAIL: no rul-serve process of user $user"; exit 1; }
echo "rul-serve runs as uid $(awk '/^Uid:/ {print $2}' "/proc/$pid/status") (the image's user $user)"
snapshot >"$WORK/after.txt"
if ! diff -q "$WORK/before.txt" "$WORK/after.txt" >/dev/null; then
  echo "FAIL: the service wrote into its root filesystem:"; diff "$WORK/before.txt" "$WORK/after.txt" | head; exit 1
fi
# as root, so that only the read-only mount (not file permissions) can refuse the write
if "${BUILDAH[@]}" run --isolation chroot --user 0 --mount "type=bind,source=$PWD/models,destination=/app/models,ro=true" \
    "$container" -- sh -c 'touch /app/models/probe' 2>/dev/null; then
  echo "FAIL: the models directory was writable"; rm -f models/probe; exit 1
fi
echo "nothing written into the root filesystem outside /tmp; the models directory is read-only"

# 7. SIGTERM stops it cleanly within 10 s.
stopping=$(date +%s.%N)
kill -TERM "$pid"
for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$pid" 2>/dev/null; then echo "FAIL: still running 10 s after SIGTERM"; exit 1; fi
wait "$server" || true
grep -q "Finished server process" "$WORK/serve.log" || { echo "FAIL: no clean shutdown in the log"; tail "$WORK/serve.log"; exit 1; }
echo "SIGTERM: stopped cleanly in $(python3 -c "import sys, time; print(round(time.time() - float(sys.argv[1]), 1))" "$stopping") s"
echo "image check passed"
