//go:build tools

// Package tools pins the Gateway API Inference Extension's endpoint picker (EPP) that the inference pool
// tests run against a real API server, built by controlplane/devtools/gotools.py.
package tools

import _ "sigs.k8s.io/gateway-api-inference-extension/cmd/epp"
