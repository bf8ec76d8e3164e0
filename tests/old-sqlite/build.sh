#!/usr/bin/env bash
# Builds the old-SQLite test helpers that tests/old_sqlite.rs drives: driver.c linked against
#   - 3.7.17 (2013), sharecache's floor (README, Known limits),
#   - 3.24.0 (2018) and 3.31.1 (2020), releases apps still bundle,
#   - the SQLite rusqlite bundles, compiled with SQLITE_OMIT_JSON (as any build before 3.38
#     without the JSON1 extension).
# The old amalgamations come from old releases of the `sqlite3` npm package (its deps/ holds
# SQLite's own sqlite-autoconf tarballs), fetched with `npm pack`; the current one is the bundled
# source of the libsqlite3-sys crate that Cargo.lock pins (cargo fetch). Nothing fetched is
# committed. Output: target/old-sqlite/bin/sqlite-<version>; `driver --version` says which.
# Usage: tests/old-sqlite/build.sh   (then: cargo test --test tests old_sqlite)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${CARGO_TARGET_DIR:-$root/target}/old-sqlite"
mkdir -p "$out/src" "$out/bin"
cc="${CC:-cc}"
flags=(-O1 -w -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION)

# npm package version -> the SQLite release inside it
declare -A npm=([2.1.15]=3071700 [4.0.2]=3240000 [5.0.0]=3310100)

fetch_npm() { # npm-version sqlite-number
    local dir="$out/src/$2"
    [ -f "$dir/sqlite3.c" ] && return 0
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "sqlite3@$1" >/dev/null)
    tar xzf "$tmp"/sqlite3-"$1".tgz -C "$tmp" "package/deps/sqlite-autoconf-$2.tar.gz"
    tar xzf "$tmp/package/deps/sqlite-autoconf-$2.tar.gz" -C "$tmp"
    mkdir -p "$dir"
    cp "$tmp/sqlite-autoconf-$2/sqlite3.c" "$tmp/sqlite-autoconf-$2/sqlite3.h" "$dir/"
    rm -rf "$tmp"
}

build() { # source-dir name extra-flags...
    local src="$1" name="$2"
    shift 2
    local bin="$out/bin/$name"
    if [ ! -x "$bin" ] || [ "$here/driver.c" -nt "$bin" ]; then
        "$cc" "${flags[@]}" "$@" -I"$src" -o "$bin.tmp" "$here/driver.c" "$src/sqlite3.c" -lpthread -ldl -lm
        mv "$bin.tmp" "$bin"
    fi
    echo "old-sqlite: $("$bin" --version) -> $bin"
}

for v in "${!npm[@]}"; do fetch_npm "$v" "${npm[$v]}"; done

# The current SQLite: libsqlite3-sys's bundled amalgamation, at the version Cargo.lock pins.
sys="$(cd "$root" && cargo metadata --format-version 1 --locked 2>/dev/null |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="libsqlite3-sys"))')"
current="$(dirname "$sys")/sqlite3"
[ -f "$current/sqlite3.c" ] || (cd "$root" && cargo fetch --locked >/dev/null)

pids=()
for v in "${!npm[@]}"; do
    n="${npm[$v]}"
    name="sqlite-$((10#${n:0:1})).$((10#${n:1:2})).$((10#${n:3:2}))"
    build "$out/src/$n" "$name" & pids+=($!)
done
build "$current" sqlite-current-nojson -DSQLITE_OMIT_JSON & pids+=($!)
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
