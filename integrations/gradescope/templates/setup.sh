#!/usr/bin/env bash
# convpset autograder: runs ONCE, as root, when Gradescope builds the autograder image.
#
# convpset needs CPython 3.11 (the version its dependencies were frozen and tested on).
# Gradescope's own harness runs on the image's python3, which is left alone: Python 3.11
# goes into the virtual environment /opt/convpset, which run_autograder puts first on
# its own PATH. Base images this script works on, and where Python 3.11 comes from:
#   Ubuntu 22.04 (Gradescope's default)  python3.11 from Ubuntu's own universe archive
#   Ubuntu 24.04                         python3.11 from the deadsnakes PPA
# Refused, with a message, before anything is installed: Ubuntu 18.04 and 20.04 (end of
# standard support; the deadsnakes PPA no longer publishes for them, and 18.04's glibc
# 2.27 is too old for torch's manylinux_2_28 wheel) and every other OS.
#
# Dependencies are installed from constraints.txt (every version frozen from the
# environment that built this bundle), torch at its frozen version from PyTorch's CPU
# index, so a rebuild months later gets the same versions.
#
# Environment (for checking this script off Gradescope; Gradescope sets none of them):
#   CONVPSET_AUTOGRADER_DIR  the autograder root (default /autograder)
#   CONVPSET_VENV            the virtual environment to create (default /opt/convpset)
#   CONVPSET_PYTHON          a Python 3.11 to use: skips the image check and apt/PPA
#   CONVPSET_TORCH_INDEX     torch's package index (default PyTorch's CPU index)
#   CONVPSET_OS_RELEASE      the os-release file read (default /etc/os-release)
#   CONVPSET_SETUP_CHECK_ONLY=1  print how Python 3.11 would be installed, and stop
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
AG="${CONVPSET_AUTOGRADER_DIR:-/autograder}"
SRC="$AG/source"
VENV="${CONVPSET_VENV:-/opt/convpset}"
TORCH_INDEX="${CONVPSET_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
OS_RELEASE="${CONVPSET_OS_RELEASE:-/etc/os-release}"
CONSTRAINTS="$SRC/constraints.txt"

refuse() {
    echo "convpset setup.sh: $1" >&2
    echo "convpset setup.sh: supported base images: Ubuntu 22.04 (Gradescope's default)," \
         "Ubuntu 24.04. Choose one on Configure Autograder -> Base Image, then rebuild." >&2
    exit 1
}

# How this image gets Python 3.11: "universe" or "deadsnakes"; refuses other images.
python_source() {
    [ -r "$OS_RELEASE" ] || refuse "cannot read $OS_RELEASE: unknown base image"
    local id version
    id="$(. "$OS_RELEASE" && echo "${ID:-}")"
    version="$(. "$OS_RELEASE" && echo "${VERSION_ID:-}")"
    case "$id $version" in
        "ubuntu 22.04") echo universe ;;
        "ubuntu 24.04") echo deadsnakes ;;
        "ubuntu 18.04"|"ubuntu 20.04")
            refuse "Ubuntu $version is past its standard support: the deadsnakes PPA no" \
                   "longer publishes Python 3.11 for it, and Ubuntu's own archive has none" ;;
        *) refuse "base image '$id $version' is not supported (convpset needs Python 3.11)" ;;
    esac
}

if [ -n "${CONVPSET_PYTHON:-}" ]; then
    PY="$CONVPSET_PYTHON"
    echo "convpset setup.sh: CONVPSET_PYTHON=$PY: image check and apt skipped"
else
    SOURCE="$(python_source)"
    if [ "${CONVPSET_SETUP_CHECK_ONLY:-}" = 1 ]; then
        echo "convpset setup.sh: python3.11 from $SOURCE"
        exit 0
    fi
    apt-get update
    if [ "$SOURCE" = deadsnakes ]; then
        apt-get install -y --no-install-recommends software-properties-common gpg-agent
        add-apt-repository -y ppa:deadsnakes/ppa
        apt-get update
    fi
    apt-get install -y --no-install-recommends python3.11 python3.11-venv libseccomp2
    PY=python3.11
fi
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || refuse "$PY is not Python 3.11: $("$PY" --version 2>&1)"
[ -f "$CONSTRAINTS" ] || refuse "$CONSTRAINTS missing: rebuild the bundle with pset export"
TORCH="$(sed -n 's/^torch==\([^ ;#]*\).*/\1/p' "$CONSTRAINTS")"
[ -n "$TORCH" ] || refuse "$CONSTRAINTS pins no torch version"

"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# the pip the bundle was built with, then torch alone from PyTorch's CPU index (a plain
# `pip install torch` pulls a multi-GB CUDA build; its dependencies come from PyPI next)
"${PIP[@]}" install --constraint "$CONSTRAINTS" pip
"${PIP[@]}" install --no-deps --index-url "$TORCH_INDEX" "torch==$TORCH"
# this package with every dependency at its frozen version
"${PIP[@]}" install --constraint "$CONSTRAINTS" "$SRC"/convpset-*.whl
"${PIP[@]}" check
# fail the build (not every submission) if the package cannot grade
"$VENV/bin/python" -c "import torch, convpset.integrations.gradescope.run, convpset.autograder.pipeline"
chmod +x "$SRC/run_autograder"
echo "convpset setup.sh: installed into $VENV ($("$VENV/bin/python" -V 2>&1), torch $TORCH)"
