#!/usr/bin/env bash
# outrider build driver.
#
#   ./build.sh                 install missing Debian packages, build everything (build/)
#   ./build.sh run [ARGS]      build, then run the agent in the foreground on agent.conf.example
#   ./build.sh test [--asan]   build, then run every test under prove (--asan: ASan+UBSan build in build-asan/)
#   ./build.sh fuzz [SECONDS]  build every libFuzzer target in build-fuzz/ and run each for SECONDS (default 60)
#   ./build.sh bench NAME      run bench/NAME/run
#
# Packages come from deps/*.txt (one Debian package per line) and are installed with apt-get when
# missing, which needs root.
set -euo pipefail
cd "$(dirname "$0")"

JOBS=$(nproc 2>/dev/null || echo 2)

missing_packages() {
    local pkgs
    pkgs=$(cat deps/*.txt | sed 's/#.*//' | tr -s ' \n' '\n' | sed '/^$/d' | sort -u)
    for p in $pkgs; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}

install_deps() {
    local missing
    missing=$(missing_packages | tr '\n' ' ')
    [ -z "${missing// }" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "build.sh: missing Debian packages: $missing" >&2
        echo "build.sh: run as root (or apt-get install them) and try again" >&2
        exit 1
    fi
    echo "build.sh: installing $missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null
}

build() {
    install_deps
    make -j"$JOBS" "$@"
}

run_tests() {
    local build_dir=build
    if [ "${1:-}" = "--asan" ]; then
        build_dir=build-asan
        build BUILD=build-asan SAN=1
    else
        build
    fi
    export OUTRIDER_BUILD=$build_dir
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=99"
    # Unit tests are executables; integration tests are Perl scripts.
    prove -j"$JOBS" --timer "$build_dir"/t/unit/*.t t/*.t
}

case "${1:-build}" in
build) build ;;
run)
    shift
    build
    exec build/outrider -c agent.conf.example "$@"
    ;;
test)
    shift
    run_tests "$@"
    ;;
fuzz)
    build
    exec t/fuzz/run "${2:-60}"
    ;;
bench)
    build
    exec "bench/${2:?bench name}/run" "${@:3}"
    ;;
*)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
