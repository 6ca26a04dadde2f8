#!/bin/sh
# The control plane image's build steps, in one place: the Dockerfile runs them, and so does
# tests/test_image.py (no container engine there), so the test proves what the image holds.
#
#   image/install.sh wheel SOURCE_DIR WHEEL_DIR   build the package's wheel (no dependencies) from SOURCE_DIR
#   image/install.sh venv VENV_DIR WHEEL_DIR      a fresh venv with that wheel and its runtime dependencies
#                                                 only (no dev or devtools extras)
set -eu

usage() {
    echo "usage: $0 wheel SOURCE_DIR WHEEL_DIR | venv VENV_DIR WHEEL_DIR" >&2
    exit 2
}

[ "$#" -eq 3 ] || usage
python="${PYTHON:-python3}"

case "$1" in
wheel)
    "$python" -m pip wheel --quiet --no-deps --wheel-dir "$3" "$2"
    ;;
venv)
    "$python" -m venv "$2"
    "$2/bin/python" -m pip install --quiet --disable-pip-version-check "$3"/*.whl
    # Installing tools are not needed to run the control plane; leave them out of the image (pip only
    # warns about one that the base's venv did not include).
    "$2/bin/python" -m pip uninstall --quiet --yes setuptools pip
    ;;
*)
    usage
    ;;
esac
