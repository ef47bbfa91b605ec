#!/usr/bin/env bash
# convpset autograder: runs ONCE, as root, when Gradescope builds the autograder image.
#
# Gradescope's default base image is Ubuntu 22.04 (Python 3.10; older images: 18.04 with
# 3.6, 20.04 with 3.8); convpset needs Python >= 3.11. Gradescope's own harness runs on the
# system python3, so that one is left alone: Python 3.11 comes from Ubuntu's universe
# repository (22.04) or the deadsnakes PPA (older releases), and convpset with a CPU build
# of torch goes into the virtual environment /opt/convpset, which run_autograder puts first
# on its own PATH.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SRC=/autograder/source
VENV=/opt/convpset

apt-get update
if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY=python3
    apt-get install -y --no-install-recommends python3-venv
else
    PY=python3.11
    if ! apt-get install -y --no-install-recommends python3.11 python3.11-venv; then
        apt-get install -y --no-install-recommends software-properties-common gpg-agent
        add-apt-repository -y ppa:deadsnakes/ppa
        apt-get update
        apt-get install -y --no-install-recommends python3.11 python3.11-venv
    fi
fi

"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
# torch first, from PyTorch's CPU index: a plain `pip install torch` pulls a multi-GB CUDA build
"$VENV/bin/python" -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
# this package, built from the course's checkout (the same pin keeps the CPU torch)
"$VENV/bin/python" -m pip install "$SRC"/convpset-*.whl torch==2.13.0
# fail the build (not every submission) if the package cannot grade
"$VENV/bin/python" -c "import convpset.integrations.gradescope.run, convpset.autograder.pipeline"
chmod +x "$SRC/run_autograder"
