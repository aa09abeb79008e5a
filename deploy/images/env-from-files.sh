#!/bin/sh
# Entrypoint helper: for every DEEPGUARD_*_FILE=/path (and VLLM_API_KEY_FILE) in the environment,
# export the variable without _FILE with the file's content, then exec the command. Other *_FILE
# variables are left alone: they may mean something else to the program.
# Lets compose secrets (/run/secrets/...) feed DEEPGUARD_AUTH_API_KEYS or VLLM_API_KEY without
# putting keys in compose.yaml or in what `docker inspect` shows.
set -eu
for pair in $(env | grep -oE '^(DEEPGUARD_[A-Z0-9_]*|VLLM_API_KEY)_FILE=' || true); do
    name="${pair%_FILE=}"
    path="$(printenv "${name}_FILE")"
    if [ ! -r "$path" ]; then
        echo "env-from-files: ${name}_FILE points at $path, which is not readable" >&2
        exit 1
    fi
    value="$(cat "$path")"
    export "$name=$value"
    unset "${name}_FILE"
done
exec "$@"
