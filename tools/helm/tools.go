//go:build tools

// Package tools pins the helm binary the chart tests run, built by tools/build_test_tools.py.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
