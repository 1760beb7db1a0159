# shellcheck shell=bash
# Shared by the benchmark scripts in bench/ (bench/run, bench/latency,
# bench/logins): the nginx upstream and the peers (nginx proxy_pass, haproxy +
# JWT, bare pingora, authgate), process bookkeeping and cleanup, tool
# installation, CPU pinning, tokens, smoke checks and /proc accounting.
# Sourced, not run. The caller sets BENCH_DIR, ROOT and RESULTS_DIR first, and
# may set BENCH_TAG (the prefix of log lines), SKIP_AUTHGATE, REVOKED,
# AUTHGATE_LOG_LEVEL, KEEP_TMP and NO_INSTALL before sourcing.
#
# authgate's generated config: see write_authgate_config (AG_HASH_THREADS,
# AG_HASH_QUEUE, AG_LOGIN_FAILURES add keys; unset, it is bench/run's config).

BENCH_TAG="${BENCH_TAG:-bench}"
SKIP_AUTHGATE="${SKIP_AUTHGATE:-0}"
KEEP_TMP="${KEEP_TMP:-0}"
NO_INSTALL="${NO_INSTALL:-0}"
AUTHGATE_LOG_LEVEL="${AUTHGATE_LOG_LEVEL:-warn}"
REVOKED="${REVOKED:-0}"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BARE_PROXY_BIN="${BARE_PROXY_BIN:-$TARGET_DIR/release/examples/bare_proxy}"
LEAN_CORE_BIN="${LEAN_CORE_BIN:-$TARGET_DIR/release/examples/lean_core}"
AUTHGATE_BIN="${AUTHGATE_BIN:-$TARGET_DIR/release/authgate}"

HOST=127.0.0.1
# Each can be moved from the environment (PORT_UPSTREAM=18081 ...), e.g. when another
# benchmark holds these.
PORT_UPSTREAM="${PORT_UPSTREAM:-8081}"
PORT_A="${PORT_A:-8090}"   # nginx proxy
PORT_B="${PORT_B:-8091}"   # haproxy + JWT
PORT_C="${PORT_C:-8092}"   # bare pingora
PORT_D="${PORT_D:-8093}"   # authgate
PORT_L="${PORT_L:-8094}"   # lean pingora-core floor

# Upper bounds so nothing can hang: readiness polls, single HTTP checks, builds.
READY_TIMEOUT=30      # seconds for a server to open its port
CURL_TIMEOUT=5        # seconds for one smoke-check request
BUILD_TIMEOUT=3600    # seconds for cargo build

log() { printf '[%s] %s\n' "$BENCH_TAG" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$BENCH_TAG" "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Process bookkeeping and cleanup
# ---------------------------------------------------------------------------

SCRATCH=""
PIDS=()        # every server we started, stopped on exit
declare -A PID # server name -> PID
FAILED=1       # cleared at the very end of a successful run

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # Give them a moment, then make sure.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local alive=0
        for pid in "${PIDS[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then alive=1; fi
        done
        [ "$alive" -eq 0 ] && break
        sleep 0.2
    done
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ -n "$SCRATCH" ] && [ -d "$SCRATCH" ]; then
        if [ "$FAILED" -eq 0 ] && [ "$KEEP_TMP" != 1 ]; then
            rm -rf "$SCRATCH"
        else
            log "configs and logs kept in $SCRATCH"
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

# ensure_tools [COMMAND:PACKAGE ...]: installs with apt-get whatever is missing
# of nginx, haproxy, wrk, curl, openssl and the extra commands given.
ensure_tools() {
    local missing=() want
    for want in nginx:nginx haproxy:haproxy wrk:wrk curl:curl openssl:openssl "$@"; do
        command -v "${want%%:*}" >/dev/null || missing+=("${want#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$NO_INSTALL" != 1 ] || die "missing tools: ${missing[*]} (NO_INSTALL=1)"
        command -v apt-get >/dev/null || die "missing tools: ${missing[*]} and no apt-get"
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        log "installing ${missing[*]}"
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # jwt_verify arrived in haproxy 2.5.
    local hv
    hv="$(haproxy -v | sed -n 's/^HA-\{0,1\}Proxy version \([0-9]*\.[0-9]*\).*/\1/p' | head -n1)"
    case "$hv" in
        1.*|2.[0-4]|"") die "haproxy ${hv:-?} has no jwt_verify; 2.5 or later is needed" ;;
    esac
}

# CPU pinning: servers on CPU 0, the load generator on CPU 1, when possible.
# setup_pinning [CLIENT]: CLIENT names the load generator in the log line.
SERVER_PIN=()
CLIENT_PIN=()
setup_pinning() {
    if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
        SERVER_PIN=(taskset -c 0)
        CLIENT_PIN=(taskset -c 1)
        log "pinning servers to CPU 0 and ${1:-wrk} to CPU 1"
    else
        log "taskset missing or a single CPU: running unpinned"
    fi
}

# cargo_release ARGS...: `cargo build --release ARGS...` in the repository
# root, niced (the build must not starve whatever else the machine is doing)
# and bounded.
cargo_release() {
    log "cargo build --release $*"
    (cd "$ROOT" && timeout "$BUILD_TIMEOUT" nice -n 10 cargo build --release "$@") \
        || die "cargo build failed (SKIP_BUILD=1 with BARE_PROXY_BIN/AUTHGATE_BIN uses prebuilt binaries)"
}

# ---------------------------------------------------------------------------
# Server helpers
# ---------------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# wait_port PORT PID NAME: wait (bounded) until PORT accepts connections.
wait_port() {
    local port="$1" pid="$2" name="$3" i
    for ((i = 0; i < READY_TIMEOUT * 100; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (log: $SCRATCH/$name.log)"
        if port_open "$port"; then return 0; fi
        sleep 0.01
    done
    die "$name did not open $HOST:$port within ${READY_TIMEOUT}s (log: $SCRATCH/$name.log)"
}

# start NAME PORT CMD...: start a server in the background pinned to the
# server CPU, record its PID in PID[NAME], wait for its port.
# Sets STARTUP_MS to the time from launch to the port accepting connections.
start() {
    local name="$1" port="$2"; shift 2
    port_open "$port" && die "$HOST:$port is already in use; stop whatever listens there"
    local t0 t1
    t0="$(date +%s%N)"
    "${SERVER_PIN[@]}" "$@" >>"$SCRATCH/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    PID[$name]="$pid"
    wait_port "$port" "$pid" "$name"
    t1="$(date +%s%N)"
    STARTUP_MS=$(( (t1 - t0) / 1000000 ))
    log "$name up on $HOST:$port (pid $pid, ${STARTUP_MS} ms)"
}

# stop NAME: SIGTERM, then wait (bounded) for the process to exit.
stop() {
    local name="$1" pid="${PID[$1]}" i
    forget "$pid"
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    log "$name did not stop within 10 s of SIGTERM; killed"
}
# forget PID: a stopped server is not signalled again on exit (its PID may be reused).
forget() {
    local p kept=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

# mem_kib PID FIELD: VmRSS or VmHWM of PID in KiB.
mem_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# http_status URL [curl args...]: print the status code of one bounded request.
http_status() {
    local url="$1"; shift
    curl -s -o /dev/null -w '%{http_code}' --max-time "$CURL_TIMEOUT" "$@" "$url" || true
}

# expect_status WANT DESCRIPTION URL [curl args...]
expect_status() {
    local want="$1" what="$2" url="$3"; shift 3
    local got
    got="$(http_status "$url" "$@")"
    [ "$got" = "$want" ] || die "smoke check failed: $what: expected $want, got $got ($url)"
}

# ---------------------------------------------------------------------------
# Upstream and peers A, B, C
# ---------------------------------------------------------------------------

# Directives shared by both nginx instances: foreground master, one worker,
# all state inside the scratch directory, no access log, long keep-alive so
# wrk's connections are never recycled mid-run.
nginx_common() {
    local name="$1"
    cat <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $SCRATCH/$name.pid;
error_log $SCRATCH/$name.error.log warn;
events { worker_connections 4096; }
EOF
}

nginx_http_common() {
    local name="$1"
    cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $SCRATCH/$name-tmp/body;
    proxy_temp_path $SCRATCH/$name-tmp/proxy;
    fastcgi_temp_path $SCRATCH/$name-tmp/fastcgi;
    uwsgi_temp_path $SCRATCH/$name-tmp/uwsgi;
    scgi_temp_path $SCRATCH/$name-tmp/scgi;
EOF
}

start_upstream() {
    local conf="$SCRATCH/upstream.conf"
    mkdir -p "$SCRATCH/upstream-tmp"
    {
        nginx_common upstream
        echo "http {"
        nginx_http_common upstream
        cat <<EOF
    server {
        listen $HOST:$PORT_UPSTREAM;
        default_type application/json;
        # Smoke checks only: echoes the identity header the proxy injected.
        location ~ /__whoami\$ { return 200 '{"user":"\$http_x_user_id"}'; }
        location / { return 200 '{"msg":"ok"}'; }
    }
}
EOF
    } >"$conf"
    start upstream "$PORT_UPSTREAM" nginx -p "$SCRATCH" -e "$SCRATCH/upstream.error.log" -c "$conf"
}

start_nginx_proxy() {
    local conf="$SCRATCH/nginx.conf"
    mkdir -p "$SCRATCH/nginx-tmp"
    {
        nginx_common nginx
        echo "http {"
        nginx_http_common nginx
        cat <<EOF
    upstream backend {
        server $HOST:$PORT_UPSTREAM;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen $HOST:$PORT_A;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    } >"$conf"
    start nginx "$PORT_A" nginx -p "$SCRATCH" -e "$SCRATCH/nginx.error.log" -c "$conf"
}

# HAProxy verifies the token the way a JWT gateway must: header present, alg
# pinned to HS256, valid signature, issuer/audience, not expired. It then
# replaces X-User-Id with the `sub` claim. Anything else gets a 401.
start_haproxy() {
    local conf="$SCRATCH/haproxy.cfg"
    cat >"$conf" <<EOF
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 60s

frontend fe
    bind $HOST:$PORT_B
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.now) date
    http-request return status 401 content-type application/json string '{"error":"unauthorized"}' unless { var(txn.bearer) -m found } { var(txn.bearer),jwt_header_query('\$.alg') -m str HS256 } { var(txn.bearer),jwt_verify("HS256","$SECRET") -m int 1 } { var(txn.bearer),jwt_payload_query('\$.exp','int'),sub(txn.now) -m int gt 0 } { var(txn.bearer),jwt_payload_query('\$.iss') -m str authgate } { var(txn.bearer),jwt_payload_query('\$.aud') -m str authgate }
    http-request set-header X-User-Id %[var(txn.bearer),jwt_payload_query('\$.sub')]
    default_backend be

backend be
    http-reuse always
    server s1 $HOST:$PORT_UPSTREAM
EOF
    haproxy -c -q -f "$conf" >"$SCRATCH/haproxy.check.log" 2>&1 \
        || die "haproxy rejected its config: $(cat "$SCRATCH/haproxy.check.log")"
    start haproxy "$PORT_B" haproxy -db -f "$conf"
}

start_bare_proxy() {
    start bare "$PORT_C" env BARE_LISTEN="$HOST:$PORT_C" BARE_UPSTREAM="$HOST:$PORT_UPSTREAM" \
        "$BARE_PROXY_BIN"
}

start_lean_core() {
    start lean "$PORT_L" env LEAN_LISTEN="$HOST:$PORT_L" LEAN_UPSTREAM="$HOST:$PORT_UPSTREAM" \
        "$LEAN_CORE_BIN"
}

# ---------------------------------------------------------------------------
# authgate
# ---------------------------------------------------------------------------

# >>> authgate config generation: the one place to adjust when the config
# format changes. Rate limits are set far above anything wrk can reach so the
# limiter's bookkeeping is measured but never rejects; log level is warn (by
# default) so that, like nginx and haproxy here, authgate writes no
# per-request log. No metrics listener: nothing scrapes it during the runs.
#
# Optional keys (bench/logins): AG_HASH_THREADS and AG_HASH_QUEUE add a
# [limits] table, AG_LOGIN_FAILURES sets [rate_limits] login_failures. Unset,
# the file is exactly what bench/run has always used.
write_authgate_config() {
    local file="$1" limits="" extra_rate_limits=""
    if [ -n "${AG_HASH_THREADS:-}" ] || [ -n "${AG_HASH_QUEUE:-}" ]; then
        limits=$'\n\n[limits]'
        [ -z "${AG_HASH_THREADS:-}" ] || limits+=$'\n'"hash_threads = $AG_HASH_THREADS"
        [ -z "${AG_HASH_QUEUE:-}" ] || limits+=$'\n'"hash_queue = $AG_HASH_QUEUE"
    fi
    [ -z "${AG_LOGIN_FAILURES:-}" ] || extra_rate_limits=$'\n'"login_failures = \"$AG_LOGIN_FAILURES\""
    cat >"$file" <<EOF
[server]
listen = "$HOST:$PORT_D"
threads = 1

[database]
url = "$SCRATCH/authgate.db"

[tokens]
secret = "$SECRET"
issuer = "authgate"
audience = "authgate"$limits

[rate_limits]
register = "1000000/1s"
login = "1000000/1s"
refresh = "1000000/1s"
authenticated = "1000000000/1s"
public = "1000000000/1s"$extra_rate_limits

[log]
level = "$AUTHGATE_LOG_LEVEL"

[[upstreams]]
name = "backend"
servers = ["$HOST:$PORT_UPSTREAM"]

[[routes]]
prefix = "/public"
upstream = "backend"
auth = "public"

[[routes]]
prefix = "/api"
upstream = "backend"
auth = "required"
EOF
}
# <<< authgate config generation

start_authgate() {
    local conf="$SCRATCH/authgate.toml"
    [ -f "$conf" ] || write_authgate_config "$conf"
    # The environment overrides the file (JWT_SECRET_KEY, DATABASE_URL, RUST_LOG,
    # ...): drop those so the generated config is what runs.
    start authgate "$PORT_D" env -u JWT_SECRET_KEY -u DATABASE_URL -u AUTHGATE_LISTEN \
        -u AUTHGATE_LOG_FORMAT -u RUST_LOG "$AUTHGATE_BIN" --config "$conf"
}

# authgate_token USERNAME: registers USERNAME on authgate and prints its access token.
authgate_token() {
    local user="$1" body
    body="$(curl -s --max-time "$CURL_TIMEOUT" -X POST "http://$HOST:$PORT_D/register" \
        -H 'Content-Type: application/json' \
        -d "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"bench-password-123\"}")" \
        || die "POST /register on authgate failed"
    local token
    token="$(printf '%s' "$body" | sed -n 's/.*"access_token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')"
    [ -n "$token" ] || die "no access_token in the /register reply: $body"
    printf '%s' "$token"
}

# seed_revocations COUNT SID USER_ID: inserts COUNT unexpired rows into the
# revocations table of the stopped gateway's database, in one transaction:
# COUNT-1 random session/token ids plus the session SID (so that one token
# must be refused). authgate created the schema on its first start; columns
# added later by migrations have defaults.
seed_revocations() {
    local count="$1" sid="$2" user_id="$3" t0 t1
    t0="$(date +%s%N)"
    python3 - "$SCRATCH/authgate.db" "$count" "$sid" "$user_id" <<'PY' || die "seeding $count revocations failed"
import sqlite3, sys, time, uuid

db, count, sid, user_id = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
now = int(time.time())
expires = now + 30 * 86400
rows = (
    (str(uuid.uuid4()), "session" if i % 2 == 0 else "token", 1000 + i % 100000, expires, now)
    for i in range(count - 1)
)
con = sqlite3.connect(db)
with con:  # one transaction
    sql = ("INSERT INTO revocations (revoked_id, kind, user_id, expires_at, revoked_at) "
           "VALUES (?, ?, ?, ?, ?)")
    con.executemany(sql, rows)
    con.execute(sql, (sid, "session", user_id, expires, now))
n = con.execute("SELECT count(*) FROM revocations WHERE expires_at > ?", (now,)).fetchone()[0]
con.close()
if n < count:
    sys.exit(f"only {n} unexpired revocations in the database, expected {count}")
PY
    t1="$(date +%s%N)"
    log "seeded $count revocations in $(( (t1 - t0) / 1000000 )) ms"
}

# Starts authgate, registers the bench users, stops it, seeds the revocations
# (--revoked N), and starts it again: the second start is the one measured
# (time to open the port, memory). TOKEN is a valid access token;
# REVOKED_TOKEN's session is among the seeded revocations when N > 0.
setup_authgate() {
    start_authgate
    TOKEN="$(authgate_token bench)"
    REVOKED_TOKEN="$(authgate_token bench_revoked)"
    stop authgate
    if [ "$REVOKED" -gt 0 ]; then
        seed_revocations "$REVOKED" "$(jwt_claim "$REVOKED_TOKEN" sid)" "$(jwt_claim "$REVOKED_TOKEN" sub)"
    fi
    start_authgate
    AG_STARTUP_MS="$STARTUP_MS"
    AG_RSS_START="$(mem_kib "${PID[authgate]}" VmRSS)"
    AG_HWM_START="$(mem_kib "${PID[authgate]}" VmHWM)"
    log "authgate with $REVOKED revocations: port open after ${AG_STARTUP_MS} ms, RSS $((AG_RSS_START / 1024)) MiB (peak $((AG_HWM_START / 1024)) MiB)"
}

# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

uuid4() { cat /proc/sys/kernel/random/uuid; }

# mint_token SUB EXP: an HS256 JWT with the claims authgate issues (access
# type), signed with $SECRET, so that authgate and haproxy judge it alike.
mint_token() {
    local sub="$1" exp="$2" now header payload sig
    now="$(date +%s)"
    header="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)"
    payload="$(printf '{"sub":"%s","username":"bench_user","type":"access","jti":"%s","sid":"%s","iat":%s,"nbf":%s,"exp":%s,"iss":"authgate","aud":"authgate","fresh":false}' \
        "$sub" "$(uuid4)" "$(uuid4)" "$now" "$now" "$exp" | b64url)"
    sig="$(printf '%s.%s' "$header" "$payload" \
        | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)"
    printf '%s.%s.%s' "$header" "$payload" "$sig"
}

# jwt_claim TOKEN NAME: a string or number claim of the token's payload.
jwt_claim() {
    printf '%s' "$1" | cut -d. -f2 | tr '_-' '/+' \
        | awk '{ n = length($0) % 4; if (n == 2) $0 = $0 "=="; else if (n == 3) $0 = $0 "="; print }' \
        | openssl base64 -d -A \
        | sed -n 's/.*"'"$2"'"[[:space:]]*:[[:space:]]*"\{0,1\}\([^",}]*\).*/\1/p'
}

# ---------------------------------------------------------------------------
# Smoke checks: every peer answers as expected before any load runs.
# ---------------------------------------------------------------------------

smoke_checks() {
    local auth=(-H "Authorization: Bearer $TOKEN")
    expect_status 200 "upstream" "http://$HOST:$PORT_UPSTREAM/api"
    expect_status 200 "nginx proxy" "http://$HOST:$PORT_A/api"
    expect_status 200 "bare pingora" "http://$HOST:$PORT_C/api"
    # bench/latency starts no lean floor.
    [ -z "${PID[lean]:-}" ] || expect_status 200 "lean pingora-core floor" "http://$HOST:$PORT_L/api"

    local expired forged
    expired="$(mint_token 424242 $(( $(date +%s) - 3600 )))"
    forged="${TOKEN%.*}.$(printf 'forged' | b64url)"
    expect_status 200 "haproxy, valid token" "http://$HOST:$PORT_B/api" "${auth[@]}"
    expect_status 401 "haproxy, no token" "http://$HOST:$PORT_B/api"
    expect_status 401 "haproxy, expired token" "http://$HOST:$PORT_B/api" -H "Authorization: Bearer $expired"
    expect_status 401 "haproxy, bad signature" "http://$HOST:$PORT_B/api" -H "Authorization: Bearer $forged"
    local who
    who="$(curl -s --max-time "$CURL_TIMEOUT" "${auth[@]}" -H 'X-User-Id: spoofed' "http://$HOST:$PORT_B/api/__whoami")"
    [[ "$who" == *'"user":"'"$TOKEN_SUB"'"'* ]] \
        || die "haproxy did not set X-User-Id from sub ($TOKEN_SUB): $who"

    if [ "$SKIP_AUTHGATE" != 1 ]; then
        expect_status 200 "authgate /public" "http://$HOST:$PORT_D/public"
        expect_status 200 "authgate /api, valid token" "http://$HOST:$PORT_D/api" "${auth[@]}"
        expect_status 401 "authgate /api, no token" "http://$HOST:$PORT_D/api"
        expect_status 401 "authgate /api, expired token" "http://$HOST:$PORT_D/api" -H "Authorization: Bearer $expired"
        expect_status 401 "authgate /api, bad signature" "http://$HOST:$PORT_D/api" -H "Authorization: Bearer $forged"
        if [ "$REVOKED" -gt 0 ]; then
            expect_status 401 "authgate /api, token of a revoked session (seeded)" "http://$HOST:$PORT_D/api" \
                -H "Authorization: Bearer $REVOKED_TOKEN"
        else
            expect_status 200 "authgate /api, second user's token" "http://$HOST:$PORT_D/api" \
                -H "Authorization: Bearer $REVOKED_TOKEN"
        fi
        who="$(curl -s --max-time "$CURL_TIMEOUT" "${auth[@]}" -H 'X-User-Id: spoofed' "http://$HOST:$PORT_D/api/__whoami")"
        [[ "$who" == *'"user":"'"$TOKEN_SUB"'"'* ]] \
            || die "authgate did not set X-User-Id from sub ($TOKEN_SUB): $who"
    fi
    log "smoke checks passed"
}

# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------

CLK_TCK="$(getconf CLK_TCK)"

# cpu_ticks PID...: "utime stime" in clock ticks, summed over each PID and its
# live direct children (nginx's workers). Fields 14 and 15 of /proc/PID/stat;
# the command name (field 2) may hold spaces, so split after its ')'.
cpu_ticks() {
    local pids=("$@") p stat rest
    local -a f
    local ut=0 st=0
    for stat in /proc/[0-9]*/stat; do
        read -r rest 2>/dev/null <"$stat" || continue
        p="${stat#/proc/}"; p="${p%/stat}"
        rest="${rest##*) }"
        read -r -a f <<<"$rest"
        # f[0]=state f[1]=ppid ... f[11]=utime f[12]=stime
        local q
        for q in "${pids[@]}"; do
            if [ "$p" = "$q" ] || [ "${f[1]}" = "$q" ]; then
                ut=$((ut + f[11])); st=$((st + f[12]))
                break
            fi
        done
    done
    printf '%s %s\n' "$ut" "$st"
}

# ctx_switches PID: "voluntary involuntary" context switches of every thread of PID
# and of its live direct children (nginx's workers), from /proc/*/task/*/status.
# Voluntary: a thread blocked (epoll_wait, a lock); involuntary: it was preempted.
ctx_switches() {
    local p files=()
    for p in "$1" $(pgrep -P "$1"); do files+=(/proc/"$p"/task/*/status); done
    awk '$1 == "voluntary_ctxt_switches:" { v += $2 } $1 == "nonvoluntary_ctxt_switches:" { n += $2 }
         END { print v + 0, n + 0 }' "${files[@]}" 2>/dev/null
}

# machine_ticks: "busy steal" clock ticks of all CPUs (busy = user nice system irq softirq).
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }

# children_ticks VAR: sets VAR to the user+sys clock ticks of the processes this
# shell has waited for (wrk). `times` must run in this shell, not in a $(...)
# subshell: a forked subshell starts with zero children times.
children_ticks() {
    times >"$SCRATCH/times.txt"
    printf -v "$1" '%s' "$(awk -v t="$CLK_TCK" 'NR == 2 {
        n = 0
        for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); n += p[1] * 60 + p[2] }
        printf "%d\n", n * t + 0.5 }' "$SCRATCH/times.txt")"
}

sum2() { local a b; read -r a b <<<"$1"; echo $((a + b)); }

# wait_idle: prints how busy the machine is (% of all CPUs, 1 s sample, our
# servers idle); with WAIT_IDLE > 0, first waits up to that long for < 10 %.
wait_idle() {
    local waited=0 a b busy
    while :; do
        a=($(head -n1 /proc/stat)); sleep 1; b=($(head -n1 /proc/stat))
        busy="$(awk -v u="$(( b[1]+b[2]+b[3]+b[6]+b[7] - a[1]-a[2]-a[3]-a[6]-a[7] ))" \
            -v t="$(( b[1]+b[2]+b[3]+b[4]+b[5]+b[6]+b[7]+b[8] - a[1]-a[2]-a[3]-a[4]-a[5]-a[6]-a[7]-a[8] ))" \
            'BEGIN { printf "%.0f", (t > 0 ? 100 * u / t : 0) }')"
        waited=$((waited + 1))
        if [ "$busy" -lt 10 ] || [ "$waited" -ge "$WAIT_IDLE" ]; then break; fi
    done
    if [ "$busy" -ge 10 ] && [ "$WAIT_IDLE" -gt 0 ]; then
        log "machine still ${busy}% busy after waiting ${WAIT_IDLE}s; measuring anyway"
    fi
    echo "$busy"
}

# Converts a wrk latency ("812.00us", "1.23ms", "2.00s") to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}

# Target table: key, label, port, path, whether a token is sent, server PIDs.
targets() {
    local t
    for t in ${TARGETS:-A B C L Dp Dr}; do
        case "$t" in
            Dp|Dr) [ "$SKIP_AUTHGATE" != 1 ] && echo "$t" ;;
            *) echo "$t" ;;
        esac
    done
    return 0
}
label() {
    case "$1" in
        A) echo "A nginx proxy (no auth)" ;;
        B) echo "B haproxy + JWT" ;;
        C) echo "C bare pingora" ;;
        L) echo "L lean pingora-core floor" ;;
        Dp) echo "D authgate /public" ;;
        Dr) echo "D authgate /api (JWT)" ;;
    esac
}
target_url() {
    case "$1" in
        A) echo "http://$HOST:$PORT_A/api" ;;
        B) echo "http://$HOST:$PORT_B/api" ;;
        C) echo "http://$HOST:$PORT_C/api" ;;
        L) echo "http://$HOST:$PORT_L/api" ;;
        Dp) echo "http://$HOST:$PORT_D/public" ;;
        Dr) echo "http://$HOST:$PORT_D/api" ;;
    esac
}
target_pid() {
    case "$1" in
        A) echo "${PID[nginx]}" ;;
        B) echo "${PID[haproxy]}" ;;
        C) echo "${PID[bare]}" ;;
        L) echo "${PID[lean]}" ;;
        Dp|Dr) echo "${PID[authgate]}" ;;
    esac
}
# target_gets_token KEY: whether wrk sends KEY the Bearer token. By default every peer
# gets the same request, token included, so that the ratios compare what each does
# with the same bytes (nginx and bare pingora forward the header unchecked).
# SAME_REQUEST=0 sends it only to the peers that check it (B and Dr).
target_gets_token() {
    [ "${SAME_REQUEST:-1}" = 1 ] && return 0
    case "$1" in B|Dr) return 0 ;; *) return 1 ;; esac
}

# median_of [EMPTY [FORMAT]]: the median of the numbers on stdin, one a line (for an even
# count the mean of the two middle ones, printed with FORMAT, "%.3f"); EMPTY ("-") when
# there are none.
median_of() {
    sort -g | awk -v empty="${1:--}" -v fmt="${2:-%.3f}" '{ v[NR] = $1 }
        END { if (NR == 0) { print empty; exit }
              if (NR % 2) print v[(NR + 1) / 2]; else printf fmt "\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# machine_busy: percentage of all CPUs busy over 2 s (before any server starts).
machine_busy() {
    local a b
    a=($(head -n1 /proc/stat)); sleep 2; b=($(head -n1 /proc/stat))
    awk -v u="$(( b[1]+b[2]+b[3]+b[6]+b[7]+b[8] - a[1]-a[2]-a[3]-a[6]-a[7]-a[8] ))" \
        -v t="$(( b[1]+b[2]+b[3]+b[4]+b[5]+b[6]+b[7]+b[8] - a[1]-a[2]-a[3]-a[4]-a[5]-a[6]-a[7]-a[8] ))" \
        'BEGIN { printf "%.0f", (t > 0 ? 100 * u / t : 0) }'
}

