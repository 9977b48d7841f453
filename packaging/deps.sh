# Sourced by packaging/build and tests/run: installs what they need, once.
# Idempotent: nothing is installed or fetched when it is already there.

TARGET=x86_64-unknown-linux-musl

# Installs the Debian packages given that are not installed yet.
need_debs() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]}; run as root or install them first" >&2
        exit 1
    fi
    echo "installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

# Puts cargo on PATH and adds the static (musl) target.
need_rust() {
    if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
        . "$HOME/.cargo/env"
    fi
    if ! command -v cargo >/dev/null || ! command -v rustup >/dev/null; then
        echo "cargo and rustup are needed: install Rust with rustup (https://rustup.rs)" >&2
        exit 1
    fi
    rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
}

CARGO_DEB_VERSION=3.8.0

# Installs the pinned cargo-deb unless that version is already there.
need_cargo_deb() {
    if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ] &&
       [ "$(cargo deb --version 2>/dev/null)" != "$CARGO_DEB_VERSION" ]; then
        cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
    fi
}
