//go:build tools

// Package tools pins the Kubernetes test binaries the Python test suite runs: a real etcd,
// kube-apiserver and kubectl, built from these exact module versions by tools/build_test_tools.py.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
