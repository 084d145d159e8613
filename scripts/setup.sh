#!/usr/bin/env bash
# Prepares a machine to run sandboxd and its tests: a Python >= 3.12 virtual
# environment with the project installed, a reachable Docker engine, the base
# image and the images built from images/.
#
# Run it directly (`scripts/setup.sh`) or source it and call `sandboxd_setup`
# (scripts/serve and scripts/test do). Every step first checks whether its result
# is already there, so a second run costs seconds.
#
# Environment:
#   SANDBOXD_PYTHON        a Python >= 3.12 to build .venv with (skips the search)
#   SANDBOXD_DEBIAN_MIRROR, SANDBOXD_DEBIAN_SECURITY_MIRROR
#                          where a base image that has to be bootstrapped gets its packages

SANDBOXD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SANDBOXD_STATE_DIR="$SANDBOXD_ROOT/.sandboxd"
SANDBOXD_LOG_DIR="$SANDBOXD_STATE_DIR/logs"
SANDBOXD_VENV="$SANDBOXD_ROOT/.venv"
SANDBOXD_DEBIAN_MIRROR="${SANDBOXD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SANDBOXD_DEBIAN_SECURITY_MIRROR="${SANDBOXD_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
SANDBOXD_MIN_PYTHON="3.12"

# The images every run needs: one `build_image TAG CONTEXT [DOCKERFILE]` line each.
# Their base images are pulled, or bootstrapped where that fails, before the build.
sandboxd_build_images() {
    build_image sandboxd/sandbox:latest "$SANDBOXD_ROOT/images/sandbox"
}

# --- output -------------------------------------------------------------------

step() { printf '==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$1" >&2
    shift
    local line
    for line in "$@"; do printf '       %s\n' "$line" >&2; done
    exit 1
}

# Shows the end of a log after a failed step, so the cause is on screen.
show_log_tail() {
    local log="$1"
    printf -- '--- last lines of %s ---\n' "$log" >&2
    tail -n 30 "$log" >&2 || true
    printf -- '---\n' >&2
}

# --- small portable helpers -----------------------------------------------------

sha256_stdin() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum | cut -d' ' -f1
    else
        shasum -a 256 | cut -d' ' -f1
    fi
}

sha256_file() { sha256_stdin <"$1"; }

# Runs a command with a time limit where coreutils' timeout exists (not on stock macOS).
with_timeout() {
    local seconds="$1"
    shift
    if command -v timeout >/dev/null 2>&1; then
        timeout "$seconds" "$@"
    else
        "$@"
    fi
}

is_root() { [ "$(id -u)" -eq 0 ]; }

has_apt() { command -v apt-get >/dev/null 2>&1 && [ -f /etc/debian_version ]; }

SANDBOXD_APT_UPDATED=0
apt_install() {
    local log="$SANDBOXD_LOG_DIR/apt.log"
    if [ "$SANDBOXD_APT_UPDATED" -eq 0 ]; then
        step "apt-get update"
        if ! apt-get update >>"$log" 2>&1; then
            show_log_tail "$log"
            die "apt-get update failed (full log: $log)"
        fi
        SANDBOXD_APT_UPDATED=1
    fi
    step "installing $* from the distribution's packages"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$log" 2>&1; then
        show_log_tail "$log"
        die "apt-get install $* failed (full log: $log)"
    fi
}

# --- Python and the virtual environment -----------------------------------------

# Succeeds when $1 runs and is a Python >= 3.12 (pyenv shims for versions that are
# not selected exist on PATH but fail, so trying is the only reliable test).
python_is_usable() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

# Prints the path of the first usable Python >= 3.12, or fails.
find_python() {
    local candidate
    if [ -n "${SANDBOXD_PYTHON:-}" ]; then
        if python_is_usable "$SANDBOXD_PYTHON"; then
            printf '%s\n' "$SANDBOXD_PYTHON"
            return 0
        fi
        note "SANDBOXD_PYTHON=$SANDBOXD_PYTHON is not a working Python >= $SANDBOXD_MIN_PYTHON"
        return 1
    fi
    for candidate in python3.13 python3.12; do
        if command -v "$candidate" >/dev/null 2>&1 && python_is_usable "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    # pyenv is often installed but not on PATH in non-interactive shells (CI, sudo, cron).
    local pyenv_root="${PYENV_ROOT:-${HOME:-}/.pyenv}"
    if command -v pyenv >/dev/null 2>&1; then
        pyenv_root="$(pyenv root 2>/dev/null)" || pyenv_root=""
    fi
    if [ -n "$pyenv_root" ] && [ -d "$pyenv_root/versions" ]; then
        # Newest version first.
        while IFS= read -r candidate; do
            if python_is_usable "$candidate"; then
                printf '%s\n' "$candidate"
                return 0
            fi
        done < <(find "$pyenv_root"/versions/3.1[2-9]*/bin -maxdepth 1 -name 'python3.[0-9]*' \
            -not -name '*-config' 2>/dev/null | sort -rV)
    fi
    if command -v python3 >/dev/null 2>&1 && python_is_usable python3; then
        command -v python3
        return 0
    fi
    return 1
}

venv_is_usable() { [ -x "$SANDBOXD_VENV/bin/python" ] && python_is_usable "$SANDBOXD_VENV/bin/python"; }

ensure_venv() {
    local python stamp want log
    if ! venv_is_usable; then
        python="$(find_python)" || die "sandboxd needs Python $SANDBOXD_MIN_PYTHON or newer, and none was found." \
            "Install one, for example: apt-get install python3.13 python3.13-venv (Debian trixie)," \
            "brew install python@3.13 (macOS), or pyenv install 3.13; or point SANDBOXD_PYTHON at one."
        if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            die "$python cannot create virtual environments (the venv/ensurepip modules are missing)." \
                "On Debian or Ubuntu: apt-get install python3-venv (or python3.X-venv for that version)."
        fi
        if [ -e "$SANDBOXD_VENV" ]; then
            note "$SANDBOXD_VENV does not work any more (its Python is gone or too old): recreating it"
            rm -rf "$SANDBOXD_VENV"
        fi
        step "creating .venv with $python ($("$python" -c 'import platform; print(platform.python_version())'))"
        "$python" -m venv "$SANDBOXD_VENV" || die "could not create $SANDBOXD_VENV with $python"
    fi

    stamp="$SANDBOXD_VENV/.sandboxd-install-stamp"
    want="$(sha256_file "$SANDBOXD_ROOT/pyproject.toml")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$SANDBOXD_VENV/bin/sandboxd" ]; then
        return 0
    fi
    log="$SANDBOXD_LOG_DIR/pip-install.log"
    step "installing sandboxd and its dependencies into .venv (first time: a minute or two; log: .sandboxd/logs/pip-install.log)"
    rm -f "$stamp"
    if ! (cd "$SANDBOXD_ROOT" && "$SANDBOXD_VENV/bin/python" -m pip install -e '.[test]') >"$log" 2>&1; then
        show_log_tail "$log"
        die "pip install -e '.[test]' failed (full log: $log)"
    fi
    printf '%s\n' "$want" >"$stamp"
}

# --- Docker engine ---------------------------------------------------------------

docker_answers() { with_timeout 20 docker info >/dev/null 2>&1; }

# Starts the daemon ourselves where no service manager owns it; it outlives this script.
start_dockerd() {
    local log="$SANDBOXD_LOG_DIR/dockerd.log"
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        step "starting Docker with systemctl"
        systemctl start docker >/dev/null 2>&1 || true
    fi
    if ! docker_answers; then
        step "starting dockerd in the background (log: .sandboxd/logs/dockerd.log)"
        # fd 9 is the set-up lock: the daemon must not keep holding it.
        setsid nohup dockerd >>"$log" 2>&1 </dev/null 9>&- &
        disown || true
    fi
    local deadline=$((SECONDS + 30))
    until docker_answers; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            show_log_tail "$log"
            die "dockerd did not answer within 30 s (full log: $log)"
        fi
        sleep 1
    done
    note "Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null) is up"
}

ensure_docker() {
    if command -v docker >/dev/null 2>&1 && docker_answers; then
        return 0
    fi
    if command -v docker >/dev/null 2>&1 && docker info 2>&1 | grep -qi 'permission denied'; then
        die "Docker is running but this user may not use it." \
            "Add yourself to the docker group (sudo usermod -aG docker \"\$USER\", then log in again), or run as root."
    fi
    if ! is_root; then
        die "no Docker engine answers (docker info failed)." \
            "Start Docker Desktop or the docker service (sudo systemctl start docker)," \
            "or run this command as root on Debian/Ubuntu to have Docker installed and started for you."
    fi
    if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
        has_apt || die "no Docker engine is installed, and this is not a Debian/Ubuntu system this script knows how to install it on." \
            "Install Docker (https://docs.docker.com/engine/install/), start it, and run this again."
        apt_install docker.io debootstrap iptables
    fi
    start_dockerd
}

# --- base image ----------------------------------------------------------------

# Builds the base image from Debian packages where no registry can be reached.
# Usage: bootstrap_base_image TAG [SUITE]
bootstrap_base_image() {
    local tag="$1" suite="${2:-trixie}" rootfs log
    is_root || die "$tag is not here, cannot be pulled, and bootstrapping it needs root." \
        "Pull it from a machine with registry access (docker save / docker load), or run this as root."
    if ! command -v debootstrap >/dev/null 2>&1; then
        has_apt || die "debootstrap is needed to build $tag locally; install it and run this again."
        apt_install debootstrap
    fi
    log="$SANDBOXD_LOG_DIR/debootstrap.log"
    rootfs="$(mktemp -d "${TMPDIR:-/var/tmp}/sandboxd-rootfs.XXXXXX")"
    step "bootstrapping $tag from $SANDBOXD_DEBIAN_MIRROR (no registry; about a minute; log: .sandboxd/logs/debootstrap.log)"
    if ! debootstrap --variant=minbase "$suite" "$rootfs" "$SANDBOXD_DEBIAN_MIRROR" >"$log" 2>&1; then
        rm -rf "$rootfs"
        show_log_tail "$log"
        die "debootstrap of $suite failed (full log: $log)"
    fi
    slim_rootfs "$rootfs" "$suite"
    step "importing the root filesystem as $tag"
    if ! tar -C "$rootfs" -c . | docker import \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'LABEL org.sandboxd.bootstrapped=debootstrap' \
        - "$tag" >/dev/null; then
        rm -rf "$rootfs"
        die "docker import of the bootstrapped root filesystem failed"
    fi
    rm -rf "$rootfs"
    note "$tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1000000}')"
}

# Makes a debootstrapped tree behave like the registry's slim image: plain-http apt
# sources for the release, its updates and security fixes; no documentation or
# manuals and translations installed by later packages; no leftover package caches.
slim_rootfs() {
    local rootfs="$1" suite="$2"
    rm -f "$rootfs/etc/apt/sources.list"
    mkdir -p "$rootfs/etc/apt/sources.list.d"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $SANDBOXD_DEBIAN_MIRROR
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SANDBOXD_DEBIAN_SECURITY_MIRROR
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/sandboxd-slim" <<'EOF'
# Keep images small: documentation and translations are never read inside a container.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/sandboxd-slim" <<'EOF'
// Keep images small: a layer that runs apt must not keep its package caches.
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
EOF
    # What the excludes above would have kept out had they been there from the start.
    find "$rootfs/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian/* \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/log/*.log
}

# Usage: ensure_base_image TAG
ensure_base_image() {
    local tag="$1" suite
    if docker image inspect "$tag" >/dev/null 2>&1; then
        return 0
    fi
    step "pulling $tag"
    if with_timeout 60 docker pull "$tag" >/dev/null 2>&1; then
        return 0
    fi
    suite="$(debian_suite_of "$tag")" || die "$tag is not here and cannot be pulled (no registry reachable?)." \
        "Only debian:<release>[-slim] images can be built locally; load $tag with docker load, or base the Dockerfile on one."
    note "docker pull $tag failed (no registry reachable?): building it locally instead"
    bootstrap_base_image "$tag" "$suite"
}

# Prints the Debian release a debian:<release>[-slim] tag names (debian:trixie-slim -> trixie).
debian_suite_of() {
    local tag="${1#docker.io/}"
    tag="${tag#library/}"
    case "$tag" in
        debian:*[!a-z-]* | debian:-* | debian:) return 1 ;;
        debian:*) ;;
        *) return 1 ;;
    esac
    tag="${tag#debian:}"
    printf '%s\n' "${tag%-slim}"
}

# --- image builds ----------------------------------------------------------------

# Lists the files a build sends, relative to the context: what git tracks or would
# track (so .venv, caches and state stay out), or every file outside a checkout.
context_files() {
    local context="$1"
    if git -C "$context" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$context" && git ls-files -z --cached --others --exclude-standard . |
            while IFS= read -r -d '' path; do [ -f "$path" ] && printf '%s\n' "$path"; done)
    else
        (cd "$context" && find . -type f -not -path './.git/*' | sed 's|^\./||')
    fi | LC_ALL=C sort -u
}

# The images a Dockerfile builds FROM, leaving out its own stages and `scratch`.
dockerfile_bases() {
    awk 'toupper($1) == "FROM" {
             image = ""
             for (i = 2; i <= NF; i++) {
                 if (image == "" && $i !~ /^--/) image = $i
                 else if (toupper($i) == "AS" && i < NF) stage[tolower($(i + 1))] = 1
             }
             if (image != "" && image != "scratch" && !(tolower(image) in stage)) print image
         }' "$1" | sort -u
}

# The hash a built image carries as a label: every context file's path, mode bit and
# content, and the id of each base image, so a re-bootstrapped base triggers a rebuild.
context_hash() {
    local context="$1" dockerfile="$2" path base
    {
        while IFS= read -r path; do
            printf '%s %s %s\n' "$(sha256_file "$context/$path")" "$([ -x "$context/$path" ] && echo x || echo -)" "$path"
        done < <(context_files "$context")
        printf '%s dockerfile\n' "$(sha256_file "$dockerfile")"
        while IFS= read -r base; do
            printf 'from %s %s\n' "$base" "$(docker image inspect -f '{{.Id}}' "$base" 2>/dev/null || true)"
        done < <(dockerfile_bases "$dockerfile")
    } | sha256_stdin
}

# Builds TAG from CONTEXT (with CONTEXT/Dockerfile or DOCKERFILE) unless an image
# built from exactly these files is already there.
# Usage: build_image TAG CONTEXT [DOCKERFILE]
build_image() {
    local tag="$1" context="$2" dockerfile="${3:-$2/Dockerfile}" base want have log started
    [ -f "$dockerfile" ] || die "cannot build $tag: $dockerfile does not exist"
    while IFS= read -r base; do
        ensure_base_image "$base"
    done < <(dockerfile_bases "$dockerfile")
    want="$(context_hash "$context" "$dockerfile")"
    have="$(docker image inspect -f '{{ index .Config.Labels "org.sandboxd.build-hash" }}' "$tag" 2>/dev/null || true)"
    if [ "$have" = "$want" ]; then
        return 0
    fi
    log="$SANDBOXD_LOG_DIR/build-$(printf '%s' "$tag" | tr '/:' '__').log"
    step "building image $tag (first time: a few minutes; log: ${log#"$SANDBOXD_ROOT"/})"
    started=$SECONDS
    # The classic builder uses a local base image as it is; BuildKit insists on asking
    # a registry for its metadata, which fails on machines that have none.
    # Success is judged by the label below, not by this pipeline's status.
    DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build \
        --label "org.sandboxd.build-hash=$want" \
        -t "$tag" -f "$dockerfile" "$context" 2>&1 |
        tee "$log" | grep --line-buffered -E '^Step [0-9]+/[0-9]+ :' | sed -u 's/^/    /' >&2 || true
    have="$(docker image inspect -f '{{ index .Config.Labels "org.sandboxd.build-hash" }}' "$tag" 2>/dev/null || true)"
    if [ "$have" != "$want" ]; then
        show_log_tail "$log"
        die "building $tag failed (full log: $log)"
    fi
    note "$tag built in $((SECONDS - started)) s, $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1000000}')"
    # Rebuilds leave the previous image untagged; it is ours and no longer reachable.
    docker image prune -f --filter "label=org.sandboxd.build-hash" >/dev/null 2>&1 || true
}

# --- docker compose ------------------------------------------------------------

# docker-compose.yml works with the Compose v2 plugin or Debian's docker-compose 1.29;
# where neither is there and we may, the latter is installed (the plugin is not packaged).
ensure_compose() {
    if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
        return 0
    fi
    if is_root && has_apt; then
        apt_install docker-compose
    else
        note "neither 'docker compose' nor 'docker-compose' is installed: docker-compose.yml (and its test) need one"
    fi
}

# Image builds that install from PyPI run inside containers, which do not see the host's
# trust store; where TLS is inspected on the way out, pip there needs the host's CA bundle.
# The Dockerfiles pick up any *.pem in their directory (these copies are not committed).
stage_build_ca() {
    local bundle=/etc/ssl/certs/ca-certificates.crt dir
    [ -r "$bundle" ] || return 0
    for dir in "$SANDBOXD_ROOT/images/egress-proxy" "$SANDBOXD_ROOT/images/sandboxd"; do
        cmp -s "$bundle" "$dir/host-ca.pem" || cp "$bundle" "$dir/host-ca.pem"
    done
}

# --- everything ----------------------------------------------------------------

sandboxd_setup() {
    mkdir -p "$SANDBOXD_LOG_DIR"
    # Two commands started at once (tests and serve) must not build the same things twice.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$SANDBOXD_STATE_DIR/setup.lock"
        if ! flock -n 9; then
            step "waiting for another set-up of this checkout to finish"
            flock 9
        fi
    fi
    ensure_venv
    ensure_docker
    ensure_compose
    stage_build_ca
    sandboxd_build_images
    exec 9>&-
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    sandboxd_setup
    step "set-up done"
fi
