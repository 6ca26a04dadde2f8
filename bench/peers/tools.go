//go:build tools

// Package peers pins the peer programs the benchmarks run beside our control plane: Envoy AI Gateway's
// standalone aigw, built from the same go.mod as our go-control-plane server so both share its pins.
package peers

import _ "github.com/envoyproxy/ai-gateway/cmd/aigw"
