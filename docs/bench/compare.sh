#!/usr/bin/env bash
# Builds openidp and the zitadel/oidc example OP (the protocol library's own in-memory
# provider, from the Go module cache: nothing of it is copied here), runs each pinned to
# one CPU with `idp bench` pinned to another, and prints one table per target.
# docs/performance.md explains the method and what the figures mean.
#
# Usage: docs/bench/compare.sh [TARGET...]     TARGET: sqlite postgres example (default all)
#
# Environment:
#   DURATION=15s      how long each scenario runs
#   CONCURRENCY=8     bench workers
#   ROUNDS=1          run the scenarios this many times over and report each one's median
#                     round (with every round's req/s); 3 or 5 steady a noisy machine
#   FORMATS="jwt opaque"
#                     openidp runs once per access-token format of its seeded clients:
#                     jwt (its default, one signature per token) and opaque (an encrypted
#                     reference, as the example OP's clients have); compare with the
#                     example at the same format
#   PEOPLE=1000       people seeded (and as many with TOTP): enough that no TOTP code is
#                     reused at the password + TOTP rate (about 1 person per sign-in per 30 s)
#   SERVER_CPU=0      CPU the server is pinned to (taskset -c)
#   BENCH_CPU=1       CPU the bench is pinned to
#   PG_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
#                     a PostgreSQL the script may create and drop a database in
#   OUT=DIR           also write each report as JSON to DIR/<target>.json
#   LABEL=...         a line printed above every table (e.g. "quiet machine")
set -euo pipefail

DURATION=${DURATION:-15s}
CONCURRENCY=${CONCURRENCY:-8}
ROUNDS=${ROUNDS:-1}
PEOPLE=${PEOPLE:-1000}
FORMATS=${FORMATS:-jwt opaque}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
LABEL=${LABEL:-}
OUT=${OUT:-}
ZITADEL_OIDC=github.com/zitadel/oidc/v3@v3.49.2
PORT_IDP=18080
PORT_EXAMPLE=9998 # the example's issuer is http://localhost:<PORT>/

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(sqlite postgres example)

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
server_pid=
pg_db=
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
	if [ -n "$pg_db" ]; then psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "building into $work" >&2
(cd "$root" && go build -o "$work/idp" ./cmd/idp)
# The example is built as a package of the module the project already requires, at the
# pinned version, from the module cache.
(cd "$root" && go mod download "$ZITADEL_OIDC" && go build -o "$work/exampleop" github.com/zitadel/oidc/v3/example/server)

# wait_for URL: polls until URL answers 200 (at most 30 s).
wait_for() {
	for _ in $(seq 300); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no answer from $1" >&2
	return 1
}

# bench ARGS...: runs idp bench pinned, printing the table (and writing JSON to $OUT).
bench() {
	local name=$1
	shift
	local label="$name, server on CPU $SERVER_CPU, bench on CPU $BENCH_CPU, $CONCURRENCY workers, $DURATION per scenario$([ "$ROUNDS" -gt 1 ] && echo ", median of $ROUNDS rounds")${LABEL:+, $LABEL}"
	local json=()
	if [ -n "$OUT" ]; then
		mkdir -p "$OUT"
		json=(--json-out "$OUT/$name.json")
	fi
	taskset -c "$BENCH_CPU" "$work/idp" bench --concurrency "$CONCURRENCY" --duration "$DURATION" --rounds "$ROUNDS" --label "$label" "${json[@]}" "$@"
	echo
}

stop_server() {
	kill "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

# openidp DATABASE NAME FORMAT: serves openidp on DATABASE pinned, seeds clients with
# access tokens of FORMAT and benches it.
openidp() {
	local db=$1 name=$2 format=$3 issuer=http://127.0.0.1:$PORT_IDP
	export IDP_ENCRYPTION_KEY
	IDP_ENCRYPTION_KEY=$(openssl rand -base64 32)
	"$work/idp" --database "$db" --log-level warn migrate >/dev/null
	# --trusted-proxies lets the bench spread its sign-ins over many addresses
	# (--forwarded-for): /authorize allows 60 requests a minute per address.
	taskset -c "$SERVER_CPU" "$work/idp" --database "$db" --log-level warn serve \
		--addr "127.0.0.1:$PORT_IDP" --issuer "$issuer" --trusted-proxies 127.0.0.1 >"$work/$name.log" 2>&1 &
	server_pid=$!
	wait_for "$issuer/.well-known/openid-configuration"
	bench "$name" --database "$db" --log-level warn --issuer "$issuer" --people "$PEOPLE" --forwarded-for \
		--access-token-format "$format"
	stop_server
}

for t in "${targets[@]}"; do
	case $t in
	sqlite)
		for f in $FORMATS; do
			openidp "sqlite:$work/idp-$f.db" "openidp-sqlite-$f" "$f"
		done
		;;
	postgres)
		for f in $FORMATS; do
			pg_db=idp_bench_$$_$f
			psql -q "$PG_URL" -c "CREATE DATABASE $pg_db" >/dev/null
			openidp "$(echo "$PG_URL" | sed -E "s#/[^/?]*(\?|$)#/$pg_db\1#")" "openidp-postgres-$f" "$f"
			psql -q "$PG_URL" -c "DROP DATABASE $pg_db" >/dev/null
			pg_db=
		done
		;;
	example)
		# The example OP: in memory, no audit, plain-text passwords, no SSO session (its
		# "sso" row is a full sign-in, and it has no TOTP). Its clients and user are fixed:
		# service sid1, web client "web" (which introspects its own tokens), test-user.
		PORT=$PORT_EXAMPLE REDIRECT_URI=https://bench.example.com/callback \
			taskset -c "$SERVER_CPU" "$work/exampleop" >"$work/example.log" 2>&1 &
		server_pid=$!
		wait_for "http://localhost:$PORT_EXAMPLE/.well-known/openid-configuration"
		bench "zitadel-oidc-example" --issuer "http://localhost:$PORT_EXAMPLE" --no-seed \
			--scenarios client_credentials,introspection,refresh,password,sso \
			--client-id sid1 --client-secret verysecret --app-client-id web --app-client-secret secret \
			--redirect-uri https://bench.example.com/callback --username test-user@localhost --password verysecure \
			--introspect-with app
		stop_server
		;;
	*)
		echo "unknown target $t: use sqlite, postgres or example" >&2
		exit 2
		;;
	esac
done
