# shellcheck shell=bash
# oha (https://github.com/hatoo/oha) helpers for bench/latency and bench/logins:
# fixed-rate HTTP load with JSON output. Sourced after bench/lib.sh, not run.
#
# OHA names the binary (default: oha on PATH, else ~/.cargo/bin/oha); when it is
# missing, ensure_oha runs `cargo install oha --locked` (into ~/.cargo/bin, or
# CARGO_INSTALL_ROOT when set) unless NO_INSTALL=1. The flags used here
# (--no-tui, --output-format json, --latency-correction,
# --stats-success-breakdown, -w) are those of oha 1.x (checked with 1.16).

OHA_INSTALL_TIMEOUT=1800   # seconds for cargo install oha

ensure_oha() {
    if [ -z "${OHA:-}" ]; then
        if command -v oha >/dev/null; then
            OHA="$(command -v oha)"
        else
            OHA="${CARGO_INSTALL_ROOT:-$HOME/.cargo}/bin/oha"
        fi
    fi
    if [ ! -x "$OHA" ]; then
        [ "$NO_INSTALL" != 1 ] || die "oha not found ($OHA) and NO_INSTALL=1"
        command -v cargo >/dev/null || die "oha not found and no cargo to install it"
        log "installing oha: cargo install oha --locked (a few minutes)"
        timeout "$OHA_INSTALL_TIMEOUT" nice -n 10 cargo install oha --locked >&2 \
            || die "cargo install oha --locked failed"
        [ -x "$OHA" ] || die "cargo installed oha, but not at $OHA (set OHA=/path/to/oha)"
    fi
    "$OHA" --help | grep -q -- '--output-format' \
        || die "$OHA has no --output-format (oha 1.x is needed; cargo install oha --locked)"
}

oha_version() { "$OHA" --version | head -n1; }

# oha_fixed_rate RATE CONNECTIONS SECONDS OUTFILE [oha args...] URL: RATE
# requests/s for SECONDS over CONNECTIONS keep-alive connections, latency
# measured from when each request was due (--latency-correction). JSON to
# OUTFILE, stderr to OUTFILE.err. Pinned like the other load generators.
oha_fixed_rate() {
    local rate="$1" conns="$2" secs="$3" out="$4"; shift 4
    timeout $((secs + 30)) "${CLIENT_PIN[@]}" "$OHA" --no-tui --output-format json \
        -q "$rate" --latency-correction -c "$conns" -z "${secs}s" -t 10s "$@" >"$out" 2>"$out.err"
}

# oha_summary FILE: "requests achieved_rps p50 p90 p99 p99.9 2xx non-2xx errors"
# from oha's JSON (latencies in ms; requests = answered requests; errors =
# transport errors other than the requests cut off at the deadline).
oha_summary() {
    jq -r '
        def ms(x): if x == null then "nan" else (x * 1000000 | round) / 1000 end;
        ([.statusCodeDistribution[]] | add // 0) as $n
        | ([.statusCodeDistribution | to_entries[] | select(.key | startswith("2")) | .value] | add // 0) as $ok
        | ([.errorDistribution | to_entries[] | select(.key | test("deadline") | not) | .value] | add // 0) as $err
        | [$n, (if .summary.total > 0 then ($n / .summary.total * 10 | round) / 10 else 0 end),
           ms(.latencyPercentiles.p50), ms(.latencyPercentiles.p90), ms(.latencyPercentiles.p99),
           ms(.latencyPercentiles["p99.9"]), $ok, ($n - $ok), $err]
        | map(tostring) | join(" ")' "$1"
}
